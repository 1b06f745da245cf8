//! The egress policy. Nothing in Ayush connects out unless an admin configured it (an OIDC
//! provider, an LDAP directory, a SIEM sink); with `egress.airgap = true` even those may reach
//! only loopback and the hosts named in `egress.allow_hosts`. Destinations are checked at
//! start-up (a configured one the policy forbids stops the server with a clear message) and
//! again at every connect, on the addresses the name resolves to then: a refused attempt is
//! logged and recorded as an `egress.refused` audit event with its destination.

use crate::audit::{self, Actor, Event, Outcome};
use crate::config::EgressConfig;
use crate::store::Store;
use std::net::{SocketAddr, ToSocketAddrs};

#[derive(Clone)]
pub struct Egress {
    airgap: bool,
    allow: Vec<String>,
    /// Where refusals are recorded (absent in checks made before the store is open).
    store: Option<Store>,
    clock: Option<crate::clock::SharedClock>,
}

/// The host of a URL (`scheme://[user@]host[:port]/…`), lowercased, brackets removed.
pub fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split_once(']')?.0
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

impl Egress {
    pub fn new(cfg: &EgressConfig) -> Egress {
        Egress {
            airgap: cfg.airgap,
            allow: cfg.allow_hosts.iter().map(|h| h.trim().to_ascii_lowercase()).collect(),
            store: None,
            clock: None,
        }
    }

    /// The same policy, recording refusals in the audit log.
    pub fn recording(mut self, store: Store, clock: crate::clock::SharedClock) -> Egress {
        self.store = Some(store);
        self.clock = Some(clock);
        self
    }

    fn allowlisted(&self, host: &str) -> bool {
        self.allow.iter().any(|pattern| match pattern.strip_prefix("*.") {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => pattern == host,
        })
    }

    /// The addresses `host:port` may be reached at under the policy. With `airgap`, a host not
    /// on the allowlist passes only if every address it resolves to is loopback; connect to the
    /// addresses returned, so a second lookup cannot point elsewhere.
    pub fn check(&self, what: &str, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        let resolved = (host.as_str(), port).to_socket_addrs().map(|a| a.collect::<Vec<SocketAddr>>());
        if !self.airgap || self.allowlisted(&host) {
            return resolved.map_err(|e| format!("{what}: cannot resolve {host}: {e}"));
        }
        // Under airgap, a name that does not resolve cannot be shown to be loopback: refused.
        if let Ok(addrs) = resolved
            && !addrs.is_empty()
            && addrs.iter().all(|a| a.ip().is_loopback())
        {
            return Ok(addrs);
        }
        let message = format!(
            "{what}: the egress policy refuses {host}:{port} (egress.airgap = true allows loopback and egress.allow_hosts only)"
        );
        self.refused(what, &host, port);
        Err(message)
    }

    /// Whether a configured destination is allowed at all (start-up): no lookup is needed for
    /// an allowlisted host, or when the policy is off.
    pub fn permits_url(&self, what: &str, url: &str) -> Result<(), String> {
        let host = host_of(url).ok_or_else(|| format!("{what}: {url:?} names no host"))?;
        if !self.airgap || self.allowlisted(&host) {
            return Ok(());
        }
        self.check_url(what, url).map(drop)
    }

    /// The same for a URL (its host and port, default by scheme).
    pub fn check_url(&self, what: &str, url: &str) -> Result<Vec<SocketAddr>, String> {
        let host = host_of(url).ok_or_else(|| format!("{what}: {url:?} names no host"))?;
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        let explicit = url
            .split_once("://")
            .and_then(|(_, r)| r.split(['/', '?', '#']).next())
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse::<u16>().ok());
        let port = explicit.unwrap_or(match scheme {
            "https" => 443,
            "http" => 80,
            "ldaps" => 636,
            "ldap" => 389,
            _ => 0,
        });
        self.check(what, &host, port)
    }

    fn refused(&self, what: &str, host: &str, port: u16) {
        tracing::warn!(destination = %format!("{host}:{port}"), for_ = what, "egress refused");
        let (Some(store), Some(clock)) = (&self.store, &self.clock) else { return };
        let system = Actor::system("egress");
        let details = serde_json::json!({"destination": format!("{host}:{port}"), "for": what});
        let now = clock.now();
        let event =
            Event::new(&system, "egress.refused", Outcome::Denied).target("host", host).details(details);
        if let Err(e) = store.run_blocking(|c| audit::record(c, now, &event)) {
            tracing::error!(error = %e, "cannot record an egress refusal");
        }
    }
}

