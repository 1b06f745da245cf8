#!/usr/bin/env bash
# Many simultaneous users: Ayush beside llama.cpp's llama-server (continuous batching) on the
# same GGUF files, same threads, same prompts, through each one's /v1/chat/completions.
#
#   bench/concurrency.sh [THREADS] [N ...]        (default 2 threads; N = 1 4 8 16)
#
# Builds Ayush (AYUSH_BENCH_PROFILE, default release), fetches the two test models, builds
# llama-server once (../shared/bench/llamacpp-peer.sh, about 10 minutes on 2 cores), and runs
# bench/concurrency.py per model. Prints aggregate tokens/s, TTFT p50/p95, per-stream tokens/s
# and the ratios Ayush / llama-server per N, and Ayush's RSS at the largest N.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
shift || true
ns=("$@")
[[ ${#ns[@]} -gt 0 ]] || ns=(1 4 8 16)
slots=0
for n in "${ns[@]}"; do ((n > slots)) && slots=$n; done
profile=${AYUSH_BENCH_PROFILE:-release}
peer=${AYUSH_PEER_SCRIPT:-../shared/bench/llamacpp-peer.sh}
target=${CARGO_TARGET_DIR:-target}

if [[ $profile == release ]]; then
  cargo build -q --release -p ayush-server -p ayushctl
  bin=$target/release
else
  cargo build -q -p ayush-server -p ayushctl
  bin=$target/debug
fi

for model in $(packaging/fetch-models all | grep '\.gguf$'); do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  bash "$peer" server "$model" "$port" "$threads" "$slots" >/tmp/llama-server-$port.log 2>&1 &
  pid=$!
  trap 'kill $pid 2>/dev/null || true' EXIT
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 0.5
  done
  echo
  python3 bench/concurrency.py "$bin" "$model" "$port" "$threads" "${ns[@]}"
  kill $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
done
