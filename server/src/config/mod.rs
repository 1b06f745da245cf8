//! `Config`: the shipped TOML file, overridden by `AYUSH_*` environment variables, overridden by
//! command-line flags. Every key is documented in `packaging/ayush.toml`, which a test parses.

mod audit;
mod sso;

pub use audit::{AuditConfig, SinkConfig, SinkKind};
pub use sso::{LdapConfig, LdapPreset, OidcConfig, OidcProviderConfig};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where `ayush` looks for its config when `--config` is not given, in order.
pub const DEFAULT_CONFIG_PATHS: [&str; 2] = ["/etc/ayush/ayush.toml", "ayush.toml"];

/// Environment variables that name a key directly, besides the generic `AYUSH_SECTION__KEY`.
const ENV_ALIASES: [(&str, &str); 3] = [
    ("AYUSH_LISTEN", "server.listen"),
    ("AYUSH_DATA_DIR", "server.data_dir"),
    ("AYUSH_DATABASE_URL", "database.url"),
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub theme: ThemeConfig,
    pub log: LogConfig,
    pub audit: AuditConfig,
    pub ldap: LdapConfig,
    pub oidc: OidcConfig,
    pub egress: EgressConfig,
    pub knowledge: KnowledgeConfig,
    pub chat: ChatConfig,
    pub usage: UsageConfig,
    pub models: ModelsConfig,
    pub transcription: TranscriptionConfig,
    pub speech: SpeechConfig,
    pub backup: BackupConfig,
}

/// The chat's Read aloud: which provider speech model speaks answers, in which voice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpeechConfig {
    /// The speech model (`provider/model`) Read aloud uses; empty: the first one the person
    /// may use. Without any, answers have no Read aloud button.
    pub read_aloud_model: String,
    /// The voice it speaks in: an OpenAI voice name (alloy, nova, …) or an ElevenLabs voice id.
    pub read_aloud_voice: String,
}

impl Default for SpeechConfig {
    fn default() -> Self {
        SpeechConfig { read_aloud_model: String::new(), read_aloud_voice: "alloy".into() }
    }
}

/// Speech to text with local Whisper models (`/v1/audio/transcriptions`, the microphone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TranscriptionConfig {
    /// The largest audio file one may send, in MiB (OpenAI's limit is 25).
    pub max_file_mib: u64,
    /// The longest audio transcribed at once, in minutes; a longer file is refused before it
    /// is decoded whole.
    pub max_audio_minutes: u64,
}

impl Default for TranscriptionConfig {
    fn default() -> Self {
        TranscriptionConfig { max_file_mib: 25, max_audio_minutes: 30 }
    }
}

/// Scheduled backups (`ayushctl backup create` on a timer, by the replica that holds the duty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Where scheduled backups go; empty: none are taken.
    pub dir: Option<PathBuf>,
    pub interval_hours: u64,
    /// Scheduled backups kept in `dir`; older ones are deleted.
    pub keep: usize,
    /// A file holding the passphrase that seals the keys into each backup; unset: keys left out.
    pub passphrase_file: Option<PathBuf>,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig { dir: None, interval_hours: 24, keep: 7, passphrase_file: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    pub workers: usize,
    /// Reverse proxies (addresses or networks) whose `X-Forwarded-For`, `X-Forwarded-Host` and
    /// `X-Forwarded-Proto` are believed.
    pub trusted_proxies: Vec<String>,
    /// Replaced by `trusted_proxies`; still read so an old config is told what to change.
    #[serde(skip_serializing)]
    pub trust_forwarded_for: Option<bool>,
    /// A token Prometheus must send (`Authorization: Bearer …`) to read `/metrics`; empty: open.
    pub metrics_token: String,
    pub metrics_token_file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("data"),
            workers: 0,
            trusted_proxies: Vec::new(),
            trust_forwarded_for: None,
            metrics_token: String::new(),
            metrics_token_file: None,
        }
    }
}

impl ServerConfig {
    /// The `/metrics` scrape token, from the file when one is named.
    pub fn metrics_token(&self) -> Result<Option<String>, String> {
        let token = match &self.metrics_token_file {
            Some(path) => std::fs::read_to_string(path)
                .map(|s| s.trim().to_string())
                .map_err(|e| format!("server.metrics_token_file {}: {e}", path.display()))?,
            None => self.metrics_token.clone(),
        };
        Ok(Some(token).filter(|t| !t.is_empty()))
    }
}

