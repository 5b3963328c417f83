//! Which ggml type each HiDream tensor gets, following the community files' recipe so that a
//! file we write matches one ComfyUI-GGUF's tools write from the same weights:
//!
//! - `tools/convert.py` (ComfyUI-GGUF 795e451) makes the base file: 1-D tensors, tensors of at
//!   most 1024 elements and HiDream's "high precision" keys (`.ff_i.gate.weight`,
//!   `img_emb.emb_pos`) in F32; everything else in BF16 when the source is bf16, else F16.
//! - `tools/lcpp.patch` (llama.cpp's quantizer, patched) then quantises only 2-D tensors outside
//!   the embedders, the final layer, the MoE gates and the caption projection; the `_M` mixes
//!   give attention values and feed-forward down projections (`to_v`, experts' `w2`) more bits;
//!   a K-quant whose rows are not a multiple of 256 falls back to F16.

use candle_core::DType;

use crate::weights::gguf::GgmlType;

/// What `quantize --type` asks for: one ggml type for the quantised tensors, or one of
/// llama.cpp's `_M` mixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QuantTarget {
    #[value(name = "f16")]
    F16,
    #[value(name = "bf16")]
    Bf16,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q6_k")]
    Q6K,
    #[value(name = "q5_k_m")]
    Q5KM,
    #[value(name = "q5_k")]
    Q5K,
    #[value(name = "q5_1")]
    Q5_1,
    #[value(name = "q5_0")]
    Q5_0,
    #[value(name = "q4_k_m")]
    Q4KM,
    #[value(name = "q4_k")]
    Q4K,
    #[value(name = "q4_1")]
    Q4_1,
    #[value(name = "q4_0")]
    Q4_0,
    #[value(name = "q3_k")]
    Q3K,
    #[value(name = "q2_k")]
    Q2K,
}

impl QuantTarget {
    /// The name `--type` takes (`q4_k_m`).
    pub fn name(self) -> &'static str {
        match self {
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
            Self::Q8_0 => "q8_0",
            Self::Q6K => "q6_k",
            Self::Q5KM => "q5_k_m",
            Self::Q5K => "q5_k",
            Self::Q5_1 => "q5_1",
            Self::Q5_0 => "q5_0",
            Self::Q4KM => "q4_k_m",
            Self::Q4K => "q4_k",
            Self::Q4_1 => "q4_1",
            Self::Q4_0 => "q4_0",
            Self::Q3K => "q3_k",
            Self::Q2K => "q2_k",
        }
    }

    /// The type most quantised tensors get.
    fn main_type(self) -> GgmlType {
        let name = match self {
            Self::F16 => "F16",
            Self::Bf16 => "BF16",
            Self::Q8_0 => "Q8_0",
            Self::Q6K => "Q6_K",
            Self::Q5KM | Self::Q5K => "Q5_K",
            Self::Q5_1 => "Q5_1",
            Self::Q5_0 => "Q5_0",
            Self::Q4KM | Self::Q4K => "Q4_K",
            Self::Q4_1 => "Q4_1",
            Self::Q4_0 => "Q4_0",
            Self::Q3K => "Q3_K",
            Self::Q2K => "Q2_K",
        };
        by_name(name)
    }

    /// The type of attention values and down projections (lcpp.patch's rules for `to_v` and
    /// experts' `w2`, which are the same for both: Q6_K in the `_M` mixes, Q4_1/Q5_1 for the
    /// legacy Q4_0/Q5_0).
    fn sensitive_type(self, name: &str) -> GgmlType {
        let is_value = name.contains(".to_v.weight");
        let is_down = name.contains("experts.") && name.contains(".w2.weight");
        match self {
            Self::Q4KM | Self::Q5KM if is_value || is_down => by_name("Q6_K"),
            Self::Q4_0 if is_down => by_name("Q4_1"),
            Self::Q5_0 if is_down => by_name("Q5_1"),
            _ => self.main_type(),
        }
    }

    /// llama.cpp's `general.file_type` number (`enum llama_ftype`), which ComfyUI-GGUF shows.
    pub fn file_type(self) -> u32 {
        match self {
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q8_0 => 7,
            Self::Q5_0 => 8,
            Self::Q5_1 => 9,
            Self::Q2K => 10,
            Self::Q3K => 12,
            Self::Q4K => 14,
            Self::Q4KM => 15,
            Self::Q5K => 16,
            Self::Q5KM => 17,
            Self::Q6K => 18,
            Self::Bf16 => 32,
        }
    }
}

