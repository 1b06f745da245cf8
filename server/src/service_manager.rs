//! Telling systemd where the server stands (`Type=notify`, sd_notify(3)): "ready" once the
//! listening sockets are bound, "stopping" when shutdown begins. systemd then orders units
//! that need Ayush after it is really serving, and `systemctl start` fails if it never gets
//! there. Outside systemd (`NOTIFY_SOCKET` unset) every call does nothing.

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sent once the sockets accept connections.
pub fn ready(status: &str) {
    notify(&format!("READY=1\nSTATUS={status}\nMAINPID={}", std::process::id()));
}

/// Sent when a stop signal arrived and the server drains its connections.
pub fn stopping() {
    notify("STOPPING=1\nSTATUS=stopping");
}

fn notify(message: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    if let Err(e) = send(&path, message) {
        // The service still runs; systemd will time the start out and say so in its own log.
        tracing::warn!(error = %e, socket = ?path, "cannot tell the service manager our state");
    }
}

fn send(path: &std::ffi::OsStr, message: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_bytes();
    // A leading '@' names a socket in the abstract namespace (systemd uses those in containers).
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        None => SocketAddr::from_pathname(path)?,
    };
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(message.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_reaches_a_path_socket_and_an_abstract_one() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path)?;
        send(path.as_os_str(), "READY=1")?;
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf)?;
        assert_eq!(&buf[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("ayush-test-{}", std::process::id());
        let abstract_listener = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name)?)?;
        send(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1")?;
        let n = abstract_listener.recv(&mut buf)?;
        assert_eq!(&buf[..n], b"STOPPING=1");
        Ok(())
    }
}
