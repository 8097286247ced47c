"""Reliability under faults: ingestion killed at random points, the Chroma server
stopped and restarted under a live engine, and model servers that hang or die in
the middle of a streamed answer.

Every server here listens on 127.0.0.1 and every wait is bounded.
"""

from __future__ import annotations

import json
import os
import pty
import random
import re
import select
import socket
import subprocess
import sys
import termios
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest

import rag
from rag.answering import Engine
from rag.corpus import read_papers
from rag.errors import StoreUnreachableError
from rag.ingest import PAPERS_PER_BATCH, ingest
from rag.models import get_chat_model
from rag.settings import SEEDS_DIR, Settings, load_settings
from rag.store import Store, open_store
from rag.text import split_sentences
from rag.types import Answer, Paper
from ui import handlers
from ui.render import ERROR_SOURCES

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
# Four batches and a part batch: a kill armed after any of the first three
# batches still has two to land in.
KILLED_PAPERS = 4 * PAPERS_PER_BATCH + 8
# (papers stored when the kill is armed, seed of its random delay): the seeds
# are fixed so that a failing kill point can be replayed exactly.
KILL_POINTS = [(0, 1103), (PAPERS_PER_BATCH, 2207), (2 * PAPERS_PER_BATCH, 3301)]
KILL_DELAY = (0.0, 1.2)
RUN_DEADLINE = 300.0
CHROMA_START_SECONDS = 60.0
MODEL_TIMEOUT = 3.0
# Verification and the closing notes, on a busy two-core machine.
AFTER_TIMEOUT = 4.0
SMIRL = "What is SMiRL?"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def settings_in(folder: Path, **store) -> Settings:
    chosen = {"data_dir": str(folder), **store}
    return load_settings(overrides={"store": chosen}, environ={})


def seed_papers() -> list[Paper]:
    return read_papers(SEEDS_DIR / "iclr2021_orals_abstracts.txt").papers


# ---------------------------------------------------------------------------
# `rag ingest` killed with SIGKILL at random points, then run again


def variant_records(count: int) -> list[dict]:
    """``count`` distinct short papers made from the seeds (quick to embed)."""
    seeds = seed_papers()
    records = []
    for number in range(count):
        seed = seeds[number % len(seeds)]
        opening = " ".join(split_sentences(seed.abstract)[:2])
        records.append(
            {
                "title": f"{seed.title} (copy {number})" if number % 5 else None,
                "authors": seed.authors,
                "abstract": f"{opening} Copy {number} of the study ends here.",
            }
        )
    return records


def kill_at(
    command: list[str], env: dict, threshold: int, delay: float, total: int
) -> tuple[int, int]:
    """Run ``command`` with a terminal for stderr (so it draws its progress bar);
    SIGKILL it ``delay`` seconds after the bar shows ``threshold`` papers stored.
    Returns the papers the bar showed and the exit code."""
    controller, terminal = pty.openpty()
    termios.tcsetwinsize(terminal, (24, 120))
    process = subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)

    try:
        shown = watch_progress(controller, total, threshold)
        time.sleep(delay)
    finally:
        process.kill()
        process.wait(timeout=30)
        os.close(controller)
    return shown, process.returncode


def watch_progress(controller: int, total: int, threshold: int) -> int:
    """Papers the bar shows stored once it reaches ``threshold``."""
    bar = re.compile(rf"(\d+)/{total}\b")
    output = ""
    deadline = time.monotonic() + RUN_DEADLINE
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if not ready:
            continue
        try:
            output += os.read(controller, 4096).decode("utf-8", "replace")
        except OSError:
            break

        shown = [int(value) for value in bar.findall(output)]
        if shown and shown[-1] >= threshold:
            return shown[-1]
    pytest.fail(f"no progress to {threshold}/{total} in time:\n{output[-2000:]}")


def expected_sentences(papers: list[Paper]) -> Counter:
    return Counter(
        (paper.id, sentence)
        for paper in papers
        for sentence in split_sentences(paper.abstract) or [paper.abstract]
    )


