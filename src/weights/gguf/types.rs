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

/// ggml's type names by number (ggml.h `enum ggml_type`); "" where a number is unused.
const GGML_NAMES: [&str; 36] = [
    "F32", "F16", "Q4_0", "Q4_1", "", "", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K",
    "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S",
    "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16", "", "", "", "TQ1_0", "TQ2_0",
];

/// The numbers of the types we load, and candle's type for each, in the same order.
const LOADABLE_IDS: [u32; 13] = [0, 1, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 30];
const LOADABLE_CANDLE: [GgmlDType; 13] = {
    use GgmlDType::{BF16, F16, F32, Q2K, Q3K, Q4_0, Q4_1, Q4K, Q5_0, Q5_1, Q5K, Q6K, Q8_0};
    [
        F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2K, Q3K, Q4K, Q5K, Q6K, BF16,
    ]
};

/// Every type we load, in ggml's numbering.
pub const LOADABLE: [GgmlType; 13] = {
    let mut types = [GgmlType {
        id: 0,
        name: "F32",
        candle: GgmlDType::F32,
    }; 13];
    let mut i = 0;
    while i < types.len() {
        let id = LOADABLE_IDS[i];
        types[i] = GgmlType {
            id,
            name: GGML_NAMES[id as usize],
            candle: LOADABLE_CANDLE[i],
        };
        i += 1;
    }
    types
};

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
    usize::try_from(id)
        .ok()
        .and_then(|i| GGML_NAMES.get(i))
        .filter(|name| !name.is_empty())
        .map_or_else(|| format!("type {id}"), |name| (*name).to_string())
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
