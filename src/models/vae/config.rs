use std::path::Path;

use serde::Deserialize;

use crate::weights::{self, WeightsError};

/// `vae/config.json` of a diffusers `AutoencoderKL` (the FLUX.1 autoencoder for HiDream).
#[derive(Debug, Clone, Deserialize)]
pub struct VaeConfig {
    #[serde(default = "three")]
    pub in_channels: usize,
    #[serde(default = "three")]
    pub out_channels: usize,
    pub latent_channels: usize,
    pub block_out_channels: Vec<usize>,
    #[serde(default = "one")]
    pub layers_per_block: usize,
    #[serde(default = "groups")]
    pub norm_num_groups: usize,
    pub scaling_factor: f64,
    #[serde(default)]
    pub shift_factor: Option<f64>,
    #[serde(default = "yes")]
    pub use_quant_conv: bool,
    #[serde(default = "yes")]
    pub use_post_quant_conv: bool,
    #[serde(default = "yes")]
    pub mid_block_add_attention: bool,
}

fn three() -> usize {
    3
}

fn one() -> usize {
    1
}

fn groups() -> usize {
    32
}

fn yes() -> bool {
    true
}

impl VaeConfig {
    /// Reads and checks `vae/config.json`.
    pub fn from_file(path: &Path) -> weights::Result<Self> {
        let cfg: Self = weights::read_json(path, "autoencoder config")?;
        cfg.validate().map_err(|problem| WeightsError::JsonField {
            path: path.to_path_buf(),
            field: "block_out_channels".into(),
            problem,
        })?;
        Ok(cfg)
    }

    /// Pixels per latent pixel along each side: 2^(blocks − 1), 8 for the FLUX autoencoder.
    pub fn scale_factor(&self) -> usize {
        1 << self.block_out_channels.len().saturating_sub(1)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.block_out_channels.is_empty() {
            return Err("block_out_channels is empty".into());
        }
        if let Some(c) = self
            .block_out_channels
            .iter()
            .find(|&&c| c % self.norm_num_groups != 0)
        {
            return Err(format!(
                "block width {c} is not a multiple of norm_num_groups {}",
                self.norm_num_groups
            ));
        }
        Ok(())
    }
}
