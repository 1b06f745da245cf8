//! The backup file: a ZIP archive whose `manifest.json` names every other entry with its size and
//! sha256, so a restore can refuse a damaged or altered file before it touches anything.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use zip::write::SimpleFileOptions;

pub const FORMAT: &str = "ayush-backup";
pub const FORMAT_VERSION: u32 = 1;
pub const MANIFEST: &str = "manifest.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// What a backup holds and what made it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub ayush_version: String,
    pub created_at: i64,
    /// `sqlite` or `postgres`: a backup restores into the backend it was taken from.
    pub backend: String,
    /// The newest migration the database had (diesel's version string).
    pub schema_version: String,
    /// The audit chain's head in the snapshot: the restored log must verify up to it.
    pub audit_head_seq: i64,
    /// Whether the keys (audit, sealing) are inside, sealed with the admin's passphrase.
    pub secrets: bool,
    /// Models whose manifests are inside, and those whose files are too.
    pub models: Vec<String>,
    pub model_files: Vec<String>,
    pub entries: Vec<Entry>,
}

/// Writes entries, hashing each as it goes; `finish` adds the manifest.
pub struct Writer {
    zip: zip::ZipWriter<File>,
    entries: Vec<Entry>,
}

impl Writer {
    pub fn create(path: &Path) -> Result<Writer, String> {
        let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Writer { zip: zip::ZipWriter::new(file), entries: Vec::new() })
    }

    /// Starts entry `name`; `compress` is off for what is compressed already (model weights).
    fn start(&mut self, name: &str, compress: bool) -> Result<(), String> {
        let method = if compress { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
        let options = SimpleFileOptions::default().compression_method(method).large_file(true);
        self.zip.start_file(name, options).map_err(|e| format!("{name}: {e}"))
    }

    pub fn add_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<(), String> {
        self.start(name, true)?;
        self.zip.write_all(bytes).map_err(|e| format!("{name}: {e}"))?;
        self.entries.push(Entry {
            name: name.into(),
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
        });
        Ok(())
    }

    pub fn add_file(&mut self, name: &str, path: &Path, compress: bool) -> Result<(), String> {
        let mut file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        self.start(name, compress)?;
        let (size, sha256) = copy_hashing(&mut file, &mut self.zip).map_err(|e| format!("{name}: {e}"))?;
        self.entries.push(Entry { name: name.into(), size, sha256 });
        Ok(())
    }

    /// Entry `name` written by `fill`, which gets a writer that hashes what passes through.
    pub fn add_with(
        &mut self,
        name: &str,
        fill: impl FnOnce(&mut dyn Write) -> Result<(), String>,
    ) -> Result<(), String> {
        self.start(name, true)?;
        let mut hashing = Hashing { inner: &mut self.zip, hash: Sha256::new(), size: 0 };
        fill(&mut hashing)?;
        let (size, sha256) = (hashing.size, hex::encode(hashing.hash.finalize()));
        self.entries.push(Entry { name: name.into(), size, sha256 });
        Ok(())
    }

    pub fn finish(mut self, mut manifest: Manifest) -> Result<Manifest, String> {
        manifest.entries = std::mem::take(&mut self.entries);
        let text = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
        self.start(MANIFEST, true)?;
        self.zip.write_all(&text).map_err(|e| e.to_string())?;
        let file = self.zip.finish().map_err(|e| e.to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
        Ok(manifest)
    }
}

struct Hashing<'a, W: Write> {
    inner: &'a mut W,
    hash: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn copy_hashing(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<(u64, String)> {
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        size += n as u64;
    }
    Ok((size, hex::encode(hash.finalize())))
}

/// A backup opened for restoring: its manifest read, every entry's checksum checked.
pub struct Reader {
    zip: zip::ZipArchive<File>,
    pub manifest: Manifest,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader, String> {
        let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut zip = zip::ZipArchive::new(file)
            .map_err(|e| format!("{} is not an Ayush backup (not a ZIP archive: {e})", path.display()))?;
        let manifest: Manifest = {
            let mut entry = zip
                .by_name(MANIFEST)
                .map_err(|_| format!("{} is not an Ayush backup (no {MANIFEST})", path.display()))?;
            let mut text = Vec::new();
            entry.read_to_end(&mut text).map_err(|e| format!("{MANIFEST}: {e}"))?;
            serde_json::from_slice(&text).map_err(|e| format!("{MANIFEST} is damaged: {e}"))?
        };
        if manifest.format != FORMAT {
            return Err(format!("{} is not an Ayush backup (format {:?})", path.display(), manifest.format));
        }
        if manifest.format_version > FORMAT_VERSION {
            return Err(format!(
                "the backup's format ({}) is newer than this ayushctl understands ({FORMAT_VERSION}): restore with the version that made it ({})",
                manifest.format_version, manifest.ayush_version
            ));
        }
        let mut reader = Reader { zip, manifest };
        reader.check()?;
        Ok(reader)
    }

    /// Every entry the manifest names is there with its size and checksum, and nothing else is.
    fn check(&mut self) -> Result<(), String> {
        let named: std::collections::BTreeSet<&str> =
            self.manifest.entries.iter().map(|e| e.name.as_str()).chain([MANIFEST]).collect();
        for i in 0..self.zip.len() {
            let entry = self.zip.by_index(i).map_err(|e| e.to_string())?;
            let name = entry.name().map_err(|e| e.to_string())?.to_string();
            if !named.contains(name.as_str()) {
                return Err(format!(
                    "the backup holds {name}, which its manifest does not name: refusing it"
                ));
            }
        }
        for entry in self.manifest.entries.clone() {
            let mut file = self
                .zip
                .by_name(&entry.name)
                .map_err(|_| format!("the backup is incomplete: {} is missing", entry.name))?;
            let (size, sha256) = copy_hashing(&mut file, &mut std::io::sink()).map_err(|e| {
                format!("{} cannot be read ({e}): the backup is damaged or was altered", entry.name)
            })?;
            if size != entry.size || sha256 != entry.sha256 {
                return Err(format!(
                    "{} does not match its checksum in the manifest: the backup is damaged or was altered",
                    entry.name
                ));
            }
        }
        Ok(())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.manifest.entries.iter().map(|e| e.name.as_str())
    }

    pub fn read(&mut self, name: &str) -> Result<Vec<u8>, String> {
        let mut entry = self.zip.by_name(name).map_err(|_| format!("the backup has no {name}"))?;
        let mut out = Vec::new();
        entry.read_to_end(&mut out).map_err(|e| format!("{name}: {e}"))?;
        Ok(out)
    }

    pub fn extract(&mut self, name: &str, to: &Path) -> Result<(), String> {
        let mut entry = self.zip.by_name(name).map_err(|_| format!("the backup has no {name}"))?;
        let mut file = File::create(to).map_err(|e| format!("{}: {e}", to.display()))?;
        std::io::copy(&mut entry, &mut file).map_err(|e| format!("{name}: {e}"))?;
        file.sync_all().map_err(|e| format!("{}: {e}", to.display()))
    }

    /// Streams entry `name` to `read`.
    pub fn with_entry<T>(
        &mut self,
        name: &str,
        read: impl FnOnce(&mut dyn Read) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut entry = self.zip.by_name(name).map_err(|_| format!("the backup has no {name}"))?;
        read(&mut entry)
    }
}
