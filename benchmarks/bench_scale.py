"""The store and the keyword index at scale: synthetic abstracts, random vectors.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 10k,100k]
        [--modes embedded,server] [--sentences 7] [--queries 200] [--budget-minutes 25]

For each size and store mode a fresh worker process:

1. makes ``size`` abstracts from a vocabulary with Zipf-like word frequencies
   (about 150 words in ``--sentences`` sentences, a title, three authors) and random
   unit vectors of 384 dimensions for each paper and each sentence;
2. builds the store with ``rag.store.Store.upsert`` (papers and sentences), on disk
   or in a Chroma server that this script starts (``chroma run``) and stops;
3. builds the in-memory indexes with ``rag.retrieval.HybridIndex.refresh`` (every
   paper and sentence read back, BM25 built);
4. times ``HybridIndex.search`` (dense + BM25 + names, fused) and its parts on
   ``--queries`` keyword questions, with a random query vector in place of the
   model (whose single-question encode is measured by bench_onnx.py);
5. reports resident memory of the worker and, in server mode, of the server.

A size whose predicted build time (from the smaller sizes' growth) exceeds the
budget is recorded as not measured, with the prediction; a worker that runs past
the budget is stopped and recorded likewise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import ROOT, machine, percentile, pid_rss_mib, rss_mib, table, timed

DIMENSIONS = 384
VOCABULARY = 50_000
WORDS_PER_ABSTRACT = 150
TITLE_WORDS = 8
AUTHORS_PER_PAPER = 3
PAPERS_PER_UPSERT = 500
CHROMA = ROOT / ".venv" / "bin" / "chroma"
GOAL_P95_MS = 100.0


def main() -> int:
    args = _parse_args()
    if args.worker:
        return _worker(args)

    print(f"machine: {machine()}")
    print(
        f"synthetic abstracts of {WORDS_PER_ABSTRACT} words in {args.sentences} "
        f"sentences, vocabulary {VOCABULARY} (Zipf), random unit vectors "
        f"dim {DIMENSIONS}; {args.queries} queries\n"
    )
    results = []
    for mode in args.modes:
        history: list[dict] = []
        for size in args.sizes:
            result = _measure_or_skip(size, mode, history, args)
            history.append(result)
            results.append(result)
            print(json.dumps(result), flush=True)
    print()
    print(_table(results))
    return 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=_sizes, default=_sizes("10k,100k"))
    parser.add_argument("--modes", type=lambda s: s.split(","),
                        default=["embedded", "server"])
    parser.add_argument("--sentences", type=int, default=7,
                        help="sentences (stored rows) per abstract; 0: papers only")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--budget-minutes", type=float, default=25.0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    return parser.parse_args()


def _sizes(text: str) -> list[int]:
    units = {"k": 1_000, "m": 1_000_000}
    sizes = []
    for part in text.lower().split(","):
        part = part.strip()
        factor = units.get(part[-1], 1)
        sizes.append(int(float(part.rstrip("km")) * factor))
    return sizes


# ---------------------------------------------------------------------------
# The orchestrating process: one worker per size and mode, a server if needed.


def _measure_or_skip(size: int, mode: str, history: list[dict], args) -> dict:
    budget = args.budget_minutes * 60
    predicted = _predicted_seconds(size, history)
    if predicted is not None and predicted > budget:
        reason = (
            f"not measured: predicted {predicted / 60:.0f} min for build and index "
            f"> budget {args.budget_minutes:.0f} min"
        )
        return {"size": size, "mode": mode, "skipped": reason}

    with tempfile.TemporaryDirectory(prefix=f"bench-scale-{size}-") as folder:
        server = _start_server(Path(folder)) if mode == "server" else None
        try:
            return _run_worker(size, mode, folder, server, args, budget)
        finally:
            if server is not None:
                _stop(server[0])


def _predicted_seconds(size: int, history: list[dict]) -> float | None:
    """Build plus index time at ``size``, growing as it grew between the last two
    measured sizes (linearly if only one was measured)."""
    measured = [r for r in history if "build_s" in r]
    if not measured:
        return None
    last = measured[-1]
    spent = last["build_s"] + last["index_build_s"]
    exponent = 1.0
    if len(measured) >= 2:
        before = measured[-2]
        spent_before = before["build_s"] + before["index_build_s"]
        exponent = max(
            1.0,
            math.log(spent / spent_before) / math.log(last["size"] / before["size"]),
        )
    return spent * (size / last["size"]) ** exponent


def _run_worker(size, mode, folder, server, args, budget: float) -> dict:
    command = [
        sys.executable, __file__, "--worker", "--size", str(size), "--mode", mode,
        "--data-dir", folder, "--sentences", str(args.sentences),
        "--queries", str(args.queries),
    ]
    if server is not None:
        command += ["--port", str(server[1]), "--server-pid", str(server[0].pid)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=budget, check=False
        )
    except subprocess.TimeoutExpired:
        reason = f"not measured: worker ran past the {budget / 60:.0f} min budget"
        return {"size": size, "mode": mode, "skipped": reason}
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        return {"size": size, "mode": mode, "skipped": "failed: " + " | ".join(tail)}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _start_server(folder: Path) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    log = open(folder / "chroma.log", "w")
    process = subprocess.Popen(
        [str(CHROMA), "run", "--path", str(folder / "server"), "--host", "127.0.0.1",
         "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api/v2/heartbeat"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return process, port
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.2)
    _stop(process)
    raise RuntimeError(f"the Chroma server did not start; see {folder}/chroma.log")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _table(results: list[dict]) -> str:
    header = ["mode", "papers", "rows", "build s", "papers/s", "index s",
              "search p50", "p95", "dense", "sentences", "titles", "bm25", "names",
              "count", "RSS MiB", "server MiB", "p95<100"]
    parts = ("dense_ms", "sentences_ms", "titles_ms", "bm25_ms", "names_ms",
             "count_ms")
    rows = []
    for r in results:
        if "skipped" in r:
            rows.append([r["mode"], r["size"], "", r["skipped"]] + [""] * 13)
            continue
        rows.append(
            [r["mode"], r["size"], r["rows"], f"{r['build_s']:.0f}",
             f"{r['size'] / r['build_s']:.0f}", f"{r['index_build_s']:.1f}",
             f"{r['search_ms'][0]:.1f}", f"{r['search_ms'][1]:.1f}"]
            + [f"{r[part][1]:.1f}" for part in parts]
            + [f"{r['rss_mib']:.0f}",
               "" if r["server_rss_mib"] is None else f"{r['server_rss_mib']:.0f}",
               "yes" if r["search_ms"][1] < GOAL_P95_MS else "no"]
        )
    return (
        table(header, rows)
        + "\n\nmilliseconds; search is p50 and p95, its parts p95 (each timed alone)"
    )


# ---------------------------------------------------------------------------
# The worker: build, index, query, one size and mode.


def _worker(args) -> int:
    import numpy as np

    from rag.retrieval import HybridIndex
    from rag.settings import load_settings
    from rag.store import open_store

    store_settings = {"data_dir": args.data_dir, "mode": args.mode}
    if args.port:
        store_settings["port"] = args.port
    settings = load_settings(overrides={"store": store_settings})
    rng = np.random.default_rng(args.size)
    vocabulary, weights = _vocabulary(rng)
    store = open_store(settings.store, "synthetic-random-384")

    build_s = _build(store, args.size, args.sentences, rng, vocabulary, weights)
    rss_built = rss_mib()
    index = HybridIndex(store, _RandomQueries(rng), settings.retrieval)
    index_build_s = timed(index.refresh)

    queries = _queries(rng, vocabulary, args.queries)
    timings = _search_timings(index, store, queries, rng)
    result = {
        "size": args.size,
        "mode": args.mode,
        "rows": args.size * (2 + args.sentences),
        "build_s": build_s,
        "index_build_s": index_build_s,
        "rss_after_build_mib": rss_built,
        "rss_mib": rss_mib(),
        "server_rss_mib": pid_rss_mib(args.server_pid) if args.server_pid else None,
        **timings,
    }
    print(json.dumps(result))
    return 0


class _RandomQueries:
    """Stands in for the embedder: a random unit vector per query."""

    def __init__(self, rng):
        self.rng = rng

    def encode_one(self, text: str):
        return _unit_vectors(self.rng, 1)[0]


def _vocabulary(rng):
    import numpy as np

    syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "shi", "vo", "de", "pa",
                 "gri", "sel", "tor", "man", "quen", "bi", "zu", "fa", "el", "or"]
    parts = rng.integers(0, len(syllables), size=(VOCABULARY, 4))
    lengths = rng.integers(2, 5, size=VOCABULARY)
    words = sorted({
        "".join(syllables[p] for p in row[:length])
        for row, length in zip(parts, lengths)
    })
    words = np.array(rng.permutation(words), dtype=object)
    ranks = np.arange(1, len(words) + 1)
    weights = 1.0 / (ranks + 2.7) ** 1.07
    return words, weights / weights.sum()


def _unit_vectors(rng, count: int):
    import numpy as np

    vectors = rng.standard_normal((count, DIMENSIONS), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def _build(store, size, sentences, rng, vocabulary, weights) -> float:
    """Upsert ``size`` synthetic papers in batches; the seconds spent in the store."""
    spent = 0.0
    names = _author_pool(rng, vocabulary, max(size // 2, 10))
    for start in range(0, size, PAPERS_PER_UPSERT):
        count = min(PAPERS_PER_UPSERT, size - start)
        papers, rows = _batch(start, count, sentences, rng, vocabulary, weights, names)
        hashes = [f"h{paper.id}" for paper in papers]
        vectors = _unit_vectors(rng, count)
        titles = dict(zip((paper.id for paper in papers), _unit_vectors(rng, count)))
        spent += timed(lambda: store.upsert(papers, hashes, vectors, rows, titles))
    return spent


def _author_pool(rng, vocabulary, count: int) -> list[str]:
    first = rng.choice(vocabulary[:2000], size=count)
    last = rng.choice(vocabulary[2000:20000], size=count)
    return [f"{a.title()} {b.title()}" for a, b in zip(first, last)]


def _batch(start, count, sentences, rng, vocabulary, weights, names):
    from rag.store import SentenceRows
    from rag.types import Paper

    per_sentence = WORDS_PER_ABSTRACT // max(sentences, 1)
    tokens = rng.choice(len(vocabulary), size=(count, WORDS_PER_ABSTRACT), p=weights)
    titles = rng.choice(len(vocabulary), size=(count, TITLE_WORDS), p=weights)
    author_ids = rng.integers(0, len(names), size=(count, AUTHORS_PER_PAPER))
    papers, owners, texts = [], [], []
    for row in range(count):
        words = vocabulary[tokens[row]]
        parts = [
            " ".join(words[i : i + per_sentence]).capitalize() + "."
            for i in range(0, WORDS_PER_ABSTRACT, per_sentence)
        ]
        paper = Paper(
            id=f"p{start + row:07d}",
            abstract=" ".join(parts),
            authors=[names[i] for i in author_ids[row]],
            title=" ".join(vocabulary[titles[row]]).capitalize(),
        )
        papers.append(paper)
        if sentences:
            owners += [paper.id] * len(parts)
            texts += parts
    rows = SentenceRows(owners, texts, _unit_vectors(rng, len(texts)))
    return papers, rows


def _queries(rng, vocabulary, count: int) -> list[str]:
    """Keyword questions: five mid-frequency words each, as people ask."""
    picks = rng.integers(50, 5000, size=(count, 5))
    return [
        "What is known about " + " ".join(vocabulary[row]) + "?" for row in picks
    ]


def _search_timings(index, store, queries, rng) -> dict[str, list[float]]:
    """Milliseconds (p50, p95) of a whole search and of each of its parts."""
    for query in queries[:5]:
        index.search(query)

    n = index.settings.candidates
    parts = {
        "search_ms": lambda query, vector: index.search(query),
        "dense_ms": lambda query, vector: store.query(vector, n),
        "sentences_ms": lambda query, vector: store.query_sentences(vector, 4 * n),
        "titles_ms": lambda query, vector: store.query_titles(vector, n),
        "bm25_ms": lambda query, vector: index._keyword_scores(query),
        "names_ms": lambda query, vector: index.named_papers(query),
        "count_ms": lambda query, vector: store.count(),
    }
    samples: dict[str, list[float]] = {name: [] for name in parts}
    for query in queries:
        vector = _unit_vectors(rng, 1)[0]
        for name, part in parts.items():
            samples[name].append(timed(lambda: part(query, vector)))
    return {
        name: [percentile(v, 0.5) * 1000, percentile(v, 0.95) * 1000]
        for name, v in samples.items()
    }


if __name__ == "__main__":
    sys.exit(main())
