//! Testkit: boots the real `ayush` binary on a free port in a fresh data directory, drives
//! `ayushctl`, and talks HTTP to it like a client would. Readiness is polled on `/readyz`,
//! never slept for.

// A testkit fails the test that uses it by panicking, with a message saying what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod browser;
pub mod idp;
pub mod slapd;
pub mod syslog;
pub mod upstream;

/// Where cargo put the workspace's binaries (the test executable sits in `<dir>/deps/`).
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` (cargo test --workspace does)",
        path.display()
    );
    path
}

/// A test certificate authority and a server certificate it signed for `localhost` and
/// `127.0.0.1`, written to `dir` as `ca.pem`, `cert.pem` and `key.pem`. Returns the CA's path.
pub fn test_pki(dir: &Path) -> PathBuf {
    let ca = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Ayush test CA");
    let ca_cert = ca_params.self_signed(&ca).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &rcgen::Issuer::from_params(&ca_params, &ca)).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    ca_file
}

/// True when CI demands every peer; tests that cannot find theirs must then fail, not skip.
/// A database on the test PostgreSQL made for one test, dropped when it ends.
pub struct TestDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = Command::new("psql").arg(&self.admin_url).args(["-q", "-c", &sql]).output();
    }
}

/// A fresh database named for `test` on the test PostgreSQL (`AYUSH_TEST_DATABASE_URL`).
pub fn fresh_database(test: &str) -> TestDatabase {
    let Ok(url) = std::env::var("AYUSH_TEST_DATABASE_URL") else {
        missing_peer("PostgreSQL: set AYUSH_TEST_DATABASE_URL");
    };
    let name = format!("ayush_{test}_{}", std::process::id());
    for sql in [format!("DROP DATABASE IF EXISTS {name}"), format!("CREATE DATABASE {name}")] {
        let out = Command::new("psql").arg(&url).args(["-q", "-c", &sql]).output().expect("psql");
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let base =
        url.split('?').next().expect("url").rsplit_once('/').expect("a database in the url").0.to_string();
    TestDatabase { url: format!("{base}/{name}"), name, admin_url: url }
}

/// Fails the test for want of a peer. A test whose peer is missing when the suites are built
/// is compiled as ignored (see `tests/build.rs`), so this is a peer that went away since, or
/// one `AYUSH_REQUIRE_PEERS=1` demands: either way the test did not run and must not pass.
pub fn missing_peer(why: &str) -> ! {
    panic!(
        "a peer this test needs is missing: {why} (install it, or rebuild the suites to see the test ignored)"
    );
}

/// The test venv's Python (`AYUSH_VENV`, default `~/.cache/ayush-venv`, made by `.ci/peers`),
/// which must import `module`; `requirements` names what to install.
pub fn venv_python(module: &str, requirements: &str) -> PathBuf {
    let venv = std::env::var("AYUSH_VENV").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/ayush-venv")
    });
    let python = venv.join("bin/python");
    let has = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        missing_peer(&format!(
            "the Python module {module} (python3 -m venv ~/.cache/ayush-venv && pip install -r {requirements})"
        ));
    }
    python
}

/// A real model file fetched by `packaging/fetch-models`.
pub fn test_model(file: &str) -> PathBuf {
    let dir = std::env::var_os("AYUSH_TEST_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/ayush-models")
    });
    let path = dir.join(file);
    if !path.is_file() {
        missing_peer(&format!("{} (run packaging/fetch-models all)", path.display()));
    }
    path
}

pub const QWEN_FILE: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
pub const GEMMA_FILE: &str = "gemma-3-270m-q4_k_m.gguf";

pub struct Server {
    child: Child,
    pub url: String,
    pub data_dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    log: mpsc::Receiver<String>,
    /// The certificate a TLS-serving test server uses, trusted by its clients.
    trusted_pem: Option<Vec<u8>>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts `ayush serve` with extra `AYUSH_*` variables.
    pub fn start_with(env: &[(&str, &str)]) -> Server {
        Server::start_in(tempfile::tempdir().expect("temp dir"), env)
    }

    /// Starts `ayush serve` with this `ayush.toml` (the server finds it in its working
    /// directory, the data directory).
    pub fn start_with_config(toml: &str) -> Server {
        let data_dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(data_dir.path().join("ayush.toml"), toml).expect("write ayush.toml");
        Server::start_in(data_dir, &[])
    }

    /// Starts `ayush serve` on a data directory prepared beforehand (an `ayush.toml` in it is
    /// read).
    pub fn start_in(data_dir: tempfile::TempDir, env: &[(&str, &str)]) -> Server {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut child = Command::new(bin_path("ayush"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path())
            .arg("--config")
            .arg(config_file(data_dir.path()))
            .current_dir(data_dir.path())
            .envs(env.iter().cloned())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ayush");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[ayush] {line}");
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            let line =
                rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).unwrap_or_else(|_| {
                    let status = child.try_wait().ok().flatten();
                    panic!("ayush did not report that it is listening (exit status: {status:?})")
                });
            if let Some(rest) = line.split("listen=").nth(1) {
                break rest.split_whitespace().next().unwrap_or_default().trim_matches('"').to_string();
            }
        };
        let trusted_pem = env
            .iter()
            .find(|(k, _)| k == "AYUSH_TLS__CERT")
            .map(|(_, path)| std::fs::read(path).expect("read the test certificate"));
        let server = Server { child, url, data_dir, env, log: rx, trusted_pem };
        server.wait_ready(deadline);
        server
    }

    fn wait_ready(&self, deadline: Instant) {
        let mut client = self.client();
        loop {
            if client.get("/readyz").status == 200 {
                return;
            }
            assert!(Instant::now() < deadline, "ayush never became ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn client(&self) -> Client {
        match &self.trusted_pem {
            Some(pem) => Client::trusting(&self.url, pem),
            None => Client::new(&self.url),
        }
    }

    /// Runs `ayushctl --local` on this server's data directory (and its config file, when the
    /// server was started with one).
    pub fn ctl_local(&self, args: &[&str], stdin: Option<&str>) -> CtlOutput {
        let mut full = vec!["--local", "--data-dir"];
        let dir = self.data_dir.path().to_string_lossy().to_string();
        full.push(&dir);
        let config = config_file(self.data_dir.path()).to_string_lossy().to_string();
        full.extend(["--config", config.as_str()]);
        full.extend_from_slice(args);
        run_ctl(&full, stdin, &self.env)
    }

    /// Runs `ayushctl` against this server with an API token.
    pub fn ctl_remote(&self, token: &str, args: &[&str], stdin: Option<&str>) -> CtlOutput {
        let env =
            vec![("AYUSH_URL".to_string(), self.url.clone()), ("AYUSH_TOKEN".to_string(), token.to_string())];
        run_ctl(args, stdin, &env)
    }

    /// Creates a user with `ayushctl --local`, the way an admin bootstraps.
    pub fn create_user(&self, name: &str, role: &str, password: &str) {
        let out =
            self.ctl_local(&["user", "create", name, "--role", role, "--password-stdin"], Some(password));
        assert!(out.ok, "creating {name}: {}", out.stderr);
    }

    /// Makes an API key for `user` with `ayushctl --local` and returns its secret. On the data
    /// directory the operator makes keys for admins and service accounts only; a person's key
    /// is made by that person signed in (`key_signed_in`).
    pub fn token_for(&self, user: &str) -> String {
        let out = self.ctl_local(&["-o", "json", "keys", "create", "--user", user], None);
        assert!(out.ok, "{}", out.stderr);
        out.json()["secret"].as_str().expect("secret").to_string()
    }

    /// Signs in as `user` and makes a key on `/api/keys`, as a person makes their own; returns
    /// its secret.
    pub fn key_signed_in(&self, user: &str, password: &str) -> String {
        let mut c = self.client();
        assert_eq!(c.login(user, password).status, 200, "{user} signs in");
        let r = c.send_json("POST", "/api/keys", &serde_json::json!({"name": "test"}));
        assert_eq!(r.status, 201, "{user} makes a key: {}", r.body);
        r.json()["secret"].as_str().expect("secret").to_string()
    }

    /// Opens this server's database directly, as `ayushctl --local` (or a database administrator
    /// with a SQL prompt) would.
    pub fn open_store(&self) -> ayush_server::store::Store {
        let config = ayush_server::config::Config {
            server: ayush_server::config::ServerConfig {
                data_dir: self.data_dir.path().to_path_buf(),
                ..Default::default()
            },
            ..Default::default()
        };
        let (_, chain) = ayush_server::audit::Ledger::open(&config).expect("audit keys");
        ayush_server::store::Store::open(&config.database, &config.server.data_dir, chain).expect("database")
    }

    /// The newest events (at most 200) with this action, and this outcome when given, read
    /// straight from the database.
    pub fn audit_events(&self, action: &str, outcome: Option<&str>) -> Vec<ayush_server::audit::AuditEvent> {
        let filter = ayush_server::audit::query::Filter {
            action: Some(action.into()),
            outcome: outcome.map(str::to_string),
            ..Default::default()
        };
        self.open_store()
            .run_blocking(|c| ayush_server::audit::query::page(c, &filter.check()?, None, 200))
            .expect("audit events")
    }

    /// Stops the server as systemd would (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "ayush exited with {status} after SIGTERM");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("ayush did not stop within 30 s of SIGTERM");
    }

    /// Kills the server outright (SIGKILL, as a power cut or the OOM killer would) and waits
    /// for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same data directory, with the same environment (after
    /// `stop`, or on a killed one).
    pub fn restart(mut self) -> Server {
        let data_dir = std::mem::replace(&mut self.data_dir, tempfile::tempdir().expect("temp dir"));
        let env = std::mem::take(&mut self.env);
        drop(self);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Server::start_in(data_dir, &env)
    }

    /// The server's process id (for reading its memory use).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Log lines printed so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct CtlOutput {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CtlOutput {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// The config file a test server reads: the `ayush.toml` the test put in its data directory,
/// else none at all. Named explicitly, because the default search starts at
/// `/etc/ayush/ayush.toml`, and a machine with Ayush installed must not reconfigure the tests.
pub fn config_file(data_dir: &Path) -> PathBuf {
    let own = data_dir.join("ayush.toml");
    if own.is_file() { own } else { PathBuf::from(NO_CONFIG_FILE) }
}

/// Named as the config file: an empty one, so only the built-in defaults, the environment and
/// flags count.
pub const NO_CONFIG_FILE: &str = "/dev/null";

pub fn run_ctl(args: &[&str], stdin: Option<&str>, env: &[(String, String)]) -> CtlOutput {
    let mut child = Command::new(bin_path("ayushctl"))
        .args(args)
        // Never the developer's own server: only what the test passes.
        .env_remove("AYUSH_URL")
        .env_remove("AYUSH_TOKEN")
        .envs(env.iter().cloned())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ayushctl");
    // Dropping stdin closes it, so a command that reads it sees the end.
    if let (Some(mut input), Some(text)) = (child.stdin.take(), stdin) {
        let _ = writeln!(input, "{text}");
    }
    let out = child.wait_with_output().expect("ayushctl output");
    CtlOutput {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy where it is not UTF-8).
    pub body: String,
    /// The body as it came (audio, images).
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_string()
    }
}

/// A small HTTP client that keeps the session cookie, and any other cookie the server sets
/// (the OIDC sign-in binding), like a browser would.
pub struct Client {
    base: String,
    agent: ureq::Agent,
    pub session: Option<String>,
    /// Cookies other than the session, by name.
    pub cookies: Vec<(String, String)>,
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client::with_tls(base, ureq::tls::TlsConfig::default())
    }

    /// A client that trusts exactly this PEM certificate, for a server with a test certificate.
    pub fn trusting(base: &str, pem: &[u8]) -> Client {
        let cert = ureq::tls::Certificate::from_pem(pem).expect("PEM certificate").to_owned();
        let roots = ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![cert]));
        Client::with_tls(base, ureq::tls::TlsConfig::builder().root_certs(roots).build())
    }

    fn with_tls(base: &str, tls: ureq::tls::TlsConfig) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(60)))
            .tls_config(tls)
            .build()
            .into();
        Client { base: base.to_string(), agent, session: None, cookies: Vec::new() }
    }

    fn finish(&mut self, result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut resp = result.expect("HTTP request failed");
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        for (k, v) in &headers {
            if k != "set-cookie" {
                continue;
            }
            let pair = v.split(';').next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else { continue };
            if name == "ayush_session" {
                self.session = if value.is_empty() { None } else { Some(value.to_string()) };
                continue;
            }
            self.cookies.retain(|(n, _)| n != name);
            // An emptied cookie is the server clearing it.
            if !value.is_empty() {
                self.cookies.push((name.to_string(), value.to_string()));
            }
        }
        let bytes = resp.body_mut().with_config().limit(64 << 20).read_to_vec().unwrap_or_default();
        let body = String::from_utf8_lossy(&bytes).into_owned();
        Reply { status: resp.status().as_u16(), headers, body, bytes }
    }

    fn cookie(&self) -> String {
        let session = self.session.as_ref().map(|s| ("ayush_session", s.as_str()));
        let others = self.cookies.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        session.into_iter().chain(others).map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub fn get(&mut self, path: &str) -> Reply {
        let r = self.agent.get(format!("{}{path}", self.base)).header("Cookie", self.cookie()).call();
        self.finish(r)
    }

    /// A JSON request as the web UI's scripts send it.
    pub fn send_json(&mut self, method: &str, path: &str, body: &Value) -> Reply {
        let url = format!("{}{path}", self.base);
        let text = body.to_string();
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Cookie", self.cookie())
            .header("Content-Type", "application/json")
            .body(text)
            .expect("request");
        let r = self.agent.run(req);
        self.finish(r)
    }

    /// Starts a JSON request and returns the open response body, to read a stream piece by
    /// piece (and drop it halfway, as a client that goes away would).
    pub fn open_stream(&mut self, path: &str, body: &Value) -> (u16, ureq::Body) {
        self.open_stream_with(path, &[], body)
    }

    /// As `open_stream`, with these headers too (an API key, say).
    pub fn open_stream_with(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> (u16, ureq::Body) {
        let mut req = ureq::http::Request::builder()
            .method("POST")
            .uri(format!("{}{path}", self.base))
            .header("Cookie", self.cookie())
            .header("Content-Type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self.agent.run(req.body(body.to_string()).expect("request")).expect("HTTP request failed");
        let status = resp.status().as_u16();
        (status, resp.into_body())
    }

    /// Any request with exactly these headers and body, for probing the guards.
    pub fn raw(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let mut req = ureq::http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        if self.session.is_some() || !self.cookies.is_empty() {
            req = req.header("Cookie", self.cookie());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = self.agent.run(req.body(body.to_string()).expect("request"));
        self.finish(r)
    }

    /// `POST /v1/chat/completions` with an API key, as an OpenAI client sends it.
    pub fn v1_chat(&mut self, key: &str, body: &Value) -> Reply {
        let auth = format!("Bearer {key}");
        let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
        self.raw("POST", "/v1/chat/completions", &headers, &body.to_string())
    }

    pub fn login(&mut self, username: &str, password: &str) -> Reply {
        self.send_json(
            "POST",
            "/api/auth/login",
            &serde_json::json!({"username": username, "password": password}),
        )
    }
}

/// Server-sent events in a response body: (event name, JSON data).
pub fn sse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name.to_string(), serde_json::from_str(data).ok()?))
        })
        .collect()
}
