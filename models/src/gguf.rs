//! A GGUF header reader that trusts nothing in the file. Every count, length and offset is
//! checked against the bytes that remain before anything is allocated, so a truncated or
//! hostile file is a clear error, never a panic or an unbounded allocation. The result is
//! handed to candle as its `gguf_file::Content`, whose own reader allocates whatever lengths
//! a file claims.

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::{Content, TensorInfo, Value, VersionedMagic};
use std::collections::HashMap;
use std::io::Read;

const MAGIC: [u8; 4] = *b"GGUF";
/// No real key or tensor name comes close; longer ones are refused.
const MAX_NAME_BYTES: u64 = 64 * 1024;
/// Tokenizer vocabularies and chat templates are the largest strings; 16 MiB leaves room.
const MAX_STRING_BYTES: u64 = 16 * 1024 * 1024;
const MAX_ARRAY_DEPTH: u32 = 3;
const MAX_DIMS: u32 = 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GgufError {
    #[error("not a GGUF file (the magic bytes are wrong)")]
    NotGguf,
    #[error("GGUF version {0} is not supported (2 and 3 are)")]
    Version(u32),
    #[error("the file is truncated or corrupt: {0}")]
    Corrupt(String),
    #[error("tensor {name}: {why}")]
    Tensor { name: String, why: String },
    #[error("reading the file: {0}")]
    Io(String),
}

fn corrupt(why: impl Into<String>) -> GgufError {
    GgufError::Corrupt(why.into())
}

/// Reads with a byte budget: what is left of the file after the current position.
struct Budget<R> {
    inner: R,
    pos: u64,
    len: u64,
}

impl<R: Read> Budget<R> {
    fn left(&self) -> u64 {
        self.len - self.pos
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        if (N as u64) > self.left() {
            return Err(corrupt(format!("needs {N} more bytes at offset {}, the file ends first", self.pos)));
        }
        let mut buf = [0u8; N];
        self.inner.read_exact(&mut buf).map_err(|e| GgufError::Io(e.to_string()))?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        self.bytes::<4>().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        self.bytes::<8>().map(u64::from_le_bytes)
    }

    fn string(&mut self, max: u64, what: &str) -> Result<String, GgufError> {
        let len = self.u64()?;
        if len > max || len > self.left() {
            return Err(corrupt(format!("{what} claims {len} bytes at offset {}", self.pos)));
        }
        let mut buf = vec![0u8; len as usize];
        self.inner.read_exact(&mut buf).map_err(|e| GgufError::Io(e.to_string()))?;
        self.pos += len;
        String::from_utf8(buf).map_err(|_| corrupt(format!("{what} is not UTF-8")))
    }

    /// A count of items each at least `min_size` bytes long must fit in what is left.
    fn count(&mut self, min_size: u64, what: &str) -> Result<usize, GgufError> {
        let n = self.u64()?;
        if n.saturating_mul(min_size) > self.left() {
            return Err(corrupt(format!("{what} claims {n} entries, more than the file can hold")));
        }
        usize::try_from(n).map_err(|_| corrupt(format!("{what} count {n} is too large")))
    }

    fn value(&mut self, ty: u32, depth: u32) -> Result<Value, GgufError> {
        Ok(match ty {
            0 => Value::U8(self.bytes::<1>()?[0]),
            1 => Value::I8(i8::from_le_bytes(self.bytes::<1>()?)),
            2 => Value::U16(u16::from_le_bytes(self.bytes::<2>()?)),
            3 => Value::I16(i16::from_le_bytes(self.bytes::<2>()?)),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(i32::from_le_bytes(self.bytes::<4>()?)),
            6 => Value::F32(f32::from_le_bytes(self.bytes::<4>()?)),
            7 => match self.bytes::<1>()?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(corrupt(format!("boolean value {b}"))),
            },
            8 => Value::String(self.string(MAX_STRING_BYTES, "a string value")?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(corrupt("arrays nested too deeply"));
                }
                let elem = self.u32()?;
                let n = self.count(min_value_size(elem)?, "an array")?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(elem, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.bytes::<8>()?)),
            12 => Value::F64(f64::from_le_bytes(self.bytes::<8>()?)),
            other => return Err(corrupt(format!("unknown value type {other}"))),
        })
    }
}

fn min_value_size(ty: u32) -> Result<u64, GgufError> {
    Ok(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        other => return Err(corrupt(format!("unknown array element type {other}"))),
    })
}

fn dtype(raw: u32) -> Option<GgmlDType> {
    Some(match raw {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        9 => GgmlDType::Q8_1,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        30 => GgmlDType::BF16,
        _ => return None,
    })
}

