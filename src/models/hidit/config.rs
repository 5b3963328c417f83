//! The SiT's architecture: REPA-E's named configurations (`SiT_models` in models/sit.py
//! @3ad8046) or an explicit `arch` object, as an experiment folder's args.json gives them.

use serde::{Deserialize, Serialize};

/// REPA-E's `SiT(...)` arguments that shape the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SitConfig {
    /// Latent side in latent pixels (`input_size`; the latent is square).
    pub input_size: usize,
    pub patch_size: usize,
    /// Latent channels (32 for the f16d32 autoencoder, 4 for f8d4).
    pub in_channels: usize,
    pub hidden_size: usize,
    /// Width of the final layer; REPA-E runs only when it equals `hidden_size`.
    pub decoder_hidden_size: usize,
    pub depth: usize,
    pub num_heads: usize,
    pub mlp_ratio: f64,
    pub num_classes: usize,
    /// The label table has a row for the null class (index `num_classes`): REPA-E adds it when
    /// the label dropout (`cfg_prob`) is above 0, and classifier-free guidance needs it.
    pub null_class: bool,
    /// Output width of each REPA projector (the aligned encoders' embedding widths).
    pub z_dims: Vec<usize>,
    pub projector_dim: usize,
    /// The block whose output the projectors read (1-based), for training only.
    pub encoder_depth: usize,
}

/// The sinusoidal timestep features fed to the timestep MLP (REPA-E's default).
pub const FREQUENCY_EMBEDDING_SIZE: usize = 256;

/// A REPA-E model name's depth, width, heads, patch and decoder width.
struct Named {
    depth: usize,
    hidden_size: usize,
    num_heads: usize,
    patch_size: usize,
    decoder_hidden_size: usize,
}

/// `SiT_models` of models/sit.py: XL, L, B and S at patch 1, 2, 4 and 8.
fn named(name: &str) -> Option<Named> {
    let (size, patch) = name.strip_prefix("SiT-")?.split_once('/')?;
    let patch_size: usize = patch.parse().ok().filter(|p| [1, 2, 4, 8].contains(p))?;
    let (depth, hidden_size, num_heads) = match size {
        "XL" => (28, 1152, 16),
        "L" => (24, 1024, 16),
        "B" => (12, 768, 12),
        "S" => (12, 384, 6),
        _ => return None,
    };
    // SiT_S_* leave decoder_hidden_size at the class default, 768: kept as REPA-E builds it
    // (and refused by `validate`, as PyTorch would fail at the first forward).
    let decoder_hidden_size = if size == "S" { 768 } else { hidden_size };
    Some(Named {
        depth,
        hidden_size,
        num_heads,
        patch_size,
        decoder_hidden_size,
    })
}

/// The names [`SitConfig::from_name`] knows, for messages.
pub const MODEL_NAMES: &str = "SiT-XL/1, SiT-XL/2, SiT-XL/4, SiT-XL/8, SiT-L/1 … SiT-L/8, \
                               SiT-B/1 … SiT-B/8, SiT-S/1 … SiT-S/8";

/// The `arch` object of our own models' args.json: the shape of a model REPA-E has no name for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchSpec {
    pub depth: usize,
    pub hidden_size: usize,
    #[serde(default)]
    pub decoder_hidden_size: Option<usize>,
    pub num_heads: usize,
    pub patch_size: usize,
    #[serde(default = "four")]
    pub mlp_ratio: f64,
    pub input_size: usize,
    pub in_channels: usize,
    pub z_dims: Vec<usize>,
    pub projector_dim: usize,
}

fn four() -> f64 {
    4.0
}

/// What args.json says besides the architecture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conditioning {
    pub num_classes: usize,
    pub null_class: bool,
    pub encoder_depth: usize,
}

impl SitConfig {
    /// A REPA-E model name (`SiT-XL/1`, …) on a latent of `input_size`² × `in_channels`. The
    /// projectors' widths are not in the name (REPA-E takes them from the encoders it loads):
    /// the caller passes them, read off the checkpoint.
    pub fn from_name(
        name: &str,
        input_size: usize,
        in_channels: usize,
        conditioning: Conditioning,
        (z_dims, projector_dim): (Vec<usize>, usize),
    ) -> Option<Self> {
        let n = named(name)?;
        Some(Self {
            input_size,
            patch_size: n.patch_size,
            in_channels,
            hidden_size: n.hidden_size,
            decoder_hidden_size: n.decoder_hidden_size,
            depth: n.depth,
            num_heads: n.num_heads,
            mlp_ratio: 4.0,
            num_classes: conditioning.num_classes,
            null_class: conditioning.null_class,
            z_dims,
            projector_dim,
            encoder_depth: conditioning.encoder_depth,
        })
    }