/// Keys ComfyUI-GGUF's convert.py keeps in F32 for HiDream (`ModelHiDream.keys_hiprec`).
const HIGH_PRECISION: [&str; 2] = [".ff_i.gate.weight", "img_emb.emb_pos"];
/// Name parts lcpp.patch never quantises for HiDream.
const NEVER_QUANTISED: [&str; 6] = [
    "p_embedder.",
    "t_embedder.",
    "x_embedder.",
    "final_layer.",
    ".ff_i.gate.weight",
    "caption_projection.",
];
/// convert.py's QUANTIZATION_THRESHOLD.
const SMALL: usize = 1024;

/// The ggml type of tensor `name` of `shape` (PyTorch order) stored as `source` in the
/// checkpoint, for `target`.
pub fn tensor_type(name: &str, shape: &[usize], source: DType, target: QuantTarget) -> GgmlType {
    let elements: usize = shape.iter().product();
    let high_precision = HIGH_PRECISION.iter().any(|k| name.contains(k));
    if shape.len() <= 1 || elements <= SMALL || high_precision {
        return by_name("F32");
    }
    let base = if source == DType::BF16 {
        by_name("BF16")
    } else {
        by_name("F16")
    };
    let quantisable = shape.len() == 2 && !NEVER_QUANTISED.iter().any(|k| name.contains(k));
    if !quantisable {
        return base;
    }
    let wanted = match target {
        QuantTarget::F16 => return by_name("F16"),
        QuantTarget::Bf16 => return by_name("BF16"),
        _ => target.sensitive_type(name),
    };
    let row = shape.last().copied().unwrap_or(0);
    if row.is_multiple_of(wanted.block_size()) {
        wanted
    } else {
        // lcpp.patch falls back to F16 for K-quants; gguf-py's quantize fails over to F16 too.
        by_name("F16")
    }
}

fn by_name(name: &str) -> GgmlType {
    // Every name used above is in the table; F32 is its first entry either way.
    GgmlType::from_name(name).unwrap_or(crate::weights::gguf::LOADABLE[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(name: &str, shape: &[usize], target: QuantTarget) -> &'static str {
        tensor_type(name, shape, DType::BF16, target).name
    }

    #[test]
    fn names_are_the_flag_values() {
        use clap::ValueEnum as _;
        for target in QuantTarget::value_variants() {
            let value = target.to_possible_value().map(|v| v.get_name().to_string());
            assert_eq!(value.as_deref(), Some(target.name()));
        }
    }

    #[test]
    fn follows_the_community_recipe() {
        let q = QuantTarget::Q4KM;
        let ff = "double_stream_blocks.0.block.ff_i.experts.0.w1.weight";
        assert_eq!(ty(ff, &[6912, 2560], q), "Q4_K");
        let down = "double_stream_blocks.0.block.ff_i.experts.0.w2.weight";
        assert_eq!(ty(down, &[2560, 6912], q), "Q6_K");
        let shared_down = "double_stream_blocks.0.block.ff_i.shared_experts.w2.weight";
        assert_eq!(ty(shared_down, &[2560, 3584], q), "Q6_K");
        assert_eq!(ty(ff, &[64, 96], q), "F16", "96 is no multiple of 256");
        assert_eq!(ty(ff, &[64, 96], QuantTarget::Q8_0), "Q8_0");
        assert_eq!(ty("x_embedder.proj.weight", &[2560, 64], q), "BF16");
        let gate = "double_stream_blocks.0.block.ff_i.gate.weight";
        assert_eq!(ty(gate, &[4, 2560], q), "F32");
        assert_eq!(
            ty("t_embedder.timestep_embedder.linear_1.bias", &[2560], q),
            "F32"
        );
        let v = "double_stream_blocks.3.block.attn1.to_v.weight";
        assert_eq!(ty(v, &[2560, 2560], q), "Q6_K");
        assert_eq!(ty(v, &[2560, 2560], QuantTarget::Q8_0), "Q8_0");
        assert_eq!(ty(down, &[2560, 6912], QuantTarget::Q4_0), "Q4_1");
        let f32_source = tensor_type("final_layer.linear.weight", &[64, 2560], DType::F32, q);
        assert_eq!(f32_source.name, "F16");
    }
}