/// Reads and checks the header, metadata and tensor table of a GGUF file `len` bytes long.
pub fn read_header(reader: impl Read, len: u64) -> Result<Content, GgufError> {
    let mut r = Budget { inner: reader, pos: 0, len };
    if r.bytes::<4>().map_err(|_| GgufError::NotGguf)? != MAGIC {
        return Err(GgufError::NotGguf);
    }
    let magic = match r.u32()? {
        2 => VersionedMagic::GgufV2,
        3 => VersionedMagic::GgufV3,
        v => return Err(GgufError::Version(v)),
    };
    // A tensor entry takes at least 8 (name length) + 4 + 8 + 4 + 8 bytes; a pair at least 8 + 4 + 1.
    let tensor_count = r.count(32, "the tensor table")?;
    let kv_count = r.count(13, "the metadata")?;

    let mut metadata = HashMap::with_capacity(kv_count);
    for _ in 0..kv_count {
        let key = r.string(MAX_NAME_BYTES, "a metadata key")?;
        let ty = r.u32()?;
        let value = r.value(ty, 0).map_err(|e| corrupt(format!("metadata {key}: {e}")))?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(corrupt(format!("metadata key {key} appears twice")));
        }
    }

    let mut raw_tensors = Vec::with_capacity(tensor_count);
    for _ in 0..tensor_count {
        let name = r.string(MAX_NAME_BYTES, "a tensor name")?;
        let n_dims = r.u32()?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(GgufError::Tensor { name, why: format!("{n_dims} dimensions") });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(r.u64()?);
        }
        let raw_type = r.u32()?;
        let offset = r.u64()?;
        raw_tensors.push((name, dims, raw_type, offset));
    }

    let alignment = match metadata.get("general.alignment") {
        None => 32,
        Some(Value::U32(a)) if a.is_power_of_two() => u64::from(*a),
        Some(other) => return Err(corrupt(format!("general.alignment {other:?} is not a power of two"))),
    };
    let data_offset = r.pos.div_ceil(alignment) * alignment;
    if data_offset > len {
        return Err(corrupt("the tensor data section starts past the end of the file"));
    }
    let data_len = len - data_offset;

    let mut tensor_infos = HashMap::with_capacity(raw_tensors.len());
    for (name, dims, raw_type, offset) in raw_tensors {
        let bad = |why: String| GgufError::Tensor { name: name.clone(), why };
        let ggml_dtype = dtype(raw_type).ok_or_else(|| bad(format!("unsupported type {raw_type}")))?;
        let elems = dims
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(*d))
            .ok_or_else(|| bad("too many elements".into()))?;
        let block = ggml_dtype.block_size() as u64;
        if elems == 0 || elems % block != 0 {
            return Err(bad(format!("{elems} elements do not fill whole {block}-element blocks")));
        }
        let bytes = (elems / block)
            .checked_mul(ggml_dtype.type_size() as u64)
            .ok_or_else(|| bad("too large".into()))?;
        if offset % alignment != 0 {
            return Err(bad(format!("offset {offset} is not aligned to {alignment}")));
        }
        if offset.checked_add(bytes).is_none_or(|end| end > data_len) {
            return Err(bad(format!("its {bytes} bytes at offset {offset} run past the end of the file")));
        }
        let shape: Vec<usize> = dims.iter().rev().map(|d| *d as usize).collect();
        let info = TensorInfo { ggml_dtype, shape: shape.into(), offset };
        if tensor_infos.insert(name.clone(), info).is_some() {
            return Err(bad("appears twice".into()));
        }
    }
    Ok(Content { magic, metadata, tensor_infos, tensor_data_offset: data_offset })
}

/// Reads and checks the header of the GGUF file at `path`.
pub fn read_file_header(path: &std::path::Path) -> Result<Content, GgufError> {
    let file = std::fs::File::open(path).map_err(|e| GgufError::Io(format!("{}: {e}", path.display())))?;
    let len = file.metadata().map_err(|e| GgufError::Io(e.to_string()))?.len();
    read_header(std::io::BufReader::with_capacity(1 << 20, file), len)
}

/// Typed access to metadata values, with errors that name the key.
pub struct Meta<'a>(pub &'a HashMap<String, Value>);

