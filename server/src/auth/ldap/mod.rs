//! Sign-in against an LDAP directory: search for the user with a service account (or bind
//! directly through a DN template), bind as them with the password they typed, read their
//! attributes, decide whether the directory disabled them, and resolve their groups, nested
//! ones included. LDAPS and StartTLS go through rustls; every connect and operation has a
//! timeout, so a directory that is down gives a clear answer instead of a hang.

pub mod dn;
pub mod escape;

use crate::config::{LdapConfig, LdapPreset};
use dn::Dn;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// LDAP result code 49: the DN or the password is wrong (RFC 4511).
const INVALID_CREDENTIALS: u32 = 49;
/// How far nested group memberships are followed, and how many groups at most.
const NESTING_DEPTH: usize = 10;
const MAX_GROUPS: usize = 1000;

/// What a sign-in or a lookup can end in.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// The directory cannot be reached or answered in time, or TLS failed.
    #[error("the directory is unavailable: {0}")]
    Unavailable(String),
    /// The directory refused the password.
    #[error("wrong password")]
    InvalidCredentials,
    #[error("no such user in the directory")]
    NotFound,
    /// The search found more than one entry: the filter is too loose; nobody may sign in as it.
    #[error("the directory holds {0} entries for this username; refusing to pick one")]
    Ambiguous(usize),
    #[error("the directory refused the service account: {0}")]
    ServiceBind(String),
    #[error("the directory answered an error: {0}")]
    Protocol(String),
}

/// A person as the directory describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub dn: String,
    pub username: String,
    pub email: Option<String>,
    pub display_name: String,
    pub disabled: bool,
    /// Group names (the `group_name_attribute`), nested memberships included.
    pub groups: BTreeSet<String>,
}

/// One step of `diagnose`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Step {
    pub step: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl Step {
    fn ok(step: &'static str, detail: String) -> Step {
        Step { step, ok: true, detail }
    }
    fn failed(step: &'static str, detail: String) -> Step {
        Step { step, ok: false, detail }
    }
}

/// The config with the preset's defaults filled in.
#[derive(Debug, Clone)]
pub struct Settings {
    pub url: String,
    pub starttls: bool,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub pool_size: usize,
    pub bind_dn: String,
    pub bind_password: String,
    pub direct_bind_dn: Option<String>,
    pub user_base: String,
    pub user_filter: String,
    pub username_attribute: String,
    pub email_attribute: String,
    pub display_name_attribute: String,
    pub disabled_filter: Option<String>,
    pub group_base: String,
    /// `group_base`, parsed: a group counts only when its DN lies under it.
    pub group_base_dn: Dn,
    pub group_filter: String,
    pub group_name_attribute: String,
    pub nested_groups: bool,
    /// Active Directory resolves nesting itself (LDAP_MATCHING_RULE_IN_CHAIN).
    pub in_chain: bool,
    /// The directory is Active Directory: `CORP\bob` and `bob@corp` name bob.
    pub active_directory: bool,
}

