//! `--local`: the data directory opened directly, through the same functions the server uses.
//! Every change is audited with the operating-system user as the actor.

use crate::backend::Backend;
use ayush_server::assistants::{Assistants, PresetBody};
use ayush_server::audit::log::{self, AuditLog};
use ayush_server::audit::query::{self, Filter, Format};
use ayush_server::audit::{self, Actor};
use ayush_server::auth::accounts::{AccountChanges, Accounts, NewAccount, NewGroup};
use ayush_server::auth::keys::{Keys, NewKey};
use ayush_server::auth::ldap::Directory;
use ayush_server::auth::sso::{NewRule, Sso};
use ayush_server::auth::tokens::Issuer;
use ayush_server::auth::{Role, mapping};
use ayush_server::catalog::models::{ImportFrom, Models};
use ayush_server::catalog::provider_admin::Providers;
use ayush_server::catalog::remote::Remotes;
use ayush_server::catalog::{Catalog, providers};
use ayush_server::clock::{Clock, SharedClock, SystemClock};
use ayush_server::config::{Config, Overrides};
use ayush_server::error::AppError;
use ayush_server::knowledge::collections::{self, Caller};
use ayush_server::knowledge::library::Settled;
use ayush_server::knowledge::{Knowledge, Library, Queued, documents, jobs};
use ayush_server::sealed::SealingKey;
use ayush_server::store::Store;
use ayush_server::theme::{Change, Themes};
use ayush_server::usage::quotas::{QuotaOf, SetQuota};
use ayush_server::usage::{ReportQuery, SetPrice, Usage};
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct Local {
    store: Store,
    config: Config,
    actor: Actor,
    ledger: Arc<audit::Ledger>,
    audit_log: AuditLog,
    accounts: Accounts,
    models: Models,
    library: Library,
    keys: Keys,
    assistants: Assistants,
    usage: Usage,
    themes: Themes,
    /// Runs the services, which are async as the server needs them.
    rt: tokio::runtime::Runtime,
}

