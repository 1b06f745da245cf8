//! `ayushctl`: the IT admin's tool. `--local` works on the data directory directly (bootstrap
//! and recovery, server up or down); otherwise it talks to a running server with an admin API
//! token.

mod backend;
mod ingest;
mod local;
mod output;
mod remote;
mod theme;

use backend::Backend;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use output::Output;
use serde_json::{Value, json};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "ayushctl", version = ayush_server::build_info::VERSION, about = "Administer an Ayush server")]
struct Cli {
    #[command(flatten)]
    target: Target,
    /// How to print results.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Target {
    /// Work on the data directory directly instead of a running server.
    #[arg(long, global = true)]
    local: bool,
    /// Config file to read in --local mode (default: /etc/ayush/ayush.toml, else ./ayush.toml).
    #[arg(long, global = true, value_name = "FILE", requires = "local")]
    config: Option<PathBuf>,
    /// Data directory in --local mode (overrides the config).
    #[arg(long, global = true, value_name = "DIR", requires = "local")]
    data_dir: Option<PathBuf>,
    /// The server's URL.
    #[arg(
        long,
        global = true,
        env = "AYUSH_URL",
        hide_env_values = true,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// An admin API token (make one with `ayushctl --local keys create --user NAME`).
    #[arg(long, global = true, env = "AYUSH_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    token: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage groups and their members.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Manage API keys (for scripts, `ayushctl` remote mode and the /v1 API).
    #[command(subcommand, alias = "token")]
    Keys(TokenCommand),
    /// Back up a running installation, or restore one (database, keys, model manifests).
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Manage the models (GGUF files) the server runs.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Remote model providers (OpenAI-compatible, Anthropic, Gemini) and the models each offers.
    #[command(subcommand)]
    Providers(ProvidersCommand),
    /// Quotas and rate limits per user and per group.
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// The white-label theme: product name, colours, logo and favicon, the notice people
    /// accept after signing in, footer links and custom CSS. A change applies at once on every
    /// server, without a restart.
    #[command(subcommand)]
    Theme(ThemeCommand),
    /// Document collections: who reads them, and the files in them.
    #[command(subcommand)]
    Collections(CollectionsCommand),
    /// Assistants: a model with standing instructions and the collections it answers from
    /// ("HR assistant"), offered in the chat's model picker.
    #[command(subcommand)]
    Assistants(PresetsCommand),
    /// The full-text index over collections (rebuildable from the database).
    #[command(subcommand)]
    Index(IndexCommand),
    /// Single sign-on: map directory groups to Ayush roles and groups.
    #[command(subcommand)]
    Sso(SsoCommand),
    /// The LDAP directory behind directory accounts.
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// Read and verify the audit log (an auditor's API token, or --local).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// How much the models are used: tokens, requests, errors and timings, by user, group,
    /// model, provider or API key.
    #[command(subcommand)]
    Usage(UsageCommand),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (ayushctl.1 and one per subcommand) into a directory.
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    User,
    Admin,
    Auditor,
}

impl RoleArg {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleArg::User => "user",
            RoleArg::Admin => "admin",
            RoleArg::Auditor => "auditor",
        }
    }
}

