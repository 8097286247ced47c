"""Tests of rag.settings: the order of the layers and errors that name the culprit."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import rag.settings
from rag.errors import ConfigError
from rag.settings import Settings, load_settings

BUILT_IN_PORT = 8000
ports = st.integers(min_value=1, max_value=65535)


def write_toml(folder: Path, text: str, name: str = "settings.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def port_file(folder: Path, port: int) -> Path:
    return write_toml(folder, f"[store]\nport = {port}\n", name=f"port-{port}.toml")


# ---------------------------------------------------------------------------
# The order of the layers


def test_default_file_states_the_built_in_defaults() -> None:
    assert load_settings(environ={}) == Settings()


def test_default_file_beats_built_in_defaults(tmp_path, monkeypatch) -> None:
    default_file = write_toml(tmp_path, "[retrieval]\nk = 7\n")
    monkeypatch.setattr(rag.settings, "DEFAULT_CONFIG_FILE", default_file)

    settings = load_settings(environ={})

    assert settings.retrieval.k == 7
    assert settings.retrieval.candidates == Settings().retrieval.candidates


def test_config_file_beats_default_file(tmp_path, monkeypatch) -> None:
    default_file = write_toml(tmp_path, "[retrieval]\nk = 7\nrrf_k = 10\n", "d.toml")
    monkeypatch.setattr(rag.settings, "DEFAULT_CONFIG_FILE", default_file)
    config_file = write_toml(tmp_path, "[retrieval]\nk = 9\n", "c.toml")

    settings = load_settings(config_file, environ={})

    assert settings.retrieval.k == 9
    assert settings.retrieval.rrf_k == 10


@given(
    file_port=st.none() | ports,
    env_port=st.none() | ports,
    override_port=st.none() | ports,
)
def test_later_layers_win(file_port, env_port, override_port) -> None:
    environ = {} if env_port is None else {"RAG_STORE__PORT": str(env_port)}
    overrides = None if override_port is None else {"store": {"port": override_port}}

    with tempfile.TemporaryDirectory() as folder:
        config_file = None if file_port is None else port_file(Path(folder), file_port)
        settings = load_settings(config_file, overrides, environ=environ)

    layers = [BUILT_IN_PORT, file_port, env_port, override_port]
    expected = [port for port in layers if port is not None][-1]
    assert settings.store.port == expected


def test_layers_merge_key_by_key_within_a_group(tmp_path) -> None:
    config_file = write_toml(tmp_path, '[store]\nhost = "10.0.0.5"\nport = 9001\n')
    environ = {"RAG_STORE__MODE": "server"}
    overrides = {"store": {"collection": "papers"}}

    store = load_settings(config_file, overrides, environ=environ).store

    assert (store.host, store.port) == ("10.0.0.5", 9001)
    assert store.mode == "server"
    assert store.collection == "papers"
    assert store.data_dir == Path(".rag-data")


def test_rag_config_names_the_file_when_none_is_given(tmp_path) -> None:
    environ = {"RAG_CONFIG": str(port_file(tmp_path, 8123))}

    assert load_settings(environ=environ).store.port == 8123


def test_explicit_config_file_beats_rag_config(tmp_path) -> None:
    environ = {"RAG_CONFIG": str(port_file(tmp_path, 8123))}

    settings = load_settings(port_file(tmp_path, 8456), environ=environ)

    assert settings.store.port == 8456


def test_environment_lists_are_comma_separated() -> None:
    environ = {"RAG_CORPUS__PATHS": "[papers/a.jsonl, papers/b.bib]"}

    paths = load_settings(environ=environ).corpus.paths

    assert paths == [Path("papers/a.jsonl"), Path("papers/b.bib")]


def test_other_variables_are_left_alone() -> None:
    environ = {"RAG_UI_USER": "ann", "RAG_STORE": "x", "HOME": "/root"}

    assert load_settings(environ=environ) == Settings()


# ---------------------------------------------------------------------------
# Errors that name the key, the variable or the file


def test_unknown_key_in_a_file_is_named(tmp_path) -> None:
    config_file = write_toml(tmp_path, "[store]\nnope = 1\n")

    with pytest.raises(ConfigError, match=r"store\.nope"):
        load_settings(config_file, environ={})


def test_unknown_group_in_a_file_is_named(tmp_path) -> None:
    config_file = write_toml(tmp_path, "[stroe]\nport = 1\n")

    with pytest.raises(ConfigError, match="stroe"):
        load_settings(config_file, environ={})


def test_unknown_environment_key_names_the_variable() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={"RAG_STORE__NOPE": "1"})

    message = str(raised.value)
    assert "RAG_STORE__NOPE" in message
    assert "port" in message, "the message should list the valid keys"


def test_unknown_environment_group_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="RAG_STROE__PORT"):
        load_settings(environ={"RAG_STROE__PORT": "1"})


def test_unknown_override_is_named() -> None:
    with pytest.raises(ConfigError, match=r"answer\.modle"):
        load_settings(overrides={"answer": {"modle": "x"}}, environ={})


def test_wrong_type_in_a_file_names_the_key(tmp_path) -> None:
    config_file = write_toml(tmp_path, '[store]\nport = "abc"\n')

    with pytest.raises(ConfigError, match=r"store\.port.*'abc'"):
        load_settings(config_file, environ={})


def test_wrong_type_in_the_environment_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"store\.port.*'abc'"):
        load_settings(environ={"RAG_STORE__PORT": "abc"})


def test_value_out_of_range_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"store\.port"):
        load_settings(overrides={"store": {"port": 70000}}, environ={})


def test_every_problem_is_reported_at_once(tmp_path) -> None:
    config_file = write_toml(tmp_path, '[store]\nport = "abc"\nnope = 1\n')

    with pytest.raises(ConfigError) as raised:
        load_settings(config_file, environ={})

    assert "store.port" in str(raised.value)
    assert "store.nope" in str(raised.value)


def test_missing_file_is_named(tmp_path) -> None:
    missing = tmp_path / "missing.toml"

    with pytest.raises(ConfigError, match="does not exist") as raised:
        load_settings(missing, environ={})

    assert str(missing) in str(raised.value)


def test_missing_file_from_rag_config_is_named(tmp_path) -> None:
    missing = tmp_path / "missing.toml"

    with pytest.raises(ConfigError, match="RAG_CONFIG") as raised:
        load_settings(environ={"RAG_CONFIG": str(missing)})

    assert str(missing) in str(raised.value)


def test_unreadable_file_is_named(tmp_path) -> None:
    # A folder where a file should be: unreadable even for root, unlike chmod 000.
    folder = tmp_path / "settings.toml"
    folder.mkdir()

    with pytest.raises(ConfigError, match="cannot be read") as raised:
        load_settings(folder, environ={})

    assert str(folder) in str(raised.value)


@pytest.mark.parametrize(
    "content",
    [b"[store\nport = 1\n", b"[store]\nport = \n", b'[store]\nhost = "\xff"\n'],
    ids=["unclosed-table", "missing-value", "not-utf-8"],
)
def test_invalid_toml_is_named(tmp_path, content: bytes) -> None:
    config_file = tmp_path / "broken.toml"
    config_file.write_bytes(content)

    with pytest.raises(ConfigError, match="not valid TOML") as raised:
        load_settings(config_file, environ={})

    assert str(config_file) in str(raised.value)
