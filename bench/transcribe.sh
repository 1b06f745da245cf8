#!/bin/sh
# Local transcription against faster-whisper (PyPI; CTranslate2 on CPU, float32 and int8) on the
# same Whisper base folder, the same audio and the same threads: real-time factor, peak memory
# and word error rate. The audio is the Harvard sentences of lists 1 to 4 (IEEE 1969, public
# domain; bench/harvard.txt) spoken by espeak-ng in an American and a British voice, about four
# minutes. faster-whisper goes into a venv under ~/.cache/ayush-bench, never into CI.
# Run it alone: the 2-core machine has no spare core.
#
#   bench/transcribe.sh [THREADS]      (default: every core)
set -eu
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ayush-target}"
threads=${1:-$(nproc)}
models="${AYUSH_TEST_MODELS_DIR:-$HOME/.cache/ayush-models}"
whisper="$models/whisper-base"
[ -f "$whisper/model.bin" ] || packaging/fetch-models whisper
cache="$HOME/.cache/ayush-bench/transcribe"
mkdir -p "$cache"
venv="$cache/venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import faster_whisper" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "faster-whisper==1.2.1"
fi
command -v espeak-ng >/dev/null || { echo "transcribe.sh: espeak-ng is missing (.ci/peers installs it)" >&2; exit 1; }

audio="$cache/harvard.wav"
reference="$cache/harvard-reference.txt"
espeak-ng -v en-us -s 150 -w "$cache/us.wav" -f bench/harvard.txt
espeak-ng -v en-gb -s 140 -w "$cache/gb.wav" -f bench/harvard.txt
python3 - "$audio" "$cache/us.wav" "$cache/gb.wav" <<'PY'
import sys, wave
out, parts = sys.argv[1], sys.argv[2:]
with wave.open(parts[0]) as first:
    params = first.getparams()
with wave.open(out, "wb") as w:
    w.setparams(params)
    for p in parts:
        with wave.open(p) as r:
            w.writeframes(r.readframes(r.getnframes()))
PY
cat bench/harvard.txt bench/harvard.txt >"$reference"

cargo build --release --locked -p ayush-models --bench transcribe >/dev/null 2>&1 || true
runs="$cache/runs.jsonl"
: >"$runs"
echo "ayush (candle; projections in 8 bits) on $threads threads..." >&2
RAYON_NUM_THREADS=$threads AYUSH_BENCH_AUDIO="$audio" AYUSH_BENCH_WHISPER="$whisper" \
  cargo bench --locked -p ayush-models --bench transcribe 2>/dev/null | grep '^{' >>"$runs"
for compute in float32 int8; do
  echo "faster-whisper $compute on $threads threads..." >&2
  OMP_NUM_THREADS=$threads "$venv/bin/python" bench/transcribe.py "$whisper" "$audio" "$compute" "$threads" >>"$runs"
done
python3 bench/wer.py "$reference" <"$runs"
