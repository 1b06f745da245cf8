//! Scheduled backups (`[backup]`): every `interval_hours` a backup goes into `dir`, named by its
//! time, and all but the newest `keep` scheduled ones are deleted. The serve loop asks on the
//! replica that holds the installation-wide duty, so several replicas take one backup, not one
//! each. A failure is logged and recorded in the audit log (`backup.create`, failure).

use super::{CreateOptions, create};
use crate::audit::{self, Actor, Event, Outcome};
use crate::config::Config;
use crate::store::Store;
use serde_json::json;
use std::path::{Path, PathBuf};

const PREFIX: &str = "ayush-scheduled-";
const SUFFIX: &str = ".backup";

/// The scheduled backups in `dir`, oldest first, with the time in their name.
fn existing(dir: &Path) -> Vec<(i64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<(i64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let at = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.parse().ok()?;
            Some((at, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// Takes a backup if one is due, then prunes; returns the new file, if any.
pub fn run_if_due(config: &Config, store: &Store, now: i64) -> Result<Option<PathBuf>, String> {
    let Some(dir) = &config.backup.dir else { return Ok(None) };
    let every = i64::try_from(config.backup.interval_hours).unwrap_or(i64::MAX / 3600) * 3600;
    if existing(dir).last().is_some_and(|(at, _)| now - at < every) {
        return Ok(None);
    }
    let taken = take(config, store, dir, now);
    if let Err(e) = &taken {
        let actor = Actor::system("backup");
        let event = Event::new(&actor, "backup.create", Outcome::Failure)
            .details(json!({"scheduled": true, "error": e}));
        if let Err(recorded) = store.run_blocking(|c| audit::record(c, now, &event)) {
            tracing::error!(error = %recorded.message, "cannot record a failed scheduled backup");
        }
    }
    let path = taken?;
    let all = existing(dir);
    for (_, old) in all.iter().take(all.len().saturating_sub(config.backup.keep)) {
        if let Err(e) = std::fs::remove_file(old) {
            tracing::warn!(error = %e, file = %old.display(), "cannot delete an old scheduled backup");
        }
    }
    Ok(Some(path))
}

fn take(config: &Config, store: &Store, dir: &Path, now: i64) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let passphrase = match &config.backup.passphrase_file {
        Some(file) => {
            let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            Some(text.lines().next().unwrap_or_default().to_string())
        }
        None => None,
    };
    let path = dir.join(format!("{PREFIX}{now}{SUFFIX}"));
    let options = CreateOptions { passphrase, with_models: false };
    create(config, store, &Actor::system("backup"), now, &path, &options)?;
    tracing::info!(file = %path.display(), "scheduled backup taken");
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerConfig;

    #[test]
    fn backups_come_when_due_and_only_the_newest_are_kept() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("backups");
        let passphrase = root.path().join("passphrase");
        std::fs::write(&passphrase, "scheduled backup passphrase\n").unwrap();
        let mut config = Config {
            server: ServerConfig { data_dir: root.path().join("data"), ..Default::default() },
            ..Default::default()
        };
        config.backup.dir = Some(dir.clone());
        config.backup.keep = 2;
        config.backup.interval_hours = 1;
        config.backup.passphrase_file = Some(passphrase);
        let (_, chain) = crate::audit::Ledger::open(&config).unwrap();
        let store = Store::open(&config.database, &config.server.data_dir, chain).unwrap();

        let t0 = 1_800_000_000;
        let first = run_if_due(&config, &store, t0).unwrap().expect("the first is due at once");
        assert!(run_if_due(&config, &store, t0 + 3599).unwrap().is_none(), "not due within the hour");
        let second = run_if_due(&config, &store, t0 + 3600).unwrap().expect("due after an hour");
        let third = run_if_due(&config, &store, t0 + 7200).unwrap().expect("and again");
        let kept: Vec<PathBuf> = existing(&dir).into_iter().map(|(_, p)| p).collect();
        assert_eq!(kept, [second, third.clone()], "the oldest went: {first:?}");
        let manifest = super::super::archive::Reader::open(&third).unwrap().manifest;
        assert!(manifest.secrets, "the keys are sealed in with the passphrase file's");

        // A failure (the passphrase file is gone) is recorded, and nothing is deleted.
        config.backup.passphrase_file = Some(root.path().join("missing"));
        assert!(run_if_due(&config, &store, t0 + 10_800).is_err());
        assert_eq!(existing(&dir).len(), 2);
        let failures = store
            .run_blocking(|c| {
                let filter = crate::audit::query::Filter {
                    action: Some("backup.create".into()),
                    outcome: Some("failure".into()),
                    ..Default::default()
                };
                crate::audit::query::page(c, &filter.check()?, None, 10)
            })
            .unwrap();
        assert_eq!(failures.len(), 1);
    }
}
