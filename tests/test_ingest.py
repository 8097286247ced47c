"""Tests of rag.ingest against a real on-disk Chroma and the packaged model.

Idempotence, incremental updates, bad entries, an ingestion killed half-way and
resumed, and a store built by another embedding model.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import termios
import time
from collections import Counter
from pathlib import Path

import pytest

from rag.corpus import read_papers
from rag.embeddings import get_embedder
from rag.errors import CorpusError, EmbeddingModelMismatchError
from rag.ingest import PAPERS_PER_BATCH, IngestReport, ingest
from rag.settings import SEEDS_DIR, Settings, load_settings
from rag.store import MODEL_KEY, Store, open_store
from rag.text import split_sentences
from rag.types import Paper

SEED_ABSTRACTS = SEEDS_DIR / "iclr2021_orals_abstracts.txt"
SEED_METADATA = SEEDS_DIR / "iclr2021_orals_metadata.tsv"
SEED_COUNT = 53
RAG_COMMAND = Path(sys.executable).parent / "rag"
# Several batches, so the kill can land between two of them.
INTERRUPTED_PAPERS = 3 * PAPERS_PER_BATCH + 8
OTHER_MODEL = "all-MiniLM-L6-v2+onnx"


class CountingEmbedder:
    """The real embedder, recording every text it is asked to encode.

    ``identity`` can be changed to stand for another model that makes vectors of
    the same shape.
    """

    def __init__(self, embedder, identity: str | None = None) -> None:
        self._embedder = embedder
        self.identity = identity or embedder.identity
        self.texts: list[str] = []

    def encode(self, texts: list[str], batch_size: int = 32):
        self.texts.extend(texts)
        return self._embedder.encode(texts, batch_size=batch_size)


@pytest.fixture(scope="module")
def embedder():
    return get_embedder()


@pytest.fixture
def counting(embedder) -> CountingEmbedder:
    return CountingEmbedder(embedder)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, embedder) -> tuple[Path, IngestReport]:
    """A store holding the seeds, and the report of the run that filled it."""
    folder = tmp_path_factory.mktemp("seeded")
    report = ingest(settings=settings_for(folder), embedder=embedder)
    return folder, report


def settings_for(folder: Path) -> Settings:
    return load_settings(overrides={"store": {"data_dir": str(folder)}}, environ={})


def store_in(folder: Path, identity: str) -> Store:
    return open_store(settings_for(folder).store, identity)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def texts_to_embed(paper: Paper) -> list[str]:
    """What ingestion encodes for one paper: its title, then its sentences."""
    title = [paper.title] if paper.title else []
    return title + (split_sentences(paper.abstract) or [paper.abstract])


def seed_papers() -> list[Paper]:
    return read_papers(SEED_ABSTRACTS).papers


# ---------------------------------------------------------------------------
# The seeds, once and again


def test_seeds_are_ingested_with_titles(seeded, embedder) -> None:
    folder, report = seeded

    assert (report.read, report.added, report.total) == (SEED_COUNT,) * 3
    assert (report.updated, report.unchanged, report.skipped) == (0, 0, [])
    assert report.files == [str(SEED_ABSTRACTS)]

    papers = store_in(folder, embedder.identity).all_papers()
    assert len(papers) == SEED_COUNT
    assert all(paper.title for paper in papers)
    assert any("SMiRL" in paper.title for paper in papers)


def test_second_run_embeds_nothing(seeded, counting) -> None:
    folder, _ = seeded

    report = ingest(settings=settings_for(folder), embedder=counting)

    assert (report.added, report.updated, report.unchanged) == (0, 0, SEED_COUNT)
    assert report.total == SEED_COUNT
    assert counting.texts == []


def copy_seeds_with_one_edit(folder: Path, addition: str) -> Path:
    """The seed files copied to ``folder``, with ``addition`` ending the SMiRL
    abstract; returns the copied abstracts file."""
    folder.mkdir()
    shutil.copy(SEED_METADATA, folder)
    text = SEED_ABSTRACTS.read_text(encoding="utf-8")
    ending = "reward-driven learning."
    assert text.count(ending) == 1

    edited_file = folder / SEED_ABSTRACTS.name
    edited_file.write_text(text.replace(ending, ending + addition), encoding="utf-8")
    return edited_file


def test_changed_abstract_is_the_only_one_embedded(seeded, counting, tmp_path):
    store_folder = tmp_path / "store"
    shutil.copytree(seeded[0], store_folder)
    addition = " We release the code of every experiment."
    edited_file = copy_seeds_with_one_edit(tmp_path / "corpus", addition)
    edited = next(p for p in read_papers(edited_file).papers if addition in p.abstract)

    report = ingest([edited_file], settings_for(store_folder), embedder=counting)

    # The id of a paper without one comes from its text: an edited abstract is a
    # new paper, and the old version stays until `rag ingest --rebuild`.
    assert (report.added, report.updated, report.unchanged) == (1, 0, SEED_COUNT - 1)
    assert report.total == SEED_COUNT + 1
    assert counting.texts == texts_to_embed(edited)
    stored = store_in(store_folder, counting.identity).get_papers([edited.id])
    assert stored[0].abstract == edited.abstract
    assert stored[0].title == edited.title


def test_paper_with_an_id_is_updated_in_place(tmp_path, counting) -> None:
    settings = settings_for(tmp_path / "store")
    records = [
        {"id": "p1", "title": "Sparse attention", "abstract": "One. Two. Three."},
        {"id": "p2", "title": "Graph limits", "abstract": "Graphs fail. We prove it."},
    ]
    ingest([write_jsonl(tmp_path / "v1.jsonl", records)], settings, embedder=counting)
    shorter = "A shorter abstract. Now with two sentences."
    records[0]["abstract"] = shorter
    counting.texts.clear()

    second = write_jsonl(tmp_path / "v2.jsonl", records)
    report = ingest([second], settings, embedder=counting)

    assert (report.added, report.updated, report.unchanged) == (0, 1, 1)
    assert report.total == 2
    assert counting.texts == ["Sparse attention", *split_sentences(shorter)]
    sentences = store_in(tmp_path / "store", counting.identity).all_sentences()
    rows = zip(sentences.paper_ids, sentences.texts)
    of_p1 = [text for owner, text in rows if owner == "p1"]
    assert of_p1 == split_sentences(shorter), "the old sentences must be gone"


# ---------------------------------------------------------------------------
# Bad input


def test_partly_bad_file_keeps_the_valid_entries(tmp_path, counting) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"title": "Good one", "abstract": "We study A. It works."}),
                '{"title": "Broken", "abstract": ',
                json.dumps({"title": "Good two", "abstract": "We study B."}),
                json.dumps({"title": "No abstract"}),
                json.dumps({"title": "Number", "abstract": 42}),
                "",
                json.dumps({"title": "Good three", "abstract": "We study C."}),
            ]
        ),
        encoding="utf-8",
    )

    report = ingest([path], settings_for(tmp_path / "store"), embedder=counting)

    assert (report.read, report.added, report.total) == (3, 3, 3)
    assert [problem.entry for problem in report.skipped] == [
        "line 2", "line 4", "line 5"
    ]
    assert all(problem.path == str(path) for problem in report.skipped)
    assert "3 skipped" in report.summary()
    stored = store_in(tmp_path / "store", counting.identity).all_papers()
    assert {paper.title for paper in stored} == {"Good one", "Good two", "Good three"}


# ---------------------------------------------------------------------------
# An ingestion killed half-way, then resumed


def perturbed_seed_records(count: int) -> list[dict]:
    """``count`` distinct papers made from the seeds: short, so embedding is quick."""
    seeds = seed_papers()
    records = []
    for number in range(count):
        seed = seeds[number % len(seeds)]
        opening = " ".join(split_sentences(seed.abstract)[:2])
        records.append(
            {
                "title": f"{seed.title} (variant {number})",
                "authors": seed.authors,
                "abstract": f"{opening} This is variant {number} of the study.",
            }
        )
    return records


def kill_after_first_batch(command: list[str], env: dict[str, str], total: int) -> int:
    """Run ``command`` with a terminal as stderr, so ingestion shows its progress
    bar; SIGKILL it once the bar shows a batch stored. Return the papers it showed.
    """
    controller, terminal = pty.openpty()
    # A new terminal is 0 columns wide, and tqdm draws nothing in 0 columns.
    termios.tcsetwinsize(terminal, (24, 120))
    process = subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    try:
        shown = wait_for_progress(controller, total, deadline=time.monotonic() + 180)
    finally:
        process.kill()
        process.wait()
        os.close(controller)
    return shown


def wait_for_progress(controller: int, total: int, deadline: float) -> int:
    progress = re.compile(rf"(\d+)/{total}\b")
    output = ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1.0)
        if not ready:
            continue
        try:
            output += os.read(controller, 4096).decode("utf-8", "replace")
        except OSError:
            break

        stored = [int(n) for n in progress.findall(output) if int(n) > 0]
        if stored:
            return stored[0]
    pytest.fail(f"ingestion showed no stored batch before it ended:\n{output[-2000:]}")


def test_interrupted_ingestion_resumes_without_duplicates(tmp_path, counting):
    records = perturbed_seed_records(INTERRUPTED_PAPERS)
    corpus = write_jsonl(tmp_path / "many.jsonl", records)
    store_folder = tmp_path / "store"
    env = {**clean_environment(), "RAG_STORE__DATA_DIR": str(store_folder)}

    shown = kill_after_first_batch(
        [str(RAG_COMMAND), "ingest", str(corpus)], env, INTERRUPTED_PAPERS
    )

    assert shown < INTERRUPTED_PAPERS, "ingestion finished before it could be killed"
    store = store_in(store_folder, counting.identity)
    stored_before = {paper.id for paper in store.all_papers()}
    assert 0 < len(stored_before) < INTERRUPTED_PAPERS

    report = ingest([corpus], settings_for(store_folder), embedder=counting)

    papers = read_papers(corpus).papers
    missing = [paper for paper in papers if paper.id not in stored_before]
    assert (report.added, report.unchanged) == (len(missing), len(stored_before))
    assert counting.texts == [text for p in missing for text in texts_to_embed(p)]
    assert_store_holds_exactly(store_in(store_folder, counting.identity), papers)


def assert_store_holds_exactly(store: Store, papers: list[Paper]) -> None:
    """Every paper once, and every sentence once and owned by a stored paper."""
    stored_ids = [paper.id for paper in store.all_papers()]
    assert store.count() == len(papers)
    assert sorted(stored_ids) == sorted(paper.id for paper in papers)

    sentences = store.all_sentences()
    rows = Counter(zip(sentences.paper_ids, sentences.texts))
    expected = Counter(
        (paper.id, sentence)
        for paper in papers
        for sentence in split_sentences(paper.abstract) or [paper.abstract]
    )
    assert rows == expected


def clean_environment() -> dict[str, str]:
    """This process's environment without any RAG_ settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}


