//! Local passwords: argon2id hashes and the minimum policy.

use crate::error::{AppError, AppResult, ErrorKind};
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::sync::LazyLock;

/// Longer inputs are refused before hashing so a request cannot buy seconds of CPU.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Verified against when the account does not exist, so the reply takes as long either way.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash("not-a-real-password-only-for-timing").unwrap_or_default());

pub fn hash(password: &str) -> AppResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::internal(format!("argon2: {e}")))
}

/// Whether `password` matches `stored`; `None` (no local password) spends the same time.
pub fn verify(stored: Option<&str>, password: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let real = stored.is_some();
    let stored = stored.unwrap_or(&DUMMY_HASH);
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && real
}

pub fn check_policy(password: &str, username: &str, min_length: usize) -> AppResult<()> {
    let weak = |m: String| Err(AppError::new(ErrorKind::WeakPassword, m));
    let chars = password.chars().count();
    if chars < min_length {
        return weak(format!("the password must be at least {min_length} characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return weak(format!("the password must be at most {MAX_PASSWORD_BYTES} bytes"));
    }
    if password.eq_ignore_ascii_case(username) {
        return weak("the password must not be the username".into());
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 4 {
        return weak("the password must use at least 4 different characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(Some(&h), "correct horse battery"));
        assert!(!verify(Some(&h), "wrong horse battery"));
        assert!(!verify(None, "correct horse battery"));
        assert!(!verify(Some("garbage"), "x"));
    }

    #[test]
    fn policy() {
        assert!(check_policy("short", "bob", 12).is_err());
        assert!(check_policy("aaaaaaaaaaaaaaaa", "bob", 12).is_err());
        assert!(check_policy("alice-the-admin", "alice-the-admin", 12).is_err());
        assert!(check_policy(&"ab12".repeat(300), "bob", 12).is_err());
        assert!(check_policy("a fine passphrase", "bob", 12).is_ok());
    }
}
