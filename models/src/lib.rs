//! Inference engines and model providers for Ayush. No HTTP, no database: the server calls in
//! through the types here. The engines themselves arrive with the local-inference work; what
//! lives here now is the model manifest that the models directory is organised by.

use serde::{Deserialize, Serialize};

/// What Ayush records about an imported model file, kept beside it in `data_dir/models/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    pub name: String,
    pub arch: String,
    pub sha256: String,
    pub size: u64,
    pub source: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("model name {0:?} must be 1 to 64 characters of letters, digits, '.', '_' or '-'")]
    Name(String),
    #[error("sha256 {0:?} must be 64 lowercase hex digits")]
    Sha256(String),
}

impl ModelManifest {
    pub fn validate(&self) -> Result<(), ManifestError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !name_ok {
            return Err(ManifestError::Name(self.name.clone()));
        }
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
            sha256: sha.into(),
            size: 1,
            source: "f".into(),
        }
    }

    #[test]
    fn names_and_hashes_are_checked() {
        let good = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32";
        assert_eq!(manifest("qwen2.5-coder", good).validate(), Ok(()));
        assert!(manifest("../etc", good).validate().is_err());
        assert!(manifest("x", "ABC").validate().is_err());
    }
}