impl Drop for Local {
    /// Whatever this session wrote, the head kept outside the database follows it, as the
    /// server's housekeeping would.
    fn drop(&mut self) {
        let now = self.now();
        let _ = self.store.run_blocking(|c| {
            self.ledger.refresh_anchor(c, now);
            Ok(())
        });
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn err(e: AppError) -> String {
    e.message
}

fn to_json(v: impl serde::Serialize) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

impl Local {
    /// The configuration `--local` works from, refused where the data directory is another
    /// user's (see [`refuse_foreign_data_dir`]).
    pub fn config(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> Result<Config, String> {
        let file = Config::locate(config.as_deref());
        let overrides = Overrides { data_dir, ..Default::default() };
        let config =
            Config::load(file.as_deref(), std::env::vars(), &overrides).map_err(|e| e.to_string())?;
        refuse_foreign_data_dir(&config.server.data_dir)?;
        Ok(config)
    }

    pub fn open(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> Result<Local, String> {
        let config = Local::config(config, data_dir)?;
        let (ledger, chain) = audit::Ledger::open(&config).map_err(|e| e.to_string())?;
        let ledger = Arc::new(ledger);
        let store =
            Store::open(&config.database, &config.server.data_dir, chain).map_err(|e| e.to_string())?;
        let clock: SharedClock = Arc::new(SystemClock);
        let accounts = Accounts::new(store.clone(), clock.clone(), &config);
        let catalog = Arc::new(Catalog::new(&config.server.data_dir));
        let models = Models::new(store.clone(), clock.clone(), catalog.clone());
        // No index and no workers here: a running server finds the changes on the feed.
        let library = Library::new(store.clone(), clock.clone(), &config.knowledge, None);
        let keys = Keys::new(store.clone(), clock.clone());
        let usage = Usage::new(store.clone(), clock.clone(), catalog.clone(), config.usage.clone());
        let assistants = Assistants::new(store.clone(), clock.clone(), catalog);
        let themes = Themes::new(&config.theme, store.clone(), clock.clone()).map_err(|e| e.to_string())?;
        let audit_log = AuditLog::new(store.clone(), clock, ledger.clone());
        let rt = runtime()?;
        Ok(Local {
            audit_log,
            store,
            config,
            actor: Actor::local_cli(),
            ledger,
            accounts,
            models,
            library,
            keys,
            assistants,
            usage,
            themes,
            rt,
        })
    }

    fn block_on<T>(
        &self,
        service: impl std::future::Future<Output = Result<T, AppError>>,
    ) -> Result<T, String> {
        self.rt.block_on(service).map_err(err)
    }

    fn now(&self) -> i64 {
        SystemClock.now()
    }

    /// The key provider API keys are sealed with (created here if the server never ran).
    fn sealing_key(&self) -> Result<SealingKey, String> {
        SealingKey::load_or_create(&self.config.audit_secrets_dir().join(providers::KEY_FILE))
    }

    /// Signs a checkpoint of the chain head now.
    pub fn audit_checkpoint(&self) -> Result<Value, String> {
        match self.block_on(self.audit_log.checkpoint())? {
            Some(cp) => to_json(cp),
            None => Err("the audit log holds no events yet: there is nothing to sign".into()),
        }
    }

    fn directory(&self) -> Result<Directory, String> {
        if !self.config.ldap.enabled {
            return Err("no directory is configured: [ldap] enabled = false".into());
        }
        Directory::new(&self.config.ldap, self.egress())
    }

    /// The server's egress policy; refusals are recorded as the server would.
    fn egress(&self) -> ayush_server::egress::Egress {
        ayush_server::egress::Egress::new(&self.config.egress).recording(self.store.clone(), self.clock())
    }

    /// Providers are reached with the server's sealing key and egress policy.
    fn providers(&self) -> Result<Providers, String> {
        let tls = ayush_server::tls::client_config(None, "providers")?;
        let remotes = Remotes::new(self.sealing_key()?, Arc::new(self.egress()), Arc::new(tls));
        Ok(Providers::new(self.store.clone(), self.clock(), Arc::new(remotes), self.egress()))
    }

    /// The mapping rules, and (`with_directory`, where `[ldap]` is enabled) the directory.
    fn sso(&self, with_directory: bool) -> Result<Sso, String> {
        let directory = match with_directory && self.config.ldap.enabled {
            true => Some(Arc::new(self.directory()?)),
            false => None,
        };
        Ok(Sso::new(self.store.clone(), self.clock(), directory, self.default_role()))
    }

    fn clock(&self) -> SharedClock {
        Arc::new(SystemClock)
    }

    fn default_role(&self) -> Option<Role> {
        self.config.ldap.default_role.as_deref().and_then(|r| r.parse().ok())
    }

    /// Each step an OIDC sign-in depends on, short of signing in: discovery, the issuer, the
    /// keys, the endpoints, and the redirect URI to register.
    pub fn test_oidc(&self, name: Option<&str>) -> Result<(bool, Value), String> {
        let configured = &self.config.oidc.providers;
        if configured.is_empty() {
            return Err("no OIDC provider is configured ([[oidc.providers]])".into());
        }
        let mut all_ok = true;
        let mut reports = Vec::new();
        for cfg in configured.iter().filter(|p| name.is_none_or(|n| n == p.name)) {
            let mut steps = Vec::new();
            let mut step = |step: &str, result: Result<String, String>| {
                all_ok &= result.is_ok();
                let (ok, detail) = match result {
                    Ok(d) => (true, d),
                    Err(d) => (false, d),
                };
                steps.push(json!({"step": step, "ok": ok, "detail": detail}));
                ok
            };
            let provider = match ayush_server::auth::oidc::Provider::new(cfg, &self.egress()) {
                Ok(p) => p,
                Err(e) => {
                    step("configuration", Err(e));
                    reports.push(json!({"provider": cfg.name, "steps": steps}));
                    continue;
                }
            };
            let meta = provider.metadata();
            let discovered = step(
                "discovery",
                meta.as_ref().map(|m| format!("{} (issuer matches)", m.issuer)).map_err(Clone::clone),
            );
            if discovered {
                let keys = provider.keys(true).map(|k| {
                    let names: Vec<String> = k
                        .keys
                        .iter()
                        .map(|k| format!("{}:{}", k.kty, k.kid.clone().unwrap_or_else(|| "-".into())))
                        .collect();
                    format!("{} signing keys ({})", names.len(), names.join(", "))
                });
                step("keys", keys);
                if let Ok(m) = &meta {
                    step(
                        "endpoints",
                        Ok(format!(
                            "authorization {}, token {}, userinfo {}, end session {}",
                            m.authorization_endpoint,
                            m.token_endpoint,
                            m.userinfo_endpoint.as_deref().unwrap_or("-"),
                            m.end_session_endpoint.as_deref().unwrap_or("- (no RP-initiated logout)")
                        )),
                    );
                }
            }
            let base = self.config.oidc.public_url.clone().unwrap_or_else(|| "<public_url>".into());
            step(
                "redirect URI",
                Ok(format!(
                    "register {}/auth/oidc/{}/callback at the provider",
                    base.trim_end_matches('/'),
                    cfg.name
                )),
            );
            reports.push(json!({"provider": cfg.name, "steps": steps}));
        }
        if reports.is_empty() {
            return Err(format!("no OIDC provider named {:?}", name.unwrap_or_default()));
        }
        Ok((all_ok, Value::Array(reports)))
    }

    /// Each step of a directory sign-in for `username`, and what the mappings would make of it.
    pub fn test_ldap(&self, username: &str, password: Option<&str>) -> Result<(bool, Value), String> {
        let directory = self.directory()?;
        let (steps, person) = self.rt.block_on(directory.diagnose(username, password));
        let mut ok = steps.iter().all(|s| s.ok);
        let mut report = json!({"steps": steps});
        if let Some(person) = person {
            let rules = self.store.run_blocking(mapping::rules).map_err(err)?;
            let decision = mapping::decide(&rules, &person.groups, self.default_role());
            if decision.role.is_none() {
                ok = false;
            }
            report["result"] = json!({
                "role": decision.role,
                "groups": decision.groups,
                "access": decision.role.is_some(),
            });
        }
        Ok((ok, report))
    }

    /// Prunes old events now (retention), behind a signed checkpoint.
    pub fn audit_prune(&self, days: Option<u64>) -> Result<Value, String> {
        match self.block_on(self.audit_log.prune(self.actor.clone(), days))? {
            Some(p) => to_json(p),
            None => Ok(json!({"pruned": 0, "message": "no event is old enough to prune"})),
        }
    }

    /// Runs a job this process claimed, renewing its claim while the file is read, as a
    /// server's worker does (a server that saw no heartbeat would take the job over).
    fn run_job(&self, mut claimed: jobs::Claimed) -> Result<Value, String> {
        let (id, bytes) = (claimed.id, std::mem::take(&mut claimed.bytes));
        // The heartbeat beats until `done` is dropped, when the file has been read.
        let (done, ended) = std::sync::mpsc::channel::<()>();
        let replica = &claimed.replica;
        let prepared = std::thread::scope(|s| {
            s.spawn(move || {
                let every = std::time::Duration::from_secs(jobs::HEARTBEAT_SECS);
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = ended.recv_timeout(every) {
                    let _ = self.store.run_blocking(|c| jobs::beat(c, self.now(), id, replica));
                }
            });
            let prepared = if ayush_models::audio::looks_like_audio(&bytes) {
                self.hear_recording(&claimed.source, bytes)
            } else {
                documents::prepare(&claimed.source, bytes)
            };
            drop(done);
            prepared
        });
        let stored =
            prepared.and_then(|p| self.store.run_blocking(|c| jobs::complete(c, self.now(), &claimed, &p)));
        match stored {
            Ok(Some(ingested)) => to_json(ingested),
            // The claim was lost to a server that took the job over: it finishes it.
            Ok(None) => self.settle(Queued::Job(self.store.run_blocking(|c| jobs::get(c, id)).map_err(err)?)),
            Err(e) => {
                self.store.run_blocking(|c| jobs::fail(c, self.now(), id, &e.message)).map_err(err)?;
                Err(e.message)
            }
        }
    }

    /// A recording, transcribed in this process with the collections' transcription model, as
    /// a server's worker would.
    fn hear_recording(&self, source: &str, bytes: Vec<u8>) -> Result<documents::Prepared, AppError> {
        let catalog = Catalog::new(&self.config.server.data_dir);
        let transcriber = catalog.load_transcriber(&catalog.collections_transcriber()?)?;
        let limit = self.config.transcription.max_audio_minutes * 60;
        ayush_server::knowledge::audio::prepare(source, bytes, limit, |samples| {
            transcriber
                .transcribe(&samples, &Default::default())
                .map_err(|e| AppError::internal(e.to_string()))
        })
    }

    /// Waits for a job another process runs, and answers as if it had run here.
    fn settle(&self, queued: Queued) -> Result<Value, String> {
        let wait = Some(std::time::Duration::from_secs(600));
        match self.block_on(self.library.settle(queued, wait))? {
            Settled::Unchanged(ingested) | Settled::Stored(ingested) => to_json(ingested),
            Settled::Pending(job) => Err(format!("job {} is still {} after ten minutes", job.id, job.status)),
        }
    }
}

impl Backend for Local {
    fn create_user(&self, body: Value) -> Result<Value, String> {
        let new: NewAccount = serde_json::from_value(body).map_err(|e| e.to_string())?;
        to_json(self.block_on(self.accounts.create(self.actor.clone(), new))?)
    }

    fn link_user(&self, name: &str, provider: &str, subject: &str) -> Result<Value, String> {
        to_json(self.block_on(self.accounts.link(self.actor.clone(), name.into(), provider, subject))?)
    }

    fn deprovision_user(&self, name: &str) -> Result<Value, String> {
        to_json(self.block_on(self.accounts.deprovision(self.actor.clone(), name.into()))?)
    }

    fn list_users(&self) -> Result<Value, String> {
        to_json(self.block_on(self.accounts.list())?)
    }

    fn show_user(&self, name: &str) -> Result<Value, String> {
        to_json(self.block_on(self.accounts.show(name.into()))?)
    }

    fn set_disabled(&self, name: &str, disabled: bool) -> Result<Value, String> {
        let changes = AccountChanges { disabled: Some(disabled), ..Default::default() };
        to_json(self.block_on(self.accounts.change(self.actor.clone(), name.into(), changes))?)
    }

    fn set_role(&self, name: &str, role: &str) -> Result<Value, String> {
        let changes = AccountChanges { role: Some(role.parse()?), ..Default::default() };
        to_json(self.block_on(self.accounts.change(self.actor.clone(), name.into(), changes))?)
    }

    fn reset_password(&self, name: &str, pw: String) -> Result<(), String> {
        self.block_on(self.accounts.reset_password(self.actor.clone(), name.into(), pw))
    }

    fn create_group(&self, name: &str, description: &str) -> Result<Value, String> {
        let new = NewGroup { name: name.into(), description: description.into() };
        to_json(self.block_on(self.accounts.create_group(self.actor.clone(), new))?)
    }

    fn list_groups(&self) -> Result<Value, String> {
        to_json(self.block_on(self.accounts.groups())?)
    }

    fn show_group(&self, name: &str) -> Result<Value, String> {
        to_json(self.block_on(self.accounts.group(name.into()))?)
    }

    fn delete_group(&self, name: &str) -> Result<(), String> {
        self.block_on(self.accounts.delete_group(self.actor.clone(), name.into()))
    }

    fn add_member(&self, group: &str, user: &str) -> Result<(), String> {
        self.block_on(self.accounts.add_member(self.actor.clone(), group.into(), user.into()))
    }

    fn remove_member(&self, group: &str, user: &str) -> Result<(), String> {
        self.block_on(self.accounts.remove_member(self.actor.clone(), group.into(), user.into()))
    }

    fn list_models(&self) -> Result<Value, String> {
        to_json(self.block_on(self.models.list())?)
    }

    fn allow_model(&self, model: &str, group: &str) -> Result<(), String> {
        self.block_on(self.models.allow(self.actor.clone(), model.into(), group.into()))
    }

    fn disallow_model(&self, model: &str, group: &str) -> Result<bool, String> {
        self.block_on(self.models.disallow(self.actor.clone(), model.into(), group.into()))
    }

    fn import_model(&self, file: &Path, name: Option<&str>) -> Result<Value, String> {
        let mut bar = Progress::new("importing");
        let from = ImportFrom::File(file.to_path_buf());
        let name = name.map(str::to_string);
        let progress = Box::new(move |done, total| bar.show(done, total));
        to_json(self.block_on(self.models.import(self.actor.clone(), from, name, progress))?)
    }

    fn verify_model(&self, name: &str) -> Result<bool, String> {
        let mut bar = Progress::new("verifying");
        let progress = Box::new(move |done, total| bar.show(done, total));
        self.block_on(self.models.verify(self.actor.clone(), name.into(), progress))
    }

    fn remove_model(&self, name: &str) -> Result<(), String> {
        self.block_on(self.models.remove(self.actor.clone(), name.into()))
    }

    fn set_default_model(&self, name: &str) -> Result<(), String> {
        self.block_on(self.models.set_default(self.actor.clone(), name.into()))
    }

    fn audit_verify(&self, from_checkpoint: Option<Value>) -> Result<Value, String> {
        let from = from_checkpoint
            .map(serde_json::from_value::<audit::anchor::Checkpoint>)
            .transpose()
            .map_err(|e| format!("not an audit checkpoint: {e}"))?;
        to_json(self.block_on(self.audit_log.verify(self.actor.clone(), from))?)
    }

    fn audit_export(&self, filter: &Filter, format: Format, out: &mut dyn Write) -> Result<(), String> {
        let export = self.block_on(self.audit_log.export(self.actor.clone(), filter.clone(), format))?;
        let mut io_error = None;
        export
            .write_blocking(|chunk| match out.write_all(chunk.as_bytes()) {
                Ok(()) => true,
                Err(e) => {
                    io_error = Some(e);
                    false
                }
            })
            .map_err(err)?;
        match io_error {
            Some(e) => Err(format!("writing the export: {e}")),
            None => out.flush().map_err(|e| format!("writing the export: {e}")),
        }
    }

    fn create_key(&self, user: &str, name: &str, expires_days: Option<u32>) -> Result<Value, String> {
        let new = NewKey { user: user.into(), name: name.into(), expires_days };
        to_json(self.block_on(self.keys.create(self.actor.clone(), Issuer::Local, new))?)
    }

    fn list_keys(&self, user: Option<&str>) -> Result<Value, String> {
        to_json(self.block_on(self.keys.list(user.map(str::to_string)))?)
    }

    fn revoke_key(&self, id: i64) -> Result<(), String> {
        self.block_on(self.keys.revoke(self.actor.clone(), id))
    }

    fn list_providers(&self) -> Result<Value, String> {
        to_json(self.block_on(self.providers()?.list())?)
    }

    fn add_provider(&self, body: Value) -> Result<Value, String> {
        let new: providers::NewProvider = serde_json::from_value(body).map_err(|e| e.to_string())?;
        to_json(self.block_on(self.providers()?.create(self.actor.clone(), new))?)
    }

    fn change_provider(&self, name: &str, body: Value) -> Result<Value, String> {
        let change: providers::Change = serde_json::from_value(body).map_err(|e| e.to_string())?;
        to_json(self.block_on(self.providers()?.change(self.actor.clone(), name.into(), change))?)
    }

    fn remove_provider(&self, name: &str) -> Result<(), String> {
        self.block_on(self.providers()?.remove(self.actor.clone(), name.into()))
    }

    fn list_collections(&self) -> Result<Value, String> {
        to_json(self.block_on(self.library.list(Caller::local_admin()))?)
    }

    fn create_collection(&self, body: Value) -> Result<Value, String> {
        let new: collections::NewCollection = serde_json::from_value(body).map_err(|e| e.to_string())?;
        to_json(self.block_on(self.library.create(self.actor.clone(), Caller::local_admin(), new))?)
    }

    fn remove_collection(&self, name: &str) -> Result<(), String> {
        self.block_on(self.library.remove(self.actor.clone(), Caller::local_admin(), name.into()))
    }

    fn grant_collection(&self, name: &str, group: &str) -> Result<(), String> {
        self.block_on(self.library.grant(self.actor.clone(), name.into(), group.into()))
    }

    fn revoke_collection(&self, name: &str, group: &str) -> Result<(), String> {
        self.block_on(self.library.revoke(self.actor.clone(), name.into(), group.into()))
    }

    fn list_documents(&self, collection: &str) -> Result<Value, String> {
        to_json(self.block_on(self.library.documents(Caller::local_admin(), collection.into()))?)
    }

    /// Queued exactly as the server queues an upload, then run here at once, so the job history
    /// shows it; the server's index picks the document up from the feed within seconds.
    fn add_document(&self, collection: &str, source: &str, bytes: Vec<u8>) -> Result<Value, String> {
        let queued = self.block_on(self.library.queue(
            self.actor.clone(),
            Caller::local_admin(),
            collection.into(),
            source.into(),
            bytes,
        ))?;
        let job = match queued {
            Queued::Unchanged(ingested) => return to_json(ingested),
            Queued::Job(job) => job,
        };
        let replica =
            format!("ayushctl:{}:{}", ayush_server::audit::sink::syslog::hostname(), std::process::id());
        let claimed =
            self.store.run_blocking(|c| jobs::claim_job(c, self.now(), &replica, job.id)).map_err(err)?;
        match claimed {
            Some(claimed) => self.run_job(claimed),
            // A running server's worker took it first: it ingests the file.
            None => self.settle(Queued::Job(job)),
        }
    }

    fn list_presets(&self) -> Result<Value, String> {
        to_json(self.block_on(self.assistants.list())?)
    }

    fn create_preset(&self, body: Value) -> Result<Value, String> {
        let body: PresetBody = serde_json::from_value(body).map_err(|e| e.to_string())?;
        to_json(self.block_on(self.assistants.create(self.actor.clone(), body))?)
    }

    fn change_preset(&self, name: &str, body: Value) -> Result<Value, String> {
        let body: PresetBody = serde_json::from_value(body).map_err(|e| e.to_string())?;
        to_json(self.block_on(self.assistants.change(self.actor.clone(), name.into(), body))?)
    }

    fn remove_preset(&self, name: &str) -> Result<(), String> {
        self.block_on(self.assistants.remove(self.actor.clone(), name.into()))
    }

    fn usage_report(&self, from: Option<&str>, to: Option<&str>, by: &str) -> Result<Value, String> {
        let query =
            ReportQuery { from: from.map(str::to_string), to: to.map(str::to_string), by: by.parse()? };
        to_json(self.block_on(self.usage.report(query))?)
    }

    fn set_price(&self, body: Value) -> Result<Value, String> {
        let set: SetPrice = serde_json::from_value(body).map_err(|e| e.to_string())?;
        to_json(self.block_on(self.usage.set_price(self.actor.clone(), set))?)
    }

    fn list_prices(&self) -> Result<Value, String> {
        to_json(self.block_on(self.usage.prices())?)
    }

    fn remove_price(&self, provider: &str, model: &str) -> Result<(), String> {
        self.block_on(self.usage.remove_price(self.actor.clone(), provider.into(), model.into()))
    }

    fn show_theme(&self) -> Result<Value, String> {
        to_json(self.block_on(self.themes.show())?)
    }

    fn set_theme(&self, body: Value) -> Result<Value, String> {
        let change: Change = serde_json::from_value(body).map_err(|e| e.to_string())?;
        to_json(self.block_on(self.themes.set(self.actor.clone(), change))?)
    }

    fn set_quota(&self, body: Value) -> Result<Value, String> {
        let set: SetQuota = serde_json::from_value(body).map_err(|e| e.to_string())?;
        to_json(self.block_on(self.usage.set_quota(self.actor.clone(), set))?)
    }

    fn list_quotas(&self) -> Result<Value, String> {
        to_json(self.block_on(self.usage.quotas())?)
    }

    fn remove_quota(&self, user: Option<&str>, group: Option<&str>, pool: &str) -> Result<(), String> {
        let of = QuotaOf {
            user: user.map(str::to_string),
            group: group.map(str::to_string),
            pool: Some(pool.into()),
        };
        self.block_on(self.usage.remove_quota(self.actor.clone(), of))
    }

    /// The server's report, read off the data directory: the index as its last commit left
    /// it (a running rebuild, the writer's last error and the vectors in memory only the
    /// server knows).
    fn index_status(&self) -> Result<Value, String> {
        use ayush_server::knowledge::{self, index};
        let status = index::read_status(&index::dir(&self.config.server.data_dir))?;
        let model = Some(self.config.knowledge.embedding_model.clone()).filter(|m| !m.is_empty());
        to_json(self.store.run_blocking(|c| knowledge::report(c, status, model, None)).map_err(err)?)
    }

    fn backup_create(
        &self,
        output: &Path,
        passphrase: Option<String>,
        with_models: bool,
    ) -> Result<Value, String> {
        let options = ayush_server::backup::CreateOptions { passphrase, with_models };
        let manifest = ayush_server::backup::create(
            &self.config,
            &self.store,
            &self.actor,
            self.now(),
            output,
            &options,
        )?;
        to_json(summary(output, &manifest))
    }

    fn rebuild_index(&self) -> Result<Value, String> {
        // Opening the index takes its writer lock, so this fails while a server holds it.
        let knowledge =
            Knowledge::open(&self.config.knowledge, &self.config.server.data_dir, self.store.clone())
                .map_err(|e| e.to_string())?;
        let library =
            Library::new(self.store.clone(), self.clock(), &self.config.knowledge, Some(Arc::new(knowledge)));
        let passages = self.block_on(library.rebuild(self.actor.clone()))?;
        Ok(json!({"passages": passages}))
    }

    fn test_provider(&self, name: &str) -> Result<Value, String> {
        let models = self.block_on(self.providers()?.test(name.into()))?;
        Ok(json!({"models": models}))
    }

    fn directory_sync(&self, dry_run: bool) -> Result<Value, String> {
        to_json(self.block_on(self.sso(true)?.sync(dry_run))?)
    }

    fn list_mappings(&self) -> Result<Value, String> {
        to_json(self.block_on(self.sso(false)?.rules())?)
    }

    fn add_mapping(
        &self,
        directory_group: &str,
        role: Option<&str>,
        group: Option<&str>,
    ) -> Result<Value, String> {
        let new = NewRule {
            directory_group: directory_group.into(),
            role: role.map(str::to_string),
            group: group.map(str::to_string),
        };
        to_json(self.block_on(self.sso(false)?.map(self.actor.clone(), new))?)
    }

    fn remove_mapping(&self, id: i64) -> Result<(), String> {
        self.block_on(self.sso(false)?.unmap(self.actor.clone(), id))
    }

    fn audit_holds(&self) -> Result<Value, String> {
        to_json(self.block_on(self.audit_log.holds())?)
    }

    fn audit_hold(&self, user: &str, reason: &str) -> Result<Value, String> {
        to_json(self.block_on(self.audit_log.hold(self.actor.clone(), user.into(), reason.into()))?)
    }

    fn audit_release(&self, user: &str) -> Result<(), String> {
        self.block_on(self.audit_log.release(self.actor.clone(), user.into()))
    }

    fn audit_events(&self, filter: &Filter, after: Option<i64>, limit: i64) -> Result<Vec<Value>, String> {
        let paging = log::Paging { before: None, after, limit };
        let events = self.block_on(self.audit_log.events(filter, paging))?;
        Ok(events.iter().map(query::to_json).collect())
    }

    fn local(&self) -> Option<&Local> {
        Some(self)
    }
}

/// A progress line on standard error, only when it is a terminal.
pub struct Progress {
    what: &'static str,
    tty: bool,
    last: u64,
}

impl Progress {
    pub fn new(what: &'static str) -> Progress {
        Progress { what, tty: std::io::stderr().is_terminal(), last: u64::MAX }
    }

    pub fn show(&mut self, done: u64, total: u64) {
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        if self.tty && pct != self.last {
            self.last = pct;
            eprint!("\r{} {pct:>3}% ({} / {} MB)", self.what, done >> 20, total >> 20);
        }
    }
}

impl Drop for Progress {
    /// Ends the progress line, so what follows starts on a line of its own.
    fn drop(&mut self) {
        if self.tty && self.last != u64::MAX {
            eprintln!();
        }
    }
}

/// root opening a data directory that belongs to the service's account (the Debian package's
/// `ayush`) would leave files there the server cannot open: a WAL file, a model, a key. Say
/// how to run as the owner instead.
fn refuse_foreign_data_dir(dir: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let Ok(owner) = std::fs::metadata(dir).map(|m| m.uid()) else { return Ok(()) };
    // /proc/self belongs to the effective user of the process reading it.
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(owner);
    if me != 0 || owner == 0 {
        return Ok(());
    }
    let name = user_name(owner).unwrap_or_else(|| owner.to_string());
    Err(format!(
        "the data directory {} belongs to {name}, and files root writes there would be unreadable \
         to the server; run ayushctl as that user: sudo -u {name} ayushctl --local …",
        dir.display()
    ))
}

fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?.parse::<u32>().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

/// What `backup create` prints: the manifest without its entry list, and where the file is.
pub fn summary(output: &Path, manifest: &ayush_server::backup::archive::Manifest) -> serde_json::Value {
    let bytes = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
    let mut value = serde_json::to_value(manifest).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("entries");
        map.insert("file".into(), output.display().to_string().into());
        map.insert("bytes".into(), bytes.into());
    }
    value
}