# ---------------------------------------------------------------------------
# A store built by another embedding model


def few_papers_file(folder: Path) -> Path:
    records = [
        {"title": f"Paper {n}", "abstract": f"We study topic {n}."} for n in range(3)
    ]
    return write_jsonl(folder / "few.jsonl", records)


def test_store_of_another_model_asks_for_a_rebuild(tmp_path, embedder) -> None:
    settings = settings_for(tmp_path)
    corpus = few_papers_file(tmp_path)
    ingest([corpus], settings, embedder=CountingEmbedder(embedder, OTHER_MODEL))

    with pytest.raises(EmbeddingModelMismatchError) as raised:
        ingest([corpus], settings, embedder=embedder)

    message = str(raised.value)
    assert OTHER_MODEL in message
    assert f"'{embedder.identity}' is configured" in message
    assert "rag ingest --rebuild" in message


def test_rebuild_replaces_a_store_of_another_model(tmp_path, embedder) -> None:
    settings = settings_for(tmp_path)
    corpus = few_papers_file(tmp_path)
    ingest([corpus], settings, embedder=CountingEmbedder(embedder, OTHER_MODEL))

    report = ingest([corpus], settings, embedder=embedder, rebuild=True)

    assert (report.added, report.unchanged, report.total) == (3, 0, 3)
    store = store_in(tmp_path, embedder.identity)
    assert store.papers.metadata[MODEL_KEY] == embedder.identity
    assert store.sentences.metadata[MODEL_KEY] == embedder.identity
    assert store.count() == 3


def test_rebuild_with_a_missing_input_keeps_the_store(tmp_path, embedder) -> None:
    settings = settings_for(tmp_path)
    ingest([few_papers_file(tmp_path)], settings, embedder=embedder)
    missing = tmp_path / "missing.jsonl"

    with pytest.raises(CorpusError, match="missing.jsonl"):
        ingest([missing], settings, embedder=embedder, rebuild=True)

    assert store_in(tmp_path, embedder.identity).count() == 3
