//! Whether the real test models (`packaging/fetch-models all`) and espeak-ng are here. Without them the
//! suites that load them are compiled as ignored, so `cargo test` counts them as not run
//! instead of passed; under `AYUSH_REQUIRE_PEERS=1` (CI) they run, and a missing file fails.

use std::path::PathBuf;

fn main() {
    for var in ["AYUSH_REQUIRE_PEERS", "AYUSH_TEST_MODELS_DIR", "HOME"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let dir = std::env::var_os("AYUSH_TEST_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/ayush-models")
    });
    let files = [
        dir.join("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
        dir.join("gemma-3-270m-q4_k_m.gguf"),
        dir.join("all-MiniLM-L6-v2/model.safetensors"),
        dir.join("whisper-base/model.bin"),
    ];
    // Watched where they are, or where they would appear; never a path that does not exist,
    // which would rerun this script and rebuild everything above it on every build.
    for f in &files {
        if let Some(watched) = [Some(f.as_path()), f.parent()].into_iter().flatten().find(|w| w.exists()) {
            println!("cargo:rerun-if-changed={}", watched.display());
        }
    }
    println!("cargo:rustc-check-cfg=cfg(peer_models)");
    println!("cargo:rustc-check-cfg=cfg(peer_espeak)");
    let required = std::env::var("AYUSH_REQUIRE_PEERS").is_ok_and(|v| v == "1");
    if required || files.iter().all(|f| f.is_file()) {
        println!("cargo:rustc-cfg=peer_models");
    }
    // Speech to transcribe, synthesised from known sentences (Debian's espeak-ng).
    if required || std::path::Path::new("/usr/bin/espeak-ng").is_file() {
        println!("cargo:rustc-cfg=peer_espeak");
    }
}
