#!/bin/sh
# What Ayush adds between a client and a remote provider: builds the release binaries, then runs
# `cargo bench -p ayush-tests --bench proxy` (a fake upstream on loopback, direct against
# through Ayush, at 1, 64 and 512 concurrent streams, then a 60 s memory soak).
# Run it alone: the 2-core machine has no spare core.
set -eu
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ayush-target}"
cargo build --release --locked -p ayush-server -p ayushctl
exec cargo bench --locked -p ayush-tests --bench proxy
