//! The binaries themselves: what `--version` says, and a clear refusal, not SIGILL, on a CPU
//! older than the build targets (run under qemu-user emulating one).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::{bin_path, skip_or_fail};
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