/// Remote providers connect through the policy: to the addresses it resolved, or not at all.
impl ayush_models::provider::Gate for Egress {
    fn resolve(&self, what: &str, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        self.check(what, host, port)
    }
}

/// A TCP connection to the first of `addrs` (addresses the policy checked) that answers within
/// `timeout` each.
pub fn connect_checked(
    addrs: &[SocketAddr],
    timeout: std::time::Duration,
) -> std::io::Result<std::net::TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address to connect to");
    for addr in addrs {
        match std::net::TcpStream::connect_timeout(addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Name resolution for ureq agents under the policy: a host resolves only to the addresses the
/// policy checked, in the same lookup, so the connection goes where the check looked (no DNS
/// rebinding between a check and a second lookup).
#[derive(Clone)]
pub struct Resolver {
    egress: Egress,
    what: String,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("egress::Resolver").field("what", &self.what).finish()
    }
}

impl Resolver {
    pub fn new(egress: Egress, what: impl Into<String>) -> Resolver {
        Resolver { egress, what: what.into() }
    }
}

impl ureq::unversioned::resolver::Resolver for Resolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().ok_or(ureq::Error::HostNotFound)?;
        let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("http") { 80 } else { 443 });
        let addrs = self
            .egress
            .check(&self.what, host, port)
            .map_err(|m| ureq::Error::Io(std::io::Error::new(std::io::ErrorKind::PermissionDenied, m)))?;
        let mut out = self.empty();
        for addr in addrs.into_iter().take(16) {
            out.push(addr);
        }
        if out.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(out)
    }
}

impl audit::sink::Gate for Egress {
    fn check(&self, what: &str, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        Egress::check(self, what, host, port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(airgap: bool, allow: &[&str]) -> Egress {
        Egress::new(&EgressConfig { airgap, allow_hosts: allow.iter().map(|s| s.to_string()).collect() })
    }

    #[test]
    fn hosts_are_read_from_urls() {
        assert_eq!(host_of("https://Login.Example.com:8443/x?y").as_deref(), Some("login.example.com"));
        assert_eq!(host_of("ldaps://user@dc1.corp:636").as_deref(), Some("dc1.corp"));
        assert_eq!(host_of("http://[::1]:8080/").as_deref(), Some("::1"));
        assert_eq!(host_of("http:///nohost"), None);
    }

    #[test]
    fn airgap_allows_loopback_and_the_allowlist_only() {
        let p = policy(true, &["idp.example.com", "*.corp.example"]);
        assert!(p.check("test", "127.0.0.1", 80).is_ok());
        assert!(p.check("test", "localhost", 80).is_ok());
        assert!(p.check("test", "::1", 80).is_ok());
        let refused = p.check("oidc provider corp", "10.1.2.3", 443).unwrap_err();
        assert!(
            refused.contains("egress policy refuses 10.1.2.3:443") && refused.contains("oidc provider corp"),
            "{refused}"
        );
        assert!(p.check_url("x", "https://192.168.1.1/").is_err());
        assert!(p.allowlisted("idp.example.com") && p.allowlisted("dc1.corp.example"));
        assert!(!p.allowlisted("corp.example.evil") && !p.allowlisted("evilidp.example.com"));
        assert!(
            policy(false, &[]).check("x", "10.1.2.3", 443).is_ok(),
            "without airgap, configured hosts go"
        );
    }
}
