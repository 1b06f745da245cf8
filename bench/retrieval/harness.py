#!/usr/bin/env python3
"""Retrieval quality of Ayush's search, measured as BEIR/MTEB measure it, beside a plain chunked
BM25 reference computed here on the same files.

Question sets, built from Debian documentation packages (downloaded once with `apt-get
download` into ~/.cache/ayush-bench/retrieval, never installed, never committed):

  gitfaq       the questions of gitfaq(7) (git-doc) are the queries; each answer is one small
               document; distractors: the other ~230 HTML pages of git-doc (manuals, guides).
  debian-faq   the questions of the Debian FAQ (debian-faq, plain-text edition); each answer is
               one document; distractors: the HTML of debian-reference-en and apt-doc.
  django-faq   the questions of Django's FAQ pages (python-django-doc, Sphinx HTML); each answer
               is one document; distractors: the other ~680 pages of the Django manual, long
               Sphinx pages with navigation on every one (the shape of the report in issue 17).

Each set is ingested through the real path (`ayushctl collections ingest` against a running
`ayush`), each query sent to the real `/api/search`. A query's answer is the one document made
from its answer; documents are ranked by their best passage (the first time a source appears
in the hit list). Printed per set: MRR@10, nDCG@10, Recall@10, and search latency p50/p99, for
Ayush and for the reference.

    bench/retrieval/harness.py [--sets gitfaq,debian-faq,django-faq] [--bin DIR] [--keep]
                               [--embedding FOLDER | --words-only]

--bin: where `ayush` and `ayushctl` are (default: the release build, else the debug build).
Each set is measured by words alone (right after ingestion), then, unless --words-only, again
once the embedding model (all-MiniLM-L6-v2 as the default install ships it, or --embedding) has
embedded every passage: hybrid ranking, the default install's configuration. The time that
embedding took is printed (passages per second).
"""

import argparse
import gzip
import html
import html.parser
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.expanduser("~/.cache/ayush-bench/retrieval")
PASSWORD = "retrieval bench password 1"


# --- the corpora -----------------------------------------------------------------------------

