"""faster-whisper (CTranslate2 on CPU) on the same Whisper folder, audio and threads as Ayush's
`cargo bench --bench transcribe`: greedy decoding (beam_size=1, as Ayush decodes), Whisper's
temperature fallback, no VAD. Prints one JSON line like the Rust bench's."""

import json
import resource
import sys
import time

from faster_whisper import WhisperModel

model_dir, audio, compute_type, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
language = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] else None
started = time.perf_counter()
model = WhisperModel(model_dir, device="cpu", compute_type=compute_type, cpu_threads=threads, num_workers=1)
load = time.perf_counter() - started
started = time.perf_counter()
segments, info = model.transcribe(audio, beam_size=1, vad_filter=False, language=language)
text = "".join(s.text for s in segments).strip()  # the generator does the work
took = time.perf_counter() - started
print(
    json.dumps(
        {
            "engine": f"faster-whisper {compute_type}",
            "threads": threads,
            "audio_s": info.duration,
            "load_s": load,
            "transcribe_s": took,
            "rtf": took / info.duration,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "text": text,
        }
    )
)