impl Meta<'_> {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        match self.0.get(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    pub fn u32(&self, key: &str) -> Option<u32> {
        match self.0.get(key)? {
            Value::U8(v) => Some(u32::from(*v)),
            Value::U16(v) => Some(u32::from(*v)),
            Value::U32(v) => Some(*v),
            Value::I32(v) => u32::try_from(*v).ok(),
            Value::U64(v) => u32::try_from(*v).ok(),
            Value::I64(v) => u32::try_from(*v).ok(),
            _ => None,
        }
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.0.get(key)? {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn strings(&self, key: &str) -> Option<Vec<&str>> {
        match self.0.get(key)? {
            Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }

    pub fn i32s(&self, key: &str) -> Option<Vec<i32>> {
        match self.0.get(key)? {
            Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    Value::I32(x) => Some(*x),
                    Value::U32(x) => i32::try_from(*x).ok(),
                    Value::U8(x) => Some(i32::from(*x)),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }

    pub fn f32s(&self, key: &str) -> Option<Vec<f32>> {
        match self.0.get(key)? {
            Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    Value::F32(x) => Some(*x),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a small GGUF file: metadata pairs (string values) and tensors (F32).
    pub(crate) fn forge(meta: &[(&str, &str)], tensors: &[(&str, &[u64])]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(meta.len() as u64).to_le_bytes());
        let s = |out: &mut Vec<u8>, v: &str| {
            out.extend_from_slice(&(v.len() as u64).to_le_bytes());
            out.extend_from_slice(v.as_bytes());
        };
        for (k, v) in meta {
            s(&mut out, k);
            out.extend_from_slice(&8u32.to_le_bytes());
            s(&mut out, v);
        }
        let mut offset = 0u64;
        let mut sizes = Vec::new();
        for (name, dims) in tensors {
            s(&mut out, name);
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in *dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            let bytes = dims.iter().product::<u64>() * 4;
            sizes.push(bytes);
            offset += bytes.div_ceil(32) * 32;
        }
        while out.len() % 32 != 0 {
            out.push(0);
        }
        for bytes in sizes {
            out.extend(std::iter::repeat_n(0u8, (bytes.div_ceil(32) * 32) as usize));
        }
        out
    }

    fn read(bytes: &[u8]) -> Result<Content, GgufError> {
        read_header(bytes, bytes.len() as u64)
    }

    #[test]
    fn reads_a_well_formed_file() {
        let bytes = forge(&[("general.architecture", "llama")], &[("w", &[8, 2])]);
        let c = read(&bytes).unwrap();
        assert_eq!(Meta(&c.metadata).str("general.architecture"), Some("llama"));
        assert_eq!(c.tensor_infos["w"].shape.dims(), &[2, 8]);
        assert_eq!(c.tensor_data_offset % 32, 0);
    }

    #[test]
    fn refuses_what_is_not_gguf() {
        assert_eq!(read(b"GGML\x03\0\0\0").unwrap_err(), GgufError::NotGguf);
        assert_eq!(read(b"GG").unwrap_err(), GgufError::NotGguf);
        let mut v1 = forge(&[], &[]);
        v1[4] = 1;
        assert_eq!(read(&v1).unwrap_err(), GgufError::Version(1));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = forge(&[("general.architecture", "qwen2"), ("x", "y")], &[("a", &[64]), ("b", &[4, 4])]);
        for cut in 0..bytes.len() {
            assert!(read(&bytes[..cut]).is_err(), "cut at {cut} was accepted");
        }
    }

    #[test]
    fn huge_claimed_lengths_are_refused_before_allocating() {
        let mut bytes = forge(&[("k", "v")], &[]);
        // The key's length field starts right after the 24-byte header.
        bytes[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(read(&bytes).unwrap_err(), GgufError::Corrupt(_)));
        let mut bytes = forge(&[], &[]);
        bytes[8..16].copy_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(read(&bytes).unwrap_err().to_string().contains("more than the file can hold"));
    }

    #[test]
    fn tensors_must_lie_inside_the_file() {
        let mut bytes = forge(&[], &[("w", &[8])]);
        let len = bytes.len();
        bytes.truncate(len - 32);
        assert!(read(&bytes).unwrap_err().to_string().contains("past the end"));
    }

    /// A poor man's fuzzer for CI: flipped bytes in a valid header must never panic.
    #[test]
    fn mutated_headers_never_panic() {
        let base = forge(
            &[("general.architecture", "gemma3"), ("tokenizer.ggml.model", "llama")],
            &[("t", &[32, 2])],
        );
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut bytes = base.clone();
            for _ in 0..1 + next() % 4 {
                let i = (next() % bytes.len() as u64) as usize;
                bytes[i] = next() as u8;
            }
            let _ = read(&bytes);
        }
    }
}
