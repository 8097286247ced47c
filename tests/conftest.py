"""Fixtures shared by the test files.

Isolation: no test sees the user's ``RAG_*`` variables or touches their data
directory; every test gets its own empty store location through
``RAG_STORE__DATA_DIR``.

Real parts: ``seed_engine`` is an Engine over a fresh store holding the seed
abstracts (built once per session, about half a minute); ``ui_server`` serves the
Gradio app over it on a free loopback port, and ``serve_app`` serves any other.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Callable, Iterator

import pytest

from rag.answering import Engine, set_default_engine
from rag.settings import Settings, load_settings


@pytest.fixture(scope="session", autouse=True)
def clean_rag_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Drop the user's RAG_ variables (config file, store, login) for the session."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("RAG_"):
                patch.delenv(name)
        patch.setenv("RAG_STORE__DATA_DIR", str(tmp_path_factory.mktemp("no-store")))
        yield


@pytest.fixture(autouse=True)
def isolated_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Path]:
    """Point the default store at this test's own folder; forget the default
    engine afterwards so it cannot leak into the next test."""
    data_dir = tmp_path / "rag-data"
    monkeypatch.setenv("RAG_STORE__DATA_DIR", str(data_dir))
    yield data_dir
    set_default_engine(None)


@pytest.fixture(scope="session")
def seed_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Default settings with a fresh data dir; no environment layer at all."""
    data_dir = tmp_path_factory.mktemp("seed-store")
    return load_settings(overrides={"store": {"data_dir": str(data_dir)}}, environ={})


@pytest.fixture(scope="session")
def seed_engine(seed_settings: Settings) -> Engine:
    """A real Engine over the seed abstracts, ingested into ``seed_settings``'s dir."""
    from rag.ingest import ingest

    engine = Engine(seed_settings)
    report = ingest(
        settings=seed_settings,
        store=engine.store,
        embedder=engine.embedder,
        progress=False,
    )
    assert report.total == report.read > 0 and not report.skipped, report.summary()
    return engine


@pytest.fixture(scope="session")
def serve_app() -> Iterator[Callable[..., str]]:
    """Serve a Gradio app in-process on a free loopback port; returns its URL.
    Every app served this way is closed at the end of the session."""
    from ui.app import launch

    served = []

    def serve(app, settings: Settings) -> str:
        _, url, _ = launch(
            app,
            settings,
            host="127.0.0.1",
            port=free_port(),
            prevent_thread_lock=True,
            quiet=True,
        )
        served.append(app)
        return url

    yield serve
    for app in served:
        app.close()


@pytest.fixture(scope="session")
def ui_server(seed_engine: Engine, serve_app: Callable[..., str]) -> str:
    """The URL of the app over ``seed_engine``, served for the whole session."""
    from ui.app import create_app

    return serve_app(create_app(seed_engine), seed_engine.settings)


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
