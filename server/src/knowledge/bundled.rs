//! The embedding model an install ships (`knowledge.bundled_embedding_model`: the Debian
//! package, the offline bundle and the container image carry all-MiniLM-L6-v2), taken into the
//! catalog at the first start that finds no embedding model there, so that search ranks by
//! meaning as well as words out of the box, with nothing fetched.
//!
//! It is offered once per data directory: a marker in the models folder records it, so an admin
//! who removes the model (to rank by words alone, or to import another) is not overruled at the
//! next start. The import is an audit event like an admin's.

use super::Workshop;
use crate::audit::{self, Actor, Event, Outcome};
use crate::error::AppResult;
use std::path::{Path, PathBuf};

const MARKER: &str = ".bundled-embedding-offered";

/// What adopting the bundled model did.
#[derive(Debug, PartialEq, Eq)]
pub enum Adopted {
    /// None configured, or offered before.
    Nothing,
    /// An embedding model was installed already.
    Installed,
    /// Imported under this name.
    Imported(String),
}

pub async fn adopt(state: &Workshop) -> AppResult<Adopted> {
    let folder = state.config.knowledge.bundled_embedding_model.trim();
    if folder.is_empty() {
        return Ok(Adopted::Nothing);
    }
    let marker = state.catalog.dir().join(MARKER);
    if marker.exists() {
        return Ok(Adopted::Nothing);
    }
    let installed =
        state.catalog.list()?.iter().any(|e| e.manifest.as_ref().is_some_and(|m| m.is_embedding()));
    if installed {
        offered(&marker, folder)?;
        return Ok(Adopted::Installed);
    }
    let (catalog, source, now) = (state.catalog.clone(), PathBuf::from(folder), state.clock.now());
    let actor = Actor::system("bundled-model");
    let by = actor.name.clone();
    let manifest = tokio::task::spawn_blocking(move || catalog.import(&source, None, &by, now, |_, _| {}))
        .await
        .map_err(crate::error::AppError::internal)??;
    let name = manifest.name.clone();
    let details = serde_json::json!({
        "source": manifest.source,
        "sha256": manifest.sha256,
        "size": manifest.size,
        "purpose": manifest.purpose,
        "bundled": true,
    });
    let target = name.clone();
    state
        .store
        .run(move |c| {
            let event = Event::new(&actor, "model.import", Outcome::Success)
                .target("model", &target)
                .details(details);
            audit::record(c, now, &event)
        })
        .await?;
    offered(&marker, folder)?;
    Ok(Adopted::Imported(name))
}

fn offered(marker: &Path, folder: &str) -> AppResult<()> {
    std::fs::create_dir_all(marker.parent().unwrap_or(Path::new(".")))
        .and_then(|()| std::fs::write(marker, format!("{folder}\n")))
        .map_err(|e| crate::error::AppError::internal(format!("{}: {e}", marker.display())))
}
