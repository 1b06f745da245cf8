//! The model catalog: the files under `data_dir/models/` (each `NAME.gguf` with its manifest
//! `NAME.json`, and `default` naming the default model), and the engines that serve them.
//! The directory is the source of truth and is read on demand, so a model imported with
//! `ayushctl --local` appears in the running server without a restart.

pub mod access;
pub mod models;
pub mod provider_admin;
pub mod providers;
pub mod remote;

use crate::error::{AppError, AppResult, ErrorKind};
use crate::store::Conn;
use ayush_models::provider::Purpose;
use ayush_models::whisper::TranscribeEngine;
use ayush_models::{EmbedEngine, Engine, EngineLimits, LoadedModel, ModelManifest};
use providers::Provider;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

const DEFAULT_FILE: &str = "default";
/// Requests that may wait behind the one an embedding model is serving.
const QUEUE_DEPTH: usize = 4;

/// A model people may use: a file or folder in the catalog (a chat or an embedding model), or
/// a model a remote provider offers (named `provider/model`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelEntry {
    /// The name chats and the API use.
    #[serde(skip)]
    pub name: String,
    #[serde(flatten)]
    pub manifest: Option<ModelManifest>,
    #[serde(flatten)]
    pub remote: Option<RemoteModel>,
    pub default: bool,
    /// For admins' listings: the groups the model is restricted to (empty: everyone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RemoteModel {
    pub name: String,
    pub provider: String,
    pub kind: String,
    /// `chat`, `speech` or `image`.
    pub purpose: &'static str,
    /// The model's id at the provider.
    pub upstream_model: String,
    /// When the provider was added.
    pub created_at: i64,
}

impl ModelEntry {
    fn local(manifest: ModelManifest, default: bool) -> ModelEntry {
        ModelEntry {
            name: manifest.name.clone(),
            manifest: Some(manifest),
            remote: None,
            default,
            groups: None,
        }
    }

    fn remote(provider: &Provider, upstream_model: &str, purpose: Purpose) -> ModelEntry {
        let name = format!("{}/{upstream_model}", provider.name);
        ModelEntry {
            remote: Some(RemoteModel {
                name: name.clone(),
                provider: provider.name.clone(),
                kind: provider.kind.clone(),
                purpose: purpose.as_str(),
                upstream_model: upstream_model.to_string(),
                created_at: provider.created_at,
            }),
            name,
            manifest: None,
            default: false,
            groups: None,
        }
    }

    /// When it was added: the file's import, or the provider's configuration.
    pub fn created(&self) -> i64 {
        match (&self.manifest, &self.remote) {
            (Some(m), _) => m.imported_at,
            (None, Some(r)) => r.created_at,
            (None, None) => 0,
        }
    }

    /// Whether people can chat with it (embedding models only make vectors; transcription
    /// models only hear; speech and image models speak and draw).
    pub fn chats(&self) -> bool {
        self.manifest.as_ref().is_none_or(|m| m.chats()) && self.is_remote(Purpose::Chat)
    }

    /// Whether it is a remote model of `purpose` (any local model counts as a chat one here;
    /// [`ModelEntry::chats`] says which of those chat).
    pub fn is_remote(&self, purpose: Purpose) -> bool {
        self.remote.as_ref().map_or(purpose == Purpose::Chat, |r| r.purpose == purpose.as_str())
    }

    /// Who runs it, as `/v1/models` says: the provider's name for a remote model, else
    /// `local`, which the caller gives (the installation's product name).
    pub fn owned_by<'a>(&'a self, local: &'a str) -> &'a str {
        self.remote.as_ref().map_or(local, |r| r.provider.as_str())
    }
}

/// Every model: the catalog's files, then each provider's models.
pub fn all(catalog: &Catalog, conn: &mut Conn) -> AppResult<Vec<ModelEntry>> {
    let mut out = catalog.list()?;
    for p in providers::list(conn)? {
        for (purpose, models) in p.by_purpose() {
            out.extend(models.iter().map(|m| ModelEntry::remote(&p, m, purpose)));
        }
    }
    Ok(out)
}

/// The models `user_id` may use.
pub fn visible_to(catalog: &Catalog, conn: &mut Conn, user_id: i64) -> AppResult<Vec<ModelEntry>> {
    let entries = all(catalog, conn)?;
    access::visible(conn, user_id, entries)
}

