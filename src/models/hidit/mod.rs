//! Hi-DiT: REPA-E's class-conditional SiT on a KL-autoencoder latent, its samplers, the
//! autoencoder and the files they are published in.

pub mod autoencoder;
pub mod config;
pub mod files;
pub mod hybrid;
pub mod pixel;
pub mod sampler;
pub mod sit;

pub use config::{ArchSpec, Conditioning, SitConfig};
pub use hybrid::{Hybrid, HybridState};
pub use pixel::{PixelBranch, PixelBranchConfig};
pub use sampler::{Guidance, Mode, Sampler, VelocityModel};
pub use sit::Sit;
