#!/bin/sh
# Company knowledge's figures: ingestion MB/s, index size, BM25 and hybrid search p50/p99 on a
# generated corpus of 100,000+ passages, and on PostgreSQL's HTML documentation (unpacked from
# Debian's postgresql-doc-15, downloaded once into ~/.cache/ayush-bench; not installed). Hybrid
# search and embedding throughput use all-MiniLM-L6-v2 (`packaging/fetch-models minilm`).
# Run it alone: the 2-core machine has no spare core.
set -eu
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ayush-target}"
cache="$HOME/.cache/ayush-bench"
docs="$cache/postgresql-doc"
if [ ! -d "$docs/usr/share/doc/postgresql-doc-15/html" ]; then
  mkdir -p "$cache"
  (cd "$cache" && apt-get download postgresql-doc-15 >/dev/null)
  dpkg-deb -x "$(ls "$cache"/postgresql-doc-15_*.deb | head -1)" "$docs"
fi
export AYUSH_BENCH_HTML="$docs/usr/share/doc/postgresql-doc-15/html"
models="${AYUSH_TEST_MODELS_DIR:-$HOME/.cache/ayush-models}"
if [ -f "$models/all-MiniLM-L6-v2/model.safetensors" ]; then
  export AYUSH_BENCH_EMBEDDER="$models/all-MiniLM-L6-v2"
fi
exec cargo bench --locked -p ayush-server --bench knowledge -- "$@"
