//! T5 encoder GGUF files (llama.cpp's `t5encoder` layout, which ComfyUI-GGUF's T5 files use)
//! in transformers' terms: the names mapped back as ComfyUI-GGUF's `loader.py` (`T5_SD_MAP`)
//! does. No rows are reordered (T5 has no rotary embedding).

/// `general.architecture` of T5 encoder files; ComfyUI-GGUF also accepts plain `t5`.
pub const ARCHITECTURES: [&str; 2] = ["t5encoder", "t5"];

/// llama.cpp's name parts and transformers' for them, applied in order.
const NAMES: [(&str, &str); 14] = [
    ("enc.", "encoder."),
    (".blk.", ".block."),
    ("token_embd", "shared"),
    ("output_norm", "final_layer_norm"),
    ("attn_q", "layer.0.SelfAttention.q"),
    ("attn_k", "layer.0.SelfAttention.k"),
    ("attn_v", "layer.0.SelfAttention.v"),
    ("attn_o", "layer.0.SelfAttention.o"),
    ("attn_norm", "layer.0.layer_norm"),
    (
        "attn_rel_b",
        "layer.0.SelfAttention.relative_attention_bias",
    ),
    ("ffn_up", "layer.1.DenseReluDense.wi_1"),
    ("ffn_down", "layer.1.DenseReluDense.wo"),
    ("ffn_gate", "layer.1.DenseReluDense.wi_0"),
    ("ffn_norm", "layer.1.layer_norm"),
];

/// transformers' name for a llama.cpp T5 tensor name.
pub fn transformers_name(name: &str) -> String {
    super::renamed(name, &NAMES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_back() {
        let cases = [
            ("token_embd.weight", "shared.weight"),
            ("enc.output_norm.weight", "encoder.final_layer_norm.weight"),
            (
                "enc.blk.0.attn_rel_b.weight",
                "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            ),
            (
                "enc.blk.1.ffn_gate.weight",
                "encoder.block.1.layer.1.DenseReluDense.wi_0.weight",
            ),
        ];
        for (cpp, hf) in cases {
            assert_eq!(transformers_name(cpp), hf);
        }
    }
}
