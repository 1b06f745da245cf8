//! The manifest kept beside each imported model, `data_dir/models/NAME.json`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    pub name: String,
    pub arch: String,
    pub quantization: String,
    pub context_length: usize,
    pub sha256: String,
    pub size: u64,
    /// The file it was imported from.
    pub source: String,
    pub imported_by: String,
    /// Unix seconds.
    pub imported_at: i64,
    /// `chat` (a GGUF file), `embedding` (a sentence-transformers folder) or `transcription`
    /// (a CTranslate2 Whisper folder).
    #[serde(default = "chat")]
    pub purpose: String,
    /// The length of an embedding model's vectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<usize>,
}

fn chat() -> String {
    "chat".into()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error(
        "model name {0:?} must be 1 to 64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
    )]
    Name(String),
    #[error("sha256 {0:?} must be 64 lowercase hex digits")]
    Sha256(String),
}

pub fn validate_name(name: &str) -> Result<(), ManifestError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok { Ok(()) } else { Err(ManifestError::Name(name.to_string())) }
}

impl ModelManifest {
    pub fn is_embedding(&self) -> bool {
        self.purpose == "embedding"
    }

    pub fn is_transcription(&self) -> bool {
        self.purpose == "transcription"
    }

    pub fn chats(&self) -> bool {
        self.purpose == "chat"
    }

    pub fn validate(&self) -> Result<(), ManifestError> {
        validate_name(&self.name)?;
        let hash_ok =
            self.sha256.len() == 64 && self.sha256.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
        if !hash_ok {
            return Err(ManifestError::Sha256(self.sha256.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(name: &str, sha: &str) -> ModelManifest {
        ModelManifest {
            name: name.into(),
            arch: "qwen2".into(),
            quantization: "Q5_0".into(),
            context_length: 32768,
            sha256: sha.into(),
            size: 1,
            source: "f".into(),
            imported_by: "local:root".into(),
            imported_at: 0,
            purpose: "chat".into(),
            dimensions: None,
        }
    }

    #[test]
    fn names_and_hashes_are_checked() {
        let good = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32";
        assert_eq!(manifest("qwen2.5-coder", good).validate(), Ok(()));
        assert!(manifest("../etc", good).validate().is_err());
        assert!(manifest(".hidden", good).validate().is_err());
        assert!(manifest("x", "ABC").validate().is_err());
    }
}
