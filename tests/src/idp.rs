//! A real OpenID Provider for the OIDC tests: the npm package `oidc-provider` (OpenID
//! Certified), installed by `.ci/peers` into `tests/oidc-provider/node_modules` and run on
//! loopback with one client, `ayush`, and a dev login form that takes any password. alice is in
//! the groups `ayush-admins` and `staff`, bob in `staff`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CLIENT_ID: &str = "ayush";
pub const CLIENT_SECRET: &str = "ayush-client-secret";

pub struct Idp {
    child: Child,
    pub issuer: String,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc-provider")
}

/// A free loopback port for the provider, chosen before Ayush starts (its config names it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Idp {
    /// Starts the provider on `port`.
    pub fn start(port: u16, ayush_url: &str, provider_name: &str) -> Idp {
        let callback = format!("{ayush_url}/auth/oidc/{provider_name}/callback");
        Idp::run("provider.mjs", &[port.to_string(), callback, format!("{ayush_url}/login")], port)
    }

    /// The deliberately broken provider (`forger.mjs`): it signs ID tokens with the defect
    /// `set_defect` names.
    pub fn forger(port: u16) -> Idp {
        Idp::run("forger.mjs", &[port.to_string()], port)
    }

    /// Makes the forger's next ID tokens carry `defect` (`wrong_issuer`, `wrong_audience`,
    /// `bad_signature`, `alg_none`, `expired`, `wrong_nonce`, `userinfo_sub_mismatch`, `none`).
    pub fn set_defect(&self, defect: &str) {
        let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
        agent.post(&format!("{}/defect", self.issuer)).send(defect).expect("set the forger's defect");
    }

    fn run(script: &str, args: &[String], port: u16) -> Idp {
        let installed = dir().join("node_modules/oidc-provider/package.json").exists();
        let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
        if !installed || !node {
            crate::missing_peer("oidc-provider (cd tests/oidc-provider && npm ci)");
        }
        let mut child = Command::new("node")
            .arg(dir().join(script))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("oidc-provider never started");
            if line.contains("listening") {
                break;
            }
        }
        Idp { child, issuer: format!("http://127.0.0.1:{port}") }
    }

    /// The `[oidc]` section for a server using this provider as `name`.
    pub fn config(port: u16, name: &str, show_local_login: bool) -> String {
        format!(
            "[oidc]
show_local_login = {show_local_login}

[[oidc.providers]]
name = \"{name}\"
button_text = \"Sign in with Corp SSO\"
issuer = \"http://127.0.0.1:{port}\"
client_id = \"{CLIENT_ID}\"
client_secret = \"{CLIENT_SECRET}\"
scopes = [\"openid\", \"email\", \"profile\", \"groups\"]
"
        )
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
