//! Copying a loaded module's weights to another device, for the transformer blocks that live in
//! host memory and are copied to the GPU for each evaluation when the whole model does not fit
//! (see `hidream::streaming`).

use candle_core::{Device, Result};

/// A module whose weights can be copied to `device`, giving the same module there.
pub(crate) trait ToDevice: Sized {
    fn to_device(&self, device: &Device) -> Result<Self>;
}
