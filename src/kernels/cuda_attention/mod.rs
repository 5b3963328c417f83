//! Fused ("flash") attention on CUDA: `softmax(scale · q kᵀ) v` per batch·head without ever
//! materialising the `[Sq, Sk]` scores, which at 1024² (about 4,224 tokens, 20 heads) would be
//! 1.4 GB per batch element in f32.
//!
//! # Algorithm
//!
//! Each thread block owns a tile of query rows and walks over the keys in tiles, keeping for every
//! query row a running maximum `m`, a running denominator `l` and an unnormalised output row `o`
//! (the "online softmax" of Milakov & Gimelshein, <https://arxiv.org/abs/1805.02867>, as used by
//! FlashAttention, <https://arxiv.org/abs/2205.14135>). For a tile of logits `s_j`:
//!
//! ```text
//! m' = max(m, max_j s_j)        α = exp(m − m')        p_j = exp(s_j − m')
//! l' = α·l + Σ_j p_j            o' = α·o + Σ_j p_j·v_j
//! ```
//!
//! and after the last tile the output is `o / l`. The rescale by `α` makes the result exactly the
//! softmax over all keys (up to rounding) whatever the order of the tiles, and `exp` only ever sees
//! arguments `≤ 0`, so nothing overflows. Keys past `Sk` get the logit `−∞` (weight 0); keys the
//! caller zero-padded are ordinary keys with logit 0, as in plain softmax attention.
//!
//! # Kernels (`attention.cu`)
//!
//! * **bf16 / f16: tensor cores.** 128 threads (4 warps) per block, 64 query rows per block (16 per
//!   warp, one WMMA row block), 64 keys per step. `q kᵀ` and `p v` are WMMA 16×16×16 products
//!   with f32 accumulation; the scores, the softmax and the output accumulator stay in f32 in
//!   shared memory (WMMA fragments have no specified element layout, so the per-row rescale has to
//!   go through memory). The probabilities are rounded to the input type for `p v`, and `l` sums
//!   the rounded values, so the output is a convex combination of the weights actually used. Head
//!   dims that are not a multiple of 16 (72) are zero-padded in shared memory. Shared memory:
//!   [`tensor_core_smem_bytes`], 93 KiB at head dim 128 (two blocks per H100/H200 SM).
//! * **f32: scalar FMAs** (no TF32, so the result matches an f32 reference to ~1e-6). 4 warps,
//!   4 query rows per warp, 32 keys per step (one per lane); 40 KiB static shared memory at 128.
//!
//! Both accumulate in f32 because the sums run over thousands of keys: bf16 accumulation would
//! lose the small weights entirely, and the caller's reference path is f32 too. The output is f32
//! for the same reason; the caller converts.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::sys::CUfunction_attribute_enum;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{
    CpuStorage, CudaDevice, CudaStorage, CustomOp3, DType, Device, Layout, Result, Shape, Tensor,
};

#[cfg(test)]
mod tests;

/// The kernels, compiled by build.rs with nvcc for `CUDA_COMPUTE_CAP` (default sm_90).
const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/cuda_attention.ptx"));
/// Name under which candle caches the loaded module.
const MODULE_NAME: &str = "hidream_fused_attention";

/// Head dims with a kernel instantiation in attention.cu (keep the two lists in step).
pub(crate) const FUSED_ATTENTION_HEAD_DIMS: [usize; 5] = [64, 72, 80, 96, 128];

/// Threads per block of every kernel (4 warps).
const THREADS: u32 = 128;
/// Query rows per block: the tensor-core kernels give each warp 16 rows, the f32 kernel 4.
const TENSOR_CORE_QUERY_ROWS: usize = 64;
const F32_QUERY_ROWS: usize = 16;
/// The 16-bit kernels load rows as 16-byte vectors, so each tensor's first element must be
/// 16-byte aligned: an element offset that is a multiple of 8 (allocations are 256-byte aligned).
const VECTOR_ELEMS: usize = 8;

/// `softmax(scale · q kᵀ) v` with q `[B·H, Sq, D]`, k and v `[B·H, Sk, D]` (same dtype: bf16, f16
/// or f32; no mask), computed by a fused CUDA kernel. Returns f32 `[B·H, Sq, D]`.
///
/// Errors (so the caller can fall back to the materialised path) for tensors not on a CUDA
/// device, unsupported dtypes or head dims (see [`FUSED_ATTENTION_HEAD_DIMS`]), mismatched
/// shapes, no keys, or a GPU without the kernels (bf16/f16 need compute capability 8.0+).
pub(crate) fn fused_attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> Result<Tensor> {
    let (bh, sq, d) = q.dims3()?;
    if bh == 0 || sq == 0 {
        // Nothing to launch (a zero-sized grid is a launch error); the shape checks still apply.
        check_shapes(q.layout(), k.layout(), v.layout())?;
        return Tensor::zeros((bh, sq, d), DType::F32, q.device());
    }
    let q = vector_aligned(q)?;
    let k = vector_aligned(k)?;
    let v = vector_aligned(v)?;
    q.apply_op3_no_bwd(&k, &v, &FusedAttention { scale })
}

