//! Which of the suites' peers this machine has. A test whose peer is missing is compiled as
//! ignored, with what to install, so `cargo test` counts it as not run instead of passed.
//! Under `AYUSH_REQUIRE_PEERS=1` (CI) nothing is ignored: a missing peer fails its test.

use std::path::{Path, PathBuf};

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
}

/// Whether every file exists. Each is watched (or, while absent, the folder it would appear
/// in), so installing a peer rebuilds the suites. A path that does not exist is never named to
/// cargo: it would rerun this script, and rebuild the suites, on every build.
fn files(paths: &[PathBuf]) -> bool {
    for p in paths {
        if let Some(watched) = [Some(p.as_path()), p.parent()].into_iter().flatten().find(|w| w.exists()) {
            println!("cargo:rerun-if-changed={}", watched.display());
        }
    }
    paths.iter().all(|p| p.is_file())
}

fn any_file(paths: &[&str]) -> bool {
    paths.iter().any(|p| files(&[PathBuf::from(p)]))
}

fn main() {
    for var in
        ["AYUSH_REQUIRE_PEERS", "AYUSH_TEST_MODELS_DIR", "AYUSH_VENV", "AYUSH_TEST_DATABASE_URL", "HOME"]
    {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let required = std::env::var("AYUSH_REQUIRE_PEERS").is_ok_and(|v| v == "1");
    let models = std::env::var_os("AYUSH_TEST_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/ayush-models"));
    let venv =
        std::env::var_os("AYUSH_VENV").map(PathBuf::from).unwrap_or_else(|| home().join(".cache/ayush-venv"));
    let oidc =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc-provider/node_modules/oidc-provider/package.json");
    let axe = Path::new(env!("CARGO_MANIFEST_DIR")).join("axe/node_modules/axe-core/axe.min.js");
    let peers = [
        (
            "peer_models",
            files(&[
                models.join("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
                models.join("gemma-3-270m-q4_k_m.gguf"),
                models.join("all-MiniLM-L6-v2/model.safetensors"),
                models.join("whisper-base/model.bin"),
            ]),
        ),
        ("peer_postgres", std::env::var_os("AYUSH_TEST_DATABASE_URL").is_some()),
        ("peer_slapd", any_file(&["/usr/sbin/slapd"])),
        ("peer_browser", files(&["/usr/bin/chromium".into(), "/usr/bin/chromedriver".into()])),
        (
            "peer_rsyslog",
            any_file(&["/usr/sbin/rsyslogd", "/sbin/rsyslogd"])
                && any_file(&[
                    "/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so",
                    "/usr/lib/rsyslog/lmnsd_gtls.so",
                ]),
        ),
        ("peer_oidc", files(&[oidc]) && any_file(&["/usr/bin/node", "/usr/local/bin/node"])),
        ("peer_python", files(&[venv.join("bin/python")])),
        ("peer_qemu", any_file(&["/usr/bin/qemu-x86_64", "/usr/bin/qemu-x86_64-static"])),
        ("peer_groff", any_file(&["/usr/bin/groff"])),
        // Speech synthesised here: espeak-ng speaks, lame makes MP3s of it.
        ("peer_axe", files(&[axe])),
        ("peer_espeak", files(&["/usr/bin/espeak-ng".into(), "/usr/bin/lame".into()])),
    ];
    for (name, present) in peers {
        println!("cargo:rustc-check-cfg=cfg({name})");
        if present || required {
            println!("cargo:rustc-cfg={name}");
        }
    }
}
