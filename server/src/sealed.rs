//! Secrets the database holds only in sealed form (provider API keys, captured chat content):
//! AES-256-GCM with a random nonce, bound by associated data to what the secret belongs to, so
//! a sealed value copied onto another row does not open. The key lives in a file outside the
//! database, created 0600 on first start.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead;
use ring::rand::{SecureRandom, SystemRandom};
use std::path::Path;

pub struct SealingKey(aead::LessSafeKey);

impl SealingKey {
    pub fn from_bytes(key: &[u8; 32]) -> SealingKey {
        #[allow(clippy::expect_used)] // 32 bytes is always a valid AES-256 key.
        let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, key).expect("a 32-byte AES-256 key");
        SealingKey(aead::LessSafeKey::new(unbound))
    }

    /// Loads the key at `path`, creating it (0600) if there is none yet.
    pub fn load_or_create(path: &Path) -> Result<SealingKey, String> {
        if !path.exists() {
            let mut key = [0u8; 32];
            SystemRandom::new()
                .fill(&mut key)
                .map_err(|_| "the system's random source failed".to_string())?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            crate::key_file::write(path, &key).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let bytes = crate::key_file::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let key: [u8; 32] =
            bytes.try_into().map_err(|_| format!("{} is damaged: expected 32 bytes", path.display()))?;
        Ok(SealingKey::from_bytes(&key))
    }

    /// Returns (nonce, ciphertext with its tag).
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<([u8; 12], Vec<u8>), String> {
        let mut nonce = [0u8; 12];
        SystemRandom::new().fill(&mut nonce).map_err(|_| "the system's random source failed".to_string())?;
        let mut sealed = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(aad),
                &mut sealed,
            )
            .map_err(|_| "encryption failed".to_string())?;
        Ok((nonce, sealed))
    }

    /// The plaintext, or an error when the key, the data or the associated data do not match.
    pub fn decrypt(&self, nonce: &[u8], ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| "bad nonce".to_string())?;
        let mut data = ciphertext.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, aead::Aad::from(aad), &mut data)
            .map_err(|_| "cannot decrypt: wrong key, or the content was altered".to_string())?;
        Ok(plain.to_vec())
    }

    /// One text column: base64 of nonce and ciphertext.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, String> {
        let (nonce, sealed) = self.encrypt(plaintext, aad)?;
        Ok(STANDARD.encode([nonce.as_slice(), &sealed].concat()))
    }

    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, String> {
        let bytes = STANDARD.decode(sealed).map_err(|e| format!("a sealed value is damaged: {e}"))?;
        if bytes.len() < 12 + 16 {
            return Err("a sealed value is damaged: too short".into());
        }
        self.decrypt(&bytes[..12], &bytes[12..], aad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets/provider-keys.key");
        let key = SealingKey::load_or_create(&path).unwrap();
        let again = SealingKey::load_or_create(&path).unwrap();
        let sealed = key.seal(b"sk-secret", b"provider:openai").unwrap();
        assert!(!sealed.contains("sk-secret"));
        assert_eq!(again.open(&sealed, b"provider:openai").unwrap(), b"sk-secret");
        assert!(again.open(&sealed, b"provider:other").is_err());
        let other = SealingKey::from_bytes(&[7u8; 32]);
        assert!(other.open(&sealed, b"provider:openai").unwrap_err().contains("wrong key"));
        assert!(key.open("AAAA", b"x").unwrap_err().contains("too short"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
