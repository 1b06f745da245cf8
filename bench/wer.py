"""Word error rate of each JSON line on stdin (from bench/transcribe.sh) against the reference
text file named as the argument: words lower-cased, punctuation removed, Levenshtein over words.
Prints a table with each engine's real-time factor, its speed against faster-whisper fp32 and
memory."""

import json
import re
import sys


def words(text):
    return [w for w in re.sub(r"[^a-z0-9' ]", " ", text.lower()).split() if w]


def wer(ref, hyp):
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref):
        nxt = [i + 1] + [0] * len(hyp)
        for j, h in enumerate(hyp):
            nxt[j + 1] = min(row[j] + (r != h), row[j + 1] + 1, nxt[j] + 1)
        row = nxt
    return row[-1] / len(ref)


reference = words(open(sys.argv[1]).read())
runs = [json.loads(line) for line in sys.stdin if line.startswith("{")]
base = next((r for r in runs if r["engine"] == "faster-whisper float32"), None)
print(f"| engine | threads | audio | load | transcribe | real-time factor | vs faster-whisper fp32 | peak RSS | WER |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in runs:
    speed = f"{base['transcribe_s'] / r['transcribe_s']:.2f}x" if base else ""
    print(
        f"| {r['engine']} | {r['threads']} | {r['audio_s']:.1f} s | {r['load_s']:.2f} s | {r['transcribe_s']:.2f} s "
        f"| {r['rtf']:.3f} | {speed} | {r['peak_rss_mib']:.0f} MiB | {100 * wer(reference, words(r['text'])):.1f} % |"
    )