def unpacked(package):
    """The package's files, downloaded and unpacked once."""
    dest = os.path.join(CACHE, "pkg", package)
    if not os.path.isdir(dest):
        os.makedirs(os.path.join(CACHE, "deb"), exist_ok=True)
        subprocess.run(["apt-get", "download", package], cwd=os.path.join(CACHE, "deb"), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deb = max((f for f in os.listdir(os.path.join(CACHE, "deb")) if f.startswith(package + "_")),
                  key=lambda f: os.path.getmtime(os.path.join(CACHE, "deb", f)))
        tmp = dest + ".partial"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        subprocess.run(["dpkg-deb", "-x", os.path.join(CACHE, "deb", deb), tmp], check=True)
        os.rename(tmp, dest)
    return dest


def gitfaq_pairs(text):
    """(question, answer) from gitfaq.txt: `[[anchor]]`, `Question?::`, then the answer."""
    pairs = []
    blocks = re.split(r"^\[\[[a-z0-9-]+\]\]\n", text, flags=re.M)[1:]
    for block in blocks:
        head, _, body = block.partition("::\n")
        question = " ".join(head.split())
        answer = body.split("\n\n\n")[0]
        # The section that follows a block ("Credentials\n-----") is not part of the answer.
        answer = re.split(r"^\S[^\n]*\n-{3,}\n", answer, flags=re.M)[0]
        answer = answer.replace("\n+\n", "\n\n").strip()
        if question.endswith("?") and len(answer) > 80:
            pairs.append((question.replace("`", ""), answer))
    return pairs


def debian_faq_pairs(text):
    """(question, answer) from the plain-text Debian FAQ: after its contents, each numbered
    question ("9.6. I have several machines; ...?") is followed by its answer."""
    text = text.replace("\u00a0", " ")  # the numbering is followed by no-break spaces
    body = text[text.find("Chapter 1. "):]
    parts = re.split(r"^(\d+\.\d+(?:\.\d+)?\.) ", body, flags=re.M)
    pairs = []
    for i in range(1, len(parts) - 1, 2):
        question, _, answer = parts[i + 1].partition("\n\n")
        question = " ".join(question.split())
        answer = re.split(r"^Chapter \d+\. ", answer, flags=re.M)[0].strip()
        if question.endswith("?") and len(answer) > 80:
            pairs.append((question, answer))
    return pairs


def django_faq_pairs(html_text):
    """(question, answer) from a Sphinx FAQ page: each h2/h3 that asks, and the text up to the
    next section."""
    pairs = []
    parts = re.split(r'<h[23]>(.*?)<a class="headerlink"', html_text, flags=re.S)
    for i in range(1, len(parts) - 1, 2):
        question = " ".join(re.sub(r"<[^>]+>", "", parts[i]).split())
        body = re.split(r'<div class="section"|<section|<h[1-3]>', parts[i + 1])[0]
        parser = _Text()
        parser.feed(body.split("</h2>", 1)[-1].split("</h3>", 1)[-1])
        answer = " ".join(" ".join(parser.parts).split())
        question = html.unescape(question)
        if question.endswith("?") and len(answer) > 80:
            pairs.append((question, html.unescape(answer)))
    return pairs


def build_set(name, out):
    """Writes the set's documents into out/docs and returns [(query, relevant source)]."""
    docs = os.path.join(out, "docs")
    os.makedirs(docs)
    if name == "gitfaq":
        git = unpacked("git-doc")
        with open(os.path.join(git, "usr/share/doc/git-doc/gitfaq.txt")) as f:
            pairs = gitfaq_pairs(f.read())
        html_dir = os.path.join(git, "usr/share/doc/git-doc")
        distractors = [os.path.join(html_dir, f) for f in sorted(os.listdir(html_dir))
                       if f.endswith(".html") and not f.startswith("gitfaq")]
    elif name == "debian-faq":
        faq = unpacked("debian-faq")
        with gzip.open(os.path.join(faq, "usr/share/doc/debian/FAQ/debian-faq.en.txt.gz"), "rt") as f:
            pairs = debian_faq_pairs(f.read())
        distractors = []
        for package in ("debian-reference-en", "apt-doc"):
            root = unpacked(package)
            for dirpath, _, files in os.walk(root):
                distractors += [os.path.join(dirpath, f) for f in sorted(files) if f.endswith(".html")]
    elif name == "django-faq":
        root = os.path.join(unpacked("python-django-doc"), "usr/share/doc/python-django-doc/html")
        pairs, distractors = [], []
        for dirpath, _, files in os.walk(root):
            for f in sorted(files):
                if not f.endswith(".html"):
                    continue
                path = os.path.join(dirpath, f)
                if os.path.basename(dirpath) == "faq":
                    with open(path, errors="replace") as page:
                        pairs += django_faq_pairs(page.read())
                elif f not in ("genindex.html", "py-modindex.html", "search.html"):
                    distractors.append(path)
    else:
        sys.exit(f"unknown set {name}")
    queries = []
    for i, (question, answer) in enumerate(pairs):
        source = f"answer-{i:03d}.txt"
        with open(os.path.join(docs, source), "w") as f:
            f.write(answer + "\n")
        queries.append((question, source))
    for path in distractors:
        # Pages of the same name in different folders ("index.html") keep both.
        parent = os.path.basename(os.path.dirname(path))
        dest = os.path.join(docs, os.path.basename(path))
        if os.path.exists(dest):
            dest = os.path.join(docs, f"{parent}-{os.path.basename(path)}")
        if not os.path.exists(dest):
            shutil.copy(path, dest)
    return queries


# --- the plain reference: chunked BM25, written here in a few lines --------------------------

class _Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        self.skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        self.skip -= tag in ("script", "style") and self.skip > 0

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def plain_text(path):
    with open(path, errors="replace") as f:
        raw = f.read()
    if path.endswith(".html"):
        parser = _Text()
        parser.feed(raw)
        return " ".join(parser.parts)
    return raw


WORD = re.compile(r"[a-z0-9]+")


def bm25_reference(docs_dir, queries, chunk_words=200, overlap=50, k1=1.2, b=0.75):
    """Ranks documents by their best 200-word chunk under BM25; no stemming, no stop words."""
    chunks = []  # (source, term counts, length)
    for source in sorted(os.listdir(docs_dir)):
        words = WORD.findall(plain_text(os.path.join(docs_dir, source)).lower())
        for start in range(0, max(len(words), 1), chunk_words - overlap):
            piece = words[start:start + chunk_words]
            counts = {}
            for w in piece:
                counts[w] = counts.get(w, 0) + 1
            chunks.append((source, counts, len(piece)))
            if start + chunk_words >= len(words):
                break
    n = len(chunks)
    avg = sum(c[2] for c in chunks) / max(n, 1)
    df = {}
    for _, counts, _ in chunks:
        for w in counts:
            df[w] = df.get(w, 0) + 1
    rankings, latencies = [], []
    for query, _ in queries:
        started = time.perf_counter()
        terms = set(WORD.findall(query.lower()))
        best = {}
        for source, counts, length in chunks:
            score = 0.0
            for t in terms:
                tf = counts.get(t)
                if tf:
                    idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                    score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avg))
            if score > best.get(source, 0.0):
                best[source] = score
        rankings.append([s for s, _ in sorted(best.items(), key=lambda kv: -kv[1])[:10]])
        latencies.append(time.perf_counter() - started)
    return rankings, latencies, n


