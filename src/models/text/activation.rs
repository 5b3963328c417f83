use candle_core::{Result, Tensor};
use serde::Deserialize;

/// The `hidden_act` / `dense_act_fn` names of transformers configs that the text encoders use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Activation {
    /// x·σ(1.702x), OpenAI CLIP.
    #[serde(rename = "quick_gelu")]
    QuickGelu,
    /// The exact (erf) GELU.
    #[serde(rename = "gelu")]
    Gelu,
    /// The tanh approximation of GELU (T5's `gelu_new`).
    #[serde(alias = "gelu_new", alias = "gelu_pytorch_tanh", rename = "gelu_tanh")]
    GeluTanh,
    #[serde(rename = "silu", alias = "swish")]
    Silu,
    #[serde(rename = "relu")]
    Relu,
}

impl Activation {
    pub fn forward(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::QuickGelu => x * candle_nn::ops::sigmoid(&(x * 1.702)?)?,
            Self::Gelu => x.gelu_erf(),
            Self::GeluTanh => x.gelu(),
            Self::Silu => candle_nn::ops::silu(x),
            Self::Relu => x.relu(),
        }
    }
}
