//! A real syslog receiver for the SIEM forwarding tests: Debian's rsyslogd, configured by the
//! test on loopback with a plain TCP, a TLS (GnuTLS, test CA) and a UDP input, each writing the
//! raw messages it receives to its own file.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Rsyslog {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub tcp_port: u16,
    pub tls_port: u16,
    pub udp_port: u16,
    /// The CA that signed the receiver's certificate (for the sink's `ca_file`).
    pub ca_file: PathBuf,
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn rsyslogd() -> Option<PathBuf> {
    ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"].iter().map(PathBuf::from).find(|p| p.exists())
}

impl Rsyslog {
    pub fn start() -> Rsyslog {
        let gtls = Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so").exists()
            || Path::new("/usr/lib/rsyslog/lmnsd_gtls.so").exists();
        if rsyslogd().is_none() || !gtls {
            crate::missing_peer("rsyslogd with GnuTLS (apt-get install rsyslog rsyslog-gnutls)");
        }
        let dir = tempfile::tempdir().unwrap();
        let ca_file = crate::test_pki(dir.path());
        let mut r = Rsyslog {
            child: None,
            tcp_port: free_tcp_port(),
            tls_port: free_tcp_port(),
            udp_port: free_udp_port(),
            ca_file,
            dir,
        };
        r.write_config();
        r.restart();
        r
    }

    fn write_config(&self) {
        let d = self.dir.path().display();
        let conf = format!(
            r#"global(workDirectory="{d}" defaultNetstreamDriverCAFile="{d}/ca.pem"
       defaultNetstreamDriverCertFile="{d}/cert.pem" defaultNetstreamDriverKeyFile="{d}/key.pem")
module(load="imtcp")
module(load="imudp")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="tcp") {{ action(type="omfile" file="{d}/tcp.log" template="raw") }}
ruleset(name="tls") {{ action(type="omfile" file="{d}/tls.log" template="raw") }}
ruleset(name="udp") {{ action(type="omfile" file="{d}/udp.log" template="raw") }}
input(type="imtcp" address="127.0.0.1" port="{}" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="{}" ruleset="tls"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imudp" address="127.0.0.1" port="{}" ruleset="udp")
"#,
            self.tcp_port, self.tls_port, self.udp_port
        );
        std::fs::write(self.dir.path().join("rsyslog.conf"), conf).unwrap();
    }

    /// Starts (again, on the same ports) and waits until both TCP inputs accept connections.
    pub fn restart(&mut self) {
        self.stop();
        let dir = self.dir.path();
        let child = Command::new(rsyslogd().unwrap())
            .arg("-n")
            .arg("-f")
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rsyslogd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in [self.tcp_port, self.tls_port] {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "rsyslogd never listened on {port}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Stops the receiver (a SIEM going down for maintenance): SIGTERM, so it writes out what
    /// it already received.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.dir.path().join("rsyslogd.pid"));
    }

    /// The messages one input has written so far (`tcp`, `tls` or `udp`).
    pub fn received(&self, input: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join(format!("{input}.log")))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}