/// Chat turns and `/v1` completions: what one request may ask for, and how many one person may
/// have running at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatConfig {
    /// The most tokens one answer may be asked for (`max_tokens`); a local model's context
    /// window bounds it too.
    pub max_tokens_limit: usize,
    /// Answers one person may have generating at once, over the web chat and `/v1` together.
    pub max_concurrent_per_user: usize,
    /// How long a message waits for the answer before it in the same conversation, in seconds.
    pub turn_wait_secs: u64,
    /// Whether a model writes each chat's title after its first answer (otherwise the title is
    /// the first line of the first message).
    pub generate_titles: bool,
    /// The model that writes titles (a small, fast one); empty: the chat's own model.
    pub title_model: String,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            max_tokens_limit: 4096,
            max_concurrent_per_user: 2,
            turn_wait_secs: 30,
            generate_titles: true,
            title_model: String::new(),
        }
    }
}

/// The usage records every answer leaves, their cost, and quotas (see docs/admin/usage.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsageConfig {
    /// Days a usage record is kept; 0 keeps them all.
    pub retention_days: u64,
    /// The currency prices and spending caps are in, as reports and pages name it.
    pub currency: String,
    /// Whether admins answer without regard to quotas (theirs and their groups').
    pub exempt_admins: bool,
}

impl Default for UsageConfig {
    fn default() -> Self {
        UsageConfig { retention_days: 0, currency: "USD".into(), exempt_admins: false }
    }
}

/// How each local chat model serves many people at once (see docs/admin/models.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Answers one model generates together, in one pass over its weights per token; 0: four
    /// per CPU core, between 4 and 64.
    pub max_sequences: usize,
    /// Requests that may wait for a place beyond those; one more is answered 429.
    pub queue: usize,
    /// Memory for each model's KV caches, in MiB, those of answers being written and those kept
    /// for the next turn of recent conversations; 0: an eighth of the machine's memory, at most
    /// 4096.
    pub kv_cache_mib: u64,
    /// Prompt tokens read per step, shared among new requests, so a long prompt is read in
    /// pieces between the tokens of answers already streaming.
    pub prefill_chunk: usize,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig { max_sequences: 0, queue: 32, kv_cache_mib: 0, prefill_chunk: 256 }
    }
}

impl ModelsConfig {
    /// The engine's limits: these settings, with the machine's defaults where they say 0.
    pub fn limits(&self) -> ayush_models::EngineLimits {
        let machine = ayush_models::EngineLimits::for_machine();
        ayush_models::EngineLimits {
            max_sequences: if self.max_sequences == 0 { machine.max_sequences } else { self.max_sequences },
            queue: self.queue,
            kv_cache_bytes: match self.kv_cache_mib {
                0 => machine.kv_cache_bytes,
                mib => usize::try_from(mib << 20).unwrap_or(usize::MAX),
            },
            prefill_chunk: self.prefill_chunk,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub url: String,
    pub pool_size: u32,
    pub ca_file: Option<PathBuf>,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig { url: String::new(), pool_size: 8, ca_file: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub password_min_length: usize,
    pub session_idle_timeout_mins: u64,
    pub session_absolute_timeout_mins: u64,
    pub lockout_max_failures: u32,
    pub lockout_window_mins: u64,
    pub cookie_secure: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            password_min_length: 12,
            session_idle_timeout_mins: 480,
            session_absolute_timeout_mins: 1440,
            lockout_max_failures: 10,
            lockout_window_mins: 10,
            cookie_secure: false,
        }
    }
}

/// Where Ayush may connect out to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EgressConfig {
    pub airgap: bool,
    pub allow_hosts: Vec<String>,
}

impl Default for EgressConfig {
    fn default() -> Self {
        EgressConfig { airgap: true, allow_hosts: Vec::new() }
    }
}

