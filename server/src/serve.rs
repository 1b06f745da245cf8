//! Start-up: config to a running server. Kept out of `main.rs` so the admin CLI and the tests
//! open the same state the server does.

use crate::audit::Ledger;
use crate::auth::{sessions, throttle};
use crate::catalog::Catalog;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, LogFormat};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::Store;
use crate::store::lease::Duty;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Theme(#[from] crate::theme::ThemeError),
    #[error(transparent)]
    AuditKeys(#[from] crate::audit::keys::KeyError),
    #[error("ldap: {0}")]
    Ldap(String),
    #[error("oidc: {0}")]
    Oidc(String),
    #[error("{0}")]
    Egress(String),
    #[error("{0}")]
    Config(String),
    #[error("secrets: {0}")]
    Secrets(String),
    #[error("{0}")]
    Index(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("server stopped: {0}")]
    Run(std::io::Error),
}

pub fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Opens the database and everything else a request needs. Call it outside async code.
/// How long an upload waits for others to free memory before it is refused.
const UPLOAD_MEMORY_WAIT_SECS: u64 = 10;

pub fn open_state(config: Config, clock: SharedClock) -> Result<AppState, StartError> {
    check_egress(&config)?;
    let (ledger, chain) = Ledger::open(&config)?;
    let store = Store::open(&config.database, &config.server.data_dir, chain)?;
    let egress = crate::egress::Egress::new(&config.egress).recording(store.clone(), clock.clone());
    let directory = match config.ldap.enabled {
        true => Some(Arc::new(
            crate::auth::ldap::Directory::new(&config.ldap, egress.clone()).map_err(StartError::Ldap)?,
        )),
        false => None,
    };
    let oidc = crate::auth::oidc::Providers::from_config(&config.oidc.providers, &egress)
        .map_err(StartError::Oidc)?;
    let catalog = Arc::new(Catalog::new(&config.server.data_dir).with_engine_limits(config.models.limits()));
    let swept = catalog.sweep_partials(clock.now());
    if swept > 0 {
        tracing::info!(files = swept, "removed files left by model imports that did not finish");
    }
    let sealing = crate::sealed::SealingKey::load_or_create(
        &config.audit_secrets_dir().join(crate::catalog::providers::KEY_FILE),
    )
    .map_err(StartError::Secrets)?;
    let tls = crate::tls::client_config(None, "providers").map_err(StartError::Tls)?;
    let remotes =
        Arc::new(crate::catalog::remote::Remotes::new(sealing, Arc::new(egress.clone()), Arc::new(tls)));
    let knowledge =
        crate::knowledge::Knowledge::open(&config.knowledge, &config.server.data_dir, store.clone())
            .map_err(|e| StartError::Index(e.to_string()))?;
    let knowledge = Arc::new(knowledge);
    // Another replica's writes wake this one's index at once (PostgreSQL NOTIFY), not at its
    // next look.
    let woken = knowledge.clone();
    store.listen(crate::knowledge::feed::CHANNEL, move || woken.index.notify());
    let proxies =
        crate::proxies::TrustedProxies::parse(&config.server.trusted_proxies).map_err(StartError::Config)?;
    let generations = crate::limits::PerPerson::generations(config.chat.max_concurrent_per_user);
    let uploads = crate::limits::PerPerson::uploads(config.knowledge.max_concurrent_uploads_per_user);
    let upload_memory = crate::limits::UploadMemory::new(
        config.knowledge.upload_memory_mib,
        std::time::Duration::from_secs(UPLOAD_MEMORY_WAIT_SECS),
    );
    let metrics_token = config.server.metrics_token().map_err(StartError::Config)?.map(Arc::from);
    let replica = format!(
        "{}:{}:{}",
        crate::audit::sink::syslog::hostname(),
        std::process::id(),
        &crate::auth::secret::random_token()[..8]
    );
    let ledger = Arc::new(ledger);
    let themes = crate::theme::Themes::new(&config.theme, store.clone(), clock.clone())?;
    themes.load_now().map_err(|e| StartError::Config(format!("the stored theme: {e}")))?;
    Ok(AppState {
        audit_log: crate::audit::log::AuditLog::new(store.clone(), clock.clone(), ledger.clone()),
        accounts: crate::auth::accounts::Accounts::new(store.clone(), clock.clone(), &config),
        models: crate::catalog::models::Models::new(store.clone(), clock.clone(), catalog.clone()),
        providers: crate::catalog::provider_admin::Providers::new(
            store.clone(),
            clock.clone(),
            remotes.clone(),
            egress.clone(),
        ),
        sso: crate::auth::sso::Sso::new(
            store.clone(),
            clock.clone(),
            directory.clone(),
            config.ldap.default_role.as_deref().and_then(|r| r.parse().ok()),
        ),
        keys: crate::auth::keys::Keys::new(store.clone(), clock.clone()),
        usage: crate::usage::Usage::new(store.clone(), clock.clone(), catalog.clone(), config.usage.clone()),
        assistants: crate::assistants::Assistants::new(store.clone(), clock.clone(), catalog.clone()),
        library: crate::knowledge::Library::new(
            store.clone(),
            clock.clone(),
            &config.knowledge,
            Some(knowledge.clone()),
        ),
        duty: Arc::new(Duty::new(replica)),
        started_at: clock.now(),
        metrics_token,
        generations: Arc::new(generations),
        uploads: Arc::new(uploads),
        upload_memory: Arc::new(upload_memory),
        proxies: Arc::new(proxies),
        noise: Default::default(),
        knowledge,
        remotes,
        config: Arc::new(config),
        store,
        clock,
        themes,
        metrics: Arc::new(Metrics::default()),
        catalog,
        turns: Default::default(),
        audit: ledger,
        directory,
        oidc: Arc::new(oidc),
        egress,
    })
}

/// Every destination the config names must be one the egress policy allows.
fn check_egress(config: &Config) -> Result<(), StartError> {
    let egress = crate::egress::Egress::new(&config.egress);
    let mut targets: Vec<(String, String)> = config
        .oidc
        .providers
        .iter()
        .map(|p| (format!("oidc provider {}", p.name), p.issuer.clone()))
        .collect();
    if config.ldap.enabled {
        targets.push(("ldap.url".into(), config.ldap.url.clone()));
    }
    for sink in &config.audit.sinks {
        if let Some(address) = &sink.address {
            targets.push((format!("audit sink {}", sink.name), format!("tcp://{address}")));
        }
    }
    for (what, url) in targets {
        egress.permits_url(&what, &url).map_err(StartError::Egress)?;
    }
    Ok(())
}

fn tls_config(config: &Config) -> Result<Option<rustls::ServerConfig>, StartError> {
    let (Some(cert), Some(key)) = (&config.tls.cert, &config.tls.key) else { return Ok(None) };
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| StartError::Tls(format!("tls.cert {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(StartError::Tls(format!("tls.cert {} holds no certificate", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| StartError::Tls(format!("tls.key {}: {e}", key.display())))?;
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| StartError::Tls(e.to_string()))?;
    Ok(Some(server))
}

/// Runs the server until SIGINT/SIGTERM.
pub fn run(config: Config) -> Result<(), StartError> {
    init_logging(&config);
    let started = std::time::Instant::now();
    let tls = tls_config(&config)?;
    let listen = config.server.listen.clone();
    let workers = config.server.workers;
    let state = open_state(config, Arc::new(SystemClock))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    actix_web::rt::System::new().block_on(async move {
        let app_state = state.clone();
        // Streamed answers are many small writes: without TCP_NODELAY, Nagle holds each one
        // back until the client's delayed ACK (40 ms on Linux).
        let mut server =
            actix_web::HttpServer::new(move || crate::build_app(app_state.clone())).tcp_nodelay(true);
        if workers > 0 {
            server = server.workers(workers);
        }
        server = match tls {
            Some(tls) => server.bind_rustls_0_23(&listen, tls),
            None => server.bind(&listen),
        }
        .map_err(|e| StartError::Bind(listen.clone(), e))?;
        let addrs: Vec<String> = server.addrs().iter().map(|a| format!("{scheme}://{a}")).collect();
        tracing::info!(
            listen = %addrs.join(", "),
            database = state.store.backend().name(),
            startup_ms = started.elapsed().as_millis() as u64,
            "ayush is ready"
        );
        crate::service_manager::ready(&format!("serving {}", addrs.join(", ")));
        actix_web::rt::spawn(hold_duty(state.clone()));
        actix_web::rt::spawn(housekeeping(state.clone()));
        if state.config.backup.dir.is_some() {
            actix_web::rt::spawn(scheduled_backups(state.clone()));
        }
        actix_web::rt::spawn(keep_audit_log(state.clone()));
        state.themes.follow();
        crate::knowledge::start_workers(&state.workshop());
        let forwarder = crate::audit::sink::Forwarder {
            store: state.store.clone(),
            clock: state.clock.clone(),
            egress: Arc::new(state.egress.clone()),
            ledger: state.audit.clone(),
            replica: state.duty.replica.clone(),
        };
        crate::audit::sink::start(&state.config.audit.sinks, forwarder);
        if state.directory.is_some() {
            actix_web::rt::spawn(sync_directory(state.clone()));
        }
        let served = server.run().await.map_err(StartError::Run);
        crate::service_manager::stopping();
        // The last word of every run: a signed checkpoint of where the log stands.
        let ledger = state.audit.clone();
        let now = state.clock.now();
        let closed = state
            .store
            .run(move |c| {
                ledger.refresh_anchor(c, now);
                ledger.checkpoint(c, now, "shutdown")
            })
            .await;
        let duty = state.duty.clone();
        if let Err(e) = state.store.run(move |c| Ok(duty.give_up(c)?)).await {
            tracing::warn!(error = %e, "cannot hand the installation-wide work to another replica");
        }
        if let Err(e) = closed {
            tracing::error!(error = %e, "cannot sign the shutdown checkpoint of the audit log");
        }
        served
    })
}

/// Refreshes directory accounts every `ldap.sync_interval_mins`.
async fn sync_directory(state: AppState) {
    let mut tick =
        tokio::time::interval(Duration::from_secs(state.config.ldap.sync_interval_mins.max(1) * 60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; sign-ins already apply the mappings
    loop {
        tick.tick().await;
        if !state.duty.mine() {
            continue; // another replica syncs
        }
        if state.directory.is_none() {
            return;
        }
        match state.sso.sync(false).await {
            Ok(report) => tracing::info!(
                checked = report.checked,
                changed = report.changed.len(),
                skipped = report.skipped.len(),
                "directory sync"
            ),
            Err(e) => tracing::warn!(error = %e, "directory sync failed"),
        }
    }
}

/// Holds (or waits for) the lease on the installation-wide work; see [`Duty`].
async fn hold_duty(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(Duty::RENEW_SECS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let duty = state.duty.clone();
        let now = state.clock.now();
        if let Err(e) = state.store.run(move |c| Ok(duty.renew(c, now)?)).await {
            state.duty.lost();
            tracing::warn!(error = %e, "cannot renew the lease on the installation-wide work");
        }
    }
}

/// Keeps the audit log's witnesses current: this replica's head file every second; and, on the
/// replica that holds the duty, checkpoints, a full verification and retention when due.
async fn keep_audit_log(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ledger = state.audit.clone();
        let now = state.clock.now();
        let duty = state.duty.mine();
        if let Err(e) = state.store.run(move |c| ledger.keep(c, now, duty)).await {
            tracing::warn!(error = %e, "audit log housekeeping failed");
        }
    }
}

/// Every minute: the summary of the sign-in noise this replica counted but did not record. On
/// the replica that holds the duty, every five minutes: expired sessions and old sign-in
/// failures dropped, past rate windows and lapsed generation slots swept, and each finished
/// hour's quota refusals summarised (one audit event per person); every hour: accounts of OIDC providers that have not signed in for
/// `oidc.inactive_days` disabled, and usage records past `usage.retention_days` deleted.
async fn housekeeping(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut minutes: u64 = 0;
    loop {
        tick.tick().await;
        let now = state.clock.now();
        if let Some(summary) = state.noise.flush(now)
            && let Err(e) = state.store.run(move |c| summary.record(c, now)).await
        {
            tracing::warn!(error = %e, "cannot record the sign-in noise summary");
        }
        let minute = minutes;
        minutes += 1;
        if !state.duty.mine() {
            continue;
        }
        if minute.is_multiple_of(5) {
            let cfg = state.config.auth.clone();
            let result = state
                .store
                .run(move |c| Ok((sessions::purge_expired(c, now)?, throttle::purge(c, now, &cfg)?)))
                .await;
            match result {
                Ok((s, f)) if s + f > 0 => tracing::debug!(sessions = s, failures = f, "housekeeping"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
            }
            let quotas = state.store.run(move |c| {
                crate::usage::quotas::sweep(c, now)?;
                crate::usage::quotas::summarize_refusals(c, now)
            });
            match quotas.await {
                Ok(0) => {}
                Ok(n) => tracing::info!(people = n, "quota refusals summarised in the audit log"),
                Err(e) => tracing::warn!(error = %e, "cannot summarise quota refusals"),
            }
        }
        if minute.is_multiple_of(60) {
            disable_inactive_sso(&state, now).await;
            let keep_days = state.config.usage.retention_days;
            match state.store.run(move |c| crate::usage::prune(c, now, keep_days)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(records = n, keep_days, "old usage records deleted"),
                Err(e) => tracing::warn!(error = %e, "cannot delete old usage records"),
            }
        }
    }
}

/// Every minute, on the replica that holds the duty: a backup, if one is due (`[backup]`).
async fn scheduled_backups(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !state.duty.mine() {
            continue;
        }
        let (s, now) = (state.clone(), state.clock.now());
        let taken = tokio::task::spawn_blocking(move || {
            crate::backup::schedule::run_if_due(&s.config, &s.store, now)
        })
        .await;
        match taken {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the scheduled backup failed"),
            Err(e) => tracing::error!(error = %e, "the scheduled backup stopped"),
        }
    }
}

/// Disables OIDC accounts not seen at sign-in for `oidc.inactive_days` (0: never).
pub async fn disable_inactive_sso(state: &AppState, now: i64) {
    let days = state.config.oidc.inactive_days;
    if days == 0 {
        return;
    }
    let cutoff = now - i64::try_from(days).unwrap_or(i64::MAX / 86_400) * 86_400;
    let system = crate::audit::Actor::system("inactivity");
    match state.store.run(move |c| crate::auth::users::disable_inactive_sso(c, now, &system, cutoff)).await {
        Ok(names) if !names.is_empty() => {
            tracing::info!(accounts = ?names, days, "disabled OIDC accounts that did not sign in")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot disable inactive OIDC accounts"),
    }
}
