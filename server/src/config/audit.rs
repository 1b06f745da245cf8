//! `[audit]`: the audit log's policy, witnesses, retention, content capture and SIEM sinks.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    pub fail_closed: bool,
    pub secrets_dir: Option<PathBuf>,
    pub checkpoint_interval_mins: u64,
    pub verify_interval_mins: u64,
    pub retention_days: u64,
    pub capture_chat_content_groups: Vec<String>,
    pub sinks: Vec<SinkConfig>,
}

/// One SIEM destination the audit log is forwarded to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Names the sink in logs, status and its delivery cursor: keep it when editing the rest.
    pub name: String,
    pub kind: SinkKind,
    /// `host:port` for the syslog kinds.
    #[serde(default)]
    pub address: Option<String>,
    /// The file the `file` kind appends JSON lines to.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Extra PEM CA certificates to trust (`syslog_tls`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The name the TLS certificate must carry (default: the host of `address`).
    #[serde(default)]
    pub server_name: Option<String>,
    /// The most events a sink may fall behind; beyond it, the oldest are skipped and the gap is
    /// itself an audit event.
    #[serde(default = "default_max_backlog")]
    pub max_backlog: u64,
}

fn default_max_backlog() -> u64 {
    1_000_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// RFC 5424 over TCP, octet-counted (RFC 6587).
    SyslogTcp,
    /// RFC 5424 over TLS (RFC 5425).
    SyslogTls,
    /// RFC 5424 over UDP (RFC 5426): no delivery guarantee.
    SyslogUdp,
    /// JSON lines appended to a file.
    File,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            fail_closed: true,
            secrets_dir: None,
            checkpoint_interval_mins: 60,
            verify_interval_mins: 360,
            retention_days: 0,
            capture_chat_content_groups: Vec::new(),
            sinks: Vec::new(),
        }
    }
}

impl AuditConfig {
    pub(super) fn check(&self) -> Result<(), String> {
        if self.checkpoint_interval_mins == 0 || self.verify_interval_mins == 0 {
            return Err(
                "audit.checkpoint_interval_mins and audit.verify_interval_mins must be at least 1".into()
            );
        }
        if self.capture_chat_content_groups.iter().any(|g| g.trim().is_empty()) {
            return Err("audit.capture_chat_content_groups holds an empty group name".into());
        }
        let mut names = std::collections::HashSet::new();
        for sink in &self.sinks {
            let name = &sink.name;
            let ok_name = super::is_short_name(name);
            if !ok_name {
                return Err(format!("audit.sinks: name {name:?} must be 1 to 40 letters, digits, - or _"));
            }
            if !names.insert(name.clone()) {
                return Err(format!("audit.sinks: the name {name:?} is used twice"));
            }
            match sink.kind {
                SinkKind::File => {
                    if sink.path.is_none() || sink.address.is_some() {
                        return Err(format!(
                            "audit sink {name}: kind = \"file\" takes path (and no address)"
                        ));
                    }
                }
                _ => {
                    let address = sink.address.as_deref().unwrap_or_default();
                    let port = address.rsplit_once(':').and_then(|(h, p)| (!h.is_empty()).then_some(p));
                    if port.and_then(|p| p.parse::<u16>().ok()).is_none_or(|p| p == 0) || sink.path.is_some()
                    {
                        return Err(format!(
                            "audit sink {name}: the syslog kinds take address = \"host:port\" (and no path), not {address:?}"
                        ));
                    }
                }
            }
            if sink.kind != SinkKind::SyslogTls && (sink.ca_file.is_some() || sink.server_name.is_some()) {
                return Err(format!(
                    "audit sink {name}: ca_file and server_name apply to kind = \"syslog_tls\" only"
                ));
            }
            if sink.max_backlog == 0 {
                return Err(format!("audit sink {name}: max_backlog must be at least 1"));
            }
        }
        Ok(())
    }
}
