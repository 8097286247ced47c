"""Tests of the `rag` command, run as a subprocess against a real on-disk store.

Each command that embeds loads the model (about ten seconds), so the seeds are
ingested once for the module and the ask and stats commands share that store.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

RAG_COMMAND = [sys.executable, "-m", "rag.cli"]
SEED_COUNT = 53
COMMAND_TIMEOUT = 300


def run_rag(
    *args: str, data_dir: Path, **variables: str
) -> subprocess.CompletedProcess:
    """Run `rag ARGS` with its store in ``data_dir`` and no other RAG_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(variables, RAG_STORE__DATA_DIR=str(data_dir))
    return subprocess.run(
        [*RAG_COMMAND, *args], env=env, cwd=data_dir.parent, capture_output=True,
        text=True, timeout=COMMAND_TIMEOUT,
    )


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_readable_error(result: subprocess.CompletedProcess, exit_code: int) -> str:
    """The command failed with ``exit_code`` and one `error:` line, no traceback."""
    assert result.returncode == exit_code, result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli") / "rag-data"


@pytest.fixture(scope="module")
def ingested(data_dir) -> subprocess.CompletedProcess:
    """`rag ingest` of the seeds into the module's store."""
    return run_rag("ingest", data_dir=data_dir)


# ---------------------------------------------------------------------------
# ingest and stats


def test_ingest_prints_the_summary(ingested) -> None:
    assert ingested.returncode == 0, ingested.stderr
    assert (
        f"{SEED_COUNT} papers read from 1 file(s): {SEED_COUNT} added, 0 updated, "
        f"0 unchanged, 0 skipped; {SEED_COUNT} papers in the store"
    ) in ingested.stdout
    assert "skipped:" not in ingested.stderr


def test_stats_reports_papers_model_and_location(ingested, data_dir) -> None:
    result = run_rag("stats", data_dir=data_dir)

    assert result.returncode == 0, result.stderr
    figures = dict(line.split(maxsplit=1) for line in result.stdout.splitlines())
    assert figures["papers"] == str(SEED_COUNT)
    assert figures["with_title"] == str(SEED_COUNT)
    assert figures["embedding_model"] == "all-MiniLM-L6-v2"
    assert str(data_dir.resolve()) in figures["store"]


def test_partly_bad_file_exits_3_naming_file_and_line(tmp_path) -> None:
    bad = tmp_path / "mixed.jsonl"
    bad.write_text(
        json.dumps({"title": "Good", "abstract": "We study A. It works."})
        + '\n{"title": "Broken", "abstract": \n',
        encoding="utf-8",
    )

    result = run_rag("ingest", str(bad), data_dir=tmp_path / "rag-data")

    assert result.returncode == 3, result.stderr
    assert f"skipped: {bad}, line 2: not valid JSON" in result.stderr
    assert "1 added" in result.stdout
    assert "1 skipped" in result.stdout


def test_empty_file_is_named(tmp_path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")

    result = run_rag("ingest", str(empty), data_dir=tmp_path / "rag-data")

    message = assert_readable_error(result, 1)
    assert f"{empty}: file is empty" in message


def test_missing_file_is_named(tmp_path) -> None:
    missing = tmp_path / "missing.jsonl"

    result = run_rag("ingest", str(missing), data_dir=tmp_path / "rag-data")

    message = assert_readable_error(result, 1)
    assert str(missing) in message


# ---------------------------------------------------------------------------
# Settings and the store


def test_unknown_key_in_config_file_exits_2(tmp_path) -> None:
    config_file = tmp_path / "settings.toml"
    config_file.write_text("[store]\nnope = 1\n", encoding="utf-8")

    result = run_rag("--config", str(config_file), "stats", data_dir=tmp_path / "d")

    message = assert_readable_error(result, 2)
    assert "store.nope" in message


def test_unknown_environment_key_exits_2(tmp_path) -> None:
    result = run_rag("stats", data_dir=tmp_path / "d", RAG_STORE__NOPE="1")

    message = assert_readable_error(result, 2)
    assert "RAG_STORE__NOPE" in message


def test_unreachable_server_exits_1_naming_the_url(tmp_path) -> None:
    port = str(free_port())
    server = {"RAG_STORE__MODE": "server", "RAG_STORE__PORT": port}

    result = run_rag("stats", data_dir=tmp_path / "d", **server)

    message = assert_readable_error(result, 1)
    assert f"http://127.0.0.1:{port}" in message
    assert "chroma run" in message


# ---------------------------------------------------------------------------
# ask


def test_ask_prints_a_cited_answer_and_its_sources(ingested, data_dir) -> None:
    result = run_rag("ask", "What is SMiRL?", data_dir=data_dir)

    assert result.returncode == 0, result.stderr
    answer, _, sources = result.stdout.partition("\nSources:\n")
    assert "[1]" in answer
    assert "SMiRL" in answer
    assert sources.startswith("[1] SMiRL: Surprise Minimizing")
    assert "DEBUG" not in result.stderr, "library debug logging reached the user"


def test_ask_json_prints_the_answer_object(ingested, data_dir) -> None:
    result = run_rag("ask", "--json", "What is SMiRL?", data_dir=data_dir)

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert {"text", "sources", "abstained", "model", "timings"} <= answer.keys()
    assert answer["abstained"] is False
    assert answer["model"] == "extractive"
    assert "[1]" in answer["text"]
    assert "SMiRL" in answer["sources"][0]["title"]
    assert answer["timings"]["total"] >= 0
