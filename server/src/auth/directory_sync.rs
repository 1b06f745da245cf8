//! The scheduled directory sync: every directory account is looked up again; group memberships
//! and roles follow the mappings, and an account that vanished from the directory, was disabled
//! there, or lost every mapping that gave it access is disabled in Ayush, its sessions ended and
//! its API tokens revoked. A directory that cannot be reached changes nothing: nobody is
//! disabled because the directory was down.

use super::ldap::{DirError, Directory};
use super::mapping::{self, Changes};
use super::{Role, tokens, users};
use crate::audit::{self, Actor, Event, Outcome};
use crate::error::{AppError, AppResult, ErrorKind};
use crate::store::Store;
use crate::store::schema::users as users_table;
use crate::with_conn;
use diesel::prelude::*;
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
    let accounts: Vec<users::User> = store
        .run(|c| {
            let ids: Vec<i64> = with_conn!(c, |c| users_table::table
                .filter(users_table::auth_source.eq("ldap"))
                .filter(users_table::disabled.eq(false))
                .order(users_table::username.asc())
                .select(users_table::id)
                .load(c))?;
            ids.into_iter().map(|id| users::get_by_id(c, id)).collect()
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
                    store
                        .run(move |c| {
                            audit::record(
                                c,
                                now,
                                &Event::new(&actor(), "directory.sync", Outcome::Failure).details(details),
                            )
                        })
                        .await?;
                }
                return Err(AppError::new(ErrorKind::Unavailable, message));
            }
        };
        let (ayush_user, name) = (user.clone(), user.username.clone());
        let change = store
            .run(move |c| {
                c.transaction(|c| {
                    let rules = mapping::rules(c)?;
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
                                users::set_disabled(c, now, &actor(), &ayush_user.username, true)?;
                                tokens::revoke_all(c, now, &actor(), ayush_user.id)?;
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
        store
            .run(move |c| {
                audit::record(
                    c,
                    now,
                    &Event::new(&actor(), "directory.sync", Outcome::Success).details(details),
                )
            })
            .await?;
    }
    Ok(report)
}
