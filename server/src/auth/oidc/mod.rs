//! Sign-in through OpenID Connect providers: the authorization code flow with PKCE, `state` and
//! `nonce`; discovery from the issuer; the provider's keys fetched and cached, fetched again when
//! a token names a key not seen yet. Token checks live in `token` (sans-IO); this is the thin
//! network side. Calls are blocking (ureq) and run on the blocking pool.

pub mod token;

use crate::config::OidcProviderConfig;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use token::Jwks;

const TIMEOUT: Duration = Duration::from_secs(10);
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// The provider's discovery document, the parts Ayush uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    pub jwks_uri: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Tokens {
    pub id_token: String,
    #[serde(default)]
    pub access_token: Option<String>,
}

pub struct Provider {
    pub cfg: OidcProviderConfig,
    /// The button's icon as a `data:` URI.
    pub icon: Option<String>,
    groups_regex: Option<regex::Regex>,
    egress: crate::egress::Egress,
    secret: String,
    agent: ureq::Agent,
    metadata: Mutex<Option<(Metadata, Instant)>>,
    keys: Mutex<Option<Jwks>>,
}

/// A random URL-safe string (state, nonce, PKCE verifier).
pub fn random() -> String {
    crate::auth::secret::random_token()
}

/// The PKCE S256 challenge for a verifier.
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl Provider {
    pub fn new(cfg: &OidcProviderConfig, egress: &crate::egress::Egress) -> Result<Provider, String> {
        let secret = match &cfg.client_secret_file {
            Some(path) => {
                std::fs::read_to_string(path).map(|s| s.trim_end_matches(['\n', '\r']).to_string()).map_err(
                    |e| format!("oidc provider {}: client_secret_file {}: {e}", cfg.name, path.display()),
                )?
            }
            None => cfg.client_secret.clone(),
        };
        let builder = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            .max_redirects(0);
        // The same trust as every other outbound connection: the system's roots plus ca_file.
        let what = format!("oidc provider {}: ca_file", cfg.name);
        let certs: Vec<ureq::tls::Certificate<'static>> =
            crate::tls::trusted_certs(cfg.ca_file.as_deref(), &what)?
                .iter()
                .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
                .collect();
        let roots = ureq::tls::RootCerts::new_with_certs(&certs);
        let builder = builder.tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build());
        let groups_regex = cfg
            .groups_regex
            .as_deref()
            .map(|re| regex::Regex::new(&format!("^(?:{re})$")))
            .transpose()
            .map_err(|e| format!("oidc provider {}: groups_regex: {e}", cfg.name))?;
        Ok(Provider {
            cfg: cfg.clone(),
            icon: cfg.icon_file.as_deref().map(|f| icon(&cfg.name, f)).transpose()?,
            groups_regex,
            egress: egress.clone(),
            secret,
            // Connections go to the addresses the egress policy checked.
            agent: ureq::Agent::with_parts(
                builder.build(),
                ureq::unversioned::transport::DefaultConnector::default(),
                crate::egress::Resolver::new(egress.clone(), format!("oidc provider {}", cfg.name)),
            ),
            metadata: Mutex::new(None),
            keys: Mutex::new(None),
        })
    }

    /// Every request first passes the egress policy (the endpoints come from the provider's
    /// discovery document, so they are checked one by one).
    fn allowed(&self, url: &str) -> Result<(), String> {
        self.egress.check_url(&format!("oidc provider {}", self.cfg.name), url).map(drop)
    }

    fn get_json(&self, url: &str, bearer: Option<&str>) -> Result<Value, String> {
        self.allowed(url)?;
        let mut req = self.agent.get(url);
        if let Some(token) = bearer {
            req = req.header("Authorization", &format!("Bearer {token}"));
        }
        let mut resp = req.call().map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status();
        let body = resp.body_mut().read_to_string().map_err(|e| format!("{url}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{url} answered HTTP {status}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("{url} did not answer JSON: {e}"))
    }

    /// The discovery document, cached for an hour. Its issuer must be the configured one,
    /// character for character.
    pub fn metadata(&self) -> Result<Metadata, String> {
        if let Ok(cached) = self.metadata.lock()
            && let Some((m, at)) = cached.as_ref()
            && at.elapsed() < METADATA_TTL
        {
            return Ok(m.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.cfg.issuer.trim_end_matches('/'));
        let meta: Metadata = serde_json::from_value(self.get_json(&url, None)?)
            .map_err(|e| format!("{url}: not a discovery document: {e}"))?;
        if meta.issuer != self.cfg.issuer {
            return Err(format!("the provider calls itself {:?}, not {:?}", meta.issuer, self.cfg.issuer));
        }
        if let Ok(mut cached) = self.metadata.lock() {
            *cached = Some((meta.clone(), Instant::now()));
        }
        Ok(meta)
    }

    /// The signing keys, from the cache unless `refresh`.
    pub fn keys(&self, refresh: bool) -> Result<Jwks, String> {
        if !refresh
            && let Ok(cached) = self.keys.lock()
            && let Some(k) = cached.as_ref()
        {
            return Ok(k.clone());
        }
        let meta = self.metadata()?;
        let keys: Jwks = serde_json::from_value(self.get_json(&meta.jwks_uri, None)?)
            .map_err(|e| format!("{}: not a key set: {e}", meta.jwks_uri))?;
        if let Ok(mut cached) = self.keys.lock() {
            *cached = Some(keys.clone());
        }
        Ok(keys)
    }

    pub fn authorize_url(
        &self,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        verifier: &str,
    ) -> Result<String, String> {
        let meta = self.metadata()?;
        let q = |s: &str| crate::url::encode_component(s);
        let sep = if meta.authorization_endpoint.contains('?') { '&' } else { '?' };
        Ok(format!(
            "{}{sep}response_type=code&client_id={}&redirect_uri={}&scope={}&state={}&nonce={}&code_challenge={}&code_challenge_method=S256",
            meta.authorization_endpoint,
            q(&self.cfg.client_id),
            q(redirect_uri),
            q(&self.cfg.scopes.join(" ")),
            q(state),
            q(nonce),
            q(&challenge(verifier)),
        ))
    }

    /// Exchanges the code for tokens (client_secret_basic, with the PKCE verifier).
    pub fn exchange(&self, code: &str, verifier: &str, redirect_uri: &str) -> Result<Tokens, String> {
        let meta = self.metadata()?;
        self.allowed(&meta.token_endpoint)?;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            crate::url::encode_component(&self.cfg.client_id),
            crate::url::encode_component(&self.secret)
        ));
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
            ("client_id", self.cfg.client_id.as_str()),
        ];
        let mut resp = self
            .agent
            .post(&meta.token_endpoint)
            .header("Authorization", &format!("Basic {basic}"))
            .send_form(form)
            .map_err(|e| format!("{}: {e}", meta.token_endpoint))?;
        let status = resp.status();
        let body = resp.body_mut().read_to_string().map_err(|e| e.to_string())?;
        if !status.is_success() {
            let why = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["error_description"].as_str().or(v["error"].as_str()).map(str::to_string))
                .unwrap_or_else(|| format!("HTTP {status}"));
            return Err(format!("the provider refused the code: {why}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("the token response is not valid: {e}"))
    }

    pub fn userinfo(&self, access_token: &str) -> Result<Option<Value>, String> {
        let meta = self.metadata()?;
        match &meta.userinfo_endpoint {
            Some(url) => self.get_json(url, Some(access_token)).map(Some),
            None => Ok(None),
        }
    }

    /// Where to send the browser after signing out here (RP-initiated logout), when the
    /// provider supports it.
    pub fn logout_url(&self, post_logout_redirect_uri: &str) -> Option<String> {
        let meta = self.metadata().ok()?;
        let end = meta.end_session_endpoint?;
        let q = crate::url::encode_component;
        let sep = if end.contains('?') { '&' } else { '?' };
        Some(format!(
            "{end}{sep}client_id={}&post_logout_redirect_uri={}",
            q(&self.cfg.client_id),
            q(post_logout_redirect_uri)
        ))
    }
}

/// An icon file as a `data:` URI (the page's CSP allows images from data: and nowhere else).
fn icon(provider: &str, path: &std::path::Path) -> Result<String, String> {
    let mime = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => {
            return Err(format!(
                "oidc provider {provider}: icon_file {} must be .svg or .png",
                path.display()
            ));
        }
    };
    let bytes = std::fs::read(path)
        .map_err(|e| format!("oidc provider {provider}: icon_file {}: {e}", path.display()))?;
    if bytes.len() > 64 * 1024 {
        return Err(format!("oidc provider {provider}: icon_file {} is over 64 KiB", path.display()));
    }
    Ok(format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
}

/// Every configured provider.
pub struct Providers(pub Vec<Arc<Provider>>);

impl Providers {
    pub fn from_config(
        list: &[OidcProviderConfig],
        egress: &crate::egress::Egress,
    ) -> Result<Providers, String> {
        list.iter().map(|p| Provider::new(p, egress).map(Arc::new)).collect::<Result<_, _>>().map(Providers)
    }

    pub fn get(&self, name: &str) -> Option<Arc<Provider>> {
        self.0.iter().find(|p| p.cfg.name == name).cloned()
    }
}

/// A sign-in in progress, between the redirect to the provider and its answer.
#[derive(Debug, Clone)]
pub struct Flow {
    pub provider: String,
    pub nonce: String,
    pub verifier: String,
    pub next: String,
    pub created_at: i64,
}

/// How long a sign-in may take at the provider.
pub const FLOW_TTL: i64 = 600;

pub fn save_flow(conn: &mut crate::store::Conn, state: &str, flow: &Flow) -> crate::error::AppResult<()> {
    use crate::store::schema::oidc_flows;
    use diesel::prelude::*;
    conn.execute(diesel::delete(
        oidc_flows::table.filter(oidc_flows::created_at.lt(flow.created_at - FLOW_TTL)),
    ))?;
    conn.execute(diesel::insert_into(oidc_flows::table).values((
        oidc_flows::state_hash.eq(crate::auth::secret::digest(state)),
        oidc_flows::provider.eq(&flow.provider),
        oidc_flows::nonce.eq(&flow.nonce),
        oidc_flows::verifier.eq(&flow.verifier),
        oidc_flows::next.eq(&flow.next),
        oidc_flows::created_at.eq(flow.created_at),
    )))?;
    Ok(())
}

/// Takes the flow a `state` names, once: a second answer with the same state finds nothing.
pub fn take_flow(conn: &mut crate::store::Conn, state: &str) -> crate::error::AppResult<Option<Flow>> {
    use crate::store::schema::oidc_flows;
    use diesel::prelude::*;
    let hash = crate::auth::secret::digest(state);
    conn.transaction(|conn| {
        let row: Option<(String, String, String, String, i64)> = conn
            .first(oidc_flows::table.find(&hash).select((
                oidc_flows::provider,
                oidc_flows::nonce,
                oidc_flows::verifier,
                oidc_flows::next,
                oidc_flows::created_at,
            )))
            .optional()?;
        conn.execute(diesel::delete(oidc_flows::table.find(&hash)))?;
        Ok(row.map(|(provider, nonce, verifier, next, created_at)| Flow {
            provider,
            nonce,
            verifier,
            next,
            created_at,
        }))
    })
}

/// The identity an account holds for a provider's subject: `issuer|subject`.
pub fn external_id(issuer: &str, subject: &str) -> String {
    format!("{issuer}|{subject}")
}

/// The sign-in identity (source and external id) of `subject` at the configured provider
/// `provider`, for an admin's link (`ayushctl user link`).
pub fn identity_for(
    providers: &[OidcProviderConfig],
    provider: &str,
    subject: &str,
) -> crate::error::AppResult<(String, String)> {
    use crate::error::AppError;
    let cfg = providers.iter().find(|p| p.name == provider).ok_or_else(|| {
        AppError::validation(format!(
            "no OIDC provider named {provider:?} is configured ([[oidc.providers]])"
        ))
    })?;
    if subject.trim().is_empty() || subject.len() > 255 || subject.chars().any(char::is_control) {
        return Err(AppError::validation("the subject is the provider's `sub` claim: 1 to 255 characters"));
    }
    Ok((format!("oidc:{provider}"), external_id(&cfg.issuer, subject)))
}

/// What a provider says about the person, through the configured claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub username: String,
    pub email: Option<String>,
    /// The provider vouches that the email is the person's (`email_verified`).
    pub email_verified: bool,
    pub display_name: String,
    pub groups: std::collections::BTreeSet<String>,
}

