//! The Models service: what admins do to the catalog (import, verify, remove, pick the default,
//! restrict to groups), each with its audit event. The JSON API and `ayushctl --local` both call
//! it, so a change is recorded the same way whichever way it came.

use super::{Catalog, ModelEntry, Placed, access};
use crate::audit::{self, Actor, Event, Outcome};
use crate::clock::SharedClock;
use crate::error::{AppError, AppResult};
use crate::store::Store;
use ayush_models::ModelManifest;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone)]
pub struct Models {
    store: Store,
    clock: SharedClock,
    catalog: Arc<Catalog>,
}

/// Reports `(done, total)` bytes of a long file operation.
pub type Progress = Box<dyn FnMut(u64, u64) + Send>;

/// Where an imported model comes from.
pub enum ImportFrom {
    /// A GGUF file or an embedding model's folder on this machine.
    File(PathBuf),
    /// An upload already written beside the catalog.
    Upload(Placed),
}

impl Models {
    pub fn new(store: Store, clock: SharedClock, catalog: Arc<Catalog>) -> Models {
        Models { store, clock, catalog }
    }

    /// Every model with the groups it is restricted to (an empty list: open to everyone).
    pub async fn list(&self) -> AppResult<Vec<ModelEntry>> {
        let catalog = self.catalog.clone();
        self.store
            .run(move |c| {
                let entries = super::all(&catalog, c)?;
                access::annotate(c, entries)
            })
            .await
    }

    /// Restricts `model` to `group` (among any others it is restricted to).
    pub async fn allow(&self, actor: Actor, model: String, group: String) -> AppResult<()> {
        let (now, catalog) = (self.clock.now(), self.catalog.clone());
        self.store
            .run(move |c| {
                super::find(&catalog, c, &model)?;
                access::allow(c, now, &actor, &model, &group)
            })
            .await
    }

    /// Lifts the restriction to `group`; answers whether the model is open to everyone now.
    pub async fn disallow(&self, actor: Actor, model: String, group: String) -> AppResult<bool> {
        let now = self.clock.now();
        self.store
            .run(move |c| {
                c.transaction(|c| {
                    access::disallow(c, now, &actor, &model, &group)?;
                    Ok(!access::rules(c)?.contains_key(&model))
                })
            })
            .await
    }

    /// Checks the model, names it (`name`, else from the file) and adds it to the catalog.
    pub async fn import(
        &self,
        actor: Actor,
        from: ImportFrom,
        name: Option<String>,
        mut progress: Progress,
    ) -> AppResult<ModelManifest> {
        let (catalog, by, now) = (self.catalog.clone(), actor.name.clone(), self.clock.now());
        let manifest = blocking(move || match from {
            ImportFrom::File(path) => catalog.import(&path, name.as_deref(), &by, now, &mut progress),
            ImportFrom::Upload(placed) => {
                let name = name.ok_or_else(|| AppError::validation("name the uploaded model"))?;
                catalog.finish_import(placed, &name, &by, now)
            }
        })
        .await?;
        let details = json!({"sha256": manifest.sha256, "source": manifest.source});
        self.record(actor, "model.import", &manifest.name, details).await?;
        Ok(manifest)
    }

    /// Hashes the file again: whether it still matches its manifest. The check is recorded
    /// whatever it finds.
    pub async fn verify(&self, actor: Actor, name: String, mut progress: Progress) -> AppResult<bool> {
        let (catalog, n) = (self.catalog.clone(), name.clone());
        let ok = blocking(move || catalog.verify(&n, &mut progress)).await?;
        self.record(actor, "model.verify", &name, json!({"ok": ok})).await?;
        Ok(ok)
    }

    pub async fn remove(&self, actor: Actor, name: String) -> AppResult<()> {
        self.catalog.remove(&name)?;
        self.record(actor, "model.remove", &name, json!({})).await
    }

    pub async fn set_default(&self, actor: Actor, name: String) -> AppResult<()> {
        self.catalog.set_default(&name)?;
        self.record(actor, "model.set_default", &name, json!({})).await
    }

    async fn record(&self, actor: Actor, action: &'static str, model: &str, details: Value) -> AppResult<()> {
        let (now, model) = (self.clock.now(), model.to_string());
        self.store
            .run(move |c| {
                let event =
                    Event::new(&actor, action, Outcome::Success).target("model", &model).details(details);
                audit::record(c, now, &event)
            })
            .await
    }
}

/// File work (copying and hashing gigabytes) off the async executor.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> AppResult<T> + Send + 'static) -> AppResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(AppError::internal)?
}