impl Settings {
    pub fn from_config(cfg: &LdapConfig) -> Result<Settings, String> {
        let ad = cfg.preset == LdapPreset::ActiveDirectory;
        let or = |v: &Option<String>, openldap: &str, active_directory: &str| {
            v.clone().unwrap_or_else(|| if ad { active_directory } else { openldap }.to_string())
        };
        let bind_password = match &cfg.bind_password_file {
            Some(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| format!("ldap.bind_password_file {}: {e}", path.display()))?,
            None => cfg.bind_password.clone(),
        };
        let group_base =
            if cfg.group_base.is_empty() { cfg.user_base.clone() } else { cfg.group_base.clone() };
        let group_base_dn = Dn::parse(&group_base).map_err(|e| format!("ldap.group_base: {e}"))?;
        Ok(Settings {
            url: cfg.url.clone(),
            starttls: cfg.starttls,
            connect_timeout: Duration::from_secs(cfg.connect_timeout_secs),
            timeout: Duration::from_secs(cfg.timeout_secs),
            pool_size: cfg.pool_size,
            bind_dn: cfg.bind_dn.clone(),
            bind_password,
            direct_bind_dn: cfg.direct_bind_dn.clone(),
            user_base: cfg.user_base.clone(),
            user_filter: or(
                &cfg.user_filter,
                "(&(objectClass=inetOrgPerson)(uid={username}))",
                "(&(objectCategory=person)(objectClass=user)(|(sAMAccountName={username})(userPrincipalName={username})))",
            ),
            username_attribute: or(&cfg.username_attribute, "uid", "sAMAccountName"),
            email_attribute: or(&cfg.email_attribute, "mail", "mail"),
            display_name_attribute: or(&cfg.display_name_attribute, "cn", "displayName"),
            disabled_filter: cfg
                .disabled_filter
                .clone()
                .or_else(|| ad.then(|| "(userAccountControl:1.2.840.113556.1.4.803:=2)".to_string())),
            group_base,
            group_base_dn,
            group_filter: or(
                &cfg.group_filter,
                "(|(member={dn})(uniqueMember={dn})(memberUid={username}))",
                "(member:1.2.840.113556.1.4.1941:={dn})",
            ),
            group_name_attribute: or(&cfg.group_name_attribute, "cn", "cn"),
            nested_groups: cfg.nested_groups,
            in_chain: ad && cfg.group_filter.is_none(),
            active_directory: ad,
        })
    }
}

/// A configured directory, with a small pool of connections bound as the service account.
pub struct Directory {
    settings: Settings,
    egress: crate::egress::Egress,
    tls: Arc<rustls::ClientConfig>,
    pool: tokio::sync::Mutex<Vec<Ldap>>,
}

fn unavailable(e: impl std::fmt::Display) -> DirError {
    DirError::Unavailable(e.to_string())
}

