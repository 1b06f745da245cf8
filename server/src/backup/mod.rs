//! Backup and restore of an installation: a consistent snapshot of the database taken while the
//! server runs, the keys sealed with the admin's passphrase, the model manifests (and, asked
//! for, the model files), and a manifest with versions and checksums. The search index is not
//! in it: a restore rebuilds it from the database.
//!
//! The audit log and a restore: the restored database's chain is whole, but the witnesses kept
//! outside the database (the head file and checkpoint copies in `data_dir/audit`) may have seen
//! events after the backup was taken. Those are moved aside to `audit.before-restore-<time>`
//! (kept for the auditor, never deleted), fresh witnesses start from the restored head, and the
//! restore itself is the first event after it, naming the backup and what the old witnesses had
//! seen. Then the whole log is verified before the restore is declared done.

pub mod archive;
pub mod database;
pub mod schedule;
pub mod secrets;

use crate::audit::{self, Actor, Event, Ledger, Outcome};
use crate::config::Config;
use crate::store::{Backend, Store, schema_versions};
use archive::{Manifest, Reader, Writer};
use serde::Serialize;
use serde_json::json;
use std::path::{Path, PathBuf};

const DEFAULT_MODEL_ENTRY: &str = "models/default";

pub struct CreateOptions {
    /// Seals the keys into the backup; without it the backup holds no keys.
    pub passphrase: Option<String>,
    /// Also the model files (large), not only their manifests.
    pub with_models: bool,
}

/// Takes a backup into `output` (written as `output.partial`, renamed when complete) and
/// records it in the audit log.
pub fn create(
    config: &Config,
    store: &Store,
    actor: &Actor,
    now: i64,
    output: &Path,
    options: &CreateOptions,
) -> Result<Manifest, String> {
    if let Some(p) = &options.passphrase {
        secrets::check_passphrase(p)?;
    }
    if output.exists() {
        return Err(format!("{} exists already: choose another file name", output.display()));
    }
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let scratch = tempfile::Builder::new()
        .prefix(".ayush-backup-")
        .tempdir_in(&parent)
        .map_err(|e| format!("{}: {e}", parent.display()))?;
    let partial = scratch.path().join("backup.partial");
    let mut writer = Writer::create(&partial)?;

    let snapshot = match store.backend() {
        Backend::Sqlite => store
            .run_blocking(|c| Ok(database::snapshot_sqlite(c, &mut writer, scratch.path())))
            .map_err(|e| e.message)??,
        Backend::Postgres => store
            .run_blocking(|c| Ok(database::snapshot_postgres(c, &mut writer)))
            .map_err(|e| e.message)??,
    };
    let secrets_sealed = match &options.passphrase {
        Some(passphrase) => {
            let (sealed, _) = secrets::seal_dir(&config.audit_secrets_dir(), passphrase)?;
            writer.add_bytes(secrets::ENTRY, &sealed)?;
            true
        }
        None => false,
    };
    let (models, model_files) =
        add_models(&mut writer, &config.server.data_dir.join("models"), options.with_models)?;
    let manifest = writer.finish(Manifest {
        format: archive::FORMAT.into(),
        format_version: archive::FORMAT_VERSION,
        ayush_version: crate::build_info::VERSION.into(),
        created_at: now,
        backend: store.backend().name().into(),
        schema_version: snapshot.schema_version,
        audit_head_seq: snapshot.audit_head_seq,
        secrets: secrets_sealed,
        models,
        model_files,
        entries: Vec::new(),
    })?;
    std::fs::rename(&partial, output).map_err(|e| format!("{}: {e}", output.display()))?;

    let event = Event::new(actor, "backup.create", Outcome::Success).details(json!({
        "file": output.file_name().map(|n| n.to_string_lossy().into_owned()),
        "schema_version": manifest.schema_version,
        "audit_head_seq": manifest.audit_head_seq,
        "secrets": manifest.secrets,
        "models": manifest.models,
        "model_files": manifest.model_files,
    }));
    store.run_blocking(|c| audit::record(c, now, &event)).map_err(|e| e.message)?;
    Ok(manifest)
}