/// Document collections: the full-text index and what one file may be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KnowledgeConfig {
    /// The language of the index's stemmer and stop words.
    pub language: String,
    /// The largest file one may ingest, in MiB.
    pub max_file_mib: u64,
    /// Files extracted and stored at once, per replica.
    pub ingest_workers: usize,
    /// The embedding model for meaning-based retrieval; empty: the first one installed.
    pub embedding_model: String,
    /// A sentence-transformers export the install ships, imported at the first start that finds
    /// no embedding model; empty: none.
    pub bundled_embedding_model: String,
    /// The weight of meaning against words in hybrid ranking (0: words only, 1: meaning only).
    pub vector_weight: f32,
    /// At most this many passages of one document among a search's results (0: no cap), so
    /// one long page cannot fill them all. Chat sources take up to two of a document.
    pub passages_per_document: usize,
    /// Uploads one person may be sending at once.
    pub max_concurrent_uploads_per_user: usize,
    /// Memory all uploads being received may hold at once, in MiB, per replica.
    pub upload_memory_mib: u64,
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        KnowledgeConfig {
            language: "english".into(),
            max_file_mib: 64,
            ingest_workers: 2,
            embedding_model: String::new(),
            bundled_embedding_model: String::new(),
            vector_weight: 0.5,
            passages_per_document: 1,
            max_concurrent_uploads_per_user: 2,
            upload_memory_mib: 256,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThemeConfig {
    pub product_name: String,
    pub primary_color: String,
    pub accent_color: String,
    pub logo_file: Option<PathBuf>,
}

impl Default for ThemeConfig {
    fn default() -> Self {
        ThemeConfig {
            product_name: "Ayush".into(),
            primary_color: "#3b5bdb".into(),
            accent_color: "#0ca678".into(),
            logo_file: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into(), format: LogFormat::Text }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// Command-line values that win over the file and the environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// The config file to read: the one named, else the first default path that exists.
    pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
        match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => DEFAULT_CONFIG_PATHS.iter().map(PathBuf::from).find(|p| p.is_file()),
        }
    }

    /// Loads file < environment < flags, then validates.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let (mut value, origin) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
                (parse_table(&text, &path.display().to_string())?, path.display().to_string())
            }
            None => (toml::Table::new(), "(built-in defaults)".to_string()),
        };
        apply_env(&mut value, env)?;
        let mut config: Config = Config::deserialize(toml::Value::Table(value))
            .map_err(|e| ConfigError::Parse { path: origin, message: e.message().to_string() })?;
        if let Some(listen) = &overrides.listen {
            config.server.listen = listen.clone();
        }
        if let Some(dir) = &overrides.data_dir {
            config.server.data_dir = dir.clone();
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad(format!("server.listen = {:?} is not an address:port", self.server.listen));
        }
        if self.server.trust_forwarded_for.is_some() {
            return bad(
                "server.trust_forwarded_for is replaced by server.trusted_proxies: list the addresses \
                 or networks of your reverse proxies (e.g. [\"10.0.0.5\"]) and remove trust_forwarded_for"
                    .into(),
            );
        }
        crate::proxies::TrustedProxies::parse(&self.server.trusted_proxies).map_err(ConfigError::Invalid)?;
        if !self.server.metrics_token.is_empty() && self.server.metrics_token_file.is_some() {
            return bad("set server.metrics_token or server.metrics_token_file, not both".into());
        }
        let c = &self.chat;
        if !(1..=1_000_000).contains(&c.max_tokens_limit) {
            return bad("chat.max_tokens_limit must be between 1 and 1000000".into());
        }
        let currency = self.usage.currency.trim();
        if currency.is_empty() || currency.len() > 8 || !currency.chars().all(|c| c.is_ascii_alphanumeric()) {
            return bad(format!(
                "usage.currency = {:?} is not a currency code: use up to 8 letters, like USD or EUR",
                self.usage.currency
            ));
        }
        if !(1..=1000).contains(&c.max_concurrent_per_user) {
            return bad("chat.max_concurrent_per_user must be between 1 and 1000".into());
        }
        if !(1..=3600).contains(&c.turn_wait_secs) {
            return bad("chat.turn_wait_secs must be between 1 and 3600".into());
        }
        let m = &self.models;
        if m.max_sequences > 256 {
            return bad("models.max_sequences must be between 0 (automatic) and 256".into());
        }
        if m.queue > 10_000 {
            return bad("models.queue must be between 0 and 10000".into());
        }
        if m.kv_cache_mib > 1 << 20 {
            return bad("models.kv_cache_mib must be between 0 (automatic) and 1048576".into());
        }
        if !(16..=8192).contains(&m.prefill_chunk) {
            return bad("models.prefill_chunk must be between 16 and 8192".into());
        }
        if self.backup.interval_hours == 0 || self.backup.keep == 0 {
            return bad("backup.interval_hours and backup.keep must be at least 1".into());
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return bad("tls.cert and tls.key must be set together".into());
        }
        let url = &self.database.url;
        if !(url.is_empty()
            || url.starts_with("sqlite://")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return bad(
                "database.url must be empty (SQLite in the data dir), sqlite://PATH or postgres://…".into()
            );
        }
        if self.database.pool_size == 0 {
            return bad("database.pool_size must be at least 1".into());
        }
        let a = &self.auth;
        if a.password_min_length < 8 {
            return bad("auth.password_min_length must be at least 8".into());
        }
        if a.session_idle_timeout_mins == 0 || a.session_absolute_timeout_mins == 0 {
            return bad("auth.session_*_timeout_mins must be at least 1".into());
        }
        if a.lockout_max_failures == 0 || a.lockout_window_mins == 0 {
            return bad("auth.lockout_max_failures and auth.lockout_window_mins must be at least 1".into());
        }
        for (key, colour) in [
            ("theme.primary_color", &self.theme.primary_color),
            ("theme.accent_color", &self.theme.accent_color),
        ] {
            if !is_hex_colour(colour) {
                return bad(format!("{key} = {colour:?} is not a #rgb or #rrggbb colour"));
            }
        }
        if self.theme.product_name.trim().is_empty() || self.theme.product_name.len() > 60 {
            return bad("theme.product_name must be 1 to 60 characters".into());
        }
        self.audit.check().map_err(ConfigError::Invalid)?;
        if self.ldap.enabled {
            self.ldap.check().map_err(ConfigError::Invalid)?;
        }
        self.oidc.check().map_err(ConfigError::Invalid)?;
        if !KNOWLEDGE_LANGUAGES.contains(&self.knowledge.language.as_str()) {
            return bad(format!(
                "knowledge.language = {:?} is not one of: {}",
                self.knowledge.language,
                KNOWLEDGE_LANGUAGES.join(", ")
            ));
        }
        if !(1..=1024).contains(&self.knowledge.max_file_mib) {
            return bad("knowledge.max_file_mib must be between 1 and 1024".into());
        }
        if !(1..=1024).contains(&self.transcription.max_file_mib) {
            return bad("transcription.max_file_mib must be between 1 and 1024".into());
        }
        if !(1..=600).contains(&self.transcription.max_audio_minutes) {
            return bad("transcription.max_audio_minutes must be between 1 and 600".into());
        }
        let voice = self.speech.read_aloud_voice.trim();
        if voice.is_empty() || voice.len() > 128 {
            return bad("speech.read_aloud_voice must name a voice (1 to 128 characters)".into());
        }
        let model = self.speech.read_aloud_model.trim();
        if !model.is_empty() && !model.contains('/') {
            return bad(format!(
                "speech.read_aloud_model {model:?} must be a provider's speech model, written provider/model"
            ));
        }
        if !(1..=32).contains(&self.knowledge.ingest_workers) {
            return bad("knowledge.ingest_workers must be between 1 and 32".into());
        }
        if !(0.0..=1.0).contains(&self.knowledge.vector_weight) {
            return bad("knowledge.vector_weight must be between 0 and 1".into());
        }
        if !(1..=100).contains(&self.knowledge.max_concurrent_uploads_per_user) {
            return bad("knowledge.max_concurrent_uploads_per_user must be between 1 and 100".into());
        }
        if self.knowledge.upload_memory_mib < self.knowledge.max_file_mib {
            return bad(format!(
                "knowledge.upload_memory_mib ({}) must be at least knowledge.max_file_mib ({}), or no file that size could be received",
                self.knowledge.upload_memory_mib, self.knowledge.max_file_mib
            ));
        }
        let bundled = &self.knowledge.bundled_embedding_model;
        if !bundled.is_empty() && !Path::new(bundled).is_absolute() {
            return bad(format!("knowledge.bundled_embedding_model = {bundled:?} must be an absolute path"));
        }
        if !self.knowledge.embedding_model.is_empty()
            && ayush_models::validate_name(&self.knowledge.embedding_model).is_err()
        {
            return bad(format!(
                "knowledge.embedding_model = {:?} is not a model name",
                self.knowledge.embedding_model
            ));
        }
        if self.log.level.parse::<tracing_subscriber::filter::EnvFilter>().is_err() {
            return bad(format!("log.level = {:?} is not a valid filter", self.log.level));
        }
        Ok(())
    }

    /// The effective config as TOML, with secrets masked, for `ayush config check`.
    pub fn to_masked_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database.url = mask_url_password(&shown.database.url);
        if !shown.server.metrics_token.is_empty() {
            shown.server.metrics_token = "***".into();
        }
        if !shown.ldap.bind_password.is_empty() {
            shown.ldap.bind_password = "***".into();
        }
        for p in &mut shown.oidc.providers {
            if !p.client_secret.is_empty() {
                p.client_secret = "***".into();
            }
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }

    /// Where the audit keys live: `audit.secrets_dir`, else `<data_dir>/secrets`.
    pub fn audit_secrets_dir(&self) -> PathBuf {
        self.audit.secrets_dir.clone().unwrap_or_else(|| self.server.data_dir.join("secrets"))
    }

    /// Where the audit head file and checkpoint copies live.
    pub fn audit_anchor_dir(&self) -> PathBuf {
        self.server.data_dir.join("audit")
    }

    pub fn is_tls(&self) -> bool {
        self.tls.cert.is_some()
    }

    /// Whether cookies are marked `Secure`: Ayush serves TLS, or a TLS proxy is in front of it.
    pub fn secure_cookies(&self) -> bool {
        self.is_tls() || self.auth.cookie_secure
    }
}

