//! A secret kept in a file of its own outside the database (the audit keys, the sealing key):
//! one base64 line, created once with mode 0600 and never overwritten.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::io::Write;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Damaged(String),
}

/// Writes a new key file; an existing one is an error, never replaced.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(format!("{}\n", STANDARD.encode(bytes)).as_bytes())?;
    file.sync_all()
}

pub fn read(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    let text = std::fs::read_to_string(path)?;
    STANDARD.decode(text.trim()).map_err(|e| KeyFileError::Damaged(e.to_string()))
}
