//! Tensors out of torch storages: the storage classes' dtypes, and a saved view (offset,
//! shape, strides) copied into a contiguous candle tensor.

use candle_core::{DType, Device, Tensor};

use super::value::TensorRef;

/// PyTorch's dtype name and element size for a storage class (`FloatStorage` → `float32`, 4).
pub(super) fn torch_dtype(class: &str) -> Option<(&'static str, usize)> {
    Some(match class {
        "FloatStorage" => ("float32", 4),
        "DoubleStorage" => ("float64", 8),
        "HalfStorage" => ("float16", 2),
        "BFloat16Storage" => ("bfloat16", 2),
        "ByteStorage" => ("uint8", 1),
        "CharStorage" => ("int8", 1),
        "ShortStorage" => ("int16", 2),
        "IntStorage" => ("int32", 4),
        "LongStorage" => ("int64", 8),
        "BoolStorage" => ("bool", 1),
        "ComplexFloatStorage" => ("complex64", 8),
        "ComplexDoubleStorage" => ("complex128", 16),
        "Float8_e4m3fnStorage" => ("float8_e4m3fn", 1),
        "Float8_e5m2Storage" => ("float8_e5m2", 1),
        _ => return None,
    })
}

/// The candle dtype a storage class is read as; booleans become `u8` 0/1.
pub(super) fn candle_dtype(class: &str) -> Option<DType> {
    Some(match class {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "ByteStorage" | "BoolStorage" => DType::U8,
        "ShortStorage" => DType::I16,
        "IntStorage" => DType::I32,
        "LongStorage" => DType::I64,
        "Float8_e4m3fnStorage" => DType::F8E4M3,
        _ => return None,
    })
}

/// Copies the view `t` out of its storage's bytes into a contiguous tensor.
pub(super) fn materialise(t: &TensorRef, dtype: DType, storage: &[u8]) -> Result<Tensor, String> {
    let size = dtype.size_in_bytes();
    if storage.len() < t.storage.numel * size {
        return Err(format!(
            "its storage holds {} bytes, {} elements of {size} bytes were saved",
            storage.len(),
            t.storage.numel
        ));
    }
    let numel: usize = t.shape.iter().product();
    // The last element the view reaches must lie inside the storage.
    let reach = t.offset
        + t.shape
            .iter()
            .zip(&t.stride)
            .map(|(&n, &s)| n.saturating_sub(1) * s)
            .sum::<usize>();
    if numel > 0 && reach >= t.storage.numel {
        return Err(format!(
            "its view (offset {}, shape {:?}, strides {:?}) reaches past its storage of {} \
             elements",
            t.offset, t.shape, t.stride, t.storage.numel
        ));
    }
    let contiguous = {
        let mut expected = 1;
        t.shape.iter().zip(&t.stride).rev().all(|(&n, &s)| {
            let ok = n == 1 || s == expected;
            expected *= n;
            ok
        })
    };
    let bytes: std::borrow::Cow<[u8]> = if contiguous {
        storage[t.offset * size..(t.offset + numel) * size].into()
    } else {
        // A transposed or expanded view: gather element by element in row-major order.
        let mut out = Vec::with_capacity(numel * size);
        let mut index = vec![0usize; t.shape.len()];
        for _ in 0..numel {
            let at = t.offset
                + index
                    .iter()
                    .zip(&t.stride)
                    .map(|(i, s)| i * s)
                    .sum::<usize>();
            out.extend_from_slice(&storage[at * size..(at + 1) * size]);
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < t.shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        out.into()
    };
    Tensor::from_raw_buffer(&bytes, dtype, &t.shape, &Device::Cpu).map_err(|e| e.to_string())
}
