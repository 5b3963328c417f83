//! Hi-DiT: REPA-E's class-conditional SiT on a KL-autoencoder latent, with our pixel branch.

pub mod autoencoder;
pub mod files;
