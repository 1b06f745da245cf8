//! The Sso service: the rules that map directory groups to roles and Ayush groups, and the
//! directory sync that holds accounts to the directory. The SSO page, the JSON API and
//! `ayushctl --local` call these methods; the rules and the audit events live once, in
//! `mapping` and `directory_sync`.

use super::Role;
use super::directory_sync::{self, SyncReport};
use super::ldap::Directory;
use super::mapping::{self, Rule};
use crate::audit::Actor;
use crate::clock::SharedClock;
use crate::error::{AppError, AppResult};
use crate::store::Store;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Clone)]
pub struct Sso {
    store: Store,
    clock: SharedClock,
    /// The LDAP directory, when `[ldap]` is enabled.
    directory: Option<Arc<Directory>>,
    /// The role an account gets that no rule gives one (`ldap.default_role`).
    default_role: Option<Role>,
}

/// A mapping rule to add, as `POST /api/admin/mappings` and `ayushctl sso map` take it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    pub directory_group: String,
    /// `admin`, `auditor` or `user`: the role members get.
    pub role: Option<String>,
    /// The Ayush group members join.
    pub group: Option<String>,
}

impl Sso {
    pub fn new(
        store: Store,
        clock: SharedClock,
        directory: Option<Arc<Directory>>,
        default_role: Option<Role>,
    ) -> Sso {
        Sso { store, clock, directory, default_role }
    }

    pub async fn rules(&self) -> AppResult<Vec<Rule>> {
        self.store.run(mapping::rules).await
    }

    pub async fn map(&self, actor: Actor, new: NewRule) -> AppResult<Rule> {
        let role = new.role.map(|r| r.parse::<Role>().map_err(AppError::validation)).transpose()?;
        let now = self.clock.now();
        self.store
            .run(move |c| mapping::add(c, now, &actor, &new.directory_group, role, new.group.as_deref()))
            .await
    }

    pub async fn unmap(&self, actor: Actor, id: i64) -> AppResult<()> {
        let now = self.clock.now();
        self.store.run(move |c| mapping::remove(c, now, &actor, id)).await
    }

    /// Holds every directory account to the directory now (or, with `dry_run`, says what that
    /// would change).
    pub async fn sync(&self, dry_run: bool) -> AppResult<SyncReport> {
        let directory = self
            .directory
            .as_ref()
            .ok_or_else(|| AppError::validation("no directory is configured ([ldap] enabled = false)"))?;
        directory_sync::sync(&self.store, directory, self.clock.now(), self.default_role, dry_run).await
    }
}
