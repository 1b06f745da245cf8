#!/usr/bin/env bash
# Ayush's local inference beside llama.cpp on the same GGUF files and thread count, printed
# for the closing notes: load, pp512, tg128, and second-turn time to first token.
#
#   bench/inference.sh [THREADS]      (default 2)
#
# Fetches the two test models (packaging/fetch-models) and builds llama.cpp's llama-bench once
# (../shared/bench/llamacpp-peer.sh, about 10 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
# The embedding model's folder is not a GGUF file: the decoders only.
models=$(packaging/fetch-models all | grep '\.gguf$')
peer=${AYUSH_PEER_SCRIPT:-../shared/bench/llamacpp-peer.sh}

echo "=== Ayush (cargo bench, release profile)"
# shellcheck disable=SC2086
RAYON_NUM_THREADS=$threads cargo bench -q -p ayush-models --bench inference -- $models

for m in $models; do
  echo
  echo "=== llama.cpp llama-bench: $(basename "$m")"
  bash "$peer" bench "$m" "$threads" 512 128
done
