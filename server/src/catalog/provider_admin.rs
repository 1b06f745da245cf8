//! The Providers service: the remote providers admins connect, change, remove and test. The
//! JSON API, the providers page and `ayushctl --local` call these methods, so the URL's check
//! against the egress policy, the sealing of the API key and the audit event of each change
//! are written once (in `providers`, inside one transaction each).

use super::providers::{self, Change, NewProvider, Provider};
use super::remote::Remotes;
use crate::audit::Actor;
use crate::clock::SharedClock;
use crate::egress::Egress;
use crate::error::{AppError, AppResult, ErrorKind};
use crate::store::Store;
use ayush_models::provider::Provider as _;
use std::sync::Arc;

#[derive(Clone)]
pub struct Providers {
    store: Store,
    clock: SharedClock,
    /// The connections in use, which a change makes this process drop; they hold the key API
    /// keys are sealed with.
    remotes: Arc<Remotes>,
    /// Which URLs a provider may have.
    egress: Egress,
}

impl Providers {
    pub fn new(store: Store, clock: SharedClock, remotes: Arc<Remotes>, egress: Egress) -> Providers {
        Providers { store, clock, remotes, egress }
    }

    pub async fn list(&self) -> AppResult<Vec<Provider>> {
        self.store.run(providers::list).await
    }

    pub async fn show(&self, name: String) -> AppResult<Provider> {
        self.store.run(move |c| providers::get(c, &name)).await
    }

    pub async fn create(&self, actor: Actor, new: NewProvider) -> AppResult<Provider> {
        let (now, remotes, egress, name) =
            (self.clock.now(), self.remotes.clone(), self.egress.clone(), new.name.clone());
        let created =
            self.store.run(move |c| providers::create(c, now, &actor, remotes.key(), &egress, new)).await?;
        self.remotes.forget(&name);
        Ok(created)
    }

    pub async fn change(&self, actor: Actor, name: String, change: Change) -> AppResult<Provider> {
        let (now, remotes, egress, n) =
            (self.clock.now(), self.remotes.clone(), self.egress.clone(), name.clone());
        let changed = self
            .store
            .run(move |c| providers::change(c, now, &actor, remotes.key(), &egress, &n, change))
            .await?;
        self.remotes.forget(&name);
        Ok(changed)
    }

    pub async fn remove(&self, actor: Actor, name: String) -> AppResult<()> {
        let (now, n) = (self.clock.now(), name.clone());
        self.store.run(move |c| providers::remove(c, now, &actor, &n)).await?;
        self.remotes.forget(&name);
        Ok(())
    }

    /// The provider's own list of models: proof that Ayush can reach it with its key.
    pub async fn test(&self, name: String) -> AppResult<Vec<String>> {
        let (remote, _) = self.remotes.get(&self.store, &name).await?;
        remote.list_models().await.map_err(|e| AppError::new(ErrorKind::Unavailable, e.to_string()))
    }
}
