//! TLS client trust, shared by every outbound connection Ayush makes (PostgreSQL, SIEM sinks):
//! the system's roots plus an optional PEM bundle naming a private CA.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::path::Path;

/// The roots to verify servers against. `what` names the setting in error messages.
pub fn trusted_roots(ca_file: Option<&Path>, what: &str) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A broken certificate in the system store should not stop the server; skip it.
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let certs =
            CertificateDer::pem_file_iter(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| format!("{what} {}: {e}", path.display()))?;
            roots.add(cert).map_err(|e| format!("{what} {}: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("{what} {} holds no certificate", path.display()));
        }
    }
    Ok(roots)
}

/// A client config that verifies servers against `trusted_roots`.
pub fn client_config(ca_file: Option<&Path>, what: &str) -> Result<rustls::ClientConfig, String> {
    let roots = trusted_roots(ca_file, what)?;
    Ok(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
}