/// The model called `name`: `provider/model` for a remote one.
pub fn find(catalog: &Catalog, conn: &mut Conn, name: &str) -> AppResult<ModelEntry> {
    let Some((provider, model)) = name.split_once('/') else { return catalog.get(name) };
    let p = providers::get(conn, provider)
        .map_err(|_| AppError::not_found(format!("no model named {name:?}")))?;
    let purpose =
        p.purpose_of(model).ok_or_else(|| AppError::not_found(format!("no model named {name:?}")))?;
    Ok(ModelEntry::remote(&p, model, purpose))
}

/// Where chats are opened: the local catalog, and the remote providers recorded in the store.
pub struct Chats<'a> {
    pub catalog: &'a Catalog,
    pub remotes: &'a remote::Remotes,
    pub store: &'a crate::store::Store,
}

/// Starts a chat with `model`, local or remote. The outer error is Ayush's (no such model, a
/// model that cannot load); the inner one the provider's. A local model weighs `user_id`'s
/// requests against everyone else's when it is busy.
pub async fn open_chat(
    at: Chats<'_>,
    user_id: i64,
    model: &str,
    messages: Vec<ayush_models::ChatMessage>,
    params: ayush_models::GenerateParams,
) -> AppResult<Result<ayush_models::Handle, ayush_models::ModelError>> {
    use ayush_models::provider::Provider as _;
    match model.split_once('/') {
        None => {
            let manifest = at.catalog.manifest(model)?;
            if !manifest.chats() {
                return Err(AppError::validation(format!(
                    "{model} is {}; it does not chat",
                    purpose_phrase(&manifest.purpose)
                )));
            }
            Ok(at.catalog.engine(model).await?.submit(user_id, messages, params))
        }
        Some((provider, upstream)) => {
            let (remote, record) = at.remotes.get(at.store, provider).await?;
            match record.purpose_of(upstream) {
                Some(Purpose::Chat) => {}
                Some(other) => {
                    return Err(AppError::validation(format!(
                        "{model} is {}; it does not chat",
                        other.a_model()
                    )));
                }
                None => return Err(AppError::not_found(format!("no model named {model:?}"))),
            }
            Ok(remote.chat(upstream, messages, params))
        }
    }
}

/// An engine loaded on first use, keyed by (name, sha256): a replaced file gets a fresh one.
type Slots<T> = Mutex<HashMap<(String, String), Arc<OnceCell<T>>>>;

/// A file written into the models directory under a temporary name, with what was learnt
/// while writing it.
pub struct Placed {
    pub partial: PathBuf,
    pub sha256: String,
    pub size: u64,
    /// Where it came from, for the manifest: a path, or the uploader's file name.
    pub source: String,
}

pub struct Catalog {
    dir: PathBuf,
    engines: Slots<Engine>,
    embedders: Slots<EmbedEngine>,
    transcribers: Slots<TranscribeEngine>,
    /// How much each chat engine takes on at once (`[models]`).
    limits: EngineLimits,
}

/// What an embedding model's folder keeps of a sentence-transformers export.
const EMBEDDER_FILES: [&str; 6] = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "sentence_bert_config.json",
    "modules.json",
    "1_Pooling/config.json",
];

/// What a transcription model's folder keeps of a CTranslate2 Whisper conversion.
const WHISPER_FILES: [&str; 3] = ["model.bin", "config.json", "tokenizer.json"];
const WHISPER_WEIGHTS: &str = "model.bin";

fn load_transcriber(dir: &Path, name: &str) -> AppResult<ayush_models::whisper::Transcriber> {
    ayush_models::whisper::Transcriber::load(dir)
        .map_err(|e| AppError::internal(format!("loading {name}: {e}")))
}

/// "an embedding model", for messages that say why a model cannot do something.
fn purpose_phrase(purpose: &str) -> &'static str {
    match purpose {
        "embedding" => "an embedding model",
        "transcription" => "a transcription model",
        _ => "a chat model",
    }
}

fn io(what: &str, e: std::io::Error) -> AppError {
    AppError::internal(format!("{what}: {e}"))
}

impl Catalog {
    pub fn new(data_dir: &Path) -> Catalog {
        Catalog {
            dir: data_dir.join("models"),
            engines: Mutex::new(HashMap::new()),
            embedders: Mutex::new(HashMap::new()),
            transcribers: Mutex::new(HashMap::new()),
            limits: EngineLimits::for_machine(),
        }
    }