def stored_titles(store: Store) -> dict[str, str]:
    rows = store.titles.get(include=["documents"])
    return dict(zip(rows["ids"], rows["documents"]))


def assert_stored_papers_are_whole(store: Store, papers: list[Paper]) -> set[str]:
    """After a kill: each stored paper has all its sentences and its title; the
    only extra rows are those of papers the kill stopped before they were stored."""
    by_id = {paper.id: paper for paper in papers}
    stored = {paper.id for paper in store.all_papers()}
    rows = store.all_sentences()
    sentences = Counter(zip(rows.paper_ids, rows.texts))
    titles = stored_titles(store)

    assert stored <= set(by_id)
    own = Counter({key: n for key, n in sentences.items() if key[0] in stored})
    assert own == expected_sentences([by_id[paper_id] for paper_id in stored])
    assert set(sentences) <= set(expected_sentences(papers))

    assert set(titles) <= {paper.id for paper in papers if paper.title}
    for paper_id in stored:
        if by_id[paper_id].title:
            assert titles[paper_id] == by_id[paper_id].title
    return stored


def assert_store_is_exactly(store: Store, papers: list[Paper]) -> None:
    """Every paper once, every sentence and title once, nothing else."""
    ids = [paper.id for paper in store.all_papers()]
    rows = store.all_sentences()

    assert store.count() == len(papers) == len(ids)
    assert sorted(ids) == sorted(paper.id for paper in papers)
    assert Counter(zip(rows.paper_ids, rows.texts)) == expected_sentences(papers)
    assert stored_titles(store) == {p.id: p.title for p in papers if p.title}


@pytest.mark.slow
@pytest.mark.parametrize("armed, seed", KILL_POINTS)
def test_ingest_killed_at_a_random_point_resumes_exactly(
    armed, seed, tmp_path, seed_engine
):
    corpus = tmp_path / "variants.jsonl"
    lines = [json.dumps(record) for record in variant_records(KILLED_PAPERS)]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    store_folder = tmp_path / "store"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["RAG_STORE__DATA_DIR"] = str(store_folder)

    command = [str(BIN / "rag"), "ingest", str(corpus)]
    delay = round(random.Random(seed).uniform(*KILL_DELAY), 3)
    shown, code = kill_at(command, env, armed, delay, KILLED_PAPERS)

    assert code == -9, "the run ended before the kill"
    papers = read_papers(corpus).papers
    settings = settings_in(store_folder)
    identity = seed_engine.embedder.identity
    killed_store = open_store(settings.store, identity)
    before = assert_stored_papers_are_whole(killed_store, papers)
    assert len(before) < len(papers)
    print(f"killed {delay} s after {shown}/{KILLED_PAPERS} showed stored; "
          f"{len(before)} papers whole in the store")

    report = ingest([corpus], settings, embedder=seed_engine.embedder, progress=False)

    assert (report.added, report.unchanged) == (len(papers) - len(before), len(before))
    assert_store_is_exactly(open_store(settings.store, identity), papers)


# ---------------------------------------------------------------------------
# The Chroma server stopped during a session, then started again


