//! `[oidc]` and `[ldap]`: the single sign-on sources.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Sign-in through OpenID Connect providers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// Show the local username/password form on the sign-in page (`false`: only at
    /// `/login?local=1`, the break-glass path).
    pub show_local_login: bool,
    /// The address people reach Ayush at (`https://ayush.example.com`); redirect URIs are built
    /// on it. Default: the scheme and host of the request.
    pub public_url: Option<String>,
    /// OIDC accounts that have not signed in for this many days are disabled (their keys
    /// revoked): the provider must vouch for them again now and then. 0: never.
    pub inactive_days: u64,
    pub providers: Vec<OidcProviderConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// In URLs (`/auth/oidc/<name>/callback`) and the audit log.
    pub name: String,
    pub button_text: String,
    pub issuer: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: String,
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    #[serde(default = "default_email_claim")]
    pub email_claim: String,
    #[serde(default = "default_name_claim")]
    pub display_name_claim: String,
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Keep only groups whose names start with this.
    #[serde(default)]
    pub groups_prefix: Option<String>,
    /// Keep only groups whose names match this regular expression (whole name).
    #[serde(default)]
    pub groups_regex: Option<String>,
    /// The button's icon: an .svg or .png file of at most 64 KiB, embedded in the page.
    #[serde(default)]
    pub icon_file: Option<PathBuf>,
    /// Create users at their first sign-in (`false`: an admin creates them first).
    #[serde(default = "default_true")]
    pub create_users: bool,
    #[serde(default = "default_role")]
    pub default_role: String,
    /// Link a sign-in to an existing account that has no sign-in identity yet when the
    /// provider vouches for the account's email (`email_verified` true). Off: only an admin's
    /// `ayushctl user link` joins an identity to an existing account.
    #[serde(default)]
    pub link_by_verified_email: bool,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl Default for OidcConfig {
    fn default() -> Self {
        OidcConfig { show_local_login: true, public_url: None, inactive_days: 90, providers: Vec::new() }
    }
}

fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}
fn default_username_claim() -> String {
    "preferred_username".into()
}
fn default_email_claim() -> String {
    "email".into()
}
fn default_name_claim() -> String {
    "name".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_true() -> bool {
    true
}
fn default_role() -> String {
    "user".into()
}

/// Sign-in against an LDAP directory (OpenLDAP, Active Directory). Keys left unset take the
/// preset's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdapConfig {
    pub enabled: bool,
    pub url: String,
    pub starttls: bool,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout_secs: u64,
    pub timeout_secs: u64,
    pub pool_size: usize,
    pub preset: LdapPreset,
    pub bind_dn: String,
    pub bind_password: String,
    pub bind_password_file: Option<PathBuf>,
    pub direct_bind_dn: Option<String>,
    pub user_base: String,
    pub user_filter: Option<String>,
    pub username_attribute: Option<String>,
    pub email_attribute: Option<String>,
    pub display_name_attribute: Option<String>,
    pub disabled_filter: Option<String>,
    pub group_base: String,
    pub group_filter: Option<String>,
    pub group_name_attribute: Option<String>,
    pub nested_groups: bool,
    pub default_role: Option<String>,
    pub sync_interval_mins: u64,
}

impl Default for LdapConfig {
    fn default() -> Self {
        LdapConfig {
            enabled: false,
            url: String::new(),
            starttls: false,
            ca_file: None,
            connect_timeout_secs: 5,
            timeout_secs: 10,
            pool_size: 4,
            preset: LdapPreset::Openldap,
            bind_dn: String::new(),
            bind_password: String::new(),
            bind_password_file: None,
            direct_bind_dn: None,
            user_base: String::new(),
            user_filter: None,
            username_attribute: None,
            email_attribute: None,
            display_name_attribute: None,
            disabled_filter: None,
            group_base: String::new(),
            group_filter: None,
            group_name_attribute: None,
            nested_groups: true,
            default_role: Some("user".into()),
            sync_interval_mins: 60,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LdapPreset {
    /// OpenLDAP: `uid`, `inetOrgPerson`, groups found by `member`/`uniqueMember`/`memberUid`.
    Openldap,
    /// Active Directory: `sAMAccountName`/`userPrincipalName`, disabled accounts by
    /// `userAccountControl`, nested groups by `LDAP_MATCHING_RULE_IN_CHAIN`.
    ActiveDirectory,
}

impl LdapConfig {
    /// Checked when `enabled`.
    pub(super) fn check(&self) -> Result<(), String> {
        if !(self.url.starts_with("ldap://") || self.url.starts_with("ldaps://")) {
            return Err(format!("ldap.url = {:?} must start with ldap:// or ldaps://", self.url));
        }
        if self.starttls && self.url.starts_with("ldaps://") {
            return Err("ldap.starttls applies to ldap:// URLs; ldaps:// is TLS from the start".into());
        }
        if self.direct_bind_dn.is_none() && (self.bind_dn.is_empty() || self.user_base.is_empty()) {
            return Err("ldap: set bind_dn and user_base (search, then bind), or direct_bind_dn".into());
        }
        if self.direct_bind_dn.as_deref().is_some_and(|t| !t.contains("{username}")) {
            return Err("ldap.direct_bind_dn must contain {username}".into());
        }
        if self.user_filter.as_deref().is_some_and(|f| !f.contains("{username}")) {
            return Err("ldap.user_filter must contain {username}".into());
        }
        if self.connect_timeout_secs == 0 || self.timeout_secs == 0 || self.pool_size == 0 {
            return Err("ldap.connect_timeout_secs, timeout_secs and pool_size must be at least 1".into());
        }
        if let Some(role) = &self.default_role
            && role != "none"
            && role.parse::<crate::role::Role>().is_err()
        {
            return Err(format!("ldap.default_role = {role:?}: expected user, admin, auditor or none"));
        }
        Ok(())
    }
}

impl OidcConfig {
    pub(super) fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for p in &self.providers {
            let name = &p.name;
            let ok_name = super::is_short_name(name);
            if !ok_name || !seen.insert(name.clone()) {
                return Err(format!(
                    "oidc.providers: name {name:?} must be unique, 1 to 40 letters, digits, - or _"
                ));
            }
            if !(p.issuer.starts_with("https://")
                || p.issuer.starts_with("http://127.")
                || p.issuer.starts_with("http://localhost"))
            {
                return Err(format!("oidc provider {name}: issuer must be https:// (http only on loopback)"));
            }
            if p.client_id.is_empty() || p.button_text.trim().is_empty() {
                return Err(format!("oidc provider {name}: client_id and button_text are required"));
            }
            if !p.scopes.iter().any(|s| s == "openid") {
                return Err(format!("oidc provider {name}: scopes must include openid"));
            }
            if let Some(re) = &p.groups_regex
                && let Err(e) = regex::Regex::new(re)
            {
                return Err(format!("oidc provider {name}: groups_regex is not a regular expression: {e}"));
            }
            if p.default_role != "none" && p.default_role.parse::<crate::role::Role>().is_err() {
                return Err(format!(
                    "oidc provider {name}: default_role must be user, admin, auditor or none"
                ));
            }
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(format!("oidc.public_url = {url:?} must start with https:// or http://"));
        }
        Ok(())
    }
}