    pub fn from_arch(arch: &ArchSpec, conditioning: Conditioning) -> Self {
        Self {
            input_size: arch.input_size,
            patch_size: arch.patch_size,
            in_channels: arch.in_channels,
            hidden_size: arch.hidden_size,
            decoder_hidden_size: arch.decoder_hidden_size.unwrap_or(arch.hidden_size),
            depth: arch.depth,
            num_heads: arch.num_heads,
            mlp_ratio: arch.mlp_ratio,
            num_classes: conditioning.num_classes,
            null_class: conditioning.null_class,
            z_dims: arch.z_dims.clone(),
            projector_dim: arch.projector_dim,
            encoder_depth: conditioning.encoder_depth,
        }
    }

    /// Tokens per image: (input_size / patch_size)².
    pub fn num_patches(&self) -> usize {
        (self.input_size / self.patch_size).pow(2)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// timm's Mlp width: int(hidden_size · mlp_ratio).
    pub fn mlp_hidden(&self) -> usize {
        (self.hidden_size as f64 * self.mlp_ratio) as usize
    }

    /// Rows of the label table: the classes, plus the null class when there is one.
    pub fn label_rows(&self) -> usize {
        self.num_classes + usize::from(self.null_class)
    }

    /// What makes the configuration unusable, in words, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("input_size", self.input_size),
            ("patch_size", self.patch_size),
            ("in_channels", self.in_channels),
            ("hidden_size", self.hidden_size),
            ("depth", self.depth),
            ("num_heads", self.num_heads),
            ("num_classes", self.num_classes),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("`{field}` is 0"));
        }
        if !self.input_size.is_multiple_of(self.patch_size) {
            return Err(format!(
                "`input_size` {} is not a multiple of `patch_size` {}",
                self.input_size, self.patch_size
            ));
        }
        if !self.hidden_size.is_multiple_of(self.num_heads) {
            return Err(format!(
                "`hidden_size` {} is not a multiple of `num_heads` {}",
                self.hidden_size, self.num_heads
            ));
        }
        if self.decoder_hidden_size != self.hidden_size {
            return Err(format!(
                "`decoder_hidden_size` {} differs from `hidden_size` {}: REPA-E's final layer \
                 then cannot read the blocks' output (its SiT-S configurations have this flaw)",
                self.decoder_hidden_size, self.hidden_size
            ));
        }
        if !(self.mlp_ratio > 0.0 && self.mlp_ratio.is_finite()) {
            return Err(format!("`mlp_ratio` {} is not positive", self.mlp_ratio));
        }
        if self.encoder_depth > self.depth {
            return Err(format!(
                "`encoder_depth` {} is beyond the {} blocks",
                self.encoder_depth, self.depth
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGENET: Conditioning = Conditioning {
        num_classes: 1000,
        null_class: true,
        encoder_depth: 8,
    };

    #[test]
    fn repa_e_names() {
        let xl1 = SitConfig::from_name("SiT-XL/1", 16, 32, IMAGENET, (vec![768], 2048)).unwrap();
        assert_eq!(
            (xl1.depth, xl1.hidden_size, xl1.num_heads, xl1.patch_size),
            (28, 1152, 16, 1)
        );
        assert_eq!(
            (xl1.head_dim(), xl1.mlp_hidden(), xl1.num_patches()),
            (72, 4608, 256)
        );
        assert_eq!(xl1.label_rows(), 1001);
        assert!(xl1.validate().is_ok());
        let b2 = SitConfig::from_name("SiT-B/2", 32, 4, IMAGENET, (vec![768], 2048)).unwrap();
        assert_eq!(
            (b2.depth, b2.hidden_size, b2.num_heads, b2.patch_size),
            (12, 768, 12, 2)
        );
        assert!(SitConfig::from_name("SiT-XL/3", 16, 32, IMAGENET, (vec![], 0)).is_none());
        assert!(SitConfig::from_name("DiT-XL/2", 16, 32, IMAGENET, (vec![], 0)).is_none());
        // REPA-E's SiT-S configurations cannot run: the final layer is 768 wide.
        let s1 = SitConfig::from_name("SiT-S/1", 16, 32, IMAGENET, (vec![768], 2048)).unwrap();
        assert!(s1.validate().unwrap_err().contains("decoder_hidden_size"));
    }

    #[test]
    fn arch_objects() {
        let arch: ArchSpec = serde_json::from_str(
            r#"{"depth": 2, "hidden_size": 16, "num_heads": 2, "patch_size": 1,
                "input_size": 4, "in_channels": 8, "z_dims": [16], "projector_dim": 16}"#,
        )
        .unwrap();
        let cfg = SitConfig::from_arch(
            &arch,
            Conditioning {
                num_classes: 10,
                null_class: false,
                encoder_depth: 1,
            },
        );
        assert_eq!((cfg.decoder_hidden_size, cfg.mlp_ratio), (16, 4.0));
        assert_eq!(cfg.label_rows(), 10);
        let bad: Result<ArchSpec, _> =
            serde_json::from_str(r#"{"depth": 2, "hidden": 16, "num_heads": 2}"#);
        assert!(bad.is_err());
    }
}