# --- Ayush, for real ------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ayush:
    """One data directory with one collection of the set's files, served on loopback."""

    def __init__(self, bins, workdir):
        self.bins, self.workdir = bins, workdir
        self.data = os.path.join(workdir, "data")
        self.env = dict(os.environ, RUST_LOG="warn")
        self.server = None
        self.ctl("--local", "user", "create", "bench", "--role", "admin", "--password-stdin", stdin=PASSWORD)
        self.ctl("--local", "group", "create", "everyone")
        self.ctl("--local", "group", "add-member", "everyone", "bench")
        self.token = json.loads(self.ctl("--local", "-o", "json", "keys", "create", "--user", "bench").stdout)["secret"]

    def ctl(self, *args, stdin=None):
        local = args[0] == "--local"
        argv = ["--local", "--data-dir", self.data, *args[1:]] if local else list(args)
        env = self.env if local else dict(self.env, AYUSH_URL=self.url, AYUSH_TOKEN=self.token)
        return subprocess.run([os.path.join(self.bins, "ayushctl"), *argv], input=stdin, text=True, check=True,
                              capture_output=True, env=env)

    def start(self):
        self.url = f"http://127.0.0.1:{free_port()}"
        self.server = subprocess.Popen(
            [os.path.join(self.bins, "ayush"), "serve", "--data-dir", self.data, "--listen", self.url[7:]],
            env=self.env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.workdir, "server.log"), "a"))
        for _ in range(300):
            try:
                urllib.request.urlopen(self.url + "/readyz", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        sys.exit("the server did not become ready; see server.log")

    def stop(self):
        if self.server:
            self.server.terminate()
            self.server.wait(timeout=30)
            self.server = None

    def ingest(self, docs_dir):
        self.ctl("collections", "create", "docs", "--group", "everyone")
        started = time.perf_counter()
        summary = json.loads(self.ctl("-o", "json", "collections", "ingest", "docs", docs_dir).stdout)
        secs = time.perf_counter() - started
        for _ in range(600):
            status = get_json(self.url + "/api/admin/index", self.token)
            if not status.get("rebuilding") and status.get("applied_seq", 0) > 0:
                break
            time.sleep(0.1)
        return {"ingest_secs": secs, "passages": status["passages"], "ingest": summary}

    def embed(self, model_dir):
        """Installs the embedding model and waits until every passage is embedded."""
        self.stop()
        self.ctl("--local", "models", "import", model_dir, "--name", "embedder")
        self.start()
        started = time.perf_counter()
        while True:
            e = get_json(self.url + "/api/admin/index", self.token)["embedding"]
            if e.get("passages") and e.get("embedded") == e["passages"] and e.get("in_memory") == e["passages"]:
                return {"embed_secs": time.perf_counter() - started, "embedded": e["embedded"]}
            time.sleep(0.5)

    def rankings(self, queries):
        rankings, latencies = [], []
        for query, _ in queries:
            q = urllib.parse.urlencode({"q": query, "limit": 10})
            t = time.perf_counter()
            hits = get_json(f"{self.url}/api/search?{q}", self.token)["hits"]
            latencies.append(time.perf_counter() - t)
            ranked = []
            for hit in hits:
                # Sources are as ingested: "docs/answer-000.txt" for the folder "docs".
                source = os.path.basename(hit["source"])
                if source not in ranked:
                    ranked.append(source)
            rankings.append(ranked[:10])
        return rankings, latencies


def get_json(url, token):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


# --- the measures -----------------------------------------------------------------------------

def measures(rankings, queries, latencies):
    mrr = ndcg = recall = 0.0
    for ranked, (_, relevant) in zip(rankings, queries):
        if relevant in ranked[:10]:
            rank = ranked.index(relevant) + 1
            mrr += 1 / rank
            ndcg += 1 / math.log2(rank + 1)  # one relevant document: the ideal DCG is 1
            recall += 1
    n = len(queries)
    lat = sorted(latencies)
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
    return {"MRR@10": mrr / n, "nDCG@10": ndcg / n, "Recall@10": recall / n, "p50 ms": pct(0.5), "p99 ms": pct(0.99)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="gitfaq,debian-faq,django-faq")
    ap.add_argument("--bin")
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    ap.add_argument("--embedding", help="the embedding model's folder (default: all-MiniLM-L6-v2, "
                    "as the default install ships it, from packaging/fetch-models)")
    ap.add_argument("--words-only", action="store_true", help="measure words alone, without an embedding model")
    args = ap.parse_args()
    embedding = None
    if not args.words_only:
        embedding = args.embedding or subprocess.run([os.path.join(ROOT, "packaging", "fetch-models"), "minilm"],
                                                     check=True, capture_output=True, text=True).stdout.strip()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/ayush-target"))
    bins = args.bin or next((os.path.join(target, p) for p in ("release", "debug")
                             if os.access(os.path.join(target, p, "ayush"), os.X_OK)), None)
    if not bins:
        sys.exit("no ayush binary: build it (cargo build --release --bin ayush --bin ayushctl) or pass --bin")
    print(f"binaries: {bins}")
    for name in args.sets.split(","):
        work = tempfile.mkdtemp(prefix=f"ayush-retrieval-{name}-")
        queries = build_set(name, work)
        docs_dir = os.path.join(work, "docs")
        n_docs = len(os.listdir(docs_dir))
        ref_rank, ref_lat, chunks = bm25_reference(docs_dir, queries)
        ayush = Ayush(bins, work)
        rows = []
        try:
            ayush.start()
            info = ayush.ingest(docs_dir)
            rows.append(("Ayush /api/search, words only", *ayush.rankings(queries)))
            if embedding:
                embedded = ayush.embed(embedding)
                rows.append((f"Ayush /api/search, hybrid ({os.path.basename(embedding.rstrip('/'))})",
                             *ayush.rankings(queries)))
        finally:
            ayush.stop()
        rows.append(("plain chunked BM25 (reference)", ref_rank, ref_lat))
        print(f"\n## {name}: {len(queries)} questions, {n_docs} documents "
              f"(ingested in {info['ingest_secs']:.1f} s, {info['passages']} passages; reference: {chunks} chunks)")
        if embedding:
            print(f"embedded {embedded['embedded']} passages in {embedded['embed_secs']:.1f} s "
                  f"({embedded['embedded'] / embedded['embed_secs']:.1f} passages/s)")
        print("| ranking | MRR@10 | nDCG@10 | Recall@10 | p50 ms | p99 ms |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for label, ranked, lat in rows:
            m = measures(ranked, queries, lat)
            print(f"| {label} | {m['MRR@10']:.3f} | {m['nDCG@10']:.3f} | {m['Recall@10']:.3f} | {m['p50 ms']:.1f} | {m['p99 ms']:.1f} |")
        ref = measures(ref_rank, queries, ref_lat)
        default = measures(rows[-2][1], queries, rows[-2][2])
        print(f"MRR@10 ratio, the default install ({rows[-2][0]}) / reference: "
              f"{default['MRR@10'] / max(ref['MRR@10'], 1e-9):.2f} (target ≥ 1.5)")
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
