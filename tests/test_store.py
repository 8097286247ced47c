"""The Chroma store with hand-made vectors: nearest-neighbour queries asking for
more rows than stored, and the keyword index following changes to the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.retrieval import HybridIndex
from rag.settings import load_settings
from rag.store import SentenceRows, Store, open_store
from rag.types import Paper

IDENTITY = "test-vectors-8"


def unit(*values: float) -> np.ndarray:
    vector = np.zeros(8, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


def make_store(data_dir: Path) -> Store:
    overrides = {"store": {"data_dir": str(data_dir)}}
    settings = load_settings(overrides=overrides, environ={})
    return open_store(settings.store, IDENTITY)


def add(store: Store, paper_id: str, abstract: str, vector: np.ndarray) -> None:
    paper = Paper(id=paper_id, abstract=abstract, title=f"Title of {paper_id}")
    rows = SentenceRows([paper_id], [abstract], vector[None, :])
    titles = {paper_id: vector}
    store.upsert([paper], [f"hash-{abstract}"], vector[None, :], rows, titles)


class FixedEmbedder:
    """Every question maps to one vector: the tests look at keywords."""

    def encode_one(self, text: str) -> np.ndarray:
        return unit(1.0)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return make_store(tmp_path / "store")


def test_queries_on_an_empty_store_find_nothing(store):
    assert store.query(unit(1.0), 5) == []
    assert store.query_sentences(unit(1.0), 5) == []
    assert store.query_titles(unit(1.0), 5) == []


def test_asking_for_more_than_stored_returns_all_best_first(store):
    add(store, "near", "A paper about reinforcement learning.", unit(1.0, 0.1))
    add(store, "far", "A paper about protein folding.", unit(0.0, 1.0))

    for query in (store.query, store.query_sentences, store.query_titles):
        found = query(unit(1.0), 30)
        assert [paper_id for paper_id, _ in found] == ["near", "far"]
        assert found[0][1] > 0.99 and found[1][1] < 0.01


def test_keyword_index_sees_papers_another_process_added(tmp_path):
    reader = make_store(tmp_path / "store")
    add(reader, "first", "Surprise minimizing agents in unstable worlds.", unit(1.0))
    index = HybridIndex(reader, FixedEmbedder(), load_settings(environ={}).retrieval)
    index.refresh()
    assert [paper.id for paper in index.papers] == ["first"]

    writer = make_store(tmp_path / "store")
    add(writer, "second", "Dataset condensation by gradient matching.", unit(0.0, 1.0))
    index.search("gradient matching condensation")

    assert {paper.id for paper in index.papers} == {"first", "second"}
    keyword = index._keyword_scores("gradient matching condensation")
    assert [paper_id for paper_id, _ in keyword] == ["second"]


def test_sentence_hits_name_their_paper_even_with_colons_in_its_id(store):
    add(store, "arxiv:2101.00001", "A paper with a colon in its id.", unit(1.0))
    add(store, "plain", "Another paper.", unit(0.0, 1.0))

    found = store.query_sentences(unit(1.0), 10)

    assert [paper_id for paper_id, _ in found] == ["arxiv:2101.00001", "plain"]
