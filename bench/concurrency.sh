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

# Starts llama-server on $1 at port $2 in the background and waits until it answers; 1 if it
# died. (Some virtual machines report AMX but fault on its tile instructions, which llama.cpp's
# weight repacking uses: the caller then retries with LLAMA_ARG_REPACK=0.)
start_peer() {
  bash "$peer" server "$1" "$2" "$threads" "$slots" >"/tmp/llama-server-$2.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$2/health" >/dev/null && return 0
    kill -0 $pid 2>/dev/null || return 1
    sleep 0.5
  done
  return 1
}

for model in $(packaging/fetch-models all | grep '\.gguf$'); do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  trap 'kill $pid 2>/dev/null || true' EXIT
  start_peer "$model" "$port" || true
  # It may come up and die on its first request: probe once.
  if ! curl -sf "http://127.0.0.1:$port/v1/chat/completions" -H 'Content-Type: application/json' \
      -d '{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}' >/dev/null; then
    kill $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    echo "llama-server crashed here (see /tmp/llama-server-$port.log); running it with LLAMA_ARG_REPACK=0"
    export LLAMA_ARG_REPACK=0
    start_peer "$model" "$port"
  fi
  echo
  python3 bench/concurrency.py "$bin" "$model" "$port" "$threads" "${ns[@]}"
  kill $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
done