/// Whether [`fused_attention`] can run for queries like `q`: a CUDA tensor of rank 3 with a
/// supported dtype and head dim, whose kernel loads on this GPU (this loads the module once).
pub(crate) fn fused_attention_supported(q: &Tensor) -> bool {
    let Device::Cuda(device) = q.device() else {
        return false;
    };
    let Ok((_, _, d)) = q.dims3() else {
        return false;
    };
    match kernel_name(q.dtype(), d) {
        Ok(name) => device
            .get_or_load_custom_func(&name, MODULE_NAME, PTX)
            .is_ok(),
        Err(_) => false,
    }
}

/// Dynamic shared memory of the tensor-core kernel for head dim `d`, mirroring `TcTile` in
/// attention.cu (the kernel traps if given less, so a mismatch fails loudly).
fn tensor_core_smem_bytes(d: usize) -> usize {
    let (bq, bk) = (TENSOR_CORE_QUERY_ROWS, 64);
    let dp = d.div_ceil(16) * 16;
    let kv = bq * (dp + 8) * 2;
    let scores = bq * (bk + 4) * 4;
    let probs = bq * (bk + 8) * 2;
    let out = bq * (dp + 4) * 4;
    2 * kv + scores + probs + out
}

/// The kernel's name in the PTX, or an error for combinations without one.
fn kernel_name(dtype: DType, d: usize) -> Result<String> {
    let ty = match dtype {
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        DType::F32 => "f32",
        other => candle_core::bail!("fused attention: unsupported dtype {other:?}"),
    };
    if !FUSED_ATTENTION_HEAD_DIMS.contains(&d) {
        candle_core::bail!(
            "fused attention: unsupported head dim {d} (supported: {FUSED_ATTENTION_HEAD_DIMS:?})"
        );
    }
    Ok(format!("fused_attention_{ty}_d{d}"))
}

/// A contiguous version of `t` whose first element is 16-byte aligned (copied if it is not).
fn vector_aligned(t: &Tensor) -> Result<Tensor> {
    let t = t.contiguous()?;
    if t.layout().start_offset() % VECTOR_ELEMS == 0 {
        Ok(t)
    } else {
        t.copy()
    }
}

/// Checks the q/k/v shapes; returns `(B·H, Sq, Sk, D)`.
fn check_shapes(q: &Layout, k: &Layout, v: &Layout) -> Result<(usize, usize, usize, usize)> {
    let (bh, sq, d) = q.shape().dims3()?;
    let (k_bh, sk, k_d) = k.shape().dims3()?;
    if (k_bh, k_d) != (bh, d) || v.shape() != k.shape() {
        candle_core::bail!(
            "fused attention: q {:?}, k {:?} and v {:?} must be [B·H, Sq, D], [B·H, Sk, D], [B·H, Sk, D]",
            q.shape(),
            k.shape(),
            v.shape()
        );
    }
    if sk == 0 {
        candle_core::bail!("fused attention: softmax over zero keys");
    }
    Ok((bh, sq, sk, d))
}

struct FusedAttention {
    scale: f32,
}

impl CustomOp3 for FusedAttention {
    fn name(&self) -> &'static str {
        "fused-attention"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("fused attention is CUDA-only; use the materialised path on the CPU")
    }

    fn cuda_fwd(
        &self,
        q: &CudaStorage,
        q_layout: &Layout,
        k: &CudaStorage,
        k_layout: &Layout,
        v: &CudaStorage,
        v_layout: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dims = check_shapes(q_layout, k_layout, v_layout)?;
        let layouts = [q_layout, k_layout, v_layout];
        let device = q.device();
        let out = match (&q.slice, &k.slice, &v.slice) {
            (CudaStorageSlice::BF16(q), CudaStorageSlice::BF16(k), CudaStorageSlice::BF16(v)) => {
                launch(device, [q, k, v], layouts, dims, DType::BF16, self.scale)?
            }
            (CudaStorageSlice::F16(q), CudaStorageSlice::F16(k), CudaStorageSlice::F16(v)) => {
                launch(device, [q, k, v], layouts, dims, DType::F16, self.scale)?
            }
            (CudaStorageSlice::F32(q), CudaStorageSlice::F32(k), CudaStorageSlice::F32(v)) => {
                launch(device, [q, k, v], layouts, dims, DType::F32, self.scale)?
            }
            _ => candle_core::bail!(
                "fused attention: q, k and v must share one of bf16, f16, f32 (got {:?}, {:?}, {:?})",
                q.dtype(),
                k.dtype(),
                v.dtype()
            ),
        };
        let (bh, sq, _, d) = dims;
        Ok((
            CudaStorage::wrap_cuda_slice(out, device.clone()),
            Shape::from((bh, sq, d)),
        ))
    }
}