fn parse_table(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::Parse { path: origin.to_string(), message: e.message().to_string() })
}

/// `AYUSH_SECTION__KEY=value` sets `section.key`; the value is read as TOML when it parses
/// (numbers, booleans), else as a string. Unknown keys fail later, naming the variable's key.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (var, raw) in env {
        let path = if let Some((_, key)) = ENV_ALIASES.iter().find(|(name, _)| *name == var) {
            key.to_string()
        } else if let Some(rest) = var.strip_prefix("AYUSH_").filter(|r| r.contains("__")) {
            rest.to_ascii_lowercase().replace("__", ".")
        } else {
            continue;
        };
        let parts: Vec<&str> = path.split('.').collect();
        let [section, key] = parts.as_slice() else {
            return Err(ConfigError::Env { var, message: "expected AYUSH_SECTION__KEY".into() });
        };
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        let entry =
            table.entry(section.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section_table) = entry.as_table_mut() else {
            return Err(ConfigError::Env { var, message: format!("[{section}] is not a table") });
        };
        section_table.insert(key.to_string(), value);
    }
    Ok(())
}

/// A name that goes into URLs, file names and logs (sinks, providers): 1 to 40 letters,
/// digits, `-` or `_`.
fn is_short_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub fn mask_url_password(url: &str) -> String {
    // scheme://user:password@host -> scheme://user:***@host
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let Some((creds, host)) = rest.split_once('@') else { return url.to_string() };
    match creds.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// The languages `knowledge.language` may name: those the index has a stemmer and stop words
/// for (`knowledge::index::Language`).
pub const KNOWLEDGE_LANGUAGES: [&str; 18] = [
    "arabic",
    "danish",
    "dutch",
    "english",
    "finnish",
    "french",
    "german",
    "greek",
    "hungarian",
    "italian",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "spanish",
    "swedish",
    "tamil",
    "turkish",
];

/// `#rgb` or `#rrggbb`: what a theme colour may be, so it cannot break out of the CSS.
fn is_hex_colour(s: &str) -> bool {
    let Some(hex) = s.strip_prefix('#') else { return false };
    matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    #[test]
    fn colours() {
        use super::is_hex_colour;
        assert!(is_hex_colour("#fff") && is_hex_colour("#3b5bdb"));
        assert!(!is_hex_colour("red") && !is_hex_colour("#12345") && !is_hex_colour("#fff;}"));
    }

    use super::*;

    const SHIPPED: &str = include_str!("../../../packaging/ayush.toml");

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn shipped_config_parses_to_the_defaults_and_documents_every_key() {
        let parsed: Config = toml::from_str(SHIPPED).unwrap();
        assert_eq!(parsed, Config::default());
        let file: toml::Table = SHIPPED.parse().unwrap();
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        for (section, keys) in defaults {
            let keys = keys.as_table().unwrap();
            let in_file = file.get(&section).and_then(|v| v.as_table());
            for key in keys.keys() {
                let documented =
                    in_file.is_some_and(|t| t.contains_key(key)) || SHIPPED.contains(&format!("# {key} ="));
                assert!(documented, "{section}.{key} is not in packaging/ayush.toml");
            }
        }
    }

    /// docs/admin/configuration.md carries the shipped file verbatim; `AYUSH_BLESS=1` rewrites
    /// the part below the marker.
    #[test]
    fn configuration_reference_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/admin/configuration.md");
        let doc = std::fs::read_to_string(&path).unwrap_or_default();
        let marker = "<!-- generated: the shipped packaging/ayush.toml -->\n";
        let head = doc.split(marker).next().unwrap_or_default();
        let want = format!("{head}{marker}\n```toml\n{SHIPPED}```\n");
        if std::env::var("AYUSH_BLESS").is_ok_and(|v| v == "1") {
            std::fs::write(&path, &want).unwrap();
            return;
        }
        assert!(
            doc == want,
            "docs/admin/configuration.md is stale: run AYUSH_BLESS=1 cargo test -p ayush-server config"
        );
    }

    #[test]
    fn precedence_is_file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:1000\"\n[auth]\npassword_min_length = 20\n")
            .unwrap();
        let c = Config::load(Some(&path), env(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:1000");
        assert_eq!(c.auth.password_min_length, 20);
        let c = Config::load(
            Some(&path),
            env(&[("AYUSH_LISTEN", "127.0.0.1:2000"), ("AYUSH_AUTH__PASSWORD_MIN_LENGTH", "16")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:2000");
        assert_eq!(c.auth.password_min_length, 16);
        let flags = Overrides { listen: Some("127.0.0.1:3000".into()), data_dir: Some("/x".into()) };
        let c = Config::load(Some(&path), env(&[("AYUSH_LISTEN", "127.0.0.1:2000")]), &flags).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:3000");
        assert_eq!(c.server.data_dir, PathBuf::from("/x"));
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = toml::from_str::<Config>("[server]\nlisen = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
        let err = Config::load(None, env(&[("AYUSH_SERVER__LISEN", "x")]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn bad_values_are_refused_clearly() {
        let load = |k: &str, v: &str| Config::load(None, env(&[(k, v)]), &Overrides::default());
        assert!(load("AYUSH_LISTEN", "nope").unwrap_err().to_string().contains("server.listen"));
        assert!(
            load("AYUSH_THEME__PRIMARY_COLOR", "red;}").unwrap_err().to_string().contains("primary_color")
        );
        assert!(load("AYUSH_DATABASE_URL", "mysql://x").unwrap_err().to_string().contains("database.url"));
        assert!(load("AYUSH_AUTH__PASSWORD_MIN_LENGTH", "3").is_err());
        assert!(load("AYUSH_AUTH__PASSWORD_MIN_LENGTH", "\"twelve\"").is_err());
    }

    #[test]
    fn audit_sinks_are_checked() {
        let parse = |toml: &str| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("a.toml");
            std::fs::write(&path, toml).unwrap();
            Config::load(Some(&path), env(&[]), &Overrides::default()).map_err(|e| e.to_string())
        };
        let ok = parse(
            "[[audit.sinks]]\nname = \"siem\"\nkind = \"syslog_tls\"\naddress = \"siem.example.com:6514\"\n\
             [[audit.sinks]]\nname = \"archive\"\nkind = \"file\"\npath = \"/var/log/a.jsonl\"\n",
        )
        .unwrap();
        assert_eq!(ok.audit.sinks.len(), 2);
        assert_eq!(ok.audit.sinks[0].max_backlog, 1_000_000);
        for (toml, says) in [
            ("name = \"s\"\nkind = \"syslog_tcp\"\naddress = \"siem\"", "host:port"),
            ("name = \"s\"\nkind = \"file\"", "takes path"),
            ("name = \"bad name\"\nkind = \"file\"\npath = \"/x\"", "letters"),
            (
                "name = \"s\"\nkind = \"syslog_tcp\"\naddress = \"h:514\"\nca_file = \"/ca\"",
                "to kind = \"syslog_tls\" only",
            ),
            ("name = \"s\"\nkind = \"kafka\"", "kafka"),
        ] {
            let err = parse(&format!("[[audit.sinks]]\n{toml}\n")).unwrap_err();
            assert!(err.contains(says), "{toml}: {err}");
        }
        let twice = "[[audit.sinks]]\nname = \"s\"\nkind = \"file\"\npath = \"/a\"\n";
        assert!(parse(&format!("{twice}{twice}")).unwrap_err().contains("twice"));
    }

    #[test]
    fn masks_database_password() {
        assert_eq!(
            mask_url_password("postgres://ayush:s3cret@db:5432/ayush"),
            "postgres://ayush:***@db:5432/ayush"
        );
        let c =
            Config::load(None, env(&[("AYUSH_DATABASE_URL", "postgres://a:pw@h/d")]), &Overrides::default())
                .unwrap();
        assert!(!c.to_masked_toml().contains("pw@"));
    }
}