def start_chroma(folder: Path, port: int) -> subprocess.Popen:
    """`chroma run` on ``port`` over ``folder``; returns once it answers."""
    log = open(folder / "chroma.log", "ab")
    process = subprocess.Popen(
        [str(BIN / "chroma"), "run", "--path", str(folder / "data"),
         "--host", HOST, "--port", str(port)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    log.close()

    heartbeat = f"http://{HOST}:{port}/api/v2/heartbeat"
    deadline = time.monotonic() + CHROMA_START_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(heartbeat, timeout=1.0):
                return process
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    stop(process)
    pytest.fail(f"chroma run did not answer on port {port}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


@pytest.fixture
def chroma(tmp_path) -> Iterator[dict]:
    """A Chroma server that the test may stop and start again on the same port
    and path; whatever runs at the end is stopped."""
    state = {"port": free_port(), "folder": tmp_path}

    def start() -> None:
        state["process"] = start_chroma(tmp_path, state["port"])

    state["start"] = start
    start()
    yield state
    stop(state["process"])


def chat_reply(question: str, engine: Engine) -> tuple[str, str]:
    """The chat handler's last message and sources panel for ``question``."""
    chat, sources, _ = list(handlers.respond(question, [], "extractive", 5, engine))[-1]
    return chat[-1]["content"], sources


@pytest.mark.slow
def test_answers_resume_after_the_chroma_server_comes_back(chroma, seed_engine):
    settings = settings_in(chroma["folder"], mode="server", host=HOST,
                           port=chroma["port"])
    engine = Engine(settings, embedder=seed_engine.embedder)
    smirl = [paper for paper in seed_papers() if "SMiRL" in (paper.title or "")]
    ingest(settings=settings, store=engine.store, embedder=engine.embedder,
           progress=False, paths=[write_papers(chroma["folder"], smirl)])
    first = engine.answer(SMIRL)
    assert not first.abstained and "SMiRL" in first.sources[0].title

    stop(chroma["process"])
    started = time.monotonic()
    with pytest.raises(StoreUnreachableError) as raised:
        engine.answer(SMIRL)
    reply, sources = chat_reply(SMIRL, engine)
    text, answer = handlers.ask(SMIRL, [], "extractive", 5, engine)

    assert time.monotonic() - started < 30.0
    url = f"http://{HOST}:{chroma['port']}"
    assert url in str(raised.value) and "chroma run" in str(raised.value)
    assert reply.startswith("⚠️") and url in reply and sources == ERROR_SOURCES
    assert answer["error"] == text and "unreachable" in text

    chroma["start"]()
    again = engine.answer(SMIRL)
    reply, sources = chat_reply(SMIRL, engine)

    assert again.text == first.text
    assert [s.id for s in again.sources] == [s.id for s in first.sources]
    assert "[1]" in reply and "SMiRL" in sources


def write_papers(folder: Path, papers: list[Paper]) -> Path:
    """The SMiRL paper and a few others, as a JSONL file."""
    others = [paper for paper in seed_papers()[:5] if paper not in papers]
    path = folder / "papers.jsonl"
    records = [
        {"id": p.id, "title": p.title, "authors": p.authors, "abstract": p.abstract}
        for p in [*papers, *others]
    ]
    path.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------
# A model server that hangs or dies in the middle of a streamed answer

FIRST_PIECES = ["SMiRL seeks out stable states ", "by minimizing surprise [1]"]


class StreamingServer:
    """A loopback server speaking just enough of OpenAI's streaming protocol:
    it sends FIRST_PIECES as server-sent events, then, by ``mode``:

    - "hang": sends nothing more and keeps the connection open (at most 30 s);
    - "reset": closes the connection inside a chunked body (no final chunk);
    - "eof": the body is not chunked, so closing ends it without an error, but
      also without a finish_reason or "data: [DONE]".
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.stop = threading.Event()
        self.requests = 0

    def __enter__(self) -> str:
        self.listener = socket.socket()
        self.listener.bind((HOST, 0))
        self.listener.listen(8)
        threading.Thread(target=self._accept, daemon=True).start()
        return f"http://{HOST}:{self.listener.getsockname()[1]}/v1"

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.requests += 1
            answering = threading.Thread(
                target=self._answer, args=(connection,), daemon=True
            )
            answering.start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(10.0)
            read_request(connection)
            chunked = self.mode != "eof"
            head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            framing = "Transfer-Encoding: chunked" if chunked else "Connection: close"
            head += f"{framing}\r\n"
            connection.sendall(f"{head}\r\n".encode())
            for piece in FIRST_PIECES:
                connection.sendall(sse_event(piece, chunked))
                time.sleep(0.05)
            if self.mode == "hang":
                self.stop.wait(30.0)


def read_request(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)
    while length and len(body) < int(length.group(1)):
        body += connection.recv(65536)
    return body


def sse_event(text: str, chunked: bool) -> bytes:
    """One completion chunk as an SSE event, framed as an HTTP chunk if asked."""
    chunk = {
        "id": "reliability",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "x",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    event = f"data: {json.dumps(chunk)}\n\n".encode()
    return b"%x\r\n%s\r\n" % (len(event), event) if chunked else event


def engine_with_model_server(seed_engine: Engine, url: str) -> Engine:
    chosen = seed_engine.settings.model_copy(deep=True)
    chosen.answer.base_url = url
    chosen.answer.timeout = MODEL_TIMEOUT
    engine = Engine(chosen, store=seed_engine.store, embedder=seed_engine.embedder)

    # Build the keyword index and the client first: the timings below are the
    # model call's, not the first import of langchain_openai.
    engine.answer(SMIRL)
    get_chat_model("openai:x", chosen)
    return engine


def streamed(engine: Engine, model: str) -> tuple[list[str], Answer, float]:
    started = time.monotonic()
    *pieces, final = list(rag.stream_answer(SMIRL, model=model, engine=engine))
    return pieces, final, time.monotonic() - started


def assert_chat_still_answers(engine: Engine) -> None:
    started = time.monotonic()
    result = engine.answer(SMIRL, model="extractive")
    reply, sources = chat_reply(SMIRL, engine)

    assert time.monotonic() - started < 30.0
    assert result.error is None and "SMiRL" in result.sources[0].title
    assert "[1]" in reply and "SMiRL" in sources


@pytest.mark.slow
def test_a_model_server_that_hangs_mid_stream_is_cut_at_the_timeout(seed_engine):
    with StreamingServer("hang") as url:
        engine = engine_with_model_server(seed_engine, url)
        pieces, answer, elapsed = streamed(engine, "openai:x")
        reply, sources = chat_reply_with(engine, "openai:x")

    assert answer.timings["generate"] < MODEL_TIMEOUT + 0.5
    assert elapsed < MODEL_TIMEOUT + AFTER_TIMEOUT
    assert "".join(pieces).startswith("SMiRL seeks out stable states")
    assert answer.error and f"did not finish within {MODEL_TIMEOUT:g} s" in answer.error
    assert "RAG_ANSWER__TIMEOUT" in answer.error and answer.text.endswith(answer.error)
    assert reply.startswith("SMiRL seeks out") and "⚠️ The model" in reply
    assert_chat_still_answers(engine)


@pytest.mark.slow
def test_a_model_server_that_drops_the_connection_ends_the_answer(seed_engine):
    with StreamingServer("reset") as url:
        engine = engine_with_model_server(seed_engine, url)
        pieces, answer, elapsed = streamed(engine, "openai:x")
        reply, _ = chat_reply_with(engine, "openai:x")

    assert elapsed < MODEL_TIMEOUT + AFTER_TIMEOUT
    assert answer.error and answer.error.startswith("The answer stops here")
    assert "SMiRL seeks out stable states" in answer.text
    assert answer.text.endswith(answer.error) and "stops here" in reply
    assert_chat_still_answers(engine)


@pytest.mark.slow
def test_a_model_stream_cut_without_an_http_error_is_flagged(seed_engine):
    with StreamingServer("eof") as url:
        engine = engine_with_model_server(seed_engine, url)
        _, answer, elapsed = streamed(engine, "openai:x")

    assert elapsed < MODEL_TIMEOUT + AFTER_TIMEOUT
    assert answer.error and "cut short" in answer.error, answer.text
    assert "SMiRL seeks out stable states" in answer.text
    assert_chat_still_answers(engine)


def chat_reply_with(engine: Engine, model: str) -> tuple[str, str]:
    chat, sources, _ = list(handlers.respond(SMIRL, [], model, 5, engine))[-1]
    return chat[-1]["content"], sources


# ---------------------------------------------------------------------------
# An empty store, as a kill before the first batch leaves it


def test_an_empty_store_still_opens_in_the_app(tmp_path, seed_engine):
    from rag.prompts import NO_PAPERS
    from ui.app import create_app

    engine = Engine(settings_in(tmp_path), embedder=seed_engine.embedder)

    app = create_app(engine)
    table = handlers.filter_papers("", engine)
    reply, _ = chat_reply(SMIRL, engine)

    assert app is not None and "0 of 0 papers" in table
    assert engine.answer(SMIRL).text == NO_PAPERS and NO_PAPERS in reply
