//! The keys in a backup (audit MAC, signing and content keys, the provider sealing key), sealed
//! with a passphrase the admin supplies: argon2id stretches it into an AES-256-GCM key, so a
//! stolen backup file gives up neither the keys nor, through them, the sealed provider keys.

use crate::sealed::SealingKey;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const ENTRY: &str = "secrets.sealed";
const AAD: &[u8] = b"ayush-backup-secrets-v1";
/// OWASP's argon2id floor is 19 MiB, 2 passes; a backup is opened rarely, so spend more.
const MEMORY_KIB: u32 = 64 * 1024;
const PASSES: u32 = 3;
pub const MIN_PASSPHRASE: usize = 12;

#[derive(Serialize, Deserialize)]
struct Sealed {
    kdf: String,
    memory_kib: u32,
    passes: u32,
    salt: String,
    sealed: String,
}

fn stretch(passphrase: &str, salt: &[u8], memory_kib: u32, passes: u32) -> Result<SealingKey, String> {
    let params = argon2::Params::new(memory_kib, passes, 1, Some(32)).map_err(|e| e.to_string())?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = [0u8; 32];
    argon.hash_password_into(passphrase.as_bytes(), salt, &mut key).map_err(|e| e.to_string())?;
    Ok(SealingKey::from_bytes(&key))
}

pub fn check_passphrase(passphrase: &str) -> Result<(), String> {
    if passphrase.chars().count() < MIN_PASSPHRASE {
        return Err(format!("the backup passphrase must be at least {MIN_PASSPHRASE} characters"));
    }
    Ok(())
}

/// Every regular file in `dir`, by name, sealed with `passphrase`.
pub fn seal_dir(dir: &Path, passphrase: &str) -> Result<(Vec<u8>, usize), String> {
    check_passphrase(passphrase)?;
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        if entry.file_type().map_err(|e| e.to_string())?.is_file() {
            let bytes =
                std::fs::read(entry.path()).map_err(|e| format!("{}: {e}", entry.path().display()))?;
            files.insert(entry.file_name().to_string_lossy().into_owned(), STANDARD.encode(bytes));
        }
    }
    let count = files.len();
    let plain = serde_json::to_vec(&files).map_err(|e| e.to_string())?;
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| "the system's random source failed".to_string())?;
    let key = stretch(passphrase, &salt, MEMORY_KIB, PASSES)?;
    let sealed = Sealed {
        kdf: "argon2id".into(),
        memory_kib: MEMORY_KIB,
        passes: PASSES,
        salt: STANDARD.encode(salt),
        sealed: key.seal(&plain, AAD)?,
    };
    Ok((serde_json::to_vec_pretty(&sealed).map_err(|e| e.to_string())?, count))
}

/// The files sealed by [`seal_dir`], or an error that says the passphrase is wrong.
pub fn open(sealed: &[u8], passphrase: &str) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let sealed: Sealed = serde_json::from_slice(sealed).map_err(|e| format!("{ENTRY} is damaged: {e}"))?;
    if sealed.kdf != "argon2id" || sealed.memory_kib > 4 * 1024 * 1024 || sealed.passes > 100 {
        return Err(format!("{ENTRY} names a key derivation this version does not use"));
    }
    let salt = STANDARD.decode(&sealed.salt).map_err(|e| format!("{ENTRY} is damaged: {e}"))?;
    let key = stretch(passphrase, &salt, sealed.memory_kib, sealed.passes)?;
    let plain = key
        .open(&sealed.sealed, AAD)
        .map_err(|_| "the passphrase does not open the backup's keys (wrong passphrase?)".to_string())?;
    let files: BTreeMap<String, String> =
        serde_json::from_slice(&plain).map_err(|e| format!("{ENTRY} is damaged: {e}"))?;
    files
        .into_iter()
        .map(|(name, b64)| {
            if name.contains('/') || name.starts_with('.') {
                return Err(format!("{ENTRY} names a file {name:?} outside the secrets directory"));
            }
            Ok((name, STANDARD.decode(b64).map_err(|e| format!("{ENTRY} is damaged: {e}"))?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_open_with_their_passphrase_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("audit-mac.key"), b"mac key bytes").unwrap();
        std::fs::write(dir.path().join("provider-keys.key"), [0u8, 1, 2, 255]).unwrap();
        assert!(seal_dir(dir.path(), "short").unwrap_err().contains("at least 12"));
        let (sealed, count) = seal_dir(dir.path(), "correct horse battery").unwrap();
        assert_eq!(count, 2);
        assert!(!String::from_utf8_lossy(&sealed).contains("mac key bytes"));
        let files = open(&sealed, "correct horse battery").unwrap();
        assert_eq!(files["audit-mac.key"], b"mac key bytes");
        assert_eq!(files["provider-keys.key"], [0u8, 1, 2, 255]);
        assert!(open(&sealed, "wrong horse battery").unwrap_err().contains("wrong passphrase"));
    }
}
