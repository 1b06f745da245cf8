//! The Helm chart (helm/ayush), linted and rendered by Helm itself through helm-python-sdk
//! (PyPI; Helm as a library, no helm binary or cluster): its manifests are checked for what the
//! chart promises (tests/helm/check_chart.py), and the configuration it renders for each mode is
//! checked by the real `ayush config check`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::{bin_path, venv_python};
use std::path::Path;
use std::process::Command;

#[test]
#[cfg_attr(not(peer_python), ignore = "needs the test venv: run .ci/peers")]
fn the_chart_lints_renders_and_keeps_its_promises() {
    let python = venv_python("helm_python", "tests/helm/requirements.txt");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(python)
        .arg(root.join("tests/helm/check_chart.py"))
        .arg(root.join("helm/ayush"))
        .arg(out.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&run.stdout).to_string() + &String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success() && said.contains("chart ok"), "{said}");

    for mode in ["default", "scale-out"] {
        let file = out.path().join(format!("{mode}.toml"));
        let check = Command::new(bin_path("ayush"))
            .args(["config", "check", "--config"])
            .arg(&file)
            .env("AYUSH_DATABASE__URL", "postgres://ayush:secret@db.corp.example/ayush")
            .output()
            .unwrap();
        let said =
            String::from_utf8_lossy(&check.stdout).to_string() + &String::from_utf8_lossy(&check.stderr);
        assert!(check.status.success(), "the {mode} chart's ayush.toml: {said}");
    }
}
