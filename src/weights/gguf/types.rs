//! The ggml tensor types a GGUF file can hold, with the numbers ggml gives them on disk.
//!
//! ggml numbers its types in `enum ggml_type` (ggml/include/ggml.h); GGUF stores that number
//! per tensor. We read the types ComfyUI-GGUF's HiDream files use (F32, F16, BF16, the legacy
//! 32-wide quants and the 256-wide K-quants); every other number is refused by name.

use candle_core::quantized::GgmlDType;

/// One ggml tensor type: its on-disk number, the name users see, and how candle holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GgmlType {
    pub id: u32,
    pub name: &'static str,
    pub candle: GgmlDType,
}

/// Every type we load, in ggml's numbering (ggml.h `enum ggml_type`).
pub const LOADABLE: [GgmlType; 13] = [
    t(0, "F32", GgmlDType::F32),
    t(1, "F16", GgmlDType::F16),
    t(2, "Q4_0", GgmlDType::Q4_0),
    t(3, "Q4_1", GgmlDType::Q4_1),
    t(6, "Q5_0", GgmlDType::Q5_0),
    t(7, "Q5_1", GgmlDType::Q5_1),
    t(8, "Q8_0", GgmlDType::Q8_0),
    t(10, "Q2_K", GgmlDType::Q2K),
    t(11, "Q3_K", GgmlDType::Q3K),
    t(12, "Q4_K", GgmlDType::Q4K),
    t(13, "Q5_K", GgmlDType::Q5K),
    t(14, "Q6_K", GgmlDType::Q6K),
    t(30, "BF16", GgmlDType::BF16),
];

const fn t(id: u32, name: &'static str, candle: GgmlDType) -> GgmlType {
    GgmlType { id, name, candle }
}

/// Names of the ggml types we do not load, so a refusal can say what the file holds.
const OTHER_NAMES: [(u32, &str); 17] = [
    (9, "Q8_1"),
    (15, "Q8_K"),
    (16, "IQ2_XXS"),
    (17, "IQ2_XS"),
    (18, "IQ3_XXS"),
    (19, "IQ1_S"),
    (20, "IQ4_NL"),
    (21, "IQ3_S"),
    (22, "IQ2_S"),
    (23, "IQ4_XS"),
    (24, "I8"),
    (25, "I16"),
    (26, "I32"),
    (27, "I64"),
    (28, "F64"),
    (29, "IQ1_M"),
    (34, "TQ1_0"),
];

impl GgmlType {
    pub fn from_id(id: u32) -> Option<Self> {
        LOADABLE.into_iter().find(|t| t.id == id)
    }

    /// A type by its user-facing name, any case (`q8_0`, `Q4_K`).
    pub fn from_name(name: &str) -> Option<Self> {
        LOADABLE
            .into_iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    pub fn from_candle(dtype: GgmlDType) -> Option<Self> {
        LOADABLE.into_iter().find(|t| t.candle == dtype)
    }

    /// Elements per block (1 for the float types).
    pub fn block_size(self) -> usize {
        self.candle.block_size()
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        self.candle.type_size()
    }

    /// Bytes `elements` values take in this type, or `None` when they do not fill whole blocks.
    pub fn bytes_for(self, elements: usize) -> Option<usize> {
        elements
            .is_multiple_of(self.block_size())
            .then(|| elements / self.block_size() * self.block_bytes())
    }

    /// Whether this is a block-quantised type (not F32/F16/BF16).
    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// Average bits per weight, for sizes in `info` and the memory planner.
    pub fn bits_per_weight(self) -> f64 {
        (self.block_bytes() * 8) as f64 / self.block_size() as f64
    }
}

/// The name of a ggml type number we do not load, or `type N` for one ggml does not define.
pub fn unloadable_name(id: u32) -> String {
    OTHER_NAMES
        .iter()
        .find(|(n, _)| *n == id)
        .map_or_else(|| format!("type {id}"), |(_, name)| (*name).to_string())
}

/// The names of the loadable types, for messages.
pub fn loadable_names() -> String {
    LOADABLE.map(|t| t.name).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_ggml_block_sizes() {
        let q8 = GgmlType::from_name("q8_0").map(|t| (t.block_size(), t.block_bytes()));
        assert_eq!(q8, Some((32, 34)));
        let q4k = GgmlType::from_name("Q4_K").map(|t| (t.block_size(), t.block_bytes()));
        assert_eq!(q4k, Some((256, 144)));
        let q6k = GgmlType::from_name("Q6_K").map(GgmlType::bits_per_weight);
        assert_eq!(q6k, Some(6.5625));
        assert_eq!(GgmlType::from_id(30).map(|t| t.name), Some("BF16"));
        assert_eq!(unloadable_name(23), "IQ4_XS");
        assert_eq!(unloadable_name(99), "type 99");
    }
}