    /// Chat engines started from now on take on this much at once.
    pub fn with_engine_limits(mut self, limits: EngineLimits) -> Catalog {
        self.limits = limits;
        self
    }

    /// The chat engines loaded now, by model name, for metrics and status.
    pub fn loaded_engines(&self) -> Vec<Engine> {
        let Ok(engines) = self.engines.lock() else { return Vec::new() };
        let mut loaded: Vec<Engine> = engines.values().filter_map(|cell| cell.get().cloned()).collect();
        loaded.sort_by(|a, b| a.name.cmp(&b.name));
        loaded
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.gguf"))
    }

    fn manifest_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    pub fn list(&self) -> AppResult<Vec<ModelEntry>> {
        let default = self.default_name();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("reading the models directory", e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match read_manifest(&path) {
                Ok(m) => {
                    let is_default = default.as_deref() == Some(m.name.as_str());
                    out.push(ModelEntry::local(m, is_default));
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping an unreadable model manifest")
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn get(&self, name: &str) -> AppResult<ModelEntry> {
        ayush_models::validate_name(name).map_err(|e| AppError::validation(e.to_string()))?;
        let path = self.manifest_path(name);
        if !path.is_file() {
            return Err(AppError::not_found(format!("no model named {name:?}")));
        }
        let manifest = read_manifest(&path).map_err(AppError::internal)?;
        Ok(ModelEntry::local(manifest, self.default_name().as_deref() == Some(name)))
    }

    pub fn manifest(&self, name: &str) -> AppResult<ModelManifest> {
        self.get(name)?.manifest.ok_or_else(|| AppError::not_found(format!("no model file named {name:?}")))
    }

    /// The manifest of `name`, which must be a model for `purpose`.
    fn manifest_for(&self, name: &str, purpose: &str) -> AppResult<ModelManifest> {
        let manifest = self.manifest(name)?;
        if manifest.purpose != purpose {
            let (is, wanted) = (purpose_phrase(&manifest.purpose), purpose_phrase(purpose));
            return Err(AppError::validation(format!("{name} is {is}, not {wanted}")));
        }
        Ok(manifest)
    }

    pub fn default_name(&self) -> Option<String> {
        let name = std::fs::read_to_string(self.dir.join(DEFAULT_FILE)).ok()?;
        let name = name.trim().to_string();
        self.manifest_path(&name).is_file().then_some(name)
    }

    pub fn set_default(&self, name: &str) -> AppResult<()> {
        let manifest = self.manifest(name)?;
        if !manifest.chats() {
            return Err(AppError::validation(format!(
                "{name} is {}; the default must be a chat model",
                purpose_phrase(&manifest.purpose)
            )));
        }
        write_atomically(&self.dir.join(DEFAULT_FILE), format!("{name}\n").as_bytes())
    }

    pub fn remove(&self, name: &str) -> AppResult<()> {
        self.get(name)?;
        std::fs::remove_file(self.manifest_path(name)).map_err(|e| io("removing the manifest", e))?;
        let _ = std::fs::remove_file(self.file(name));
        let _ = std::fs::remove_dir_all(self.folder(name));
        if std::fs::read_to_string(self.dir.join(DEFAULT_FILE)).is_ok_and(|d| d.trim() == name) {
            let _ = std::fs::remove_file(self.dir.join(DEFAULT_FILE));
        }
        if let Ok(mut engines) = self.engines.lock() {
            engines.retain(|(n, _), _| n != name);
        }
        if let Ok(mut embedders) = self.embedders.lock() {
            embedders.retain(|(n, _), _| n != name);
        }
        if let Ok(mut transcribers) = self.transcribers.lock() {
            transcribers.retain(|(n, _), _| n != name);
        }
        Ok(())
    }

    /// Copies `source` into the catalog after checking that it parses and its architecture is
    /// supported, hashing it on the way. `progress(done, total)` is called as bytes are copied.
    pub fn import(
        &self,
        source: &Path,
        name: Option<&str>,
        imported_by: &str,
        now: i64,
        mut progress: impl FnMut(u64, u64),
    ) -> AppResult<ModelManifest> {
        if source.is_dir() && source.join(WHISPER_WEIGHTS).is_file() {
            return self.import_transcriber(source, name, imported_by, now, progress);
        }
        if source.is_dir() {
            return self.import_embedder(source, name, imported_by, now, progress);
        }
        ayush_models::inspect(source)
            .map_err(|e| AppError::validation(format!("{}: {e}", source.display())))?;
        let name = match name {
            Some(n) => n.to_string(),
            None => default_name_for(source),
        };
        self.check_new_name(&name)?;
        let partial = self.partial_path()?;
        let (sha256, size) = match copy_hashing(source, &partial, &mut progress) {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        let placed = Placed { partial, sha256, size, source: source.display().to_string() };
        self.finish_import(placed, &name, imported_by, now)
    }

    /// Imports a sentence-transformers export folder as an embedding model: its files are
    /// checked, copied to `models/NAME/` (the weights hashed on the way) and loaded once to
    /// prove they work before the manifest is written.
    fn import_embedder(
        &self,
        source: &Path,
        name: Option<&str>,
        imported_by: &str,
        now: i64,
        progress: impl FnMut(u64, u64),
    ) -> AppResult<ModelManifest> {
        let info = ayush_models::inspect_embedder(source)
            .map_err(|e| AppError::validation(format!("{}: {e}", source.display())))?;
        let (name, sha256, size, ()) =
            self.place_folder(source, name, &EMBEDDER_FILES, "model.safetensors", progress, |copy| {
                ayush_models::Embedder::load(copy)
                    .map(drop)
                    .map_err(|e| AppError::validation(format!("{}: {e}", source.display())))
            })?;
        let manifest = ModelManifest {
            name,
            arch: info.arch,
            quantization: "f32".into(),
            context_length: info.max_tokens,
            sha256,
            size,
            source: source.display().to_string(),
            imported_by: imported_by.to_string(),
            imported_at: now,
            purpose: "embedding".into(),
            dimensions: Some(info.dimensions),
        };
        self.write_manifest(&manifest)?;
        Ok(manifest)
    }

    /// Imports a CTranslate2 Whisper folder (`model.bin`, `config.json`, `tokenizer.json`) as a
    /// transcription model: copied to `models/NAME/`, the weights hashed on the way, and loaded
    /// once to prove they work before the manifest is written.
    fn import_transcriber(
        &self,
        source: &Path,
        name: Option<&str>,
        imported_by: &str,
        now: i64,
        progress: impl FnMut(u64, u64),
    ) -> AppResult<ModelManifest> {
        let refused = |e: &dyn std::fmt::Display| AppError::validation(format!("{}: {e}", source.display()));
        for file in WHISPER_FILES {
            if !source.join(file).is_file() {
                return Err(refused(&format!(
                    "{file} is missing (a CTranslate2 Whisper folder has {})",
                    WHISPER_FILES.join(", ")
                )));
            }
        }
        let (name, sha256, size, info) =
            self.place_folder(source, name, &WHISPER_FILES, WHISPER_WEIGHTS, progress, |copy| {
                Ok(ayush_models::whisper::Transcriber::load(copy).map_err(|e| refused(&e))?.info())
            })?;
        let manifest = ModelManifest {
            name,
            arch: "whisper".into(),
            quantization: info.weights,
            context_length: info.max_tokens,
            sha256,
            size,
            source: source.display().to_string(),
            imported_by: imported_by.to_string(),
            imported_at: now,
            purpose: "transcription".into(),
            dimensions: None,
        };
        self.write_manifest(&manifest)?;
        Ok(manifest)
    }

    /// Copies a model folder into `models/NAME/` by way of a partial folder: those of `files`
    /// that are there, `weights` hashed on the way; `check` loads the copy once to prove it
    /// works (and says what the manifest needs) before it is placed. Nothing stays behind on
    /// failure. Returns the name, the weights' sha256 and size, and what `check` said.
    fn place_folder<T>(
        &self,
        source: &Path,
        name: Option<&str>,
        files: &[&str],
        weights: &str,
        mut progress: impl FnMut(u64, u64),
        check: impl FnOnce(&Path) -> AppResult<T>,
    ) -> AppResult<(String, String, u64, T)> {
        let name = match name {
            Some(n) => n.to_string(),
            None => default_name_for(&source.with_extension("")),
        };
        self.check_new_name(&name)?;
        let partial = self.partial_path()?;
        let placed = (|| {
            std::fs::create_dir_all(&partial).map_err(|e| io("creating the model folder", e))?;
            for file in files.iter().filter(|f| **f != weights && source.join(f).is_file()) {
                let to = partial.join(file);
                if let Some(folder) = to.parent() {
                    std::fs::create_dir_all(folder).map_err(|e| io("creating the model folder", e))?;
                }
                std::fs::copy(source.join(file), &to).map_err(|e| io(file, e))?;
            }
            let (sha256, size) = copy_hashing(&source.join(weights), &partial.join(weights), &mut progress)?;
            let checked = check(&partial)?;
            std::fs::rename(&partial, self.folder(&name)).map_err(|e| io("placing the model", e))?;
            Ok::<_, AppError>((sha256, size, checked))
        })();
        match placed {
            Ok((sha256, size, checked)) => Ok((name, sha256, size, checked)),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&partial);
                Err(e)
            }
        }
    }

    fn write_manifest(&self, manifest: &ModelManifest) -> AppResult<()> {
        let json = serde_json::to_vec_pretty(manifest).map_err(AppError::internal)?;
        write_atomically(&self.manifest_path(&manifest.name), &json)
    }

    /// The engine for a transcription model, loading it on first use.
    pub async fn transcriber(&self, name: &str) -> AppResult<TranscribeEngine> {
        let manifest = self.manifest_for(name, "transcription")?;
        self.folder_engine(&self.transcribers, &manifest, |dir, name| {
            let started = std::time::Instant::now();
            let transcriber = load_transcriber(&dir, &name)?;
            tracing::info!(model = %name, load_ms = started.elapsed().as_millis() as u64, "model loaded");
            TranscribeEngine::start(&name, transcriber, QUEUE_DEPTH).map_err(AppError::internal)
        })
        .await
    }

    /// A transcription model loaded in this thread, for `ayushctl --local`'s ingestion (which
    /// has no engines).
    pub fn load_transcriber(&self, name: &str) -> AppResult<ayush_models::whisper::Transcriber> {
        self.manifest_for(name, "transcription")?;
        load_transcriber(&self.folder(name), name)
    }

    /// The transcription model audio added to collections is heard with: the first installed,
    /// by name.
    pub fn collections_transcriber(&self) -> AppResult<String> {
        self.list()?
            .into_iter()
            .find(|e| e.manifest.as_ref().is_some_and(ModelManifest::is_transcription))
            .map(|e| e.name)
            .ok_or_else(|| {
                AppError::validation(
                    "audio files are transcribed to be searched, and no transcription model is installed; \
                     an admin imports one with `ayushctl --local models import` (a Whisper folder)",
                )
            })
    }

    /// The engine of a model kept as a folder, loaded on first use (off the async executor); a
    /// model replaced under the same name (another sha256) gets a new one.
    async fn folder_engine<T: Clone + Send + Sync + 'static>(
        &self,
        slots: &Slots<T>,
        manifest: &ModelManifest,
        load: impl FnOnce(PathBuf, String) -> AppResult<T> + Send + 'static,
    ) -> AppResult<T> {
        let name = &manifest.name;
        let slot = {
            let mut slots = slots.lock().map_err(|_| AppError::internal("engine table poisoned"))?;
            slots.retain(|(n, sha), _| n != name || *sha == manifest.sha256);
            slots.entry((name.clone(), manifest.sha256.clone())).or_default().clone()
        };
        let (dir, name) = (self.folder(name), name.clone());
        slot.get_or_try_init(|| async move {
            tokio::task::spawn_blocking(move || load(dir, name)).await.map_err(AppError::internal)?
        })
        .await
        .cloned()
    }

    /// Where a model kept as a folder (embedding, transcription) lives.
    fn folder(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The engine for an embedding model, loading it on first use.
    pub async fn embedder(&self, name: &str) -> AppResult<EmbedEngine> {
        let manifest = self.manifest_for(name, "embedding")?;
        self.folder_engine(&self.embedders, &manifest, |dir, name| {
            let embedder = ayush_models::Embedder::load(&dir)
                .map_err(|e| AppError::internal(format!("loading {name}: {e}")))?;
            EmbedEngine::start(&name, embedder, QUEUE_DEPTH).map_err(AppError::internal)
        })
        .await
    }

    /// A path in the models directory to receive a file before it is checked and named.
    pub fn partial_path(&self) -> AppResult<PathBuf> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io("creating the models directory", e))?;
        let mut nonce = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        Ok(self.dir.join(format!(".import-{}.partial", hex::encode(nonce))))
    }

    /// Removes what imports killed midway left behind (`.import-*.partial`, untouched for a
    /// day: a fresher one may be an import still running in `ayushctl --local`). Returns how
    /// many were removed.
    pub fn sweep_partials(&self, now: i64) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return 0 };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !(name.starts_with(".import-") && name.ends_with(".partial")) {
                continue;
            }
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(now, |d| d.as_secs() as i64);
            if now - modified <= 24 * 3600 {
                continue;
            }
            // An embedding model's import leaves a folder; a chat model's, a file.
            let path = entry.path();
            let gone = match path.is_dir() {
                true => std::fs::remove_dir_all(&path),
                false => std::fs::remove_file(&path),
            };
            if gone.is_ok() {
                removed += 1;
            }
        }
        removed
    }

    pub fn check_new_name(&self, name: &str) -> AppResult<()> {
        ayush_models::validate_name(name).map_err(|e| AppError::validation(e.to_string()))?;
        if self.manifest_path(name).exists() {
            return Err(AppError::conflict(format!(
                "a model named {name:?} exists; remove it first or pick --name"
            )));
        }
        Ok(())
    }

    /// Checks a file already written to `partial_path` (an upload), names it and writes its
    /// manifest. The partial file is removed whatever happens.
    pub fn finish_import(
        &self,
        placed: Placed,
        name: &str,
        imported_by: &str,
        now: i64,
    ) -> AppResult<ModelManifest> {
        let result = self.place(&placed, name, imported_by, now);
        let _ = std::fs::remove_file(&placed.partial);
        result
    }

    fn place(&self, placed: &Placed, name: &str, imported_by: &str, now: i64) -> AppResult<ModelManifest> {
        self.check_new_name(name)?;
        let info = ayush_models::inspect(&placed.partial)
            .map_err(|e| AppError::validation(format!("{}: {e}", placed.source)))?;
        std::fs::rename(&placed.partial, self.file(name)).map_err(|e| io("placing the model", e))?;
        let manifest = ModelManifest {
            name: name.to_string(),
            arch: info.arch.name().to_string(),
            quantization: info.quantization,
            context_length: info.context_length,
            sha256: placed.sha256.clone(),
            size: placed.size,
            source: placed.source.clone(),
            imported_by: imported_by.to_string(),
            imported_at: now,
            purpose: "chat".into(),
            dimensions: None,
        };
        self.write_manifest(&manifest)?;
        if self.default_name().is_none() {
            self.set_default(name)?;
        }
        Ok(manifest)
    }

    /// Re-hashes the file: `Ok(true)` when it still matches its manifest.
    pub fn verify(&self, name: &str, mut progress: impl FnMut(u64, u64)) -> AppResult<bool> {
        let manifest = self.manifest(name)?;
        let file = match manifest.purpose.as_str() {
            "embedding" => self.folder(name).join("model.safetensors"),
            "transcription" => self.folder(name).join(WHISPER_WEIGHTS),
            _ => self.file(name),
        };
        let (sha, size) = hash_file(&file, &mut progress)?;
        Ok(sha == manifest.sha256 && size == manifest.size)
    }

    /// The engine for `name`, loading the model on first use (seconds; off the async executor).
    pub async fn engine(&self, name: &str) -> AppResult<Engine> {
        let key = (name.to_string(), self.manifest(name)?.sha256);
        let slot = {
            let mut engines = self.engines.lock().map_err(|_| AppError::internal("engine table poisoned"))?;
            engines.retain(|(n, sha), _| n != name || *sha == key.1);
            engines.entry(key).or_default().clone()
        };
        let path = self.file(name);
        let model_name = name.to_string();
        let limits = self.limits;
        slot.get_or_try_init(|| async move {
            tokio::task::spawn_blocking(move || {
                let started = std::time::Instant::now();
                let model = LoadedModel::load(&path).map_err(|e| AppError::internal(format!("loading {model_name}: {e}")))?;
                tracing::info!(model = %model_name, load_ms = started.elapsed().as_millis() as u64, "model loaded");
                Engine::start(&model_name, model, limits).map_err(AppError::internal)
            })
            .await
            .map_err(AppError::internal)?
        })
        .await
        .cloned()
    }
}