#[derive(Args)]
struct PasswordSource {
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user.
    Create {
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        #[arg(long, default_value = "")]
        display_name: String,
        #[command(flatten)]
        password: PasswordSource,
        /// Create the account without a local password (it signs in through SSO, or gets one later).
        #[arg(long, conflicts_with = "password_stdin")]
        no_password: bool,
        /// The person's email (a provider's verified email may link to it, where allowed).
        #[arg(long)]
        email: Option<String>,
        /// A service account: a script's identity, with no password and no personal data. It
        /// uses API keys, which admins make (`ayushctl keys create --user NAME`).
        #[arg(long, conflicts_with_all = ["password_stdin", "no_password", "email"])]
        service: bool,
    },
    /// List users.
    List,
    /// Show one user and their groups.
    Show { name: String },
    /// Disable a user; their sessions and API tokens stop working at once.
    Disable { name: String },
    /// Enable a disabled user.
    Enable { name: String },
    /// Set a user's role.
    SetRole {
        name: String,
        #[arg(value_enum)]
        role: RoleArg,
    },
    /// Set a new password; the user's sessions end and their API keys are revoked.
    ResetPassword {
        name: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Link an OpenID Connect identity to an existing account: whoever signs in through
    /// PROVIDER as SUBJECT (the `sub` claim; refused sign-ins record it) is then this user.
    Link {
        name: String,
        /// The provider's name, as in [[oidc.providers]].
        #[arg(long)]
        provider: String,
        /// The person's subject at the provider.
        #[arg(long)]
        subject: String,
    },
    /// Take an account out of use, as when it left the directory: disabled, signed out, its API
    /// keys revoked and its groups left. Its chats, documents and audit trail stay.
    Deprovision { name: String },
}

#[derive(Subcommand)]
enum GroupCommand {
    /// Create a group.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List groups.
    List,
    /// Show a group and its members.
    Show { name: String },
    /// Delete a group (its members stay).
    Delete { name: String },
    /// Add a user to a group.
    AddMember { group: String, user: String },
    /// Remove a user from a group.
    RemoveMember { group: String, user: String },
}

/// Where a provider's API key comes from: never the command line, which other users can read.
#[derive(clap::Args)]
struct KeySource {
    /// Read the provider's API key from standard input.
    #[arg(long, conflicts_with = "api_key_file")]
    api_key_stdin: bool,
    /// Read the provider's API key from a file.
    #[arg(long, value_name = "FILE")]
    api_key_file: Option<PathBuf>,
}

impl KeySource {
    fn read(&self) -> Result<Option<String>, String> {
        let text = if self.api_key_stdin {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map_err(|e| format!("cannot read standard input: {e}"))?;
            line
        } else if let Some(path) = &self.api_key_file {
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
        } else {
            return Ok(None);
        };
        let key = text.trim().to_string();
        if key.is_empty() {
            return Err("the API key is empty".into());
        }
        Ok(Some(key))
    }
}

#[derive(Subcommand)]
enum CollectionsCommand {
    /// Make a collection. Shared (the default) is read by the members of its --group readers;
    /// --personal is read by its --owner alone.
    Create {
        name: String,
        /// A group whose members may read it (repeat for more).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// A personal collection, read by its owner alone.
        #[arg(long, requires = "owner", conflicts_with = "groups")]
        personal: bool,
        /// The user a personal collection belongs to.
        #[arg(long, value_name = "USER")]
        owner: Option<String>,
    },
    /// List collections with their readers and how much they hold.
    List,
    /// Let the members of a group read a shared collection.
    Grant { name: String, group: String },
    /// Stop a group from reading a shared collection.
    Revoke { name: String, group: String },
    /// Add files, or folders recursively, to a collection. Files the collection already holds
    /// unchanged are skipped, so re-running an interrupted ingest finishes it.
    Ingest {
        name: String,
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Say what would be added, replaced or skipped (and each file's format and passages),
        /// without sending anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// List the documents in a collection.
    Documents { name: String },
    /// Remove a collection and every document in it.
    Remove { name: String },
}

#[derive(Args)]
struct PresetFields {
    /// The model it chats with (a local model, or PROVIDER/MODEL).
    #[arg(long)]
    model: Option<String>,
    /// Its standing instructions.
    #[arg(long, conflicts_with = "system_prompt_file")]
    system_prompt: Option<String>,
    /// Its standing instructions, from a file.
    #[arg(long, value_name = "FILE")]
    system_prompt_file: Option<PathBuf>,
    #[arg(long)]
    description: Option<String>,
    /// A shared collection it answers from (repeat for more; given, the list replaces the old).
    #[arg(long = "collection", value_name = "NAME")]
    collections: Option<Vec<String>>,
}

impl PresetFields {
    fn body(self, name: Option<String>) -> Result<Value, String> {
        let system_prompt = match (self.system_prompt, self.system_prompt_file) {
            (Some(text), _) => Some(text),
            (None, Some(file)) => {
                Some(std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?)
            }
            (None, None) => None,
        };
        let mut body = serde_json::Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                body.insert(k.into(), v);
            }
        };
        put("name", name.map(Value::from));
        put("model", self.model.map(Value::from));
        put("system_prompt", system_prompt.map(Value::from));
        put("description", self.description.map(Value::from));
        put("collections", self.collections.map(|c| json!(c)));
        Ok(Value::Object(body))
    }
}

#[derive(Subcommand)]
enum PresetsCommand {
    /// List assistants.
    List,
    /// Make an assistant (--model is required).
    Create {
        name: String,
        #[command(flatten)]
        fields: PresetFields,
    },
    /// Change an assistant's model, instructions, description or collections.
    Set {
        name: String,
        #[command(flatten)]
        fields: PresetFields,
    },
    /// Remove an assistant; chats started with it go on with its model alone.
    Remove { name: String },
}

#[derive(Subcommand)]
enum UsageCommand {
    /// Tokens, requests, errors and timings over a span of time (the last 30 days by
    /// default), one line per user, group, model, provider or API key, most tokens first.
    Report {
        /// From this time on (inclusive): unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM, UTC.
        #[arg(long)]
        from: Option<String>,
        /// Before this time (exclusive), same forms.
        #[arg(long)]
        to: Option<String>,
        /// One line per user, group, model, provider or key.
        #[arg(long, value_enum, default_value_t = ByArg::User)]
        by: ByArg,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ByArg {
    User,
    Group,
    Model,
    Provider,
    Key,
}

impl ByArg {
    fn as_str(self) -> &'static str {
        match self {
            ByArg::User => "user",
            ByArg::Group => "group",
            ByArg::Model => "model",
            ByArg::Provider => "provider",
            ByArg::Key => "key",
        }
    }
}

#[derive(Subcommand)]
enum IndexCommand {
    /// Empty the full-text index and build it again from the database.
    Rebuild,
    /// How far the index and the embedding of passages have got.
    Status,
}

#[derive(Subcommand)]
enum ProvidersCommand {
    /// List providers (never their keys).
    List,
    /// Add a provider. Its models are offered to users as NAME/MODEL.
    Add {
        name: String,
        /// The wire format it speaks: openai (also vLLM, TGI, llama.cpp server, Ollama, LM Studio,
        /// another Ayush), anthropic or gemini for chat; elevenlabs for speech; bfl (Black
        /// Forest Labs' Flux) or ideogram for images.
        #[arg(long)]
        kind: String,
        /// The API's base URL (default: the vendor's own), e.g. https://gpu1.corp.example/v1 (plain http:// only to localhost).
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
        /// Chat models to offer, as the provider names them (comma-separated or repeated).
        #[arg(long = "model", value_name = "MODEL", value_delimiter = ',')]
        models: Vec<String>,
        /// Speech models to offer (/v1/audio/speech, Read aloud), e.g. tts-1 or eleven_multilingual_v2.
        #[arg(long = "speech-model", value_name = "MODEL", value_delimiter = ',')]
        speech_models: Vec<String>,
        /// Image models to offer (/v1/images/generations, images in the chat), e.g. gpt-image-1,
        /// flux-pro-1.1 or V_3.
        #[arg(long = "image-model", value_name = "MODEL", value_delimiter = ',')]
        image_models: Vec<String>,
        /// Seconds the provider may take to start answering, and between pieces of an answer.
        #[arg(long)]
        timeout_secs: Option<i64>,
        #[command(flatten)]
        key: KeySource,
    },
    /// Change a provider: its URL, its models (the list given replaces the old one), its key.
    Set {
        name: String,
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
        #[arg(long = "model", value_name = "MODEL", value_delimiter = ',')]
        models: Option<Vec<String>>,
        #[arg(long = "speech-model", value_name = "MODEL", value_delimiter = ',')]
        speech_models: Option<Vec<String>>,
        #[arg(long = "image-model", value_name = "MODEL", value_delimiter = ',')]
        image_models: Option<Vec<String>>,
        #[arg(long)]
        timeout_secs: Option<i64>,
        #[command(flatten)]
        key: KeySource,
        /// Remove the provider's API key.
        #[arg(long, conflicts_with_all = ["api_key_stdin", "api_key_file"])]
        remove_key: bool,
    },
    /// Remove a provider; its models disappear from the model list at once.
    Remove { name: String },
    /// Ask the provider for its models with the key Ayush holds: checks the URL, the egress
    /// policy and the key.
    Test { name: String },
    /// Set what a model costs, per million tokens (for a speech model, per million characters
    /// spoken) or per image, in the installation's currency (usage.currency); answers are
    /// costed at the price of their day. PROVIDER `local` gives a local model a notional price,
    /// for chargeback.
    Price {
        provider: String,
        /// The provider's own name for the model (or the local model's name).
        model: String,
        /// Per million prompt tokens, e.g. 2.50.
        #[arg(long, value_name = "AMOUNT", required_unless_present = "per_image")]
        input_per_mtok: Option<String>,
        /// Per million completion tokens, e.g. 10.
        #[arg(long, value_name = "AMOUNT", required_unless_present = "per_image")]
        output_per_mtok: Option<String>,
        /// Per image drawn, e.g. 0.04.
        #[arg(long, value_name = "AMOUNT")]
        per_image: Option<String>,
    },
    /// List the prices set.
    Prices,
    /// Remove a model's price: its answers cost nothing from now on.
    Unprice { provider: String, model: String },
}

#[derive(Subcommand)]
enum QuotaCommand {
    /// Set a user's or a group's quota for a pool of models; the limits given replace the ones
    /// it had (one left out is no limit). A user's own quota holds over their groups'; without
    /// one, the most generous of their groups' quotas holds, limit by limit.
    Set {
        #[command(flatten)]
        whose: QuotaWhose,
        /// Tokens (prompt and completion) per UTC day.
        #[arg(long, value_name = "N")]
        tokens_per_day: Option<i64>,
        /// Tokens per calendar month (UTC).
        #[arg(long, value_name = "N")]
        tokens_per_month: Option<i64>,
        #[arg(long, value_name = "N")]
        requests_per_minute: Option<i64>,
        /// Answers being written at once, across replicas.
        #[arg(long, value_name = "N")]
        concurrent: Option<i64>,
        /// Spending on remote models per calendar month, in the installation's currency.
        #[arg(long, value_name = "AMOUNT")]
        spend_per_month: Option<String>,
    },
    /// List every quota.
    List,
    /// Remove a user's or a group's quota for a pool.
    Remove {
        #[command(flatten)]
        whose: QuotaWhose,
    },
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run: the size of a variant costs nothing
enum ThemeCommand {
    /// Change the theme; what is not given stays as it is.
    Set {
        /// The name shown in page titles, on the sign-in page and as the owner of local models
        /// in /v1/models.
        #[arg(long, value_name = "NAME")]
        product_name: Option<String>,
        /// #rgb or #rrggbb, for links and buttons; checked for WCAG AA contrast.
        #[arg(long, value_name = "COLOUR")]
        primary_color: Option<String>,
        /// #rgb or #rrggbb, for charts and highlights; checked for WCAG AA contrast.
        #[arg(long, value_name = "COLOUR")]
        accent_color: Option<String>,
        /// auto (each person's system setting), light or dark.
        #[arg(long, value_name = "MODE", value_parser = ["auto", "light", "dark"])]
        mode: Option<String>,
        /// An SVG or PNG file of at most 512 KiB (an SVG with scripts, event handlers or
        /// references to other files is refused).
        #[arg(long, value_name = "FILE")]
        logo: Option<PathBuf>,
        /// An SVG or PNG file; without one, the logo serves.
        #[arg(long, value_name = "FILE")]
        favicon: Option<PathBuf>,
        /// The notice people accept after signing in, once per text ("" removes it).
        #[arg(long, value_name = "TEXT")]
        banner: Option<String>,
        /// A footer link as LABEL=URL; repeat for more. Replaces the links there were.
        #[arg(long = "footer-link", value_name = "LABEL=URL")]
        footer_links: Vec<String>,
        /// Remove every footer link.
        #[arg(long, conflicts_with = "footer_links")]
        no_footer_links: bool,
        /// A CSS file, loaded after the built-in stylesheet.
        #[arg(long, value_name = "FILE")]
        css: Option<PathBuf>,
        /// Go back to the configuration file's value (or to none) for a setting: product-name,
        /// primary-color, accent-color, mode, logo, favicon, banner, footer-links or css.
        #[arg(long, value_name = "SETTING")]
        reset: Vec<String>,
    },
    /// The theme in effect, and where each part comes from.
    Show,
    /// Write the theme as set here (with its images) as JSON, to FILE or standard output, for
    /// `theme import` on another installation.
    Export { file: Option<PathBuf> },
    /// Make the theme exactly the one a `theme export` wrote.
    Import { file: PathBuf },
}

#[derive(clap::Args)]
struct QuotaWhose {
    #[arg(long, value_name = "NAME", conflicts_with = "group", required_unless_present = "group")]
    user: Option<String>,
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// Which answers the quota counts: all, local (models on this server) or remote
    /// (providers').
    #[arg(long, default_value = "all")]
    pool: String,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Import a GGUF file (a chat model), a sentence-transformers export folder (an embedding
    /// model) or a CTranslate2 Whisper folder (a transcription model); folders --local only.
    /// Checks it, copies it into the models directory with its sha256.
    Import {
        file: PathBuf,
        /// The name people pick it by (default: the file or folder name without .gguf).
        #[arg(long)]
        name: Option<String>,
    },
    /// List the imported models.
    List,
    /// Re-hash a model and compare it with its manifest.
    Verify { name: String },
    /// Remove a model.
    Remove { name: String },
    /// Make a model the default for new conversations.
    SetDefault { name: String },
    /// Restrict a model to a group's members (a model no group is allowed is open to everyone).
    Allow {
        name: String,
        #[arg(long)]
        group: String,
    },
    /// Take a group's access to a model away (with no group left, the model is open to everyone).
    Disallow {
        name: String,
        #[arg(long)]
        group: String,
    },
}

#[derive(Subcommand)]
enum SsoCommand {
    /// Map a directory group (LDAP group name, OIDC groups claim) to an Ayush role, an Ayush
    /// group, or both; applied at each sign-in and directory sync.
    Map {
        directory_group: String,
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
        /// An Ayush group its members join (and leave when they leave it).
        #[arg(long)]
        group: Option<String>,
    },
    /// List the mappings.
    Mappings,
    /// Remove a mapping by id.
    Unmap { id: i64 },
    /// Check each configured OIDC provider (or one) step by step: discovery, issuer, keys,
    /// endpoints, and the redirect URI to register (--local).
    TestOidc {
        /// Only this provider.
        provider: Option<String>,
    },
    /// Check the [ldap] configuration step by step for one user (connect, TLS, bind, search,
    /// groups, the role that would result) without signing in (--local).
    TestLdap {
        user: String,
        /// Also try the user's password, read from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Refresh directory accounts now: groups and roles follow the mappings; accounts gone or
    /// disabled in the directory are disabled here, their sessions ended and tokens revoked.
    Sync {
        /// Only say what would change.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Prove the audit log complete and unmodified, or name the first bad event and what is
    /// wrong (modified, deleted, reordered, truncated). Exits 1 when the log is not intact.
    Verify {
        /// Start from a signed checkpoint exported earlier (a JSON file, or the last line of a
        /// checkpoints.jsonl) instead of the first event.
        #[arg(long, value_name = "FILE")]
        from_checkpoint: Option<PathBuf>,
    },
    /// Export the events the filters select, oldest first.
    Export {
        #[arg(long, value_enum, default_value_t = FormatArg::Jsonl)]
        format: FormatArg,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Print the latest events; with --follow, keep printing new ones as they are written.
    Tail {
        #[arg(short, long)]
        follow: bool,
        /// How many of the latest events to print first.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: i64,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Sign a checkpoint of the chain head now and print it (--local).
    Checkpoint,
    /// List the users under legal hold.
    Holds,
    /// Place a legal hold on a user: retention keeps their events and their conversations
    /// cannot be deleted until it is released.
    Hold {
        user: String,
        #[arg(long)]
        reason: String,
    },
    /// Release a user's legal hold.
    Release { user: String },
    /// Prune events older than the retention period now, behind a signed checkpoint (--local).
    Prune {
        /// Keep this many days instead of audit.retention_days.
        #[arg(long)]
        days: Option<u64>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Csv,
    Jsonl,
}

/// Which events: every filter given must match.
#[derive(Args)]
struct FilterArgs {
    /// From this time on: unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Before this time.
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Events by or about this user.
    #[arg(long)]
    user: Option<String>,
    /// Events done by this actor.
    #[arg(long)]
    actor: Option<String>,
    /// An action, or a family such as 'auth.*'.
    #[arg(long)]
    action: Option<String>,
    #[arg(long)]
    target_type: Option<String>,
    #[arg(long)]
    target_id: Option<String>,
    /// success, failure or denied.
    #[arg(long)]
    outcome: Option<String>,
    /// Free text to find in the details, actor, action, target or address.
    #[arg(long, value_name = "TEXT")]
    search: Option<String>,
}

impl FilterArgs {
    fn filter(self) -> ayush_server::audit::query::Filter {
        ayush_server::audit::query::Filter {
            from: self.from,
            to: self.to,
            user: self.user,
            actor: self.actor,
            action: self.action,
            target_type: self.target_type,
            target_id: self.target_id,
            outcome: self.outcome,
            q: self.search,
        }
    }
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Take a backup while the server runs: a consistent snapshot of the database, the keys
    /// sealed with a passphrase, the model manifests, and checksums of it all. The index is
    /// left out (a restore rebuilds it).
    Create {
        /// The file to write (it must not exist). (`--out`, as `audit export` has it: `--output`
        /// is the output format.)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Read the passphrase that seals the keys from the first line of standard input
        /// (otherwise it is asked for twice).
        #[arg(long)]
        passphrase_stdin: bool,
        /// Leave the keys out: a restore then needs the original secrets directory.
        #[arg(long, conflicts_with = "passphrase_stdin")]
        no_secrets: bool,
        /// Include the model files, not only their manifests (with --local only).
        #[arg(long)]
        with_models: bool,
    },
    /// Restore a backup into a stopped installation (--local): checks every checksum and the
    /// schema version first, sets aside what was there, rebuilds the index, and verifies the
    /// audit log before it reports success.
    Restore {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Read the passphrase from the first line of standard input.
        #[arg(long)]
        passphrase_stdin: bool,
    },
    /// Check a backup's checksums and show its manifest.
    Inspect {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API key for a user; the key is printed once.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "ayushctl")]
        name: String,
        /// Days until the token expires (default: never).
        #[arg(long)]
        expires_days: Option<u32>,
    },
    /// List API keys.
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke an API key by id; it stops working at once.
    Revoke { id: i64 },
}

fn read_password(source: &PasswordSource, what: &str) -> Result<String, String> {
    read_secret(source.password_stdin, "--password-stdin", what)
}

fn read_secret(from_stdin: bool, flag: &str, what: &str) -> Result<String, String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(|e| format!("cannot read standard input: {e}"))?;
        let pw = line.trim_end_matches(['\n', '\r']).to_string();
        if pw.is_empty() {
            return Err(format!("no {} on standard input", what.to_lowercase()));
        }
        return Ok(pw);
    }
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "standard input is not a terminal: pass {flag} and pipe the {} in",
            what.to_lowercase()
        ));
    }
    let first = rpassword::prompt_password(format!("{what}: ")).map_err(|e| e.to_string())?;
    let again = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
    if first != again {
        return Err("the passwords do not match".into());
    }
    Ok(first)
}

fn run(cli: Cli) -> Result<(), String> {
    match &cli.command {
        Command::Completions { shell } => {
            ayush_server::cli_docs::print_completions(Cli::command(), *shell);
            return Ok(());
        }
        Command::Man { dir } => {
            let files = ayush_server::cli_docs::write_man_pages(Cli::command(), dir)?;
            println!("wrote {} man pages to {}", files.len(), dir.display());
            return Ok(());
        }
        Command::Backup(BackupCommand::Inspect { file }) => {
            let reader = ayush_server::backup::archive::Reader::open(file)?;
            return cli.output.object(&serde_json::to_value(&reader.manifest).map_err(|e| e.to_string())?);
        }
        Command::Backup(BackupCommand::Restore { file, passphrase_stdin }) => {
            let t = &cli.target;
            if !t.local {
                return Err("restore works on the stopped server's data directory: add --local".into());
            }
            let config = local::Local::config(t.config.clone(), t.data_dir.clone())?;
            let reader = ayush_server::backup::archive::Reader::open(file)?;
            let passphrase = match reader.manifest.secrets {
                true => Some(read_secret(*passphrase_stdin, "--passphrase-stdin", "Passphrase")?),
                false => None,
            };
            drop(reader);
            let now = ayush_server::clock::Clock::now(&ayush_server::clock::SystemClock);
            let actor = ayush_server::audit::Actor::local_cli();
            let restored = ayush_server::backup::restore(&config, file, passphrase.as_deref(), &actor, now)?;
            return cli.output.object(&serde_json::to_value(&restored).map_err(|e| e.to_string())?);
        }
        _ => {}
    }
    let t = cli.target;
    let backend: Box<dyn Backend> = if t.local {
        Box::new(local::Local::open(t.config, t.data_dir)?)
    } else {
        let token = t.token.ok_or("set AYUSH_TOKEN (or --token) to an admin API token, or use --local")?;
        Box::new(remote::Remote::new(&t.url, token)?)
    };
    let out = cli.output;
    match cli.command {
        Command::User(cmd) => match cmd {
            UserCommand::Create { name, role, display_name, password, no_password, email, service } => {
                let pw =
                    if no_password || service { None } else { Some(read_password(&password, "Password")?) };
                let kind = if service { "service" } else { "person" };
                let new = json!({"username": name, "role": role.as_str(), "display_name": display_name,
                    "password": pw, "email": email, "kind": kind});
                out.object(&backend.create_user(new)?)
            }
            UserCommand::List => out.list(&backend.list_users()?, output::USER_COLUMNS),
            UserCommand::Show { name } => out.object(&backend.show_user(&name)?),
            UserCommand::Disable { name } => out.object(&backend.set_disabled(&name, true)?),
            UserCommand::Enable { name } => out.object(&backend.set_disabled(&name, false)?),
            UserCommand::SetRole { name, role } => out.object(&backend.set_role(&name, role.as_str())?),
            UserCommand::ResetPassword { name, password } => {
                let pw = read_password(&password, "New password")?;
                backend.reset_password(&name, pw)?;
                out.done(&format!(
                    "password of {name} changed; their sessions were ended and their API keys revoked"
                ))
            }
            UserCommand::Link { name, provider, subject } => {
                out.object(&backend.link_user(&name, &provider, &subject)?)
            }
            UserCommand::Deprovision { name } => out.object(&backend.deprovision_user(&name)?),
        },
        Command::Group(cmd) => match cmd {
            GroupCommand::Create { name, description } => {
                out.object(&backend.create_group(&name, &description)?)
            }
            GroupCommand::List => out.list(&backend.list_groups()?, output::GROUP_COLUMNS),
            GroupCommand::Show { name } => out.object(&backend.show_group(&name)?),
            GroupCommand::Delete { name } => {
                backend.delete_group(&name)?;
                out.done(&format!("group {name} deleted"))
            }
            GroupCommand::AddMember { group, user } => {
                backend.add_member(&group, &user)?;
                out.done(&format!("{user} is a member of {group}"))
            }
            GroupCommand::RemoveMember { group, user } => {
                backend.remove_member(&group, &user)?;
                out.done(&format!("{user} removed from {group}"))
            }
        },
        Command::Keys(cmd) => match cmd {
            TokenCommand::Create { user, name, expires_days } => {
                out.object(&backend.create_key(&user, &name, expires_days)?)
            }
            TokenCommand::List { user } => {
                out.list(&backend.list_keys(user.as_deref())?, output::TOKEN_COLUMNS)
            }
            TokenCommand::Revoke { id } => {
                backend.revoke_key(id)?;
                out.done(&format!("key {id} revoked"))
            }
        },
        Command::Providers(cmd) => match cmd {
            ProvidersCommand::List => out.list(&backend.list_providers()?, output::PROVIDER_COLUMNS),
            ProvidersCommand::Add {
                name,
                kind,
                base_url,
                models,
                speech_models,
                image_models,
                timeout_secs,
                key,
            } => {
                let body = json!({
                    "name": name, "kind": kind, "base_url": base_url, "models": models,
                    "speech_models": speech_models, "image_models": image_models,
                    "timeout_secs": timeout_secs, "api_key": key.read()?,
                });
                out.object(&backend.add_provider(body)?)
            }
            ProvidersCommand::Set {
                name,
                base_url,
                models,
                speech_models,
                image_models,
                timeout_secs,
                key,
                remove_key,
            } => {
                let mut body = serde_json::Map::new();
                if let Some(u) = base_url {
                    body.insert("base_url".into(), json!(u));
                }
                for (field, list) in
                    [("models", models), ("speech_models", speech_models), ("image_models", image_models)]
                {
                    if let Some(m) = list {
                        body.insert(field.into(), json!(m));
                    }
                }
                if let Some(t) = timeout_secs {
                    body.insert("timeout_secs".into(), json!(t));
                }
                if remove_key {
                    body.insert("api_key".into(), json!(""));
                } else if let Some(k) = key.read()? {
                    body.insert("api_key".into(), json!(k));
                }
                if body.is_empty() {
                    return Err("nothing to change: give --base-url, --model, --speech-model, --image-model, --timeout-secs or a key".into());
                }
                out.object(&backend.change_provider(&name, Value::Object(body))?)
            }
            ProvidersCommand::Remove { name } => {
                backend.remove_provider(&name)?;
                out.done(&format!("provider {name} removed"))
            }
            ProvidersCommand::Test { name } => out.object(&backend.test_provider(&name)?),
            ProvidersCommand::Price { provider, model, input_per_mtok, output_per_mtok, per_image } => {
                let body = serde_json::json!({
                    "provider": provider, "model": model,
                    "input_per_mtok": input_per_mtok, "output_per_mtok": output_per_mtok, "per_image": per_image,
                });
                out.object(&backend.set_price(body)?)
            }
            ProvidersCommand::Prices => out.list(&backend.list_prices()?, output::PRICE_COLUMNS),
            ProvidersCommand::Unprice { provider, model } => {
                backend.remove_price(&provider, &model)?;
                out.done(&format!("{provider}/{model} has no price now"))
            }
        },
        Command::Quota(cmd) => match cmd {
            QuotaCommand::Set {
                whose,
                tokens_per_day,
                tokens_per_month,
                requests_per_minute,
                concurrent,
                spend_per_month,
            } => {
                let body = serde_json::json!({
                    "user": whose.user, "group": whose.group, "pool": whose.pool,
                    "tokens_per_day": tokens_per_day, "tokens_per_month": tokens_per_month,
                    "requests_per_minute": requests_per_minute, "concurrent": concurrent,
                    "spend_per_month": spend_per_month,
                });
                out.object(&backend.set_quota(body)?)
            }
            QuotaCommand::List => out.list(&backend.list_quotas()?, output::QUOTA_COLUMNS),
            QuotaCommand::Remove { whose } => {
                backend.remove_quota(whose.user.as_deref(), whose.group.as_deref(), &whose.pool)?;
                let who = whose.user.map_or_else(
                    || format!("group {}", whose.group.unwrap_or_default()),
                    |u| format!("user {u}"),
                );
                out.done(&format!("{who} has no {} quota now", whose.pool))
            }
        },
        Command::Theme(cmd) => theme::run(backend.as_ref(), out, cmd),
        Command::Models(cmd) => match cmd {
            ModelsCommand::List => out.list(&backend.list_models()?, output::MODEL_COLUMNS),
            ModelsCommand::Allow { name, group } => {
                backend.allow_model(&name, &group)?;
                out.done(&format!("{name} may be used by members of {group}"))
            }
            ModelsCommand::Disallow { name, group } => {
                let open = backend.disallow_model(&name, &group)?;
                match open {
                    true => out.done(&format!(
                        "{group} no longer has {name}; no group is left, so it is open to everyone"
                    )),
                    false => out.done(&format!("{group} no longer has {name}")),
                }
            }
            ModelsCommand::Import { file, name } => {
                out.object(&backend.import_model(&file, name.as_deref())?)
            }
            ModelsCommand::Verify { name } => match backend.verify_model(&name)? {
                true => out.done(&format!("{name} matches its manifest")),
                false => Err(format!("{name} does NOT match its manifest: the file changed since import")),
            },
            ModelsCommand::Remove { name } => {
                backend.remove_model(&name)?;
                out.done(&format!("model {name} removed"))
            }
            ModelsCommand::SetDefault { name } => {
                backend.set_default_model(&name)?;
                out.done(&format!("{name} is the default model"))
            }
        },
        Command::Audit(cmd) => audit_command(backend.as_ref(), out, cmd),
        Command::Backup(BackupCommand::Create { out: file, passphrase_stdin, no_secrets, with_models }) => {
            let passphrase = match no_secrets {
                true => None,
                false => Some(read_secret(passphrase_stdin, "--passphrase-stdin", "Passphrase")?),
            };
            out.object(&backend.backup_create(&file, passphrase, with_models)?)
        }
        Command::Collections(cmd) => match cmd {
            CollectionsCommand::Create { name, groups, description, personal, owner } => {
                let body = serde_json::json!({
                    "name": name, "description": description, "personal": personal,
                    "owner": owner, "readers": groups,
                });
                out.object(&backend.create_collection(body)?)
            }
            CollectionsCommand::List => out.list(&backend.list_collections()?, output::COLLECTION_COLUMNS),
            CollectionsCommand::Grant { name, group } => {
                backend.grant_collection(&name, &group)?;
                out.done(&format!("members of {group} may read {name}"))
            }
            CollectionsCommand::Revoke { name, group } => {
                backend.revoke_collection(&name, &group)?;
                out.done(&format!("members of {group} no longer read {name}"))
            }
            CollectionsCommand::Ingest { name, paths, dry_run } => {
                let summary = ingest::run(backend.as_ref(), &name, &paths, dry_run)?;
                let failed = summary["failed"].as_u64().unwrap_or(0);
                out.object(&summary)?;
                if failed > 0 {
                    return Err(format!("{failed} file(s) could not be added; see above"));
                }
                Ok(())
            }
            CollectionsCommand::Documents { name } => {
                out.list(&backend.list_documents(&name)?, output::DOCUMENT_COLUMNS)
            }
            CollectionsCommand::Remove { name } => {
                backend.remove_collection(&name)?;
                out.done(&format!("removed collection {name}"))
            }
        },
        Command::Usage(UsageCommand::Report { from, to, by }) => {
            let report = backend.usage_report(from.as_deref(), to.as_deref(), by.as_str())?;
            out.list(&report, output::USAGE_COLUMNS)
        }
        Command::Index(IndexCommand::Rebuild) => out.object(&backend.rebuild_index()?),
        Command::Index(IndexCommand::Status) => out.object(&backend.index_status()?),
        Command::Assistants(cmd) => match cmd {
            PresetsCommand::List => out.list(&backend.list_presets()?, output::PRESET_COLUMNS),
            PresetsCommand::Create { name, fields } => {
                out.object(&backend.create_preset(fields.body(Some(name))?)?)
            }
            PresetsCommand::Set { name, fields } => {
                out.object(&backend.change_preset(&name, fields.body(None)?)?)
            }
            PresetsCommand::Remove { name } => {
                backend.remove_preset(&name)?;
                out.done(&format!("removed assistant {name}"))
            }
        },
        Command::Sso(cmd) => match cmd {
            SsoCommand::Map { directory_group, role, group } => {
                if role.is_none() && group.is_none() {
                    return Err("give --role, --group or both".into());
                }
                out.object(&backend.add_mapping(
                    &directory_group,
                    role.map(RoleArg::as_str),
                    group.as_deref(),
                )?)
            }
            SsoCommand::Mappings => out.list(&backend.list_mappings()?, output::MAPPING_COLUMNS),
            SsoCommand::Unmap { id } => {
                backend.remove_mapping(id)?;
                out.done(&format!("mapping {id} removed"))
            }
            SsoCommand::TestOidc { provider } => {
                let local = backend.local().ok_or("test-oidc checks the server's own config: add --local")?;
                let (ok, report) = local.test_oidc(provider.as_deref())?;
                match out {
                    Output::Json => out.object(&report)?,
                    Output::Table | Output::Csv => {
                        for p in report.as_array().into_iter().flatten() {
                            println!("{}:", p["provider"].as_str().unwrap_or_default());
                            print!("{}", output::diagnosis(p));
                        }
                    }
                }
                if ok { Ok(()) } else { Err("a provider is not usable as configured".into()) }
            }
            SsoCommand::TestLdap { user, password_stdin } => {
                let local = backend.local().ok_or("test-ldap checks the server's own config: add --local")?;
                let password = match password_stdin {
                    true => Some(read_password(&PasswordSource { password_stdin: true }, "Password")?),
                    false => None,
                };
                let (ok, report) = local.test_ldap(&user, password.as_deref())?;
                match out {
                    Output::Json => out.object(&report)?,
                    Output::Table | Output::Csv => print!("{}", output::diagnosis(&report)),
                }
                if ok {
                    Ok(())
                } else {
                    Err(format!("{user} cannot sign in through the directory as configured"))
                }
            }
        },
        Command::Directory(DirectoryCommand::Sync { dry_run }) => {
            let report = backend.directory_sync(dry_run)?;
            match out {
                Output::Json => out.object(&report),
                Output::Table | Output::Csv => {
                    print!("{}", output::sync_report(&report));
                    Ok(())
                }
            }
        }
        Command::Completions { .. }
        | Command::Man { .. }
        | Command::Backup(BackupCommand::Inspect { .. } | BackupCommand::Restore { .. }) => Ok(()),
    }
}

fn audit_command(backend: &dyn Backend, out: Output, cmd: AuditCommand) -> Result<(), String> {
    use ayush_server::audit::query::Format;
    match cmd {
        AuditCommand::Verify { from_checkpoint } => {
            let from = match from_checkpoint {
                Some(path) => {
                    let cp = ayush_server::audit::anchor::Checkpoint::from_file(&path)?;
                    Some(serde_json::to_value(cp).map_err(|e| e.to_string())?)
                }
                None => None,
            };
            let report = backend.audit_verify(from)?;
            let intact = report["ok"].as_bool() == Some(true);
            match out {
                Output::Json => out.object(&report)?,
                Output::Table | Output::Csv => println!("{}", output::verification(&report)),
            }
            if intact { Ok(()) } else { Err("the audit log is NOT intact".into()) }
        }
        AuditCommand::Export { format, out: file, filter } => {
            let format = match format {
                FormatArg::Csv => Format::Csv,
                FormatArg::Jsonl => Format::Jsonl,
            };
            let filter = filter.filter();
            match file {
                Some(path) => {
                    let mut f =
                        std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                    backend.audit_export(&filter, format, &mut f)
                }
                None => backend.audit_export(&filter, format, &mut std::io::stdout().lock()),
            }
        }
        AuditCommand::Tail { follow, lines, filter } => {
            let filter = filter.filter();
            let mut latest = backend.audit_events(&filter, None, lines.clamp(1, 500))?;
            latest.reverse();
            let mut last = 0;
            for event in &latest {
                output::audit_line(out, event);
                last = event["seq"].as_i64().unwrap_or(last);
            }
            if !follow {
                return Ok(());
            }
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                for event in backend.audit_events(&filter, Some(last), 500)? {
                    output::audit_line(out, &event);
                    last = event["seq"].as_i64().unwrap_or(last);
                }
            }
        }
        AuditCommand::Holds => out.list(&backend.audit_holds()?, output::HOLD_COLUMNS),
        AuditCommand::Hold { user, reason } => out.object(&backend.audit_hold(&user, &reason)?),
        AuditCommand::Release { user } => {
            backend.audit_release(&user)?;
            out.done(&format!("legal hold on {user} released"))
        }
        AuditCommand::Prune { days } => {
            let local = backend.local().ok_or("pruning works on the data directory: add --local")?;
            out.object(&local.audit_prune(days)?)
        }
        AuditCommand::Checkpoint => {
            let local =
                backend.local().ok_or("signing a checkpoint works on the data directory: add --local")?;
            out.object(&local.audit_checkpoint()?)
        }
    }
}

fn main() -> ExitCode {
    ayush_server::build_info::require_cpu();
    // A child started to parse one untrusted file does only that (see knowledge::extract).
    ayush_server::knowledge::extract::isolate::serve_if_worker();
    ayush_server::knowledge::extract::isolate::enable();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ayushctl: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn reference(cmd: &mut clap::Command, path: &str, out: &mut String) {
        let help = cmd.render_long_help().to_string();
        out.push_str(&format!("## `{path}`\n\n```text\n{}\n```\n\n", help.trim_end()));
        for sub in cmd.get_subcommands_mut() {
            if sub.get_name() == "help" {
                continue;
            }
            let name = format!("{path} {}", sub.get_name());
            reference(sub, &name, out);
        }
    }

    /// docs/admin/ayushctl.md is generated from the CLI definition; `AYUSH_BLESS=1` rewrites it.
    #[test]
    fn cli_reference_is_current() {
        let mut text = String::from(
            "# `ayushctl` reference\n\n<!-- Generated from the code by admin-cli's tests: \
             AYUSH_BLESS=1 cargo test -p ayushctl. Do not edit. -->\n\n",
        );
        let mut cmd = Cli::command().term_width(100);
        cmd.build();
        reference(&mut cmd, "ayushctl", &mut text);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/admin/ayushctl.md");
        if std::env::var("AYUSH_BLESS").is_ok_and(|v| v == "1") {
            std::fs::write(&path, &text).unwrap();
            return;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(on_disk == text, "docs/admin/ayushctl.md is stale: run AYUSH_BLESS=1 cargo test -p ayushctl");
    }
}