fn add_models(
    writer: &mut Writer,
    dir: &Path,
    with_files: bool,
) -> Result<(Vec<String>, Vec<String>), String> {
    let (mut models, mut files) = (Vec::new(), Vec::new());
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((models, files)),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let mut manifests: Vec<PathBuf> =
        entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
    manifests.sort();
    for path in manifests {
        let Some(name) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else { continue };
        writer.add_file(&format!("models/{name}.json"), &path, true)?;
        let weights = dir.join(format!("{name}.gguf"));
        if with_files && weights.exists() {
            writer.add_file(&format!("models/{name}.gguf"), &weights, false)?;
            files.push(name.clone());
        }
        models.push(name);
    }
    // Which model new chats use (the catalog's `default` file).
    let default = dir.join("default");
    if default.is_file() {
        writer.add_file(DEFAULT_MODEL_ENTRY, &default, true)?;
    }
    Ok((models, files))
}

/// What a restore did.
#[derive(Debug, Serialize)]
pub struct Restored {
    pub backup_created_at: i64,
    pub schema_version: String,
    pub rows: Option<usize>,
    pub secrets: bool,
    pub models: Vec<String>,
    /// Models whose manifest came back but whose file is not in the data directory.
    pub models_missing_files: Vec<String>,
    /// Where what stood before the restore was moved (never deleted).
    pub set_aside: Vec<String>,
    pub passages: u64,
    pub audit: String,
}

