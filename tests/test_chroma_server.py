"""Tests of the store in server mode, against a real `chroma run` on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from rag.answering import Engine
from rag.embeddings import get_embedder
from rag.errors import StoreUnreachableError
from rag.ingest import ingest
from rag.settings import Settings, load_settings
from rag.store import open_store

pytestmark = pytest.mark.slow

CHROMA_COMMAND = Path(sys.executable).parent / "chroma"
HOST = "127.0.0.1"
SEED_COUNT = 53
START_TIMEOUT = 60.0


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def server_settings(port: int) -> Settings:
    overrides = {"store": {"mode": "server", "host": HOST, "port": port}}
    return load_settings(overrides=overrides, environ={})


def start_chroma(folder: Path, port: int) -> subprocess.Popen:
    """Start `chroma run` on ``port`` and return once it answers its heartbeat."""
    log = open(folder / "chroma.log", "wb")
    process = subprocess.Popen(
        [str(CHROMA_COMMAND), "run", "--path", str(folder / "data"),
         "--host", HOST, "--port", str(port)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    log.close()
    wait_for_heartbeat(process, port, folder / "chroma.log")
    return process


def wait_for_heartbeat(process: subprocess.Popen, port: int, log: Path) -> None:
    url = f"http://{HOST}:{port}/api/v2/heartbeat"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"chroma run exited with {process.returncode}:\n"
                        + log.read_text(errors="replace")[-2000:])
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)

    stop(process)
    pytest.fail(f"chroma run did not answer {url} within {START_TIMEOUT:.0f} s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def embedder():
    return get_embedder()


@pytest.fixture(scope="module")
def chroma_port(tmp_path_factory) -> Iterator[int]:
    """The port of a Chroma server that lives as long as this module's tests."""
    port = free_port()
    process = start_chroma(tmp_path_factory.mktemp("chroma-server"), port)
    yield port
    stop(process)


@pytest.fixture(scope="module")
def seeded_server(chroma_port, embedder) -> Settings:
    """Server settings whose store holds the seeds; the report is checked once."""
    settings = server_settings(chroma_port)
    report = ingest(settings=settings, embedder=embedder)

    assert (report.added, report.unchanged, report.skipped) == (SEED_COUNT, 0, [])
    assert report.total == SEED_COUNT
    return settings


def test_seeds_are_ingested_into_the_server(seeded_server, embedder) -> None:
    store = open_store(seeded_server.store, embedder.identity)

    assert store.count() == SEED_COUNT
    assert all(paper.title for paper in store.all_papers())
    assert store.location == f"Chroma server http://{HOST}:{seeded_server.store.port}"


def test_second_ingestion_changes_nothing(seeded_server, embedder) -> None:
    report = ingest(settings=seeded_server, embedder=embedder)

    assert (report.added, report.updated, report.unchanged) == (0, 0, SEED_COUNT)
    assert report.total == SEED_COUNT


def test_retrieval_through_the_server_finds_smirl(seeded_server, embedder) -> None:
    sources = Engine(seeded_server, embedder=embedder).retrieve("What is SMiRL?")

    assert sources, "retrieval found nothing"
    assert "SMiRL" in (sources[0].title or "")


def test_nothing_listening_names_the_url_and_the_fix(embedder) -> None:
    port = free_port()

    with pytest.raises(StoreUnreachableError) as raised:
        open_store(server_settings(port).store, embedder.identity)

    message = str(raised.value)
    assert f"http://{HOST}:{port}" in message
    assert f"chroma run --path DIR --host {HOST} --port {port}" in message
    assert 'mode = "embedded"' in message


def test_server_that_stops_is_reported_as_unreachable(tmp_path, embedder) -> None:
    port = free_port()
    process = start_chroma(tmp_path, port)
    try:
        store = open_store(server_settings(port).store, embedder.identity)
    finally:
        stop(process)

    with pytest.raises(StoreUnreachableError, match=f"http://{HOST}:{port}"):
        store.count()
