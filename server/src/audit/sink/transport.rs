//! The wire to one sink: blocking sockets on the sink's own thread, with timeouts, so a slow or
//! dead SIEM never holds up a request.

use super::Gate;
use super::syslog;
use crate::audit::AuditEvent;
use crate::audit::query::{self, Format};
use crate::config::{SinkConfig, SinkKind};
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

pub enum Transport {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Udp(UdpSocket),
    File(std::fs::File),
}

/// The addresses the egress policy lets this sink reach (connect to these, not the name).
fn allowed(cfg: &SinkConfig, egress: &dyn Gate, address: &str) -> Result<Vec<std::net::SocketAddr>, String> {
    let (host, port) = address.rsplit_once(':').ok_or_else(|| format!("{address} is not host:port"))?;
    let port: u16 = port.parse().map_err(|_| format!("{address}: bad port"))?;
    egress.check(&format!("audit sink {}", cfg.name), host, port)
}

fn connect_tcp(address: &str, addrs: Vec<std::net::SocketAddr>) -> Result<TcpStream, String> {
    let mut last = format!("{address} resolves to no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(s) => {
                s.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
                s.set_nodelay(true).map_err(|e| e.to_string())?;
                return Ok(s);
            }
            Err(e) => last = format!("cannot connect to {address}: {e}"),
        }
    }
    Err(last)
}

impl Transport {
    pub fn open(cfg: &SinkConfig, egress: &dyn Gate) -> Result<Transport, String> {
        let address = cfg.address.as_deref().unwrap_or_default();
        match cfg.kind {
            SinkKind::SyslogTcp => connect_tcp(address, allowed(cfg, egress, address)?).map(Transport::Tcp),
            SinkKind::SyslogTls => {
                let host = address.rsplit_once(':').map_or(address, |(h, _)| h).trim_matches(['[', ']']);
                let name = cfg.server_name.clone().unwrap_or_else(|| host.to_string());
                let server_name = rustls::pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| format!("server name {name:?}: {e}"))?;
                let config = crate::tls::client_config(cfg.ca_file.as_deref(), "ca_file")?;
                let conn = rustls::ClientConnection::new(Arc::new(config), server_name)
                    .map_err(|e| format!("TLS to {address}: {e}"))?;
                let sock = connect_tcp(address, allowed(cfg, egress, address)?)?;
                sock.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
                let mut tls = rustls::StreamOwned::new(conn, sock);
                // Handshake now, so a certificate problem is reported as such.
                while tls.conn.is_handshaking() {
                    tls.conn
                        .complete_io(&mut tls.sock)
                        .map_err(|e| format!("TLS handshake with {address}: {e}"))?;
                }
                Ok(Transport::Tls(Box::new(tls)))
            }
            SinkKind::SyslogUdp => {
                let target = allowed(cfg, egress, address)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| format!("{address} resolves to no address"))?;
                let local = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                let sock = UdpSocket::bind(local).map_err(|e| e.to_string())?;
                sock.connect(target).map_err(|e| format!("UDP to {address}: {e}"))?;
                Ok(Transport::Udp(sock))
            }
            SinkKind::File => {
                let path = cfg.path.as_deref().ok_or("no path")?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                }
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map(Transport::File)
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
        }
    }

    /// Sends a batch, in order. `Ok` means the receiver's connection took every byte and was
    /// still open afterwards (plain syslog has no acknowledgement to wait for).
    pub fn send(&mut self, events: &[AuditEvent], hostname: &str) -> Result<(), String> {
        let procid = std::process::id();
        match self {
            Transport::Tcp(sock) => {
                sock.write_all(&frames(events, hostname, procid))
                    .and_then(|_| sock.flush())
                    .map_err(|e| format!("sending: {e}"))?;
                still_open(sock)
            }
            Transport::Tls(tls) => {
                tls.write_all(&frames(events, hostname, procid))
                    .and_then(|_| tls.flush())
                    .map_err(|e| format!("sending: {e}"))?;
                still_open_tls(tls)
            }
            Transport::Udp(sock) => {
                for e in events {
                    sock.send(syslog::datagram(e, hostname, procid).as_bytes())
                        .map_err(|e| format!("sending: {e}"))?;
                }
                Ok(())
            }
            Transport::File(file) => {
                let mut text = String::with_capacity(events.len() * 600);
                for e in events {
                    query::write_event(&mut text, Format::Jsonl, e);
                }
                file.write_all(text.as_bytes())
                    .and_then(|_| file.sync_data())
                    .map_err(|e| format!("writing: {e}"))
            }
        }
    }
}

fn frames(events: &[AuditEvent], hostname: &str, procid: u32) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(events.len() * 600);
    for e in events {
        syslog::frame(&mut bytes, &syslog::message(e, hostname, procid));
    }
    bytes
}

/// A receiver that closed or reset the connection is noticed here rather than one batch later:
/// the batch just written may not have been read, so it is not counted as delivered.
fn still_open(sock: &TcpStream) -> Result<(), String> {
    sock.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut probe = [0u8; 1];
    let seen = sock.peek(&mut probe);
    sock.set_nonblocking(false).map_err(|e| e.to_string())?;
    match seen {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
        Ok(0) => Err("the receiver closed the connection".into()),
        // Syslog receivers send nothing; anything else (a TLS alert) means trouble.
        Ok(_) => Err("the receiver sent data, which syslog receivers never do".into()),
        Err(e) => Err(format!("connection lost: {e}")),
    }
}

/// The same over TLS: records the receiver sent (session tickets) are taken in; a close or an
/// alert fails the batch.
fn still_open_tls(tls: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>) -> Result<(), String> {
    tls.sock.set_nonblocking(true).map_err(|e| e.to_string())?;
    let result = loop {
        match tls.conn.read_tls(&mut tls.sock) {
            Ok(0) => break Err("the receiver closed the connection".to_string()),
            Ok(_) => match tls.conn.process_new_packets() {
                Ok(state) if state.peer_has_closed() => {
                    break Err("the receiver closed the connection".into());
                }
                Ok(_) => continue,
                Err(e) => break Err(format!("TLS: {e}")),
            },
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break Ok(()),
            Err(e) => break Err(format!("connection lost: {e}")),
        }
    };
    tls.sock.set_nonblocking(false).map_err(|e| e.to_string())?;
    result
}
