//! CTranslate2's `model.bin`, the format the Whisper weights reachable here come in (PyPI
//! packages carry faster-whisper's conversions). Read whole and checked before anything is
//! taken from it: every length and shape is held against the file's size, as `gguf` does.
//!
//! Layout (format version 6, little-endian): `u32` version, the spec's name (a string: `u16`
//! byte length, the bytes, a trailing NUL), `u32` spec revision, `u32` variable count, then per
//! variable its name, `u8` rank, a `u32` per dimension, `u8` type, `u32` byte length and the
//! bytes; then a `u32` alias count and (alias, variable) name pairs.

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

/// The one version written since CTranslate2 3.x.
pub const FORMAT_VERSION: u32 = 6;
const MAX_RANK: u8 = 8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Ct2Error {
    #[error("{0}")]
    Io(String),
    #[error("not a CTranslate2 model: {0}")]
    Corrupt(String),
    #[error("CTranslate2 model format version {0} is not supported (version {FORMAT_VERSION} is)")]
    Version(u32),
    #[error("the model has no variable {0:?}")]
    Missing(String),
}

/// A variable's element type, by CTranslate2's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Kind {
    fn of(id: u8) -> Option<Kind> {
        Some(match id {
            0 => Kind::F32,
            1 => Kind::I8,
            2 => Kind::I16,
            3 => Kind::I32,
            4 => Kind::F16,
            5 => Kind::Bf16,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Kind::I8 => 1,
            Kind::I16 | Kind::F16 | Kind::Bf16 => 2,
            Kind::F32 | Kind::I32 => 4,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Variable {
    pub shape: Vec<usize>,
    pub kind: Kind,
    bytes: Range<usize>,
}

/// A model file, read and checked.
pub struct Ct2Model {
    /// The model's kind, e.g. `WhisperSpec`.
    pub spec: String,
    pub revision: u32,
    data: Vec<u8>,
    variables: HashMap<String, Variable>,
    aliases: HashMap<String, String>,
}

/// A cursor over the file that refuses to read past its end.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<Range<usize>, Ct2Error> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.data.len()).ok_or_else(|| {
            Ct2Error::Corrupt(format!("it ends inside {what} (at byte {} of {})", self.at, self.data.len()))
        })?;
        let range = self.at..end;
        self.at = end;
        Ok(range)
    }

    fn u8(&mut self, what: &str) -> Result<u8, Ct2Error> {
        let r = self.take(1, what)?;
        Ok(self.data[r.start])
    }

    fn u16(&mut self, what: &str) -> Result<u16, Ct2Error> {
        let r = self.take(2, what)?;
        Ok(u16::from_le_bytes([self.data[r.start], self.data[r.start + 1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, Ct2Error> {
        let r = self.take(4, what)?;
        let b = &self.data[r];
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, what: &str) -> Result<String, Ct2Error> {
        let n = self.u16(what)? as usize;
        let r = self.take(n, what)?;
        let bytes = &self.data[r];
        let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        String::from_utf8(bytes.to_vec()).map_err(|_| Ct2Error::Corrupt(format!("{what} is not UTF-8")))
    }
}

impl Ct2Model {
    pub fn read(path: &Path) -> Result<Ct2Model, Ct2Error> {
        let data = std::fs::read(path).map_err(|e| Ct2Error::Io(format!("{}: {e}", path.display())))?;
        Ct2Model::parse(data)
    }

    pub fn parse(data: Vec<u8>) -> Result<Ct2Model, Ct2Error> {
        let mut r = Reader { data: &data, at: 0 };
        let version = r.u32("the format version")?;
        if version != FORMAT_VERSION {
            return Err(Ct2Error::Version(version));
        }
        let spec = r.string("the spec's name")?;
        let revision = r.u32("the spec's revision")?;
        let count = r.u32("the variable count")?;
        let mut variables = HashMap::new();
        for i in 0..count {
            let name = r.string(&format!("variable {i}'s name"))?;
            let rank = r.u8(&format!("{name}'s rank"))?;
            if rank > MAX_RANK {
                return Err(Ct2Error::Corrupt(format!("{name} has rank {rank}")));
            }
            let shape = (0..rank)
                .map(|_| r.u32(&format!("{name}'s shape")).map(|d| d as usize))
                .collect::<Result<Vec<_>, _>>()?;
            let id = r.u8(&format!("{name}'s type"))?;
            let kind = Kind::of(id).ok_or_else(|| Ct2Error::Corrupt(format!("{name} has type {id}")))?;
            let len = r.u32(&format!("{name}'s length"))? as usize;
            let elements = shape.iter().try_fold(1usize, |n, d| n.checked_mul(*d));
            if elements.and_then(|n| n.checked_mul(kind.size())) != Some(len) {
                return Err(Ct2Error::Corrupt(format!(
                    "{name} is {len} bytes, not what shape {shape:?} of {kind:?} takes"
                )));
            }
            let bytes = r.take(len, &format!("{name}'s values"))?;
            variables.insert(name, Variable { shape, kind, bytes });
        }
        let count = r.u32("the alias count")?;
        let mut aliases = HashMap::new();
        for i in 0..count {
            let alias = r.string(&format!("alias {i}"))?;
            let target = r.string(&format!("alias {alias}'s variable"))?;
            if !variables.contains_key(&target) {
                return Err(Ct2Error::Corrupt(format!("alias {alias} names no variable ({target})")));
            }
            aliases.insert(alias, target);
        }
        if r.at != data.len() {
            return Err(Ct2Error::Corrupt(format!("{} bytes follow the last alias", data.len() - r.at)));
        }
        Ok(Ct2Model { spec, revision, data, variables, aliases })
    }

    pub fn variable(&self, name: &str) -> Result<&Variable, Ct2Error> {
        let name = self.aliases.get(name).map_or(name, String::as_str);
        self.variables.get(name).ok_or_else(|| Ct2Error::Missing(name.to_string()))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.variables.keys().map(String::as_str)
    }

    /// A floating-point variable as an f32 tensor.
    pub fn tensor(&self, name: &str, device: &Device) -> Result<Tensor, Ct2Error> {
        let v = self.variable(name)?;
        let bytes = &self.data[v.bytes.clone()];
        let dtype = match v.kind {
            Kind::F32 => DType::F32,
            Kind::F16 => DType::F16,
            Kind::Bf16 => DType::BF16,
            other => return Err(Ct2Error::Corrupt(format!("{name} holds {other:?}, not floating point"))),
        };
        let bad = |e: candle_core::Error| Ct2Error::Corrupt(format!("{name}: {e}"));
        Tensor::from_raw_buffer(bytes, dtype, &v.shape, device)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(bad)
    }

    /// A scalar integer setting (`decoder/num_heads`).
    pub fn integer(&self, name: &str) -> Result<i64, Ct2Error> {
        let v = self.variable(name)?;
        let b = &self.data[v.bytes.clone()];
        let wrong = || Ct2Error::Corrupt(format!("{name} is not a scalar integer"));
        if !v.shape.is_empty() {
            return Err(wrong());
        }
        Ok(match v.kind {
            Kind::I8 => i64::from(b[0] as i8),
            Kind::I16 => i64::from(i16::from_le_bytes([b[0], b[1]])),
            Kind::I32 => i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            _ => return Err(wrong()),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A file in the format, from (name, shape, type id, bytes) and (alias, name).
    pub(crate) fn file(vars: &[(&str, &[u32], u8, Vec<u8>)], aliases: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        let string = |out: &mut Vec<u8>, s: &str| {
            out.extend(((s.len() + 1) as u16).to_le_bytes());
            out.extend(s.as_bytes());
            out.push(0);
        };
        out.extend(FORMAT_VERSION.to_le_bytes());
        string(&mut out, "WhisperSpec");
        out.extend(3u32.to_le_bytes());
        out.extend((vars.len() as u32).to_le_bytes());
        for (name, shape, kind, bytes) in vars {
            string(&mut out, name);
            out.push(shape.len() as u8);
            for d in *shape {
                out.extend(d.to_le_bytes());
            }
            out.push(*kind);
            out.extend((bytes.len() as u32).to_le_bytes());
            out.extend(bytes);
        }
        out.extend((aliases.len() as u32).to_le_bytes());
        for (alias, name) in aliases {
            string(&mut out, alias);
            string(&mut out, name);
        }
        out
    }

    fn f16s(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect()
    }

    #[test]
    fn variables_and_aliases_are_read_and_widened() {
        let data = file(
            &[
                ("decoder/num_heads", &[], 2, 8i16.to_le_bytes().to_vec()),
                ("decoder/embeddings/weight", &[2, 2], 4, f16s(&[1.0, -2.0, 0.5, 3.0])),
            ],
            &[("decoder/projection/weight", "decoder/embeddings/weight")],
        );
        let m = Ct2Model::parse(data).unwrap();
        assert_eq!((m.spec.as_str(), m.revision), ("WhisperSpec", 3));
        assert_eq!(m.integer("decoder/num_heads").unwrap(), 8);
        let t = m.tensor("decoder/projection/weight", &Device::Cpu).unwrap();
        assert_eq!(t.to_vec2::<f32>().unwrap(), [[1.0, -2.0], [0.5, 3.0]]);
        assert_eq!(m.tensor("nope", &Device::Cpu).unwrap_err(), Ct2Error::Missing("nope".into()));
    }

    #[test]
    fn damaged_files_are_refused_with_the_reason() {
        let good = file(&[("w", &[2], 4, f16s(&[1.0, 2.0]))], &[]);
        let refused = |data: Vec<u8>| Ct2Model::parse(data).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused(good[..good.len() - 3].to_vec()).contains("ends inside"));
        let mut v5 = good.clone();
        v5[0] = 5;
        assert!(refused(v5).contains("version 5"));
        assert!(refused(file(&[("w", &[3], 4, f16s(&[1.0, 2.0]))], &[])).contains("not what shape"));
        assert!(refused(file(&[("w", &[2], 9, f16s(&[1.0, 2.0]))], &[])).contains("type 9"));
        assert!(
            refused(file(&[("w", &[2], 4, f16s(&[1.0, 2.0]))], &[("a", "x")])).contains("names no variable")
        );
        let mut trailing = good;
        trailing.push(0);
        assert!(refused(trailing).contains("follow the last alias"));
    }
}
