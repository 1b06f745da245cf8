use ayush_server::audit::query::{Filter, Format};
use serde_json::Value;
use std::io::Write;

/// What `ayushctl` can ask of Ayush, whether through the data directory or the HTTP API. Both
/// sides answer with the same JSON shapes the API documents.
pub trait Backend {
    /// Creates a user from the body `POST /api/admin/users` takes.
    fn create_user(&self, body: Value) -> Result<Value, String>;
    /// Links an OIDC identity (provider, subject) to an existing account.
    fn link_user(&self, name: &str, provider: &str, subject: &str) -> Result<Value, String>;
    /// Disables the account for good: sessions, keys and groups go.
    fn deprovision_user(&self, name: &str) -> Result<Value, String>;
    fn list_users(&self) -> Result<Value, String>;
    fn show_user(&self, name: &str) -> Result<Value, String>;
    fn set_disabled(&self, name: &str, disabled: bool) -> Result<Value, String>;
    fn set_role(&self, name: &str, role: &str) -> Result<Value, String>;
    fn reset_password(&self, name: &str, password: String) -> Result<(), String>;
    fn create_group(&self, name: &str, description: &str) -> Result<Value, String>;
    fn list_groups(&self) -> Result<Value, String>;
    fn show_group(&self, name: &str) -> Result<Value, String>;
    fn delete_group(&self, name: &str) -> Result<(), String>;
    fn add_member(&self, group: &str, user: &str) -> Result<(), String>;
    fn remove_member(&self, group: &str, user: &str) -> Result<(), String>;
    /// Checks a GGUF file and adds it to the models directory (remotely: uploads it).
    fn import_model(&self, file: &std::path::Path, name: Option<&str>) -> Result<Value, String>;
    /// Whether the file still matches its manifest.
    fn verify_model(&self, name: &str) -> Result<bool, String>;
    fn remove_model(&self, name: &str) -> Result<(), String>;
    fn set_default_model(&self, name: &str) -> Result<(), String>;
    /// Every model, with the groups it is restricted to.
    fn list_models(&self) -> Result<Value, String>;
    fn allow_model(&self, model: &str, group: &str) -> Result<(), String>;
    /// Whether the model is open to everyone afterwards.
    fn disallow_model(&self, model: &str, group: &str) -> Result<bool, String>;
    /// Verifies the audit chain, from the start or from a signed checkpoint; the verification
    /// is itself recorded.
    fn audit_verify(&self, from_checkpoint: Option<Value>) -> Result<Value, String>;
    /// Writes the events the filter selects to `out`, oldest first; the export is recorded.
    fn audit_export(&self, filter: &Filter, format: Format, out: &mut dyn Write) -> Result<(), String>;
    /// Events as the API shows them: the newest `limit` (newest first), or, with `after`, up
    /// to `limit` newer than that seq (oldest first).
    fn audit_events(&self, filter: &Filter, after: Option<i64>, limit: i64) -> Result<Vec<Value>, String>;
    fn audit_holds(&self) -> Result<Value, String>;
    fn audit_hold(&self, user: &str, reason: &str) -> Result<Value, String>;
    fn audit_release(&self, user: &str) -> Result<(), String>;
    fn list_mappings(&self) -> Result<Value, String>;
    fn add_mapping(
        &self,
        directory_group: &str,
        role: Option<&str>,
        group: Option<&str>,
    ) -> Result<Value, String>;
    fn remove_mapping(&self, id: i64) -> Result<(), String>;
    /// Creates an API key for a user; the answer holds the secret, shown once.
    fn create_key(&self, user: &str, name: &str, expires_days: Option<u32>) -> Result<Value, String>;
    fn list_keys(&self, user: Option<&str>) -> Result<Value, String>;
    fn revoke_key(&self, id: i64) -> Result<(), String>;
    /// Refreshes directory accounts now (or says what that would change).
    fn directory_sync(&self, dry_run: bool) -> Result<Value, String>;
    fn list_providers(&self) -> Result<Value, String>;
    /// Adds a provider from the body `POST /api/admin/providers` takes.
    fn add_provider(&self, body: Value) -> Result<Value, String>;
    /// Changes a provider with the body `PATCH /api/admin/providers/NAME` takes.
    fn change_provider(&self, name: &str, body: Value) -> Result<Value, String>;
    fn remove_provider(&self, name: &str) -> Result<(), String>;
    /// Asks the provider for its models, with the key Ayush holds: `{"models": [...]}`.
    fn test_provider(&self, name: &str) -> Result<Value, String>;
    /// Collections: all of them for an admin, with readers and counts.
    fn list_collections(&self) -> Result<Value, String>;
    /// Makes a collection from the body `POST /api/collections` takes.
    fn create_collection(&self, body: Value) -> Result<Value, String>;
    fn remove_collection(&self, name: &str) -> Result<(), String>;
    fn grant_collection(&self, name: &str, group: &str) -> Result<(), String>;
    fn revoke_collection(&self, name: &str, group: &str) -> Result<(), String>;
    /// The documents a collection holds, with their sha256.
    fn list_documents(&self, collection: &str) -> Result<Value, String>;
    /// Adds one file's bytes under the name `source`; the answer says whether it was added, replaced
    /// or unchanged.
    fn add_document(&self, collection: &str, source: &str, bytes: Vec<u8>) -> Result<Value, String>;
    /// Admins' assistants: a model, instructions and collections.
    fn list_presets(&self) -> Result<Value, String>;
    /// Makes one from the body `POST /api/admin/presets` takes.
    fn create_preset(&self, body: Value) -> Result<Value, String>;
    /// Changes one with the body `PATCH /api/admin/presets/NAME` takes.
    fn change_preset(&self, name: &str, body: Value) -> Result<Value, String>;
    fn remove_preset(&self, name: &str) -> Result<(), String>;
    /// How far the index and the embedding of passages have got (`GET /api/admin/index`).
    fn index_status(&self) -> Result<Value, String>;
    /// Usage over a span (`from`, `to` as the API takes them), broken down `by`.
    fn usage_report(&self, from: Option<&str>, to: Option<&str>, by: &str) -> Result<Value, String>;
    /// Sets a model's price from the body `PUT /api/admin/prices` takes.
    fn set_price(&self, body: Value) -> Result<Value, String>;
    fn list_prices(&self) -> Result<Value, String>;
    fn remove_price(&self, provider: &str, model: &str) -> Result<(), String>;
    /// Sets a quota from the body `PUT /api/admin/quotas` takes.
    fn set_quota(&self, body: Value) -> Result<Value, String>;
    fn list_quotas(&self) -> Result<Value, String>;
    fn remove_quota(&self, user: Option<&str>, group: Option<&str>, pool: &str) -> Result<(), String>;
    /// The theme as `GET /api/admin/theme` shows it.
    fn show_theme(&self) -> Result<Value, String>;
    /// Changes the theme with the body `PUT /api/admin/theme` takes.
    fn set_theme(&self, body: Value) -> Result<Value, String>;
    /// Empties the full-text index and builds it again from the database.
    fn rebuild_index(&self) -> Result<Value, String>;
    /// Writes a backup to `output` (remotely: the server takes it and sends it).
    fn backup_create(
        &self,
        output: &std::path::Path,
        passphrase: Option<String>,
        with_models: bool,
    ) -> Result<Value, String>;
    /// Commands that only make sense on the data directory.
    fn local(&self) -> Option<&crate::local::Local> {
        None
    }
}
