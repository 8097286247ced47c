"""Ingestion: read abstracts, embed what changed, upsert into the store.

Each paper's vector is the normalised mean of its title's and its sentences'
vectors, and every sentence is stored with its own vector for the answerer. Work
goes in batches, each committed before the next starts, so an interrupted run keeps
what it stored and a rerun embeds only what is still missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from rag.corpus import papers_from_inputs
from rag.errors import CorpusError
from rag.settings import SEEDS_DIR, Settings
from rag.store import SentenceRows, Store
from rag.text import split_sentences
from rag.types import Paper

logger = logging.getLogger(__name__)

PAPERS_PER_BATCH = 64
# Bump when the way vectors are built changes: every paper is then re-embedded.
VECTOR_LAYOUT = "2"


@dataclass
class IngestReport:
    """What one ingestion run did."""

    read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[CorpusError] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    total: int = 0

    def summary(self) -> str:
        return (
            f"{self.read} papers read from {len(self.files)} file(s): "
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{len(self.skipped)} skipped; {self.total} papers in the store"
        )


def default_inputs(settings: Settings) -> list[Path]:
    return list(settings.corpus.paths) or [SEEDS_DIR]


def ingest(
    paths: Sequence[str | Path] | None = None,
    settings: Settings | None = None,
    store: Store | None = None,
    embedder=None,
    rebuild: bool = False,
    progress: bool | None = None,
) -> IngestReport:
    """Read ``paths`` (files or folders; default: the seeds) into the store."""
    from rag.embeddings import get_embedder
    from rag.settings import load_settings

    settings = settings or load_settings()
    # Inputs first: a missing file fails at once, before the model loads and before
    # --rebuild deletes the store.
    report = IngestReport()
    papers = _read_inputs(paths or default_inputs(settings), settings, report)

    embedding = settings.embedding
    embedder = embedder or get_embedder(embedding.model, embedding.backend)
    if store is None:
        store = _open_for_ingest(settings, embedder.identity, rebuild)
    pending = _changed_papers(papers, store, embedder.identity, report)

    show_bar = sys.stderr.isatty() if progress is None else progress
    _embed_and_store(pending, store, embedder, settings.embedding.batch_size, show_bar)
    report.total = store.count()
    logger.info("%s", report.summary())
    return report


def content_hash(paper: Paper, model_identity: str) -> str:
    """Changes whenever the stored vectors or metadata of ``paper`` would change."""
    fields = [VECTOR_LAYOUT, model_identity, paper.embedding_text()]
    fields.append(json.dumps(paper.authors))
    fields += [str(paper.venue), str(paper.year), str(paper.url), str(paper.truncated)]
    return hashlib.sha256("\x1f".join(fields).encode()).hexdigest()[:16]


def _open_for_ingest(settings: Settings, identity: str, rebuild: bool) -> Store:
    from rag.store import delete_collections, open_store

    if rebuild:
        delete_collections(settings.store)
    return open_store(settings.store, identity)


def _read_inputs(paths, settings: Settings, report: IngestReport) -> list[Paper]:
    """Read every input; keep the first of papers that share an id across files."""
    results = papers_from_inputs([Path(p) for p in paths], settings.corpus.metadata)
    by_id: dict[str, Paper] = {}
    for result in results:
        report.files.append(str(result.path))
        report.skipped.extend(result.skipped)
        for paper in result.papers:
            _keep_unless_conflicting(paper, by_id, result.path, report)

    report.read = len(by_id)
    return list(by_id.values())


def _keep_unless_conflicting(paper, by_id, path, report: IngestReport) -> None:
    earlier = by_id.get(paper.id)
    if earlier is None:
        by_id[paper.id] = paper
    elif earlier.abstract != paper.abstract:
        report.skipped.append(
            CorpusError(
                f"duplicate id {paper.id} with different text from an earlier file; "
                "give each paper its own id",
                path=str(path),
            )
        )


def _changed_papers(papers, store: Store, identity: str, report: IngestReport):
    """Papers whose content differs from what is stored, with their new hashes."""
    pending: list[tuple[Paper, str]] = []
    for start in range(0, len(papers), 500):
        chunk = papers[start : start + 500]
        stored = store.stored_hashes([paper.id for paper in chunk])
        for paper in chunk:
            new_hash = content_hash(paper, identity)
            if stored.get(paper.id) == new_hash:
                report.unchanged += 1
                continue
            if paper.id in stored:
                report.updated += 1
            else:
                report.added += 1
            pending.append((paper, new_hash))
    return pending


def _embed_and_store(pending, store: Store, embedder, batch_size: int, show_bar: bool):
    bar = _progress_bar(len(pending), show_bar)
    for start in range(0, len(pending), PAPERS_PER_BATCH):
        batch = pending[start : start + PAPERS_PER_BATCH]
        papers = [paper for paper, _ in batch]
        paper_vectors, sentences, titles = embed_papers(papers, embedder, batch_size)
        hashes = [content_hash for _, content_hash in batch]
        store.upsert(papers, hashes, paper_vectors, sentences, titles)
        bar(len(batch))
    bar(0, close=True)


def embed_papers(papers: list[Paper], embedder, batch_size: int = 32):
    """Vectors for papers (mean of title and sentences), for their sentences,
    and for their titles (by paper id)."""
    import numpy as np

    texts: list[str] = []
    owners: list[int] = []
    is_sentence: list[bool] = []
    for index, paper in enumerate(papers):
        if paper.title:
            texts.append(paper.title)
            owners.append(index)
            is_sentence.append(False)
        for sentence in split_sentences(paper.abstract) or [paper.abstract]:
            texts.append(sentence)
            owners.append(index)
            is_sentence.append(True)

    vectors = embedder.encode(texts, batch_size=batch_size)
    owner_array = np.asarray(owners)
    paper_vectors = np.zeros((len(papers), vectors.shape[1]), dtype=np.float32)
    np.add.at(paper_vectors, owner_array, vectors)
    paper_vectors /= np.linalg.norm(paper_vectors, axis=1, keepdims=True)

    keep = np.asarray(is_sentence)
    sentences = SentenceRows(
        paper_ids=[papers[i].id for i, s in zip(owners, is_sentence) if s],
        texts=[t for t, s in zip(texts, is_sentence) if s],
        vectors=vectors[keep],
    )
    titles = {
        papers[owner].id: vector
        for owner, vector, sentence in zip(owners, vectors, is_sentence)
        if not sentence
    }
    return paper_vectors, sentences, titles


def _progress_bar(total: int, enabled: bool) -> Callable[..., None]:
    if not enabled or total == 0:
        return lambda advance, close=False: None

    from tqdm import tqdm

    bar = tqdm(total=total, unit="paper", desc="embedding")

    def advance(count: int, close: bool = False) -> None:
        bar.update(count)
        if close:
            bar.close()

    return advance
