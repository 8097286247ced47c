"""The embedding model on PyTorch against ONNX Runtime, float32 and dynamic int8.

    .venv/bin/python benchmarks/bench_onnx.py [--rounds 5] [--skip-eval]

The ONNX files are exported on this machine from the packaged weights by
``rag.onnx_export`` (once, into the user cache folder). For each backend:

- load: seconds to build the embedder from a warm cache (median of 3);
- throughput: texts per second encoding the seed corpus's titles and sentences
  (what ingestion embeds) and single questions (what a query embeds), median of
  rounds interleaved across backends;
- agreement: mean and minimum cosine of each sentence vector with torch's;
- quality: ``rag ingest`` then ``rag eval --json`` on the dev questions, in a
  subprocess with ``RAG_EMBEDDING__BACKEND`` and its own ``RAG_STORE__DATA_DIR``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile

from _common import (
    DEV_QUESTIONS,
    ROOT,
    dev_questions,
    machine,
    median,
    seed_papers,
    table,
    timed,
)

from rag.embeddings import PACKAGED_MODEL, Embedder
from rag.text import split_sentences

BACKENDS = ("torch", "onnx", "onnx-int8")
RAG = ROOT / ".venv" / "bin" / "rag"


def main() -> int:
    args = _parse_args()
    logging.basicConfig(level=logging.WARNING)
    texts = _corpus_texts()
    questions = dev_questions()

    embedders = {backend: Embedder(PACKAGED_MODEL, backend) for backend in BACKENDS}
    loads = {backend: _load_seconds(backend) for backend in BACKENDS}
    agreement = _agreement(embedders, texts)
    batch, single = _throughput(embedders, texts, questions, args.rounds)
    quality = {} if args.skip_eval else {b: _eval(b) for b in BACKENDS}

    print(f"machine: {machine()}")
    print(
        f"{len(texts)} corpus texts (seed titles and sentences), batch_size 32; "
        f"{len(questions)} questions one at a time; median of {args.rounds} rounds\n"
    )
    print(_table(loads, agreement, batch, single, quality))
    return 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per backend")
    parser.add_argument("--skip-eval", action="store_true", help="no rag eval runs")
    return parser.parse_args()


def _corpus_texts() -> list[str]:
    texts = []
    for paper in seed_papers():
        if paper.title:
            texts.append(paper.title)
        texts.extend(split_sentences(paper.abstract))
    return texts


def _load_seconds(backend: str) -> float:
    return median([timed(lambda: Embedder(PACKAGED_MODEL, backend)) for _ in range(3)])


def _agreement(embedders, texts: list[str]) -> dict[str, tuple[float, float]]:
    reference = embedders["torch"].encode(texts)
    result = {}
    for backend, embedder in embedders.items():
        cosines = (embedder.encode(texts) * reference).sum(axis=1)
        result[backend] = (float(cosines.mean()), float(cosines.min()))
    return result


def _throughput(embedders, texts, questions, rounds: int):
    batch = {backend: [] for backend in embedders}
    single = {backend: [] for backend in embedders}
    for _ in range(rounds):
        for backend, embedder in embedders.items():
            batch[backend].append(timed(lambda: embedder.encode(texts, batch_size=32)))
            single[backend].append(
                timed(lambda: [embedder.encode_one(q) for q in questions])
            )
    batch_rate = {b: len(texts) / median(v) for b, v in batch.items()}
    single_rate = {b: len(questions) / median(v) for b, v in single.items()}
    return batch_rate, single_rate


def _eval(backend: str) -> dict:
    """Ingest the seeds and evaluate, in a subprocess with its own store."""
    with tempfile.TemporaryDirectory(prefix=f"bench-onnx-{backend}-") as folder:
        env = dict(os.environ)
        env["RAG_EMBEDDING__BACKEND"] = backend
        env["RAG_STORE__DATA_DIR"] = folder
        subprocess.run(
            [str(RAG), "ingest"], env=env, cwd=ROOT, check=True, capture_output=True
        )
        done = subprocess.run(
            [str(RAG), "eval", str(DEV_QUESTIONS), "--json"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
    return json.loads(done.stdout)["summary"]["overall"]


def _table(loads, agreement, batch, single, quality) -> str:
    header = ["backend", "load s", "corpus texts/s", "× torch", "questions/s",
              "× torch", "cos mean", "cos min", "recall@5", "mrr", "facts"]
    rows = []
    for backend in BACKENDS:
        figures = quality.get(backend, {})
        rows.append([
            backend,
            f"{loads[backend]:.2f}",
            f"{batch[backend]:.0f}",
            f"{batch[backend] / batch['torch']:.2f}",
            f"{single[backend]:.0f}",
            f"{single[backend] / single['torch']:.2f}",
            f"{agreement[backend][0]:.4f}",
            f"{agreement[backend][1]:.4f}",
            _figure(figures.get("recall@5")),
            _figure(figures.get("mrr")),
            _figure(figures.get("facts")),
        ])
    return table(header, rows)


def _figure(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
