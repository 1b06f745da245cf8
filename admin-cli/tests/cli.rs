//! The `ayushctl` binary as an administrator's shell meets it: exit codes and messages for bad
//! invocations, and `--local` mode on a fresh data directory. (Its workings against a server
//! are tested end to end in the `ayush-tests` crate; this file also makes `cargo test` build
//! the binary those tests run.)

#![allow(clippy::unwrap_used)] // helpers here fail tests by panicking
use std::process::{Command, Output};

fn ayushctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ayushctl")).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn an_unknown_command_is_a_usage_error() {
    let out = ayushctl(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unrecognized subcommand 'frobnicate'"), "{}", text(&out.stderr));
}

#[test]
fn local_mode_lists_the_models_of_a_fresh_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let out = ayushctl(&["--local", "--data-dir", data, "-o", "json", "models", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "[]");
}

#[test]
fn an_unreachable_server_is_named_in_the_error() {
    let out = ayushctl(&["--url", "http://127.0.0.1:9", "--token", "ayush_x", "user", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot reach http://127.0.0.1:9"), "{}", text(&out.stderr));
}
