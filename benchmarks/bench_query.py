"""Query latency, warm: retrieve() and answer() against LangChain's similarity_search.

    .venv/bin/python benchmarks/bench_query.py [--rounds 5] [--data-dir DIR]

Every dev question (questions only) is asked once to warm up, then ``--rounds``
times on each side, the sides interleaved question by question:

- retrieve(): ``Engine.retrieve`` (query embedding, dense + BM25 + names, fused);
- answer(): ``Engine.answer`` with the offline extractive answerer, and the
  retrieve and compose parts it reports in ``Answer.timings``;
- LangChain: ``langchain_chroma.Chroma.similarity_search(k=5)`` with
  ``HuggingFaceEmbeddings`` on the packaged model, over the same seed abstracts
  (built into a temporary folder before timing).

Figures are p50 and p95 in milliseconds over all questions and rounds, of wall
time and of the process's CPU time (what an idle machine would take at best).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    ROOT,
    dev_questions,
    machine,
    percentile,
    seed_papers,
    table,
    timed,
)

from rag.answering import Engine
from rag.embeddings import PACKAGED_MODEL, model_folder
from rag.settings import load_settings

GOAL_MS = 50.0
ANSWER = "answer() (extractive)"
LANGCHAIN = "LangChain similarity_search"
CPU = ", CPU time"
ROWS = (
    "retrieve()",
    ANSWER,
    "  of which retrieve",
    "  of which compose",
    LANGCHAIN,
    "retrieve()" + CPU,
    ANSWER + CPU,
    LANGCHAIN + CPU,
)


def main() -> int:
    args = _parse_args()
    logging.basicConfig(level=logging.WARNING)
    questions = dev_questions()
    settings = load_settings(overrides={"store": {"data_dir": args.data_dir}})
    engine = Engine(settings)
    if engine.store.count() == 0:
        print(f"no papers in {args.data_dir}; run `rag ingest` first", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="bench-query-") as folder:
        langchain = _langchain_store(Path(folder))
        samples = _measure(engine, langchain, questions, args.rounds)

    print(f"machine: {machine()}")
    print(
        f"{len(questions)} dev questions x {args.rounds} rounds, warm; "
        f"{engine.store.count()} papers; k={settings.retrieval.k}\n"
    )
    print(_table(samples))
    return 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per question")
    parser.add_argument(
        "--data-dir", default=str(ROOT / ".rag-data"), help="a built index"
    )
    return parser.parse_args()


def _langchain_store(folder: Path):
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings

    embeddings = HuggingFaceEmbeddings(
        model_name=str(model_folder(PACKAGED_MODEL)),
        model_kwargs={"device": "cpu", "local_files_only": True},
        encode_kwargs={"normalize_embeddings": True},
    )
    documents = [
        Document(page_content=paper.abstract, metadata={"title": paper.title or ""})
        for paper in seed_papers()
    ]
    return Chroma.from_documents(
        documents, embeddings, collection_name="bench", persist_directory=str(folder)
    )


def _measure(engine, langchain, questions, rounds: int) -> dict[str, list[float]]:
    for question in questions:
        engine.answer(question)
        langchain.similarity_search(question, k=5)

    samples: dict[str, list[float]] = {name: [] for name in ROWS}
    for _ in range(rounds):
        for question in questions:
            _sample(samples, "retrieve()", lambda: engine.retrieve(question))
            result = []
            _sample(samples, ANSWER, lambda: result.append(engine.answer(question)))
            samples["  of which retrieve"].append(result[0].timings["retrieve"])
            samples["  of which compose"].append(result[0].timings["compose"])
            _sample(
                samples, LANGCHAIN, lambda: langchain.similarity_search(question, k=5)
            )
    return samples


def _sample(samples, name: str, call) -> None:
    """Wall seconds under ``name``, CPU seconds of the process under name + CPU."""
    cpu = time.process_time()
    samples[name].append(timed(call))
    samples[name + CPU].append(time.process_time() - cpu)


def _table(samples: dict[str, list[float]]) -> str:
    reference = percentile(samples[LANGCHAIN], 0.5)
    rows = []
    for name, values in samples.items():
        p50 = percentile(values, 0.5) * 1000
        p95 = percentile(values, 0.95) * 1000
        rows.append([name, f"{p50:.1f}", f"{p95:.1f}", f"{p50 / reference / 1000:.2f}"])
    answer_p50 = percentile(samples[ANSWER], 0.5) * 1000
    gap = answer_p50 - GOAL_MS
    verdict = "met" if gap < 0 else f"missed by {gap:.1f} ms"
    return (
        table(["call", "p50 ms", "p95 ms", "p50 / LangChain p50"], rows)
        + "\n\nCPU time: seconds the process computed (all its threads), which a"
        + " busy machine does not stretch"
        + f"\ngoal answer() p50 < {GOAL_MS:.0f} ms (wall): {verdict}"
    )


if __name__ == "__main__":
    sys.exit(main())
