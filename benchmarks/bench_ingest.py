"""Ingestion throughput: rag.ingest against the model's raw encode and LangChain.

    .venv/bin/python benchmarks/bench_ingest.py [--papers 318] [--rounds 3]

Sides, each into a fresh temporary store, interleaved round by round:

- ours: ``rag.ingest.ingest`` of a JSONL file (read, hash, embed, upsert);
- ours, embedding only: ``embed_papers`` on the same 64-paper batches, no store;
- encode(our texts): one ``SentenceTransformer.encode`` call on exactly the texts
  ingestion embeds (each title and each abstract sentence);
- encode(abstracts): one ``encode`` call on the abstracts as whole texts;
- LangChain: ``Chroma.from_documents`` with ``HuggingFaceEmbeddings`` on the
  packaged model folder, one document per abstract.

The model is loaded before timing on every side. Figures are papers per second,
the median over rounds.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from _common import machine, median, perturbed_papers, table, timed, write_jsonl

from rag.embeddings import PACKAGED_MODEL, get_embedder, model_folder
from rag.ingest import PAPERS_PER_BATCH, embed_papers, ingest
from rag.settings import load_settings
from rag.text import split_sentences

def main() -> int:
    args = _parse_args()
    logging.basicConfig(level=logging.WARNING)
    papers = perturbed_papers(args.papers)
    settings = load_settings()
    batch_size = args.batch_size or settings.embedding.batch_size

    embedder = get_embedder(PACKAGED_MODEL, settings.embedding.backend)
    # The same loaded model (and backend) that ingestion uses, called directly.
    raw = embedder._model
    langchain_embeddings = _langchain_embeddings(batch_size)
    our_texts = _texts_we_embed(papers)
    abstracts = [paper.abstract for paper in papers]

    sides = {
        "ours: rag.ingest (read+embed+store)": lambda: _ours(
            papers, embedder, batch_size
        ),
        "ours: embedding only": lambda: _embedding_only(papers, embedder, batch_size),
        "encode(our texts)": lambda: _encode(raw, our_texts, batch_size),
        "encode(abstracts)": lambda: _encode(raw, abstracts, batch_size),
        "LangChain Chroma.from_documents": lambda: _langchain(
            papers, langchain_embeddings
        ),
    }
    _encode(raw, our_texts[:64], batch_size)

    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, run in sides.items():
            seconds[name].append(timed(run))

    tokens = (_tokens(raw, our_texts), _tokens(raw, abstracts))
    _report(papers, (our_texts, abstracts), tokens, seconds, batch_size, args)
    print(f"\nbackend of ours and encode(): {settings.embedding.backend}; "
          "LangChain: torch")
    return 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--papers", type=int, default=318, help="papers to ingest")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side")
    parser.add_argument(
        "--batch-size", type=int, help="texts per encode call (default: settings)"
    )
    return parser.parse_args()


def _tokens(model, texts: list[str]) -> int:
    """Word pieces the model reads: each text capped at its max_seq_length."""
    limit = model.max_seq_length
    encoded = model.tokenizer(texts, add_special_tokens=True)["input_ids"]
    return sum(min(len(ids), limit) for ids in encoded)


def _langchain_embeddings(batch_size: int):
    from langchain_huggingface import HuggingFaceEmbeddings

    return HuggingFaceEmbeddings(
        model_name=str(model_folder(PACKAGED_MODEL)),
        model_kwargs={"device": "cpu", "local_files_only": True},
        encode_kwargs={"normalize_embeddings": True, "batch_size": batch_size},
    )


def _texts_we_embed(papers) -> list[str]:
    texts = []
    for paper in papers:
        if paper.title:
            texts.append(paper.title)
        texts.extend(split_sentences(paper.abstract) or [paper.abstract])
    return texts


def _ours(papers, embedder, batch_size: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        source = write_jsonl(papers, Path(folder) / "papers.jsonl")
        settings = load_settings(
            overrides={
                "store": {"data_dir": str(Path(folder) / "data")},
                "embedding": {"batch_size": batch_size},
            }
        )
        report = ingest([source], settings=settings, embedder=embedder, progress=False)
        assert report.added == len(papers), report.summary()


def _embedding_only(papers, embedder, batch_size: int) -> None:
    for start in range(0, len(papers), PAPERS_PER_BATCH):
        embed_papers(papers[start : start + PAPERS_PER_BATCH], embedder, batch_size)


def _encode(model, texts: list[str], batch_size: int) -> None:
    model.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )


def _langchain(papers, embeddings) -> None:
    from langchain_chroma import Chroma
    from langchain_core.documents import Document

    documents = [
        Document(
            page_content=paper.abstract,
            metadata={"id": paper.id, "title": paper.title or ""},
        )
        for paper in papers
    ]
    with tempfile.TemporaryDirectory(prefix="bench-langchain-") as folder:
        Chroma.from_documents(
            documents,
            embeddings,
            collection_name="bench",
            persist_directory=folder,
            ids=[paper.id for paper in papers],
        )


def _report(papers, texts, tokens, seconds, batch_size, args) -> None:
    count = len(papers)
    rates = {name: count / median(values) for name, values in seconds.items()}
    ours = rates["ours: rag.ingest (read+embed+store)"]
    rows = [
        [name, f"{rate:.1f}", f"{median(seconds[name]):.2f}", f"{ours / rate:.2f}"]
        for name, rate in rates.items()
    ]
    our_texts, abstracts = texts

    print(f"machine: {machine()}")
    print(
        f"{count} papers; our texts: {len(our_texts)} titles and sentences, "
        f"{tokens[0]} word pieces; abstracts: {len(abstracts)} texts, {tokens[1]} "
        f"word pieces after truncation at the model's limit; batch_size {batch_size}; "
        f"median of {args.rounds} rounds\n"
    )
    print(table(["side", "papers/s", "seconds", "ours / side"], rows))


if __name__ == "__main__":
    sys.exit(main())