fn read_manifest(path: &Path) -> Result<ModelManifest, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let m: ModelManifest = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    m.validate().map_err(|e| e.to_string())?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    if m.name != stem {
        return Err(format!("the manifest names {:?} but is called {stem}.json", m.name));
    }
    Ok(m)
}

/// `qwen2.5-coder-0.5b-instruct-q4_k_m.gguf` -> `qwen2.5-coder-0.5b-instruct-q4_k_m`.
fn default_name_for(source: &Path) -> String {
    let stem = source.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    let cleaned: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
        .take(64)
        .collect();
    cleaned.trim_start_matches(['.', '_', '-']).to_string()
}

fn write_atomically(path: &Path, bytes: &[u8]) -> AppResult<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| io("writing", e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("writing", e))
}

fn copy_hashing(source: &Path, dest: &Path, progress: &mut impl FnMut(u64, u64)) -> AppResult<(String, u64)> {
    let mut output = std::fs::File::create(dest).map_err(|e| io("creating the model file", e))?;
    let result = hash_stream(source, Some(&mut output), progress)?;
    output.sync_all().map_err(|e| io("writing the model", e))?;
    Ok(result)
}

fn hash_file(path: &Path, progress: &mut impl FnMut(u64, u64)) -> AppResult<(String, u64)> {
    hash_stream(path, None, progress)
}

