//! The scheduled directory sync: every directory account is looked up again; group memberships
//! and roles follow the mappings, and an account that vanished from the directory, was disabled
//! there, or lost every mapping that gave it access is disabled in Ayush, its sessions ended and
//! its API tokens revoked. A directory that cannot be reached changes nothing: nobody is
//! disabled because the directory was down.

use super::ldap::{DirError, Directory};
use super::mapping::{self, Changes};
use super::{Role, users};
use crate::audit::{self, Actor, Event, Outcome};
use crate::error::{AppError, AppResult, ErrorKind};
use crate::store::Store;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct AccountChange {
    pub username: String,
    /// `disable` or `update`.
    pub action: &'static str,
    pub reason: Option<&'static str>,
    pub changes: Changes,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub dry_run: bool,
    pub checked: usize,
    pub changed: Vec<AccountChange>,
    /// Accounts skipped, with why (the rest went ahead).
    pub skipped: Vec<String>,
}

fn actor() -> Actor {
    Actor { name: "directory:ldap".into(), method: Some("directory".into()), ..Default::default() }
}

/// Syncs every enabled `ldap` account. With `dry_run`, reports what would change and changes
/// nothing (and records nothing).
pub async fn sync(
    store: &Store,
    directory: &Directory,
    now: i64,
    default_role: Option<Role>,
    dry_run: bool,
) -> AppResult<SyncReport> {
    // The accounts, and the rules to hold them to: read once for the whole run.
    let (accounts, rules) = store
        .run(|c| {
            let accounts: Vec<users::User> =
                users::list(c)?.into_iter().filter(|u| u.auth_source == "ldap" && !u.disabled).collect();
            Ok((accounts, std::sync::Arc::new(mapping::rules(c)?)))
        })
        .await?;
    let mut report = SyncReport { dry_run, checked: accounts.len(), ..Default::default() };
    for user in accounts {
        let found = match directory.lookup(&user.username).await {
            Ok(person) => Some(person),
            Err(DirError::NotFound) => None,
            Err(DirError::Ambiguous(n)) => {
                report.skipped.push(format!("{}: {n} directory entries match", user.username));
                continue;
            }
            Err(e) => {
                let message = format!("directory sync stopped, nothing more changed: {e}");
                if !dry_run {
                    let details =
                        serde_json::json!({"error": e.to_string(), "changed": report.changed.len()});
                    record_run(store, now, Outcome::Failure, details).await?;
                }
                return Err(AppError::new(ErrorKind::Unavailable, message));
            }
        };
        let (ayush_user, name, rules) = (user.clone(), user.username.clone(), rules.clone());
        let change = store
            .run(move |c| {
                c.transaction(|c| {
                    let verdict = match &found {
                        None => Err("vanished_from_directory"),
                        Some(p) if p.disabled => Err("disabled_in_directory"),
                        Some(p) => {
                            let decision = mapping::decide(&rules, &p.groups, default_role);
                            if decision.role.is_some() { Ok(decision) } else { Err("no_mapping") }
                        }
                    };
                    match verdict {
                        Err(reason) => {
                            if !dry_run {
                                // Disabling revokes the account's keys too.
                                users::set_disabled(c, now, &actor(), &ayush_user.username, true)?;
                            }
                            Ok(Some(AccountChange {
                                username: name,
                                action: "disable",
                                reason: Some(reason),
                                changes: Changes::default(),
                            }))
                        }
                        Ok(decision) => {
                            let changes = mapping::apply(c, now, &actor(), &ayush_user, &decision, dry_run)?;
                            Ok::<_, AppError>((!changes.is_empty()).then_some(AccountChange {
                                username: name,
                                action: "update",
                                reason: None,
                                changes,
                            }))
                        }
                    }
                })
            })
            .await;
        match change {
            Ok(Some(change)) => report.changed.push(change),
            Ok(None) => {}
            // The last admin cannot be disabled by a sync; say so and go on.
            Err(e) if e.kind == ErrorKind::Conflict => {
                report.skipped.push(format!("{}: {}", user.username, e.message))
            }
            Err(e) => return Err(e),
        }
    }
    if !dry_run {
        let details = serde_json::json!({
            "checked": report.checked,
            "disabled": report.changed.iter().filter(|c| c.action == "disable").map(|c| &c.username).collect::<Vec<_>>(),
            "updated": report.changed.iter().filter(|c| c.action == "update").map(|c| &c.username).collect::<Vec<_>>(),
            "skipped": report.skipped,
        });
        record_run(store, now, Outcome::Success, details).await?;
    }
    Ok(report)
}

/// The run's own audit event, `directory.sync`.
async fn record_run(store: &Store, now: i64, outcome: Outcome, details: serde_json::Value) -> AppResult<()> {
    store
        .run(move |c| {
            audit::record(c, now, &Event::new(&actor(), "directory.sync", outcome).details(details))
        })
        .await
}