/// Restores `file` into the installation `config` names. The server must be stopped; the
/// database must be new (SQLite: whatever file is there is set aside; PostgreSQL: an empty
/// database). Refuses a backup from a newer schema, a damaged or altered one, a wrong
/// passphrase, before anything is changed.
pub fn restore(
    config: &Config,
    file: &Path,
    passphrase: Option<&str>,
    actor: &Actor,
    now: i64,
) -> Result<Restored, String> {
    let mut reader = Reader::open(file)?;
    let manifest = reader.manifest.clone();
    let data_dir = &config.server.data_dir;
    let sqlite = crate::store::sqlite_file(&config.database, data_dir).map_err(|e| e.to_string())?;
    let backend = if sqlite.is_some() { Backend::Sqlite } else { Backend::Postgres };
    if manifest.backend != backend.name() {
        return Err(format!(
            "the backup is of a {} database and this installation uses {}: restore it into the same kind",
            manifest.backend,
            backend.name()
        ));
    }
    let known = schema_versions(backend);
    if known.last().is_some_and(|latest| manifest.schema_version.as_str() > latest.as_str()) {
        return Err(format!(
            "the backup's schema ({}) is newer than this version of Ayush knows ({}): restore it with Ayush {} or newer",
            manifest.schema_version,
            known.last().map_or("none", String::as_str),
            manifest.ayush_version
        ));
    }
    if !known.contains(&manifest.schema_version) {
        return Err(format!(
            "the backup's schema ({}) is not one this version of Ayush knows",
            manifest.schema_version
        ));
    }
    let keys = match (manifest.secrets, passphrase) {
        (true, Some(p)) => Some(secrets::open(&reader.read(secrets::ENTRY)?, p)?),
        (true, None) => {
            return Err("the backup's keys are sealed: give the passphrase (--passphrase-stdin)".into());
        }
        (false, _) => None,
    };
    let index_dir = crate::knowledge::index::dir(data_dir);
    if crate::knowledge::index::in_use(&index_dir) {
        return Err("Ayush is running on this data directory: stop the server before restoring".into());
    }
    if sqlite.is_none() {
        // Keys of its own for this look, so that nothing is written to the secrets directory.
        let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
        let keys = crate::audit::Keys::load_or_create(scratch.path()).map_err(|e| e.to_string())?;
        let chain = std::sync::Arc::new(crate::audit::Chain::new(&keys, true));
        if crate::store::holds_installation(&config.database, data_dir, chain).map_err(|e| e.to_string())? {
            return Err(
                "the database already holds an Ayush installation (accounts or audit events): restore into an empty database"
                    .into(),
            );
        }
    }

    // From here on, things change; what stood before is set aside, never deleted.
    std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let stamp = crate::clock::format_time(now).replace([':', ' '], "-");
    let mut set_aside = Vec::new();
    let mut aside = |path: &Path| -> Result<(), String> {
        if path.exists() {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let to = path.with_file_name(format!("{name}.before-restore-{stamp}"));
            std::fs::rename(path, &to).map_err(|e| format!("{}: {e}", path.display()))?;
            set_aside.push(to.display().to_string());
        }
        Ok(())
    };
    if let Some(keys) = &keys {
        let dir = config.audit_secrets_dir();
        aside(&dir)?;
        write_keys(&dir, keys)?;
    }
    let anchor_dir = config.audit_anchor_dir();
    aside(&anchor_dir)?;
    if index_dir.exists() {
        std::fs::remove_dir_all(&index_dir).map_err(|e| format!("{}: {e}", index_dir.display()))?;
    }
    let models_dir = data_dir.join("models");
    std::fs::create_dir_all(&models_dir).map_err(|e| format!("{}: {e}", models_dir.display()))?;
    let mut missing = Vec::new();
    for name in &manifest.models {
        reader.extract(&format!("models/{name}.json"), &models_dir.join(format!("{name}.json")))?;
        let weights = models_dir.join(format!("{name}.gguf"));
        if manifest.model_files.contains(name) {
            reader.extract(&format!("models/{name}.gguf"), &weights)?;
        } else if !weights.exists() {
            missing.push(name.clone());
        }
    }

    if reader.names().any(|n| n == DEFAULT_MODEL_ENTRY) {
        reader.extract(DEFAULT_MODEL_ENTRY, &models_dir.join("default"))?;
    }

    let (ledger, chain) = Ledger::open(config).map_err(|e| e.to_string())?;
    let rows = match &sqlite {
        Some(db) => {
            for suffix in ["-wal", "-shm"] {
                let mut extra = db.clone().into_os_string();
                extra.push(suffix);
                aside(Path::new(&extra))?;
            }
            aside(db)?;
            database::restore_sqlite(&mut reader, db)?;
            None
        }
        None => {
            let store =
                Store::open_upto(&config.database, data_dir, chain.clone(), Some(&manifest.schema_version))
                    .map_err(|e| e.to_string())?;
            let rows = store
                .run_blocking(|c| Ok(database::restore_postgres(c, &mut reader)))
                .map_err(|e| e.message)??;
            Some(rows)
        }
    };
    // Now the rest of the migrations, as a start would.
    let store = Store::open(&config.database, data_dir, chain).map_err(|e| e.to_string())?;
    let before = previous_head(&set_aside);
    let event = Event::new(actor, "backup.restore", Outcome::Success).details(json!({
        "backup_created_at": manifest.created_at,
        "backup_ayush_version": manifest.ayush_version,
        "schema_version": manifest.schema_version,
        "audit_head_seq": manifest.audit_head_seq,
        "witnesses_before_restore": before,
    }));
    store
        .run_blocking(|c| {
            audit::record(c, now, &event)?;
            ledger.refresh_anchor(c, now);
            ledger.checkpoint(c, now, "restore")?;
            Ok(())
        })
        .map_err(|e| e.message)?;
    let knowledge = crate::knowledge::Knowledge::open(&config.knowledge, data_dir, store.clone())
        .map_err(|e| e.to_string())?;
    let passages = knowledge.index.rebuild()?;
    drop(knowledge);
    let report = store.run_blocking(|c| ledger.verify(c, now, None, None)).map_err(|e| e.message)?;
    if !report.ok {
        return Err(format!("restored, but the audit log does not verify: {}", report.summary()));
    }
    Ok(Restored {
        backup_created_at: manifest.created_at,
        schema_version: manifest.schema_version,
        rows,
        secrets: keys.is_some(),
        models: manifest.models,
        models_missing_files: missing,
        set_aside,
        passages,
        audit: report.summary(),
    })
}

fn write_keys(dir: &Path, keys: &std::collections::BTreeMap<String, Vec<u8>>) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    for (name, bytes) in keys {
        // The files as they were, byte for byte; only the public key may be read by others.
        let path = dir.join(name);
        let mode = if name.ends_with(".pub") { 0o644 } else { 0o600 };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// The head the set-aside witnesses had seen, for the restore's audit event.
fn previous_head(set_aside: &[String]) -> Option<serde_json::Value> {
    let dir = set_aside.iter().find(|p| p.contains("audit.before-restore-"))?;
    let head = crate::audit::anchor::Anchor::new(dir).read_head().ok()??;
    Some(json!({"dir": dir, "head_seq": head.seq}))
}
