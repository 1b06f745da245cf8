//! The binaries themselves: what `--version` says, a clear refusal, not SIGILL, on a CPU older
//! than the build targets (run under qemu-user emulating one), and their man pages and shell
//! completions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::{bin_path, missing_peer};
use std::process::Command;

#[test]
fn version_names_the_commit_and_the_cpu_the_build_needs() {
    for name in ["ayush", "ayushctl"] {
        let out = Command::new(bin_path(name)).arg("--version").output().unwrap();
        assert!(out.status.success(), "{name} --version");
        let said = String::from_utf8_lossy(&out.stdout);
        let version = env!("CARGO_PKG_VERSION");
        assert!(said.starts_with(&format!("{name} {version} (commit ")), "{said}");
        assert!(said.contains("built for x86-64-v3") && said.contains("PostgreSQL"), "{said}");
        let commit = said.split("(commit ").nth(1).and_then(|s| s.split(';').next()).unwrap();
        assert!(commit == "unknown" || commit.chars().all(|c| c.is_ascii_hexdigit()), "{commit}");
    }
}

/// qemu-user emulating a Nehalem (SSE4.2, no AVX): both binaries say what they need and stop.
#[test]
#[cfg_attr(not(peer_qemu), ignore = "needs qemu-user: apt-get install qemu-user")]
fn an_older_cpu_is_told_what_is_missing() {
    let Some(qemu) = ["/usr/bin/qemu-x86_64", "/usr/bin/qemu-x86_64-static"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
    else {
        missing_peer("qemu-user (apt-get install qemu-user), to emulate an older CPU");
    };
    for name in ["ayush", "ayushctl"] {
        let out = Command::new(&qemu)
            .args(["-cpu", "Nehalem"])
            .arg(bin_path(name))
            .arg("--version")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {said}");
        assert!(
            said.contains("compiled for x86-64-v3") && said.contains("needs a CPU with AVX2, FMA and BMI2"),
            "{name}: {said}"
        );
        let same =
            Command::new(&qemu).args(["-cpu", "max"]).arg(bin_path(name)).arg("--version").output().unwrap();
        assert!(
            same.status.success(),
            "{name} runs on an emulated CPU that has them: {}",
            String::from_utf8_lossy(&same.stderr)
        );
    }
}

/// Man pages and completions come from the same definitions the binaries parse with: one page
/// per command and subcommand.
#[test]
fn man_pages_and_completions_are_generated_from_the_commands() {
    let dir = man_pages();
    for name in ["ayush", "ayushctl"] {
        let bash = Command::new(bin_path(name)).args(["completions", "bash"]).output().unwrap();
        assert!(String::from_utf8_lossy(&bash.stdout).contains(&format!("_{name}()")), "{name} completions");
    }
    for page in [
        "ayush.1",
        "ayush-serve.1",
        "ayush-config-check.1",
        "ayushctl.1",
        "ayushctl-user-create.1",
        "ayushctl-keys-create.1",
    ] {
        assert!(dir.path().join(page).is_file(), "{page}");
    }
    let create = std::fs::read_to_string(dir.path().join("ayushctl-user-create.1")).unwrap();
    assert!(create.contains(".SH NAME") && create.contains("\\-\\-service"), "{create}");
    assert!(pages(&dir).len() > 50, "{} pages", pages(&dir).len());
}

/// Each page renders without a warning.
#[test]
#[cfg_attr(not(peer_groff), ignore = "needs groff: apt-get install groff-base")]
fn man_pages_render_without_a_warning() {
    let dir = man_pages();
    for page in pages(&dir) {
        let out = Command::new("groff").args(["-man", "-Tutf8", "-z", "-ww"]).arg(&page).output();
        let out = out.unwrap_or_else(|e| missing_peer(&format!("groff ({e})")));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && said.is_empty(), "{}: {said}", page.display());
    }
}

/// Both binaries' man pages, written to a fresh folder.
fn man_pages() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["ayush", "ayushctl"] {
        let out = Command::new(bin_path(name)).arg("man").arg(dir.path()).output().unwrap();
        assert!(out.status.success(), "{name} man: {}", String::from_utf8_lossy(&out.stderr));
    }
    dir
}

fn pages(dir: &tempfile::TempDir) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect()
}
