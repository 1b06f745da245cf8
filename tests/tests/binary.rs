//! The binaries themselves: what `--version` says, a clear refusal, not SIGILL, on a CPU older
//! than the build targets (run under qemu-user emulating one), and their man pages and shell
//! completions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::{bin_path, skip_or_fail};
use std::path::Path;
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
fn an_older_cpu_is_told_what_is_missing() {
    let Some(qemu) = ["/usr/bin/qemu-x86_64", "/usr/bin/qemu-x86_64-static"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
    else {
        skip_or_fail("qemu-user (apt-get install qemu-user), to emulate an older CPU");
        return;
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
/// per command and subcommand, each rendering without a warning.
#[test]
fn man_pages_and_completions_are_generated_from_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["ayush", "ayushctl"] {
        let out = Command::new(bin_path(name)).arg("man").arg(dir.path()).output().unwrap();
        assert!(out.status.success(), "{name} man: {}", String::from_utf8_lossy(&out.stderr));
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
    let pages: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(pages.len() > 50, "{} pages", pages.len());
    if !Path::new("/usr/bin/groff").exists() {
        skip_or_fail("groff (apt-get install groff-base), to render the man pages");
        return;
    }
    for page in pages {
        let out = Command::new("groff").args(["-man", "-Tutf8", "-z", "-ww"]).arg(&page).output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && said.is_empty(), "{}: {said}", page.display());
    }
}
