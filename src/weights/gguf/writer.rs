//! Writing a GGUF (version 3) file the way the `gguf` Python package's `GGUFWriter` lays it
//! out, which is what ComfyUI-GGUF's tools write and read: header, metadata in the given
//! order, tensor infos, then each tensor's bytes padded to the 32-byte alignment.

use std::io::Write;

use super::header::MetaValue;

const ALIGNMENT: usize = 32;

/// A tensor's description in the header: its name, its stored shape in ggml order (innermost
/// first), its ggml type number and how many bytes its data takes.
pub struct TensorHeader<'a> {
    pub name: &'a str,
    pub ggml_dims: Vec<u64>,
    pub type_id: u32,
    pub byte_len: usize,
}

/// Writes everything before the tensor data. The data must follow with
/// [`write_tensor_data`], once per tensor in the same order.
pub fn write_header(
    out: &mut (impl Write + ?Sized),
    metadata: &[(String, MetaValue)],
    tensors: &[TensorHeader<'_>],
) -> std::io::Result<()> {
    let mut head = Vec::new();
    head.extend_from_slice(b"GGUF");
    head.extend_from_slice(&3u32.to_le_bytes());
    head.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    head.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        put_string(&mut head, key);
        put_value(&mut head, value, true);
    }
    let mut offset = 0u64;
    for tensor in tensors {
        put_string(&mut head, tensor.name);
        head.extend_from_slice(&(tensor.ggml_dims.len() as u32).to_le_bytes());
        for dim in &tensor.ggml_dims {
            head.extend_from_slice(&dim.to_le_bytes());
        }
        head.extend_from_slice(&tensor.type_id.to_le_bytes());
        head.extend_from_slice(&offset.to_le_bytes());
        offset += padded(tensor.byte_len) as u64;
    }
    head.resize(padded(head.len()), 0);
    out.write_all(&head)
}

/// Writes one tensor's bytes and the padding that aligns the next.
pub fn write_tensor_data(out: &mut (impl Write + ?Sized), bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(bytes)?;
    out.write_all(&[0u8; ALIGNMENT][..padded(bytes.len()) - bytes.len()])
}

fn padded(len: usize) -> usize {
    len.div_ceil(ALIGNMENT) * ALIGNMENT
}

fn put_string(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// GGUF value type numbers: u32 4, i32 5, f32 6, bool 7, string 8, array 9, u64 10, i64 11,
/// f64 12. Integers are written as the 32-bit types when they fit, as `gguf` does for Python
/// ints, so `comfy.gguf.orig_shape.*` comes out as an array of i32 as ComfyUI-GGUF expects.
fn put_value(out: &mut Vec<u8>, value: &MetaValue, with_type: bool) {
    let tagged = |id: u32, bytes: &[u8], out: &mut Vec<u8>| {
        if with_type {
            out.extend_from_slice(&id.to_le_bytes());
        }
        out.extend_from_slice(bytes);
    };
    match value {
        MetaValue::UInt(v) => match u32::try_from(*v) {
            Ok(v) => tagged(4, &v.to_le_bytes(), out),
            Err(_) => tagged(10, &v.to_le_bytes(), out),
        },
        MetaValue::Int(v) => match i32::try_from(*v) {
            Ok(v) => tagged(5, &v.to_le_bytes(), out),
            Err(_) => tagged(11, &v.to_le_bytes(), out),
        },
        MetaValue::Float(v) => tagged(12, &v.to_le_bytes(), out),
        MetaValue::Bool(v) => tagged(7, &[u8::from(*v)], out),
        MetaValue::Str(s) => {
            tagged(8, &[], out);
            put_string(out, s);
        }
        MetaValue::Array(items) => {
            tagged(9, &[], out);
            // An array has one element type; ours are homogeneous (the writer builds them).
            let element_type = items.first().map_or(5, element_type_id);
            out.extend_from_slice(&element_type.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                put_value(out, item, false);
            }
        }
    }
}

fn element_type_id(value: &MetaValue) -> u32 {
    match value {
        MetaValue::UInt(v) if u32::try_from(*v).is_ok() => 4,
        MetaValue::UInt(_) => 10,
        MetaValue::Int(v) if i32::try_from(*v).is_ok() => 5,
        MetaValue::Int(_) => 11,
        MetaValue::Float(_) => 12,
        MetaValue::Bool(_) => 7,
        MetaValue::Str(_) => 8,
        MetaValue::Array(_) => 9,
    }
}

#[cfg(test)]
mod tests {
    use super::super::header::parse;
    use super::*;

    #[test]
    fn what_is_written_parses_back() -> Result<(), Box<dyn std::error::Error>> {
        let data = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let metadata = vec![
            (
                "general.architecture".to_string(),
                MetaValue::Str("hidream".into()),
            ),
            (
                "comfy.gguf.orig_shape.a".to_string(),
                MetaValue::Array(vec![MetaValue::Int(2), MetaValue::Int(1)]),
            ),
        ];
        let tensors = [
            TensorHeader {
                name: "a",
                ggml_dims: vec![1, 2],
                type_id: 0,
                byte_len: data.len(),
            },
            TensorHeader {
                name: "b",
                ggml_dims: vec![4],
                type_id: 1,
                byte_len: data.len(),
            },
        ];
        let mut bytes = Vec::new();
        write_header(&mut bytes, &metadata, &tensors)?;
        write_tensor_data(&mut bytes, &data)?;
        write_tensor_data(&mut bytes, &data)?;
        let header = parse(&bytes).map_err(|e| format!("{e:?}"))?;
        assert_eq!(bytes[4..8], 3u32.to_le_bytes());
        assert_eq!(header.data_start % 32, 0);
        assert_eq!(
            header.metadata.get("general.architecture"),
            Some(&metadata[0].1)
        );
        assert_eq!(
            header.metadata.get("comfy.gguf.orig_shape.a"),
            Some(&metadata[1].1)
        );
        assert_eq!(header.tensors[1].offset, 32);
        assert_eq!(header.tensors[1].dims, vec![4]);
        assert_eq!(bytes.len() as u64, header.data_start + 64);
        // Every prefix of the header is refused as truncated (or, once the tensor infos are
        // complete, parses): never a panic, never "corrupt".
        for cut in 4..header.data_start as usize {
            let parsed = parse(&bytes[..cut]);
            assert!(
                matches!(
                    parsed,
                    Ok(_) | Err(super::super::header::HeaderError::Truncated(_))
                ),
                "cut at {cut}: {parsed:?}"
            );
        }
        assert!(parse(&bytes[..40]).is_err());
        Ok(())
    }
}
