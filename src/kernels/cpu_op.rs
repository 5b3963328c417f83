//! The candle side of every CPU kernel here, written once: a kernel is a plain function of its
//! inputs' contiguous f32 data, and [`CpuOp`] makes it a candle custom op of its arity (the
//! op's name, matching the storage, and refusing anything but contiguous f32).

use candle_core::{CpuStorage, Layout, Result, Shape, Tensor};

/// Whether every tensor is f32 on the CPU: the inputs the kernels here take. Other devices and
/// dtypes go through candle's own ops.
pub(super) fn is_cpu_f32(tensors: &[&Tensor]) -> bool {
    tensors
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == candle_core::DType::F32)
}

/// The inputs of an [`F32Kernel`]: each one's contiguous data and its shape.
pub(super) struct F32Inputs<'a, const N: usize> {
    pub data: [&'a [f32]; N],
    pub shapes: [&'a Shape; N],
}

/// A CPU kernel over `N` contiguous f32 inputs, returning its output's data and shape.
pub(super) trait F32Kernel<const N: usize>: Send + Sync {
    /// The op's name, in candle's errors and the kernel's own.
    const NAME: &'static str;

    fn forward(&self, inputs: &F32Inputs<'_, N>) -> Result<(Vec<f32>, Shape)>;
}

/// An [`F32Kernel`] as candle's `CustomOp1`, `CustomOp2` or `CustomOp3`, by its arity. It has
/// no GPU implementation: callers send only CPU f32 tensors (see [`is_cpu_f32`]).
pub(super) struct CpuOp<K>(pub K);

impl<K> CpuOp<K> {
    fn run<const N: usize>(&self, args: [(&CpuStorage, &Layout); N]) -> Result<(CpuStorage, Shape)>
    where
        K: F32Kernel<N>,
    {
        let mut data: [&[f32]; N] = [&[]; N];
        for (data, (storage, layout)) in data.iter_mut().zip(args) {
            *data = contiguous_f32(K::NAME, storage, layout)?;
        }
        let shapes = args.map(|(_, layout)| layout.shape());
        let (out, shape) = self.0.forward(&F32Inputs { data, shapes })?;
        Ok((CpuStorage::F32(out), shape))
    }
}

/// The custom-op traits differ only in how many (storage, layout) pairs `cpu_fwd` takes, which a
/// generic function cannot spell; each impl hands them to [`CpuOp::run`] as an array.
macro_rules! custom_op {
    ($op:ident, $n:literal, $($storage:ident $layout:ident),+) => {
        impl<K: F32Kernel<$n>> candle_core::$op for CpuOp<K> {
            fn name(&self) -> &'static str {
                K::NAME
            }

            fn cpu_fwd(
                &self,
                $($storage: &CpuStorage, $layout: &Layout),+
            ) -> Result<(CpuStorage, Shape)> {
                self.run([$(($storage, $layout)),+])
            }
        }
    };
}

custom_op!(CustomOp1, 1, s1 l1);
custom_op!(CustomOp2, 2, s1 l1, s2 l2);
custom_op!(CustomOp3, 3, s1 l1, s2 l2, s3 l3);

/// The contiguous f32 data of a custom op's input; `op` names the kernel in the error.
fn contiguous_f32<'a>(op: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((start, end))) => Ok(&v[start..end]),
        (CpuStorage::F32(_), None) => {
            candle_core::bail!("{op} expects a contiguous input")
        }
        _ => candle_core::bail!("{op} expects f32"),
    }
}