/// The elements of a contiguous `layout` in `slice`; with `vector_loads`, the first must also be
/// 16-byte aligned (fused_attention copies misaligned inputs; this guards direct users of the op).
fn contiguous_view<'a, T>(
    slice: &'a CudaSlice<T>,
    layout: &Layout,
    what: &str,
    vector_loads: bool,
) -> Result<CudaView<'a, T>> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("fused attention: {what} must be contiguous");
    };
    if vector_loads && start % VECTOR_ELEMS != 0 {
        candle_core::bail!("fused attention: {what} must start at a multiple of 8 elements");
    }
    Ok(slice.slice(start..end))
}

/// Launches the kernel for `dtype` (the element type `T` of the three slices) and returns the f32
/// output `[B·H, Sq, D]`.
fn launch<T: DeviceRepr>(
    device: &CudaDevice,
    [q, k, v]: [&CudaSlice<T>; 3],
    [q_layout, k_layout, v_layout]: [&Layout; 3],
    (bh, sq, sk, d): (usize, usize, usize, usize),
    dtype: DType,
    scale: f32,
) -> Result<CudaSlice<f32>> {
    let name = kernel_name(dtype, d)?;
    let tensor_cores = dtype != DType::F32;
    let (q, k, v) = (
        contiguous_view(q, q_layout, "q", tensor_cores)?,
        contiguous_view(k, k_layout, "k", tensor_cores)?,
        contiguous_view(v, v_layout, "v", tensor_cores)?,
    );

    let (Ok(sq_arg), Ok(sk_arg), Ok(heads)) =
        (i32::try_from(sq), i32::try_from(sk), u32::try_from(bh))
    else {
        candle_core::bail!(
            "fused attention: sizes {bh}×{sq}×{sk} exceed the kernel's 32-bit indices"
        );
    };
    if heads > 65_535 {
        candle_core::bail!("fused attention: {bh} batch·heads exceed the grid's y limit of 65535");
    }
    let rows_per_block = if tensor_cores {
        TENSOR_CORE_QUERY_ROWS
    } else {
        F32_QUERY_ROWS
    };
    let query_blocks = u32::try_from(sq.div_ceil(rows_per_block))
        .map_err(|_| candle_core::Error::Msg(format!("fused attention: {sq} queries")))?;
    let smem = if tensor_cores {
        tensor_core_smem_bytes(d)
    } else {
        0
    };
    // The sizes above are at most ~100 KB, far from u32 / i32 limits.
    let smem_u32 = u32::try_from(smem)
        .map_err(|_| candle_core::Error::Msg(format!("fused attention: {smem} bytes of smem")))?;

    let func = device.get_or_load_custom_func(&name, MODULE_NAME, PTX)?;
    if tensor_cores {
        // More than 48 KiB of dynamic shared memory must be opted into per function; the driver
        // refuses sizes beyond the GPU's limit, which surfaces here as an error.
        func.set_attribute(
            CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            smem_u32 as i32,
        )
        .w()?;
    }
    // Zeroed rather than uninitialised: the kernels write every element, but a bug would then
    // show as zeros instead of stale memory.
    let out = device.alloc_zeros::<f32>(bh * sq * d)?;
    let config = LaunchConfig {
        grid_dim: (query_blocks, heads, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: smem_u32,
    };
    let mut builder = func.builder();
    builder.arg(&q);
    builder.arg(&k);
    builder.arg(&v);
    builder.arg(&out);
    builder.arg(&sq_arg);
    builder.arg(&sk_arg);
    builder.arg(&scale);
    // SAFETY: the arguments match the kernel's signature (three input pointers of `T`, the f32
    // output, i32 Sq and Sk, f32 scale); the views and the output hold exactly B·H·Sq·D and
    // B·H·Sk·D elements, which is all the kernel indexes given this grid.
    unsafe { builder.launch(config) }.w()?;
    Ok(out)
}
