//! A linear layer whose weight is either dense or stays block-quantised as it was in a GGUF
//! file and is dequantised to the compute dtype at each use ("just in time"). A quantised
//! transformer then holds the memory of its file (Q8_0: 8.5 bits a weight) instead of bf16's 16,
//! plus one layer's dequantised weight at a time.
//!
//! The quantised weights reach the constructors beside the `VarBuilder`, which only hands out
//! dense tensors: while [`with_quantized`] runs a constructor, [`linear`] and
//! [`linear_no_bias`] take a layer's weight from the installed [`QuantizedSource`] when it has
//! it quantised, and from the `VarBuilder` otherwise (biases, norms and every tensor the
//! community recipe leaves unquantised).

use std::cell::RefCell;
use std::sync::Arc;

use candle_core::quantized::{QStorage, QTensor};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::device_copy::ToDevice;

/// Where quantised weights come from: a GGUF-backed tensor store.
pub(crate) trait QuantizedSource {
    /// The tensor `name` as stored, if it is block-quantised and stored in `shape` (PyTorch
    /// order); `None` for dense tensors, which load through the `VarBuilder`.
    fn quantized(&self, name: &str, shape: &[usize], device: &Device) -> Option<Result<QTensor>>;
}

thread_local! {
    static SOURCE: RefCell<Option<Arc<dyn QuantizedSource>>> = const { RefCell::new(None) };
}

/// Runs `build` with `source` installed for [`linear`] and [`linear_no_bias`] on this thread.
pub(crate) fn with_quantized<T>(source: Arc<dyn QuantizedSource>, build: impl FnOnce() -> T) -> T {
    struct Uninstall;
    impl Drop for Uninstall {
        fn drop(&mut self) {
            SOURCE.with(|s| s.borrow_mut().take());
        }
    }
    SOURCE.with(|s| *s.borrow_mut() = Some(source));
    let _uninstall = Uninstall;
    build()
}

fn quantized_weight(vb: &VarBuilder, shape: &[usize]) -> Option<Result<QTensor>> {
    let name = format!("{}.weight", vb.prefix());
    SOURCE.with(|s| {
        s.borrow()
            .as_ref()
            .and_then(|source| source.quantized(&name, shape, vb.device()))
    })
}

#[derive(Debug, Clone)]
enum Weight {
    Dense(Tensor),
    /// Dequantised to `dtype` on `device` at each use.
    Quantized {
        weight: Arc<QTensor>,
        dtype: DType,
        device: Device,
    },
}

/// `y = x·Wᵀ + b` with a dense or a block-quantised `W` ([out, in]).
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
}

impl Linear {
    // Only the CUDA build rebuilds layers from weights (the stacked experts' views).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight: Weight::Dense(weight),
            bias,
        }
    }

    /// The weight in the compute dtype: the stored tensor, or a fresh dequantised copy.
    pub fn weight(&self) -> Result<Tensor> {
        match &self.weight {
            Weight::Dense(weight) => Ok(weight.clone()),
            Weight::Quantized {
                weight,
                dtype,
                device,
            } => weight.dequantize(device)?.to_dtype(*dtype),
        }
    }

    pub fn device(&self) -> &Device {
        match &self.weight {
            Weight::Dense(weight) => weight.device(),
            Weight::Quantized { device, .. } => device,
        }
    }

    pub fn is_quantized(&self) -> bool {
        matches!(self.weight, Weight::Quantized { .. })
    }

    /// Bytes the weight and bias hold while loaded.
    pub fn resident_bytes(&self) -> usize {
        let bias = self
            .bias
            .as_ref()
            .map_or(0, |b| b.elem_count() * b.dtype().size_in_bytes());
        bias + match &self.weight {
            Weight::Dense(w) => w.elem_count() * w.dtype().size_in_bytes(),
            Weight::Quantized { weight, .. } => weight.storage_size_in_bytes(),
        }
    }
}

impl ToDevice for Linear {
    /// A quantised weight travels as its blocks (the stored bytes), not dequantised.
    fn to_device(&self, device: &Device) -> Result<Self> {
        let weight = match &self.weight {
            Weight::Dense(w) => Weight::Dense(w.to_device(device)?),
            Weight::Quantized { weight, dtype, .. } => {
                let storage = QStorage::from_data(weight.data()?, device, weight.dtype())?;
                Weight::Quantized {
                    weight: Arc::new(QTensor::new(storage, weight.shape().clone())?),
                    dtype: *dtype,
                    device: device.clone(),
                }
            }
        };
        let bias = self
            .bias
            .as_ref()
            .map(|b| b.to_device(device))
            .transpose()?;
        Ok(Self { weight, bias })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // candle's Linear keeps the matmul layout tricks; building one is two Arc clones.
        candle_nn::Linear::new(self.weight()?, self.bias.clone()).forward(x)
    }
}

/// A linear layer with a bias, `weight` [out, in] from the quantised source when it has it.
pub(crate) fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let mut layer = linear_no_bias(in_dim, out_dim, vb.clone())?;
    layer.bias = Some(vb.get(out_dim, "bias")?);
    Ok(layer)
}

/// A linear layer without bias.
pub(crate) fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let weight = match quantized_weight(&vb, &[out_dim, in_dim]) {
        Some(weight) => Weight::Quantized {
            weight: Arc::new(weight?),
            dtype: vb.dtype(),
            device: vb.device().clone(),
        },
        None => Weight::Dense(vb.get((out_dim, in_dim), "weight")?),
    };
    Ok(Linear { weight, bias: None })
}
