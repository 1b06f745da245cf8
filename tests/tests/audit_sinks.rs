//! SIEM forwarding against a real syslog receiver (Debian's rsyslogd) on loopback: every event
//! arrives over TCP, TLS and UDP and in a JSON-lines file, in sequence order; while the receiver
//! is down events wait in the log, and they all arrive, once each, when it returns.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::Server;
use ayush_tests::syslog::Rsyslog;
use std::time::{Duration, Instant};

fn seq_of(line: &str) -> Option<i64> {
    line.split("seq=\"").nth(1)?.split('"').next()?.parse().ok()
}

fn file_seqs(path: &std::path::Path) -> Vec<i64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["seq"].as_i64())
        .collect()
}

fn received(rsyslog: &Rsyslog, input: &str) -> Vec<i64> {
    rsyslog.received(input).iter().filter_map(|l| seq_of(l)).collect()
}

fn head(server: &Server) -> i64 {
    server.open_store().run_blocking(|c| Ok(ayush_server::audit::chain::head(c)?)).unwrap().0
}

/// Waits until `seqs()` holds every seq up to `upto`, and returns what it holds then.
fn wait_for(what: &str, upto: i64, seqs: impl Fn() -> Vec<i64>) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = seqs();
        if got.contains(&upto) || Instant::now() > deadline {
            assert!(got.contains(&upto), "{what} never received seq {upto}: {got:?}");
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[cfg_attr(not(peer_rsyslog), ignore = "needs rsyslog with GnuTLS: run .ci/peers")]
fn the_log_reaches_rsyslog_over_tcp_tls_and_udp_and_catches_up_after_an_outage() {
    let mut rsyslog = Rsyslog::start();
    let archive = tempfile::tempdir().unwrap();
    let archive_file = archive.path().join("audit.jsonl");
    let config = format!(
        r#"
[[audit.sinks]]
name = "siem-tcp"
kind = "syslog_tcp"
address = "127.0.0.1:{}"

[[audit.sinks]]
name = "siem-tls"
kind = "syslog_tls"
address = "localhost:{}"
ca_file = "{}"

[[audit.sinks]]
name = "siem-udp"
kind = "syslog_udp"
address = "127.0.0.1:{}"

[[audit.sinks]]
name = "archive"
kind = "file"
path = "{}"
"#,
        rsyslog.tcp_port,
        rsyslog.tls_port,
        rsyslog.ca_file.display(),
        rsyslog.udp_port,
        archive_file.display()
    );
    let server = Server::start_with_config(&config);
    server.create_user("root", "admin", "admin password 1");
    for name in ["u1", "u2", "u3"] {
        server.create_user(name, "user", "user password 123");
    }
    let first = head(&server);
    let everything = |upto: i64| (1..=upto).collect::<Vec<_>>();
    assert_eq!(wait_for("TCP", first, || received(&rsyslog, "tcp")), everything(first));
    assert_eq!(wait_for("TLS", first, || received(&rsyslog, "tls")), everything(first));
    assert_eq!(wait_for("UDP", first, || received(&rsyslog, "udp")), everything(first));
    assert_eq!(wait_for("the file", first, || file_seqs(&archive_file)), everything(first));

    let line = rsyslog.received("tls").into_iter().find(|l| l.contains("user:u1")).unwrap();
    assert!(
        line.starts_with("<109>1 ")
            && line.contains(" ayush ")
            && line.contains(" user.create [ayush@32473 seq="),
        "{line}"
    );
    let json: serde_json::Value = serde_json::from_str(line.split_once("] ").unwrap().1).unwrap();
    assert_eq!((json["action"].as_str(), json["target_id"].as_str()), (Some("user.create"), Some("u1")));

    // The SIEM goes down; events wait in the log and arrive, once each and in order, when it
    // is back.
    rsyslog.stop();
    for name in ["u4", "u5", "u6"] {
        server.create_user(name, "user", "user password 123");
    }
    std::thread::sleep(Duration::from_millis(1500));
    let during = head(&server);
    rsyslog.restart();
    server.create_user("u7", "user", "user password 123");
    let last = head(&server);
    assert!(last > during && during > first);
    assert_eq!(wait_for("TCP after the outage", last, || received(&rsyslog, "tcp")), everything(last));
    assert_eq!(wait_for("TLS after the outage", last, || received(&rsyslog, "tls")), everything(last));
    assert_eq!(wait_for("the file", last, || file_seqs(&archive_file)), everything(last));

    server.create_user("ada", "auditor", "auditor password 1");
    let auditor = server.key_signed_in("ada", "auditor password 1");
    let mut c = server.client();
    let status = c.raw("GET", "/api/audit/status", &[("Authorization", &format!("Bearer {auditor}"))], "");
    let status = status.json();
    let sinks = status["sinks"].as_array().unwrap();
    assert_eq!(sinks.len(), 4, "{status}");
    // UDP promises nothing: after the outage it may still be backing off.
    let reliable = sinks.iter().filter(|s| s["kind"] != "syslog_udp");
    assert!(reliable.clone().all(|s| s["delivered_seq"].as_i64().unwrap() >= last), "{status}");
}
