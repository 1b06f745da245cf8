#!/usr/bin/env python3
"""Many people at once: Ayush beside llama.cpp's llama-server on the same GGUF file.

    bench/concurrency.py BIN_DIR MODEL.gguf LLAMA_PORT [THREADS] [N ...]

BIN_DIR holds `ayush` and `ayushctl`. llama-server must already be serving MODEL on
127.0.0.1:LLAMA_PORT (bench/concurrency.sh starts it). The script imports the model into a fresh
Ayush data directory, starts Ayush with the same thread count and as many sequences as
llama-server has slots, then for each N (default 1 4 8 16) sends N distinct ~120-token questions
at once, streamed through each server's /v1/chat/completions, 96 new tokens each, and prints:
aggregate completion tokens/s, time to first token p50/p95, per-stream tokens/s, and the ratio
Ayush / llama-server. Ayush's RSS is read at the largest N. Each server is measured alone.
"""
import http.client
import json
import os
import statistics
import sys
import threading
import time

from ayush_server import AyushServer, wait_until_ok

NEW_TOKENS = 96
TOPICS = [
    "how a company should plan the migration of its file servers to a new data centre",
    "why an engineering team keeps an audit log that nobody can edit, and who reads it",
    "how single sign-on with an identity provider works for a web application",
    "the trade-offs between running language models on premises and renting them",
    "how to write a runbook for restoring a database from last night's backup",
    "what a help desk should ask before resetting an employee's password",
    "how quotas and rate limits protect a shared service from one heavy user",
    "the steps of onboarding a new employee to the company's internal tools",
    "why documents should be searchable only by the people allowed to read them",
    "how to explain continuous batching of requests to a new colleague",
    "what goes into a good incident report after an outage of the intranet",
    "how a Debian package installs, upgrades and removes a system service",
    "how to choose between SQLite and PostgreSQL for a small internal service",
    "what an accessibility review of an internal web page should check",
    "how to keep a server cluster's clocks in step and why it matters",
    "the reasons to keep configuration in a file under version control",
]


def question(i):
    # ~120 tokens, distinct from the first words so no two share a cached prefix.
    t = TOPICS[i % len(TOPICS)]
    return (f"Request {i}: explain {t}. Write for a reader who knows computers but not this "
            f"subject. Start with a one-sentence summary, then give the main points in order, "
            f"each with a short reason, then mention one common mistake people make and how to "
            f"avoid it, and end with a practical first step the reader could take this week. "
            f"Keep the language plain and concrete, avoid jargon where a simpler word will do, "
            f"and do not use headings or bullet symbols; write it as connected prose.")


def stream(port, model, headers, i, out):
    """One client: sends its question, reads the stream, records TTFT, tokens and duration."""
    body = {"model": model, "messages": [{"role": "user", "content": question(i)}],
            "max_tokens": NEW_TOKENS, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/v1/chat/completions", json.dumps(body), headers)
    r = conn.getresponse()
    first, tokens, status = None, 0, r.status
    if status == 200:
        for line in r:
            if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                continue
            chunk = json.loads(line[6:])
            choices = chunk.get("choices") or []
            if first is None and any((c.get("delta") or {}).get("content") for c in choices):
                first = time.perf_counter() - started
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    else:
        r.read()
    conn.close()
    out[i] = {"status": status, "ttft": first, "tokens": tokens, "secs": time.perf_counter() - started}


def run(port, model, headers, n, offset):
    out = [None] * (offset + n)
    threads = [threading.Thread(target=stream, args=(port, model, headers, offset + i, out))
               for i in range(n)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    done = [o for o in out[offset:] if o and o["status"] == 200]
    refused = n - len(done)
    tokens = sum(o["tokens"] for o in done)
    ttfts = sorted(o["ttft"] for o in done if o["ttft"] is not None) or [float("nan")]
    p95 = ttfts[min(len(ttfts) - 1, int(round(0.95 * (len(ttfts) - 1))))]
    per_stream = statistics.median(o["tokens"] / max(o["secs"] - (o["ttft"] or 0), 1e-9) for o in done) if done else 0
    return {"agg": tokens / wall, "p50": statistics.median(ttfts), "p95": p95, "per": per_stream,
            "refused": refused, "tokens": tokens}


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    bin_dir, model, llama_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    ns = [int(a) for a in sys.argv[5:]] or [1, 4, 8, 16]
    slots = max(ns)
    server = AyushServer(bin_dir, model, {
        "RAYON_NUM_THREADS": str(threads), "AYUSH_MODELS__MAX_SEQUENCES": str(slots),
        "AYUSH_CHAT__MAX_CONCURRENT_PER_USER": str(slots),
        "AYUSH_KNOWLEDGE__BUNDLED_EMBEDDING_MODEL": ""})
    port, ayush_headers = server.port, server.headers
    llama_headers = {"Content-Type": "application/json"}
    try:
        wait_until_ok(llama_port, "/health", pause=0.5)
        # Warm both up (Ayush loads the model on first use).
        run(port, "m", ayush_headers, 1, 1000)
        run(llama_port, "m", llama_headers, 1, 1000)
        print(f"{os.path.basename(model)}: {threads} threads, {slots} slots each, "
              f"~120-token prompts, {NEW_TOKENS} new tokens")
        print(f"{'N':>3} | {'server':<12} | {'agg tok/s':>9} | {'TTFT p50':>8} | {'TTFT p95':>8} | "
              f"{'stream tok/s':>12} | refused")
        rss = None
        for n in ns:
            # Distinct questions per N, so no run reuses another's cache.
            a = run(port, "m", ayush_headers, n, 100 * n)
            if n == max(ns):
                rss = rss_mib(server.process.pid)
            b = run(llama_port, "m", llama_headers, n, 100 * n)
            for name, r in (("llama-server", b), ("Ayush", a)):
                print(f"{n:>3} | {name:<12} | {r['agg']:>9.1f} | {r['p50']:>7.2f}s | {r['p95']:>7.2f}s | "
                      f"{r['per']:>12.1f} | {r['refused']}")
            ratio = lambda x, y: x / y if y else float("nan")
            print(f"{n:>3} | {'ratio A/L':<12} | {ratio(a['agg'], b['agg']):>8.2f}x | "
                  f"{ratio(a['p50'], b['p50']):>7.2f}x | {ratio(a['p95'], b['p95']):>7.2f}x | "
                  f"{ratio(a['per'], b['per']):>11.2f}x |")
        print(f"Ayush RSS at N={max(ns)}: {rss:.0f} MiB")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
