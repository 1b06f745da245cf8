//! The Keys service: API keys, which people make for themselves and admins make for service
//! accounts (never for another person: see [`Issuer`]). The keys page, the JSON API and
//! `ayushctl --local` call these methods; the rules and the audit events live once, in
//! `tokens`.

use super::tokens::{self, ApiToken, Issuer};
use crate::audit::Actor;
use crate::clock::SharedClock;
use crate::error::AppResult;
use crate::store::Store;
use serde::{Deserialize, Serialize};

#[derive(Clone)]
pub struct Keys {
    store: Store,
    clock: SharedClock,
}

/// A key to make for `user`, as `POST /api/admin/keys` and `ayushctl keys create` take it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub user: String,
    pub name: String,
    /// Days until it expires (default: never).
    pub expires_days: Option<u32>,
}

/// A key just made, with its secret: shown this once, never stored.
#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    pub key: ApiToken,
    pub secret: String,
}

/// A key with the username of its owner, as admins list them.
#[derive(Debug, Clone, Serialize)]
pub struct OwnedKey {
    #[serde(flatten)]
    pub key: ApiToken,
    pub user: String,
}

impl Keys {
    pub fn new(store: Store, clock: SharedClock) -> Keys {
        Keys { store, clock }
    }

    /// The keys of `username`, or of everyone.
    pub async fn list(&self, username: Option<String>) -> AppResult<Vec<OwnedKey>> {
        let rows = self.store.run(move |c| tokens::list(c, username.as_deref())).await?;
        Ok(rows.into_iter().map(|(key, user)| OwnedKey { key, user }).collect())
    }

    /// One's own keys.
    pub async fn own(&self, username: String) -> AppResult<Vec<ApiToken>> {
        Ok(self.list(Some(username)).await?.into_iter().map(|k| k.key).collect())
    }

    pub async fn create(&self, actor: Actor, issuer: Issuer, new: NewKey) -> AppResult<Issued> {
        let now = self.clock.now();
        let (key, secret) = self
            .store
            .run(move |c| {
                tokens::create_for_days(c, now, &actor, issuer, &new.user, &new.name, new.expires_days)
            })
            .await?;
        Ok(Issued { key, secret })
    }

    /// Revokes one of `user_id`'s own keys.
    pub async fn revoke_own(&self, actor: Actor, user_id: i64, id: i64) -> AppResult<()> {
        let now = self.clock.now();
        self.store.run(move |c| tokens::revoke_own(c, now, &actor, user_id, id)).await
    }

    /// Revokes anyone's key (admins).
    pub async fn revoke(&self, actor: Actor, id: i64) -> AppResult<()> {
        let now = self.clock.now();
        self.store.run(move |c| tokens::revoke(c, now, &actor, id)).await
    }
}
