//! The Accounts service: people, service accounts and groups, as admins manage them. The JSON
//! API, the admin pages and `ayushctl --local` all call these methods, so the password policy,
//! the hashing and the audit event of each change are written once.

use super::groups::{self, Group, GroupSummary};
use super::users::{self, Kind, NewUser, User};
use super::{Role, password};
use crate::audit::Actor;
use crate::clock::SharedClock;
use crate::config::{Config, OidcProviderConfig};
use crate::error::{AppError, AppResult};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Clone)]
pub struct Accounts {
    store: Store,
    clock: SharedClock,
    password_min_length: usize,
    /// For linking an account to an identity at one of them.
    oidc: Arc<[OidcProviderConfig]>,
}

/// An account to create, as `POST /api/admin/users` and `ayushctl users create` take it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    pub username: String,
    pub role: Role,
    #[serde(default)]
    pub display_name: String,
    /// A local password; none for an account that signs in through SSO only.
    pub password: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// `person` (the default) or `service`: an account for a script, with API keys only.
    #[serde(default)]
    pub kind: Kind,
}

/// What to change of an account; what is absent stays.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountChanges {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub display_name: Option<String>,
}

/// An account with the groups it belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    pub user: User,
    pub groups: Vec<String>,
}

/// A group to create.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// A group with its members.
#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    pub group: Group,
    pub members: Vec<User>,
}

impl Accounts {
    pub fn new(store: Store, clock: SharedClock, config: &Config) -> Accounts {
        Accounts {
            store,
            clock,
            password_min_length: config.auth.password_min_length,
            oidc: config.oidc.providers.as_slice().into(),
        }
    }

    /// A person's own choice of light or dark (`None`: the theme's).
    pub async fn set_color_mode(&self, actor: Actor, user_id: i64, mode: Option<String>) -> AppResult<()> {
        let now = self.clock.now();
        self.store.run(move |c| users::set_color_mode(c, now, &actor, user_id, mode.as_deref())).await
    }

    pub async fn list(&self) -> AppResult<Vec<User>> {
        self.store.run(users::list).await
    }

    pub async fn show(&self, username: String) -> AppResult<AccountView> {
        self.store
            .run(move |c| {
                let user = users::get(c, &username)?;
                let groups = groups::of_user(c, user.id)?;
                Ok(AccountView { user, groups })
            })
            .await
    }

    pub async fn create(&self, actor: Actor, new: NewAccount) -> AppResult<User> {
        users::validate_username(&new.username)?;
        let hash = match new.password.clone() {
            Some(pw) => Some(self.hash(&new.username, pw).await?),
            None => None,
        };
        let now = self.clock.now();
        self.store
            .run(move |c| {
                let user = NewUser {
                    username: &new.username,
                    display_name: &new.display_name,
                    role: new.role,
                    password_hash: hash.as_deref(),
                    email: new.email.as_deref(),
                    kind: new.kind,
                };
                users::create(c, now, &actor, &user)
            })
            .await
    }

    /// Applies every change or none.
    pub async fn change(&self, actor: Actor, username: String, changes: AccountChanges) -> AppResult<User> {
        let now = self.clock.now();
        self.store
            .run(move |c| {
                c.transaction(|c| {
                    let mut user = users::get(c, &username)?;
                    if let Some(display) = &changes.display_name {
                        user = users::set_display_name(c, now, &actor, &username, display)?;
                    }
                    if let Some(role) = changes.role {
                        user = users::set_role(c, now, &actor, &username, role)?;
                    }
                    if let Some(disabled) = changes.disabled {
                        user = users::set_disabled(c, now, &actor, &username, disabled)?;
                    }
                    Ok(user)
                })
            })
            .await
    }

    pub async fn reset_password(&self, actor: Actor, username: String, pw: String) -> AppResult<()> {
        let hash = self.hash(&username, pw).await?;
        let now = self.clock.now();
        self.store.run(move |c| users::set_password(c, now, &actor, &username, &hash)).await
    }

    /// Links the identity `subject` at the OIDC provider `provider` to an existing account.
    pub async fn link(
        &self,
        actor: Actor,
        username: String,
        provider: &str,
        subject: &str,
    ) -> AppResult<User> {
        let (source, external_id) = super::oidc::identity_for(&self.oidc, provider, subject)?;
        let now = self.clock.now();
        self.store.run(move |c| users::link_identity(c, now, &actor, &username, &source, &external_id)).await
    }

    /// Takes an account out of use for good (disabled, signed out, keys revoked, groups left).
    pub async fn deprovision(&self, actor: Actor, username: String) -> AppResult<User> {
        let now = self.clock.now();
        self.store.run(move |c| users::deprovision(c, now, &actor, &username)).await
    }

    pub async fn groups(&self) -> AppResult<Vec<GroupSummary>> {
        self.store.run(groups::list).await
    }

    pub async fn group(&self, name: String) -> AppResult<GroupView> {
        self.store
            .run(move |c| {
                let group = groups::get(c, &name)?;
                let members = groups::members(c, &group)?;
                Ok(GroupView { group, members })
            })
            .await
    }

    pub async fn create_group(&self, actor: Actor, new: NewGroup) -> AppResult<Group> {
        let now = self.clock.now();
        self.store.run(move |c| groups::create(c, now, &actor, &new.name, &new.description)).await
    }

    pub async fn delete_group(&self, actor: Actor, name: String) -> AppResult<()> {
        let now = self.clock.now();
        self.store.run(move |c| groups::delete(c, now, &actor, &name)).await
    }

    pub async fn add_member(&self, actor: Actor, group: String, username: String) -> AppResult<()> {
        let now = self.clock.now();
        self.store.run(move |c| groups::add_member(c, now, &actor, &group, &username)).await
    }

    pub async fn remove_member(&self, actor: Actor, group: String, username: String) -> AppResult<()> {
        let now = self.clock.now();
        self.store.run(move |c| groups::remove_member(c, now, &actor, &group, &username)).await
    }

    /// Checks the policy, then hashes off the async executor: argon2id is deliberately slow.
    async fn hash(&self, username: &str, pw: String) -> AppResult<String> {
        password::check_policy(&pw, username, self.password_min_length)?;
        tokio::task::spawn_blocking(move || password::hash(&pw)).await.map_err(AppError::internal)?
    }
}
