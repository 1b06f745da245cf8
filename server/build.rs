//! Build facts that `ayush --version` and `ayushctl --version` print: the commit the binary was
//! built from and the CPU level it was compiled for.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|s| !s.is_empty())
}

fn main() {
    // A source tree without git (a release tarball) says so rather than failing the build.
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=AYUSH_COMMIT={commit}");
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        // A new commit (HEAD or the branch it names moves) rebuilds the version string.
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/refs/heads");
        println!("cargo:rerun-if-changed={dir}/packed-refs");
    }
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let cpu = flags
        .split('\x1f')
        .rev()
        .find_map(|f| f.strip_prefix("target-cpu=").or_else(|| f.strip_prefix("-Ctarget-cpu=")))
        .unwrap_or("x86-64")
        .to_string();
    println!("cargo:rustc-env=AYUSH_TARGET_CPU={cpu}");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    // embed_migrations! reads these folders; a new migration must rebuild the crate that embeds
    // them (a build script that names any path turns off cargo's default of watching them all).
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=src");
    // The store suites' PostgreSQL halves run against the server this names; without one they
    // are compiled as ignored, so the test summary counts them as not run rather than passed.
    println!("cargo:rustc-check-cfg=cfg(ayush_test_postgres)");
    println!("cargo:rerun-if-env-changed=AYUSH_TEST_DATABASE_URL");
    if std::env::var_os("AYUSH_TEST_DATABASE_URL").is_some() {
        println!("cargo:rustc-cfg=ayush_test_postgres");
    }
    // Its TLS test also needs the local cluster's certificate (Debian's ssl-cert snakeoil).
    let snakeoil = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    println!("cargo:rustc-check-cfg=cfg(ayush_test_postgres_tls)");
    println!("cargo:rerun-if-changed={snakeoil}");
    println!("cargo:rerun-if-env-changed=AYUSH_REQUIRE_PEERS");
    let required = std::env::var("AYUSH_REQUIRE_PEERS").is_ok_and(|v| v == "1");
    if std::env::var_os("AYUSH_TEST_DATABASE_URL").is_some()
        && (required || std::path::Path::new(snakeoil).is_file())
    {
        println!("cargo:rustc-cfg=ayush_test_postgres_tls");
    }
}
