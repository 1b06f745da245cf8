use crate::catalog::Catalog;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::theme::Themes;
use std::sync::Arc;

impl AppState {
    /// What the knowledge workers, and the handlers that queue files and wait on them, need.
    pub fn workshop(&self) -> crate::knowledge::Workshop {
        crate::knowledge::Workshop {
            store: self.store.clone(),
            clock: self.clock.clone(),
            knowledge: self.knowledge.clone(),
            catalog: self.catalog.clone(),
            config: self.config.clone(),
            replica: self.duty.replica.clone(),
        }
    }

    /// What answering needs: the web chat's turns and `/v1` go through it.
    pub fn chat(&self) -> crate::chat::Chat {
        crate::chat::Chat {
            store: self.store.clone(),
            clock: self.clock.clone(),
            config: self.config.clone(),
            catalog: self.catalog.clone(),
            remotes: self.remotes.clone(),
            knowledge: self.knowledge.clone(),
            audit: self.audit.clone(),
            turns: self.turns.clone(),
            generations: self.generations.clone(),
            usage: self.usage.clone(),
        }
    }

    /// How sign-ins are checked here.
    pub fn authority(&self) -> crate::auth::login::Authority<'_> {
        crate::auth::login::Authority {
            store: &self.store,
            clock: &self.clock,
            cfg: &self.config.auth,
            directory: self.directory.as_deref(),
            // "none" (or anything that is not a role) grants nothing without a mapping.
            default_role: self.config.ldap.default_role.as_deref().and_then(|r| r.parse().ok()),
        }
    }
}

/// Everything a request handler may use, passed explicitly (no global singletons).
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    /// People, service accounts and groups.
    pub accounts: crate::auth::accounts::Accounts,
    /// What admins do to the model catalog.
    pub models: crate::catalog::models::Models,
    /// The remote providers admins connect.
    pub providers: crate::catalog::provider_admin::Providers,
    /// Directory group mappings and the directory sync.
    pub sso: crate::auth::sso::Sso,
    /// API keys.
    pub keys: crate::auth::keys::Keys,
    /// Usage reports.
    pub usage: crate::usage::Usage,
    /// The assistants (presets) admins offer.
    pub assistants: crate::assistants::Assistants,
    pub clock: SharedClock,
    /// When this process started serving (unix seconds), for the status page's uptime.
    pub started_at: i64,
    pub themes: Themes,
    pub metrics: Arc<Metrics>,
    pub catalog: Arc<Catalog>,
    pub turns: Arc<crate::limits::TurnLocks>,
    /// How many answers each person has generating.
    pub generations: Arc<crate::limits::PerPerson>,
    /// How many files each person is sending.
    pub uploads: Arc<crate::limits::PerPerson>,
    /// The memory all uploads being received share.
    pub upload_memory: Arc<crate::limits::UploadMemory>,
    pub audit: Arc<crate::audit::Ledger>,
    /// Reading, exporting, verifying and pruning the audit log, and holds on it.
    pub audit_log: crate::audit::log::AuditLog,
    /// The LDAP directory, when `[ldap]` is enabled.
    pub directory: Option<Arc<crate::auth::ldap::Directory>>,
    /// The OpenID Connect providers people may sign in with.
    pub oidc: Arc<crate::auth::oidc::Providers>,
    /// Where Ayush may connect out to.
    pub egress: crate::egress::Egress,
    /// Remote providers, connected on first use.
    pub remotes: Arc<crate::catalog::remote::Remotes>,
    /// The full-text index, the passage vectors and the ingestion workers' bells.
    pub knowledge: crate::knowledge::SharedKnowledge,
    /// Collections, their readers, documents and ingestion jobs.
    pub library: crate::knowledge::Library,
    /// Unauthenticated sign-in noise, counted and summarised.
    pub noise: Arc<crate::auth::noise::Noise>,
    /// What Prometheus must present to read `/metrics`, when set.
    pub metrics_token: Option<Arc<str>>,
    /// The reverse proxies whose forwarded headers are believed.
    pub proxies: Arc<crate::proxies::TrustedProxies>,
    /// This replica's name, and whether it does the installation-wide work now.
    pub duty: Arc<crate::store::lease::Duty>,
}