/// SHA-256 and size of `source`, copying it into `sink` on the way when there is one.
fn hash_stream(
    source: &Path,
    mut sink: Option<&mut std::fs::File>,
    progress: &mut impl FnMut(u64, u64),
) -> AppResult<(String, u64)> {
    let mut input = std::fs::File::open(source)
        .map_err(|e| AppError::new(ErrorKind::NotFound, format!("{}: {e}", source.display())))?;
    let total = input.metadata().map(|m| m.len()).unwrap_or(0);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(|e| io("reading the model", e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(out) = sink.as_mut() {
            out.write_all(&buf[..n]).map_err(|e| io("writing the model", e))?;
        }
        done += n as u64;
        progress(done, total);
    }
    Ok((hex::encode(hasher.finalize()), done))
}

/// Receives an uploaded model file chunk by chunk on a blocking thread: writes it under a
/// temporary name in the models directory, hashing on the way.
pub struct Upload {
    partial: PathBuf,
    file: std::fs::File,
    hasher: Sha256,
    size: u64,
}

impl Upload {
    pub fn create(partial: PathBuf) -> AppResult<Upload> {
        let file = std::fs::File::create(&partial).map_err(|e| io("creating the model file", e))?;
        Ok(Upload { partial, file, hasher: Sha256::new(), size: 0 })
    }

    pub fn write(&mut self, chunk: &[u8]) -> AppResult<()> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        self.file.write_all(chunk).map_err(|e| io("writing the model", e))
    }

    pub fn finish(self, source: String) -> AppResult<Placed> {
        self.file.sync_all().map_err(|e| io("writing the model", e))?;
        Ok(Placed {
            partial: self.partial,
            sha256: hex::encode(self.hasher.finalize()),
            size: self.size,
            source,
        })
    }

    /// Removes what was written: the upload failed or was abandoned.
    pub fn abandon(self) {
        drop(self.file);
        let _ = std::fs::remove_file(&self.partial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_day_old_partial_imports_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::new(dir.path());
        let (old, fresh) = (catalog.partial_path().unwrap(), catalog.partial_path().unwrap());
        let keep = catalog.dir().join("model.gguf");
        for p in [&old, &fresh, &keep] {
            std::fs::write(p, b"x").unwrap();
        }
        let day_ago = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::options().write(true).open(&old).unwrap().set_modified(day_ago).unwrap();
        std::fs::File::options().write(true).open(&keep).unwrap().set_modified(day_ago).unwrap();
        let now = 1_000_000 + 24 * 3600 + 1;
        // The fresh file's real modification time is "now" on the machine's clock, later than
        // the injected one: it is never older than a day.
        assert_eq!(catalog.sweep_partials(now), 1);
        assert!(!old.exists() && fresh.exists() && keep.exists());
    }
}
