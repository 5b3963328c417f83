//! The neural networks, in candle, with tensor names exactly as in the released checkpoints.

pub mod hidream;

mod load;

pub use load::{LoadError, load_checked};
