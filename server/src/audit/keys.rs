//! The audit log's keys, kept outside the database so that whoever can write the database still
//! cannot rewrite history unnoticed: an HMAC-SHA256 key that seals each event into the chain, an
//! Ed25519 key that signs checkpoints, and an AES-256-GCM key for chat content the content
//! policy captures. All are created on first start, readable only by the server's user (0600).
//! Every replica of a scale-out install mounts the same set.

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

const MAC_FILE: &str = "audit-mac.key";
const SIGNING_FILE: &str = "audit-signing.key";
const CONTENT_FILE: &str = "audit-content.key";
/// The public half, for auditors who verify exported checkpoints elsewhere.
const PUBLIC_FILE: &str = "audit-signing.pub";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("audit key {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("audit key {0} is damaged: {1}")]
    Damaged(PathBuf, String),
    #[error("no audit keys in {0}: the server creates them on its first start")]
    Missing(PathBuf),
    #[error("cannot generate an audit key: the system's random source failed")]
    Random,
}

pub struct Keys {
    mac: [u8; 32],
    signing: Ed25519KeyPair,
    /// Absent only in a secrets directory copied from before content capture existed.
    content: Option<[u8; 32]>,
    dir: PathBuf,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("dir", &self.dir).field("key_id", &self.key_id()).finish()
    }
}

impl Keys {
    /// Loads the keys, creating any that do not exist yet (server start-up).
    pub fn load_or_create(dir: &Path) -> Result<Keys, KeyError> {
        std::fs::create_dir_all(dir).map_err(|e| KeyError::Io(dir.to_path_buf(), e))?;
        restrict_dir(dir);
        let rng = SystemRandom::new();
        let mac_path = dir.join(MAC_FILE);
        if !mac_path.exists() {
            let mut key = [0u8; 32];
            rng.fill(&mut key).map_err(|_| KeyError::Random)?;
            write_secret(&mac_path, &key)?;
        }
        let signing_path = dir.join(SIGNING_FILE);
        if !signing_path.exists() {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Random)?;
            write_secret(&signing_path, pkcs8.as_ref())?;
        }
        let content_path = dir.join(CONTENT_FILE);
        if !content_path.exists() {
            let mut key = [0u8; 32];
            rng.fill(&mut key).map_err(|_| KeyError::Random)?;
            write_secret(&content_path, &key)?;
        }
        let keys = Keys::load(dir)?;
        let public_path = dir.join(PUBLIC_FILE);
        let public = format!("{}\n", hex::encode(keys.public_key()));
        if std::fs::read_to_string(&public_path).ok().as_deref() != Some(public.as_str()) {
            std::fs::write(&public_path, public).map_err(|e| KeyError::Io(public_path, e))?;
        }
        Ok(keys)
    }

    /// Loads existing keys without creating any (`ayushctl audit verify` on a copy).
    pub fn load(dir: &Path) -> Result<Keys, KeyError> {
        let mac_path = dir.join(MAC_FILE);
        if !mac_path.exists() {
            return Err(KeyError::Missing(dir.to_path_buf()));
        }
        let mac: [u8; 32] = read_secret(&mac_path)?
            .try_into()
            .map_err(|_| KeyError::Damaged(mac_path.clone(), "expected 32 bytes".into()))?;
        let signing_path = dir.join(SIGNING_FILE);
        let pkcs8 = read_secret(&signing_path)?;
        let signing = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|e| KeyError::Damaged(signing_path.clone(), e.to_string()))?;
        let content_path = dir.join(CONTENT_FILE);
        let content = match content_path.exists() {
            true => Some(
                read_secret(&content_path)?
                    .try_into()
                    .map_err(|_| KeyError::Damaged(content_path.clone(), "expected 32 bytes".into()))?,
            ),
            false => None,
        };
        Ok(Keys { mac, signing, content, dir: dir.to_path_buf() })
    }

    pub fn mac_key(&self) -> &[u8; 32] {
        &self.mac
    }

    pub fn public_key(&self) -> &[u8] {
        self.signing.public_key().as_ref()
    }

    /// A short name for the signing key, stored with each checkpoint.
    pub fn key_id(&self) -> String {
        key_id(self.public_key())
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.signing.sign(message).as_ref().to_vec()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn content_key(&self) -> Result<crate::sealed::SealingKey, String> {
        let key = self.content.ok_or_else(|| format!("no {CONTENT_FILE} in {}", self.dir.display()))?;
        Ok(crate::sealed::SealingKey::from_bytes(&key))
    }

    /// AES-256-GCM with a random nonce; returns (nonce, ciphertext with tag).
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<([u8; 12], Vec<u8>), String> {
        self.content_key()?.encrypt(plaintext, aad)
    }

    /// The plaintext, or an error when the key, the data or the associated data do not match.
    pub fn decrypt(&self, nonce: &[u8], ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
        self.content_key()?.decrypt(nonce, ciphertext, aad)
    }
}

pub fn key_id(public_key: &[u8]) -> String {
    hex::encode(&Sha256::digest(public_key)[..8])
}

/// Checks an Ed25519 signature against a public key.
pub fn signature_valid(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key).verify(message, signature).is_ok()
}

fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    crate::key_file::write(path, bytes).map_err(|e| KeyError::Io(path.to_path_buf(), e))
}

fn read_secret(path: &Path) -> Result<Vec<u8>, KeyError> {
    crate::key_file::read(path).map_err(|e| match e {
        crate::key_file::KeyFileError::Io(e) => KeyError::Io(path.to_path_buf(), e),
        crate::key_file::KeyFileError::Damaged(why) => KeyError::Damaged(path.to_path_buf(), why),
    })
}

fn restrict_dir(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot restrict the secrets directory to its owner");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_once_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let a = Keys::load_or_create(dir.path()).unwrap();
        let b = Keys::load_or_create(dir.path()).unwrap();
        assert_eq!(a.mac_key(), b.mac_key());
        assert_eq!(a.public_key(), b.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(MAC_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (nonce, sealed) = a.encrypt(b"hello", b"aad").unwrap();
        assert_eq!(b.decrypt(&nonce, &sealed, b"aad").unwrap(), b"hello");
        assert!(b.decrypt(&nonce, &sealed, b"other").is_err(), "bound to its context");
        let sig = a.sign(b"checkpoint");
        assert!(signature_valid(b.public_key(), b"checkpoint", &sig));
        assert!(!signature_valid(b.public_key(), b"checkpoinT", &sig));
    }

    #[test]
    fn missing_and_damaged_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(Keys::load(dir.path()), Err(KeyError::Missing(_))));
        Keys::load_or_create(dir.path()).unwrap();
        std::fs::write(dir.path().join(MAC_FILE), "bm90IDMyIGJ5dGVz\n").unwrap();
        let err = Keys::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("audit-mac.key") && err.contains("32 bytes"), "{err}");
    }
}
