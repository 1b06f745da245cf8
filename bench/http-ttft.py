#!/usr/bin/env python3
"""Time to first token through Ayush's HTTP chat API, on a real server process.

    bench/http-ttft.py BIN_DIR MODEL.gguf [RUNS]

BIN_DIR holds `ayush` and `ayushctl` (a release build: target/release). The script imports the
model into a fresh data directory, starts the server on a free loopback port, and measures,
from sending `POST /api/conversations/{id}/messages` to the first `event: token` line:
- a first turn (a new conversation, a ~40-token prompt that differs each run, so nothing is
  cached), and
- the second turn of the same conversation (the first turn's tokens are cached).
Each is the median of RUNS (default 5), after one warm-up turn that loads the model.
"""
import http.client
import json
import os
import statistics
import sys
import time

from ayush_server import AyushServer


def main():
    bin_dir, model = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    server = AyushServer(bin_dir, model)
    port, headers = server.port, server.signed_in_headers()

    def call(method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        return conn, conn.getresponse()

    try:
        def turn(conv, text):
            """Seconds to the first token event, then reads the rest of the stream."""
            started = time.perf_counter()
            conn, r = call("POST", f"/api/conversations/{conv}/messages",
                           {"content": text, "temperature": 0, "max_tokens": 16})
            assert r.status == 200, r.read()
            first = None
            for line in r:
                if first is None and line.startswith(b"event: token"):
                    first = time.perf_counter() - started
            conn.close()
            return first

        def conversation():
            conn, r = call("POST", "/api/conversations", {"model": "m"})
            conv = json.loads(r.read())["id"]
            conn.close()
            return conv

        turn(conversation(), "Warm up: say hello.")
        first, second = [], []
        for i in range(runs):
            conv = conversation()
            first.append(turn(conv, f"Question {i}: in two sentences, why do enterprises keep their "
                                    f"documents on their own servers rather than in a public cloud?"))
            second.append(turn(conv, "And what does that cost them?"))
        ms = lambda xs: f"{statistics.median(xs) * 1000:.0f} ms"
        print(f"{os.path.basename(model)}: TTFT over HTTP, median of {runs}")
        print(f"  first turn (nothing cached)   {ms(first)}")
        print(f"  second turn (history cached)  {ms(second)}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
