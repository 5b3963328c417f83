//! llama.cpp's Llama GGUF files in transformers' terms: llama.cpp renames every tensor
//! (`blk.0.attn_q.weight` for `model.layers.0.self_attn.q_proj.weight`) and reorders the rows
//! of the query and key projections for its rotary embedding (`LlamaModel.permute` in
//! convert_hf_to_gguf.py). Reading such a file as transformers' Llama means renaming back and
//! undoing the reorder, as ComfyUI-GGUF's `loader.py` (`LLAMA_SD_MAP`, `llama_permute`) does.

use candle_core::{Result, Tensor};

use super::header::MetaValue;

/// `general.architecture` of llama.cpp's Llama files.
pub const ARCHITECTURE: &str = "llama";

/// llama.cpp's name parts and transformers' for them, applied in order (longer parts first
/// where one contains another: `attn_q_norm` before `attn_q`).
const NAMES: [(&str, &str); 14] = [
    ("blk.", "model.layers."),
    ("attn_norm", "input_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_norm", "post_attention_layernorm"),
    ("token_embd", "model.embed_tokens"),
    ("output_norm", "model.norm"),
    ("output.weight", "lm_head.weight"),
    ("rope_freqs.weight", "rope_freqs.weight"),
];

/// transformers' name for a llama.cpp tensor name.
pub fn transformers_name(name: &str) -> String {
    super::renamed(name, &NAMES)
}

/// How many heads a tensor's rows were reordered over: the query projection over the attention
/// heads, the key projection over the key/value heads; `None` for every other tensor.
pub fn permuted_heads(name: &str, heads: usize, kv_heads: usize) -> Option<usize> {
    if name.ends_with("self_attn.q_proj.weight") {
        Some(heads)
    } else if name.ends_with("self_attn.k_proj.weight") {
        Some(kv_heads)
    } else {
        None
    }
}

/// The head counts a llama.cpp Llama file records (`llama.attention.head_count`,
/// `llama.attention.head_count_kv`; the latter defaults to the former, as in llama.cpp).
pub fn head_counts(
    metadata: &std::collections::BTreeMap<String, MetaValue>,
) -> Option<(usize, usize)> {
    let count = |key: &str| {
        metadata
            .get(key)
            .and_then(MetaValue::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n > 0)
    };
    let heads = count("llama.attention.head_count")?;
    Some((
        heads,
        count("llama.attention.head_count_kv").unwrap_or(heads),
    ))
}

/// Undoes llama.cpp's row reorder of a [rows, …] projection over `heads` heads: each head's
/// rows were stored as all even rotary pairs' halves first; this puts them back in order.
pub fn unpermute(weight: &Tensor, heads: usize) -> Result<Tensor> {
    let dims = weight.dims().to_vec();
    let rows = dims.first().copied().unwrap_or(0);
    if heads == 0 || rows % (2 * heads) != 0 {
        candle_core::bail!("{rows} rows do not split into {heads} heads of rotary pairs");
    }
    let mut split = vec![heads, rows / heads / 2, 2];
    split.extend_from_slice(&dims[1..]);
    weight
        .reshape(split)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn names_and_rows_come_back() -> Result<()> {
        assert_eq!(
            transformers_name("blk.3.attn_q.weight"),
            "model.layers.3.self_attn.q_proj.weight"
        );
        assert_eq!(transformers_name("output_norm.weight"), "model.norm.weight");
        assert_eq!(transformers_name("output.weight"), "lm_head.weight");
        assert_eq!(
            transformers_name("blk.0.ffn_down.weight"),
            "model.layers.0.mlp.down_proj.weight"
        );
        // llama.cpp's permute of 2 heads × 4 rows (2 rotary pairs each): rows 0 2 1 3 | 4 6 5 7.
        let stored =
            Tensor::new(&[0f32, 2., 1., 3., 4., 6., 5., 7.], &Device::Cpu)?.reshape((8, 1))?;
        let rows: Vec<f32> = unpermute(&stored, 2)?.flatten_all()?.to_vec1()?;
        assert_eq!(rows, [0., 1., 2., 3., 4., 5., 6., 7.]);
        Ok(())
    }
}