/// Reads the identity from the ID token's claims, completed by userinfo (whose `sub` must be
/// the ID token's, Core 5.3.2).
pub fn identity(
    provider: &Provider,
    id_claims: &Value,
    userinfo: Option<&Value>,
) -> Result<Identity, (&'static str, String)> {
    let cfg = &provider.cfg;
    let subject = id_claims["sub"].as_str().unwrap_or_default().to_string();
    if let Some(info) = userinfo
        && info["sub"].as_str() != Some(subject.as_str())
    {
        return Err((
            "userinfo_sub_mismatch",
            "the provider's user information is about someone else".into(),
        ));
    }
    let claim = |name: &str| -> Option<&Value> {
        id_claims
            .get(name)
            .filter(|v| !v.is_null())
            .or_else(|| userinfo.and_then(|u| u.get(name)).filter(|v| !v.is_null()))
    };
    let text = |name: &str| claim(name).and_then(Value::as_str).map(str::to_string);
    let username = text(&cfg.username_claim).ok_or((
        "missing_username_claim",
        format!("the provider did not send the {:?} claim this sign-in needs", cfg.username_claim),
    ))?;
    let groups = match claim(&cfg.groups_claim) {
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Some(Value::String(one)) => std::iter::once(one.clone()).collect(),
        _ => std::collections::BTreeSet::new(),
    };
    let groups = groups
        .into_iter()
        .filter(|g: &String| cfg.groups_prefix.as_deref().is_none_or(|p| g.starts_with(p)))
        .filter(|g: &String| provider.groups_regex.as_ref().is_none_or(|re| re.is_match(g)))
        .collect();
    Ok(Identity {
        subject,
        username,
        email: text(&cfg.email_claim),
        // Some providers send the claim as a string.
        email_verified: matches!(claim("email_verified"), Some(Value::Bool(true)))
            || claim("email_verified").and_then(Value::as_str) == Some("true"),
        display_name: text(&cfg.display_name_claim).unwrap_or_default(),
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(extra: &str) -> Provider {
        let cfg: OidcProviderConfig = toml::from_str(&format!(
            "name = \"corp\"\nbutton_text = \"Corp\"\nissuer = \"https://idp\"\nclient_id = \"ayush\"\n{extra}"
        ))
        .unwrap();
        Provider::new(&cfg, &crate::egress::Egress::new(&Default::default())).unwrap()
    }

    #[test]
    fn pkce_challenge_is_base64url_sha256() {
        // Computed independently: base64.urlsafe_b64encode(hashlib.sha256(v).digest()) in Python.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mJ92K9ZfJFAlc7r5BO_wbJ7yqsjB0k"),
            "2Q-Tcw_7QQeSXlVQMej64W3qxdwsOuUfajSZ7mysAqM"
        );
    }

    #[test]
    fn claims_map_to_an_identity_and_userinfo_must_be_about_the_same_subject() {
        let id = serde_json::json!({"sub": "s1", "preferred_username": "alice", "name": "Alice"});
        let info = serde_json::json!({"sub": "s1", "email": "a@x", "groups": ["ayush-admins", "staff"]});
        let p = provider("groups_prefix = \"ayush-\"");
        let who = identity(&p, &id, Some(&info)).unwrap();
        assert_eq!((who.username.as_str(), who.email.as_deref()), ("alice", Some("a@x")));
        let groups: Vec<String> = who.groups.into_iter().collect();
        assert_eq!(groups, ["ayush-admins"], "the prefix filter keeps ours");
        let p = provider("groups_regex = \"st.ff\"");
        let groups: Vec<String> = identity(&p, &id, Some(&info)).unwrap().groups.into_iter().collect();
        assert_eq!(groups, ["staff"], "the whole name must match");
        let other = serde_json::json!({"sub": "s2"});
        assert_eq!(identity(&p, &id, Some(&other)).unwrap_err().0, "userinfo_sub_mismatch");
        let nameless = serde_json::json!({"sub": "s1"});
        assert_eq!(identity(&p, &nameless, None).unwrap_err().0, "missing_username_claim");
    }
}