impl Directory {
    pub fn new(cfg: &LdapConfig, egress: crate::egress::Egress) -> Result<Directory, String> {
        let settings = Settings::from_config(cfg)?;
        let tls = Arc::new(crate::tls::client_config(cfg.ca_file.as_deref(), "ldap.ca_file")?);
        Ok(Directory { settings, egress, tls, pool: tokio::sync::Mutex::new(Vec::new()) })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A new connection (TLS as configured), not yet bound.
    pub async fn connect(&self) -> Result<Ldap, DirError> {
        let s = &self.settings;
        let (egress, url, wait) = (self.egress.clone(), s.url.clone(), s.connect_timeout);
        // Connect to the addresses the policy checked, not to a second lookup of the name (which
        // could answer differently); TLS still verifies the name in the URL.
        let stream = tokio::task::spawn_blocking(move || {
            let addrs = egress.check_url("ldap.url", &url)?;
            crate::egress::connect_checked(&addrs, wait).map_err(|e| format!("{url}: {e}"))
        })
        .await
        .map_err(unavailable)?
        .map_err(DirError::Unavailable)?;
        let conn_settings = LdapConnSettings::new()
            .set_conn_timeout(s.connect_timeout)
            .set_config(self.tls.clone())
            .set_starttls(s.starttls)
            .set_std_stream(ldap3::StdStream::Tcp(stream));
        let (conn, mut ldap) = tokio::time::timeout(
            s.connect_timeout + s.timeout,
            LdapConnAsync::with_settings(conn_settings, &s.url),
        )
        .await
        .map_err(|_| DirError::Unavailable(format!("{} did not answer within the timeout", s.url)))?
        .map_err(|e| DirError::Unavailable(format!("{}: {e}", s.url)))?;
        ldap3::drive!(conn);
        ldap.with_timeout(s.timeout);
        Ok(ldap)
    }

    /// A pooled service connection (`true`), or a new one bound now (`false`).
    async fn service(&self) -> Result<(Ldap, bool), DirError> {
        if let Some(ldap) = self.pool.lock().await.pop() {
            return Ok((ldap, true));
        }
        self.fresh_service().await.map(|l| (l, false))
    }

    async fn fresh_service(&self) -> Result<Ldap, DirError> {
        let mut ldap = self.connect().await?;
        let s = &self.settings;
        let bound = ldap
            .with_timeout(s.timeout)
            .simple_bind(&s.bind_dn, &s.bind_password)
            .await
            .map_err(unavailable)?;
        if bound.rc != 0 {
            return Err(DirError::ServiceBind(bound.to_string()));
        }
        Ok(ldap)
    }

    async fn give_back(&self, ldap: Ldap) {
        let mut pool = self.pool.lock().await;
        if pool.len() < self.settings.pool_size {
            pool.push(ldap);
        }
    }

    /// Runs `f` on a service connection; one that failed is dropped, not returned to the pool.
    /// A pooled connection may have died since (the directory restarted): then `f` runs once
    /// more on a new one.
    async fn with_service<T>(
        &self,
        f: impl AsyncFn(&mut Ldap) -> Result<T, DirError>,
    ) -> Result<T, DirError> {
        let (mut ldap, pooled) = self.service().await?;
        let mut result = f(&mut ldap).await;
        if pooled && matches!(result, Err(DirError::Unavailable(_))) {
            ldap = self.fresh_service().await?;
            result = f(&mut ldap).await;
        }
        if !matches!(result, Err(DirError::Unavailable(_) | DirError::Protocol(_))) {
            self.give_back(ldap).await;
        }
        result
    }

    /// Checks the password against the directory and returns the person. An empty password is
    /// refused here: LDAP treats a bind with a DN and no password as anonymous and "succeeds".
    pub async fn authenticate(&self, username: &str, password: &str) -> Result<Person, DirError> {
        if username.is_empty() || password.is_empty() {
            return Err(DirError::InvalidCredentials);
        }
        let s = &self.settings;
        if let Some(template) = &s.direct_bind_dn {
            let dn = escape::fill_dn(template, username);
            let mut ldap = self.connect().await?;
            bind_as(&mut ldap, &dn, password, s.timeout).await?;
            let entry = read_entry(&mut ldap, &dn, self.attributes(), s.timeout).await?;
            let person = self.describe(&mut ldap, entry, username).await;
            let _ = ldap.unbind().await;
            return person;
        }
        let entry = self.with_service(async |ldap| self.find(ldap, username).await).await?;
        let mut user_conn = self.connect().await?;
        let bound = bind_as(&mut user_conn, &entry.dn, password, s.timeout).await;
        let _ = user_conn.unbind().await;
        bound?;
        self.with_service(async |ldap| self.describe(ldap, entry.clone(), username).await).await
    }

    /// The person as the directory has them now, without their password (directory sync,
    /// `ayushctl sso test-ldap`).
    pub async fn lookup(&self, username: &str) -> Result<Person, DirError> {
        self.with_service(async |ldap| {
            let entry = self.find(ldap, username).await?;
            self.describe(ldap, entry, username).await
        })
        .await
    }

    /// `ayushctl sso test-ldap`: each step of a sign-in, stopping at the first that fails,
    /// without signing anyone in. With a password, the bind as the user is tried too.
    pub async fn diagnose(&self, username: &str, password: Option<&str>) -> (Vec<Step>, Option<Person>) {
        let s = &self.settings;
        let mut steps = Vec::new();
        let tls = if s.url.starts_with("ldaps://") {
            "LDAPS"
        } else if s.starttls {
            "StartTLS"
        } else {
            "no TLS"
        };
        let mut ldap = match self.connect().await {
            Ok(l) => {
                steps.push(Step::ok("connect", format!("{} ({tls})", s.url)));
                l
            }
            Err(e) => {
                steps.push(Step::failed("connect", format!("{} ({tls}): {e}", s.url)));
                return (steps, None);
            }
        };
        let entry = if let Some(template) = &s.direct_bind_dn {
            let dn = escape::fill_dn(template, username);
            let Some(pw) = password else {
                steps.push(Step::failed(
                    "bind as user",
                    format!("direct bind as {dn} needs the password (--password-stdin)"),
                ));
                return (steps, None);
            };
            if let Err(e) = bind_as(&mut ldap, &dn, pw, s.timeout).await {
                steps.push(Step::failed("bind as user", format!("{dn}: {e}")));
                return (steps, None);
            }
            steps.push(Step::ok("bind as user", dn.clone()));
            match read_entry(&mut ldap, &dn, self.attributes(), s.timeout).await {
                Ok(e) => e,
                Err(e) => {
                    steps.push(Step::failed("read entry", e.to_string()));
                    return (steps, None);
                }
            }
        } else {
            match ldap.with_timeout(s.timeout).simple_bind(&s.bind_dn, &s.bind_password).await {
                Ok(r) if r.rc == 0 => steps.push(Step::ok("service bind", s.bind_dn.clone())),
                Ok(r) => {
                    steps.push(Step::failed("service bind", format!("{}: {r}", s.bind_dn)));
                    return (steps, None);
                }
                Err(e) => {
                    steps.push(Step::failed("service bind", e.to_string()));
                    return (steps, None);
                }
            }
            let filter = escape::fill_filter(&s.user_filter, username, None);
            let entry = match self.find(&mut ldap, username).await {
                Ok(e) => {
                    steps.push(Step::ok("search", format!("{filter} under {} found {}", s.user_base, e.dn)));
                    e
                }
                Err(e) => {
                    steps.push(Step::failed("search", format!("{filter} under {}: {e}", s.user_base)));
                    return (steps, None);
                }
            };
            if let Some(pw) = password {
                let bound = match self.connect().await {
                    Ok(mut user_conn) => bind_as(&mut user_conn, &entry.dn, pw, s.timeout).await,
                    Err(e) => Err(e),
                };
                match bound {
                    Ok(()) => steps.push(Step::ok("bind as user", entry.dn.clone())),
                    Err(e) => {
                        steps.push(Step::failed("bind as user", format!("{}: {e}", entry.dn)));
                        return (steps, None);
                    }
                }
            }
            entry
        };
        match self.describe(&mut ldap, entry, username).await {
            Ok(person) => {
                let who = format!(
                    "username {:?}, display name {:?}, email {:?}",
                    person.username,
                    person.display_name,
                    person.email.as_deref().unwrap_or("-")
                );
                steps.push(Step::ok("attributes", who));
                let state = if person.disabled { "DISABLED in the directory" } else { "enabled" };
                steps.push(Step { step: "account", ok: !person.disabled, detail: state.into() });
                let groups: Vec<&str> = person.groups.iter().map(String::as_str).collect();
                steps.push(Step::ok(
                    "groups",
                    if groups.is_empty() { "none".into() } else { groups.join(", ") },
                ));
                (steps, Some(person))
            }
            Err(e) => {
                steps.push(Step::failed("groups", e.to_string()));
                (steps, None)
            }
        }
    }

    fn attributes(&self) -> Vec<String> {
        let s = &self.settings;
        vec![
            s.username_attribute.clone(),
            s.email_attribute.clone(),
            s.display_name_attribute.clone(),
            "memberOf".to_string(),
        ]
    }

    async fn find(&self, ldap: &mut Ldap, username: &str) -> Result<SearchEntry, DirError> {
        let s = &self.settings;
        let filter = escape::fill_filter(&s.user_filter, username, None);
        let (entries, _) = ldap
            .with_timeout(s.timeout)
            .search(&s.user_base, Scope::Subtree, &filter, self.attributes())
            .await
            .map_err(unavailable)?
            .success()
            .map_err(|e| DirError::Protocol(e.to_string()))?;
        match entries.len() {
            0 => Err(DirError::NotFound),
            1 => Ok(entries.into_iter().map(SearchEntry::construct).next().ok_or(DirError::NotFound)?),
            n => Err(DirError::Ambiguous(n)),
        }
    }

    async fn describe(&self, ldap: &mut Ldap, entry: SearchEntry, typed: &str) -> Result<Person, DirError> {
        let s = &self.settings;
        let first = |attr: &str| entry.attrs.get(attr).and_then(|v| v.first()).cloned();
        let disabled = match &s.disabled_filter {
            Some(filter) => {
                let (hits, _) = ldap
                    .with_timeout(s.timeout)
                    .search(&entry.dn, Scope::Base, filter, vec!["1.1"])
                    .await
                    .map_err(unavailable)?
                    .success()
                    .map_err(|e| DirError::Protocol(e.to_string()))?;
                !hits.is_empty()
            }
            None => false,
        };
        let member_of = entry.attrs.get("memberOf").cloned().unwrap_or_default();
        let groups = self.groups(ldap, &entry.dn, typed, member_of).await?;
        Ok(Person {
            username: first(&s.username_attribute).unwrap_or_else(|| typed.to_string()),
            email: first(&s.email_attribute),
            display_name: first(&s.display_name_attribute).unwrap_or_default(),
            disabled,
            groups,
            dn: entry.dn,
        })
    }

    /// The user's groups: those that name them (group search, and `memberOf` when the directory
    /// keeps it), then, unless the directory resolves nesting itself, the groups those groups
    /// are members of, breadth first, bounded. Only groups under `group_base` count: a group
    /// elsewhere with a mapped name (a delegated OU, a self-service distribution list) grants
    /// nothing.
    async fn groups(
        &self,
        ldap: &mut Ldap,
        dn: &str,
        username: &str,
        member_of: Vec<String>,
    ) -> Result<BTreeSet<String>, DirError> {
        let s = &self.settings;
        let name_attr = s.group_name_attribute.clone();
        let mut found = Found::default();
        let filter = escape::fill_filter(&s.group_filter, username, Some(dn));
        for g in search_groups(ldap, &s.group_base, &filter, &name_attr, s.timeout).await? {
            found.add(&s.group_base_dn, &g.dn, g.attrs.get(&name_attr).and_then(|v| v.first()).cloned(), 1);
        }
        for group_dn in member_of {
            let Some(parsed) = found.admissible(&s.group_base_dn, &group_dn) else { continue };
            // The name is the group's naming attribute; when its DN is not named by it, the
            // group itself says.
            let name = match parsed.leaf_value(&name_attr) {
                Some(n) => Some(n.to_string()),
                None => read_entry(ldap, &group_dn, vec![name_attr.clone()], s.timeout)
                    .await
                    .ok()
                    .and_then(|e| e.attrs.get(&name_attr).and_then(|v| v.first()).cloned()),
            };
            found.add(&s.group_base_dn, &group_dn, name, 1);
        }
        if !s.nested_groups || s.in_chain {
            return Ok(found.names);
        }
        while let Some((group_dn, depth)) = found.queue.pop_front() {
            if depth >= NESTING_DEPTH || found.seen.len() >= MAX_GROUPS {
                break;
            }
            let value = escape::filter_value(&group_dn);
            let parents = format!("(|(member={value})(uniqueMember={value}))");
            for g in search_groups(ldap, &s.group_base, &parents, &name_attr, s.timeout).await? {
                let name = g.attrs.get(&name_attr).and_then(|v| v.first()).cloned();
                found.add(&s.group_base_dn, &g.dn, name, depth + 1);
            }
        }
        Ok(found.names)
    }
}

async fn bind_as(ldap: &mut Ldap, dn: &str, password: &str, timeout: Duration) -> Result<(), DirError> {
    let result = ldap.with_timeout(timeout).simple_bind(dn, password).await.map_err(unavailable)?;
    match result.rc {
        0 => Ok(()),
        INVALID_CREDENTIALS => Err(DirError::InvalidCredentials),
        _ => Err(DirError::Protocol(result.to_string())),
    }
}

async fn read_entry(
    ldap: &mut Ldap,
    dn: &str,
    attrs: Vec<String>,
    timeout: Duration,
) -> Result<SearchEntry, DirError> {
    let (entries, _) = ldap
        .with_timeout(timeout)
        .search(dn, Scope::Base, "(objectClass=*)", attrs)
        .await
        .map_err(unavailable)?
        .success()
        .map_err(|e| DirError::Protocol(e.to_string()))?;
    entries.into_iter().map(SearchEntry::construct).next().ok_or(DirError::NotFound)
}

async fn search_groups(
    ldap: &mut Ldap,
    base: &str,
    filter: &str,
    name_attr: &str,
    timeout: Duration,
) -> Result<Vec<SearchEntry>, DirError> {
    let (entries, _) = ldap
        .with_timeout(timeout)
        .search(base, Scope::Subtree, filter, vec![name_attr])
        .await
        .map_err(unavailable)?
        .success()
        .map_err(|e| DirError::Protocol(e.to_string()))?;
    Ok(entries.into_iter().map(SearchEntry::construct).collect())
}

/// The groups found so far: their names, the DNs seen (each spelling of a DN once), and those
/// whose parents are still to be looked for.
#[derive(Default)]
struct Found {
    names: BTreeSet<String>,
    seen: HashSet<String>,
    queue: VecDeque<(String, usize)>,
}

impl Found {
    /// The group's DN parsed, if it may count: under the group base and not seen yet.
    fn admissible(&self, base: &Dn, group_dn: &str) -> Option<Dn> {
        let parsed = match Dn::parse(group_dn) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "a group DN the directory sent does not parse; it is ignored");
                return None;
            }
        };
        if !parsed.is_under(base) {
            tracing::debug!(group = group_dn, "a group outside ldap.group_base is ignored");
            return None;
        }
        (!self.seen.contains(&parsed.normalized())).then_some(parsed)
    }

    fn add(&mut self, base: &Dn, group_dn: &str, name: Option<String>, depth: usize) {
        let Some(parsed) = self.admissible(base, group_dn) else { return };
        self.seen.insert(parsed.normalized());
        self.names.extend(name);
        self.queue.push_back((group_dn.to_string(), depth));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_fill_what_is_not_set() {
        let cfg = LdapConfig {
            preset: LdapPreset::ActiveDirectory,
            user_base: "dc=corp".into(),
            ..Default::default()
        };
        let s = Settings::from_config(&cfg).unwrap();
        assert!(
            s.user_filter.contains("sAMAccountName={username}")
                && s.user_filter.contains("userPrincipalName")
        );
        assert_eq!(s.disabled_filter.as_deref(), Some("(userAccountControl:1.2.840.113556.1.4.803:=2)"));
        assert!(s.in_chain && s.group_filter.contains("1.2.840.113556.1.4.1941"));
        assert_eq!(s.group_base, "dc=corp", "groups are searched under the users' base by default");
        let s = Settings::from_config(&LdapConfig::default()).unwrap();
        assert_eq!((s.username_attribute.as_str(), s.in_chain), ("uid", false));
        assert!(s.disabled_filter.is_none());
    }

    #[test]
    fn only_groups_under_the_group_base_count() {
        let base = Dn::parse("ou=groups,dc=example,dc=com").unwrap();
        let mut found = Found::default();
        found.add(&base, "cn=it-admins,ou=Anything,dc=example,dc=com", Some("it-admins".into()), 1);
        found.add(&base, "cn=it-admins,dc=example,dc=com", Some("it-admins".into()), 1);
        found.add(&base, "not a dn", Some("it-admins".into()), 1);
        assert!(found.names.is_empty(), "look-alikes outside the base grant nothing");
        found.add(&base, "cn=Staff,ou=groups,dc=example,dc=com", Some("Staff".into()), 1);
        found.add(&base, "CN=staff, OU=Groups,DC=Example,DC=com", Some("staff".into()), 1);
        assert_eq!(found.names.iter().collect::<Vec<_>>(), ["Staff"], "one group, however it is spelt");
        assert_eq!(found.queue.len(), 1);
    }
}
