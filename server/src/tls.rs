//! TLS client trust, shared by every outbound connection Ayush makes (PostgreSQL, LDAP, OIDC
//! providers, SIEM sinks): the system's roots plus an optional PEM bundle naming a private CA.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::path::Path;

/// The certificates to trust: the system's, plus those in `ca_file` (each of which must be a
/// usable CA certificate). `what` names the setting in error messages.
pub fn trusted_certs(ca_file: Option<&Path>, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut certs = rustls_native_certs::load_native_certs().certs;
    if let Some(path) = ca_file {
        let named = |e: &dyn std::fmt::Display| format!("{what} {}: {e}", path.display());
        let extra: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| named(&e))?
            .collect::<Result<_, _>>()
            .map_err(|e| named(&e))?;
        if extra.is_empty() {
            return Err(format!("{what} {} holds no certificate", path.display()));
        }
        let mut check = rustls::RootCertStore::empty();
        for cert in &extra {
            check.add(cert.clone()).map_err(|e| named(&e))?;
        }
        certs.extend(extra);
    }
    Ok(certs)
}

/// The same as a root store. A broken certificate in the system store should not stop the
/// server: it is skipped (those from `ca_file` were checked above).
pub fn trusted_roots(ca_file: Option<&Path>, what: &str) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(trusted_certs(ca_file, what)?);
    Ok(roots)
}

/// A client config that verifies servers against `trusted_roots`.
pub fn client_config(ca_file: Option<&Path>, what: &str) -> Result<rustls::ClientConfig, String> {
    let roots = trusted_roots(ca_file, what)?;
    Ok(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_hold_usable_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        assert!(trusted_certs(Some(&empty), "ldap.ca_file").unwrap_err().contains("holds no certificate"));
        let broken = dir.path().join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        let err = trusted_certs(Some(&broken), "ldap.ca_file").unwrap_err();
        assert!(err.starts_with("ldap.ca_file ") && err.contains("broken.pem"), "{err}");
        assert!(trusted_roots(None, "x").is_ok(), "the system's roots alone");
    }
}
