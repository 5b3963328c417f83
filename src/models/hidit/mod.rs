//! Hi-DiT's latent stage: REPA-E's class-conditional SiT on a VAE latent and its samplers.

pub mod config;
pub mod sampler;
pub mod sit;

pub use config::{ArchSpec, Conditioning, SitConfig};
pub use sampler::{Guidance, Mode, Sampler, VelocityModel};
pub use sit::Sit;
