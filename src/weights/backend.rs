//! The one candle `SimpleBackend` of this crate. Every weights source (a checkpoint, one with a
//! LoRA merged in, seeded random weights, the audit's recorder) answers a [`Request`] for a
//! tensor by name; [`var_builder_over`] makes a `VarBuilder` of it, so candle's three backend
//! methods are spelled out once.

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

/// What a model constructor asks its `VarBuilder` for.
pub(crate) struct Request<'a> {
    pub name: &'a str,
    /// The shape the model expects; `None` when it asked without one (candle's `get_unchecked`).
    pub shape: Option<Shape>,
    pub dtype: DType,
    pub device: &'a Device,
}

impl Request<'_> {
    /// The expected shape's dims, as the loaders check them.
    pub fn dims(&self) -> Option<&[usize]> {
        self.shape.as_ref().map(Shape::dims)
    }
}

/// A source of the tensors a `VarBuilder` hands out.
pub(crate) trait TensorSource: Send + Sync + 'static {
    /// The tensor `request` names, as its dtype on its device.
    fn tensor(&self, request: Request<'_>) -> candle_core::Result<Tensor>;

    /// Whether the source has a tensor called `name`.
    fn holds(&self, name: &str) -> bool;
}

/// A shared source (one a quantised model also reads its blocks from).
impl<S: TensorSource> TensorSource for std::sync::Arc<S> {
    fn tensor(&self, request: Request<'_>) -> candle_core::Result<Tensor> {
        (**self).tensor(request)
    }

    fn holds(&self, name: &str) -> bool {
        (**self).holds(name)
    }
}

/// A `VarBuilder` over `source`, handing out `dtype` tensors on `device` unless a model asks
/// for another dtype.
pub(crate) fn var_builder_over(
    source: impl TensorSource,
    dtype: DType,
    device: &Device,
) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(Backend(source)), dtype, device.clone())
}

struct Backend<S>(S);

impl<S: TensorSource> SimpleBackend for Backend<S> {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        self.0.tensor(Request {
            name,
            shape: Some(shape),
            dtype,
            device,
        })
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        self.0.tensor(Request {
            name,
            shape: None,
            dtype,
            device,
        })
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.holds(name)
    }
}
