//! The neural networks, in candle, with tensor names exactly as in the released checkpoints.

pub mod hidit;
pub mod hidream;
pub mod text;
pub mod vae;

mod component;
pub(crate) mod device_copy;
pub(crate) mod linear;
mod load;

pub(crate) use component::ComponentKind;
pub(crate) use linear::QuantizedSource;
pub use load::{LoadError, QuantizedLayers};
pub(crate) use load::{
    load_checked, load_checked_from, load_checked_ignoring, load_checked_through,
};
