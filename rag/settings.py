"""Settings: one validated object built from layered sources.

Later layers win: built-in defaults < ``config/default.toml`` < a file given with
``--config`` (or ``RAG_CONFIG``) < environment variables ``RAG_<GROUP>__<KEY>``
(for example ``RAG_STORE__MODE=server``) < explicit overrides passed in code.
Every group forbids unknown keys, so a typo is an error that names the key.
"""

from __future__ import annotations

import logging
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rag.errors import ConfigError

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "config" / "default.toml"
SEEDS_DIR = PROJECT_ROOT / "seeds"
ENV_PREFIX = "RAG_"
ENV_CONFIG_FILE = "RAG_CONFIG"


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StoreSettings(_Group):
    data_dir: Path = Field(
        Path(".rag-data"), description="Where the on-disk store lives."
    )
    mode: Literal["embedded", "server"] = Field(
        "embedded", description="embedded: Chroma on disk; server: a Chroma server."
    )
    host: str = Field("127.0.0.1", description="Chroma server host (server mode).")
    port: int = Field(8000, ge=1, le=65535, description="Chroma server port.")
    collection: str = Field("abstracts", description="Base name of the collections.")


class EmbeddingSettings(_Group):
    model: str = Field(
        "all-MiniLM-L6-v2",
        description="all-MiniLM-L6-v2 (the packaged model) or a local model folder.",
    )
    backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "onnx", description="torch, or ONNX Runtime over the same weights."
    )
    batch_size: int = Field(32, ge=1, le=4096, description="Texts per encode call.")


class RetrievalSettings(_Group):
    k: int = Field(5, ge=1, le=100, description="Abstracts handed to the answerer.")
    candidates: int = Field(
        100, ge=1, le=1000, description="Hits taken from each ranking before fusion."
    )
    fusion: Literal["zscore", "rrf"] = Field(
        "zscore", description="How the four rankings are merged."
    )
    rrf_k: int = Field(
        60, ge=1, description="Reciprocal rank fusion constant (fusion = rrf)."
    )


class AnswerSettings(_Group):
    model: str = Field("extractive", description="Model spec, see `rag models`.")
    base_url: str | None = Field(None, description="Server URL for hosted models.")
    temperature: float = Field(0.1, ge=0.0, le=2.0)
    max_tokens: int = Field(256, ge=1, le=8192)
    timeout: float = Field(60.0, gt=0, description="Seconds before a model call fails.")
    context_chars: int = Field(
        2400, ge=200, description="Most characters of abstracts put in a model prompt."
    )
    min_relevance: float = Field(
        0.35, ge=-1.0, le=1.0, description="Below this similarity the answer abstains."
    )


class UISettings(_Group):
    host: str = Field("127.0.0.1", description="Interface the app listens on.")
    port: int = Field(7860, ge=1, le=65535)
    share: bool = Field(False, description="Ask Gradio for a public share link.")
    concurrency: int = Field(8, ge=1, description="Answers computed at once.")
    auth_user_env: str = Field(
        "RAG_UI_USER", description="Variable holding the login name, if any."
    )
    auth_password_env: str = Field(
        "RAG_UI_PASSWORD", description="Variable holding the login password."
    )


class CorpusSettings(_Group):
    paths: list[Path] = Field(
        default_factory=list, description="Inputs for `rag ingest` with no arguments."
    )
    metadata: Path | None = Field(None, description="A metadata TSV to join by author.")


class Settings(_Group):
    store: StoreSettings = Field(default_factory=StoreSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    ui: UISettings = Field(default_factory=UISettings)
    corpus: CorpusSettings = Field(default_factory=CorpusSettings)


def load_settings(
    config_file: str | Path | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Build the settings from every layer; raise ConfigError naming what is wrong."""
    environ = os.environ if environ is None else environ
    merged: dict[str, Any] = {}

    if DEFAULT_CONFIG_FILE.exists():
        _merge(merged, _read_toml(DEFAULT_CONFIG_FILE))
    config_file = config_file or environ.get(ENV_CONFIG_FILE)
    if config_file:
        _merge(merged, _read_toml(Path(config_file)))

    _merge(merged, _from_environment(environ))
    _merge(merged, overrides or {})
    return _validate(merged)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            f"settings file {path} does not exist; check --config or RAG_CONFIG"
        )
    except OSError as exc:
        raise ConfigError(
            f"settings file {path} cannot be read: {exc.strerror}; point --config "
            "or RAG_CONFIG at a readable TOML file"
        )
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"settings file {path} is not valid TOML: byte "
            f"0x{exc.object[exc.start]:02x} at offset {exc.start} is not UTF-8; "
            "save the file as UTF-8"
        )
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"settings file {path} is not valid TOML: {exc}; config/default.toml "
            "shows the format"
        )


def _from_environment(environ: dict[str, str]) -> dict[str, Any]:
    """Read ``RAG_GROUP__KEY`` variables; leave other ``RAG_`` variables alone."""
    values: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        group, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        _check_environment_key(name, group, key)
        values.setdefault(group, {})[key] = _parse_env_value(value)
    return values


def _check_environment_key(variable: str, group: str, key: str) -> None:
    """Name the variable itself: 'store.nope' alone does not say where it came from."""
    group_field = Settings.model_fields.get(group)
    if group_field is None:
        raise ConfigError(
            f"environment variable {variable} names no settings group '{group}'; "
            f"the groups are {', '.join(Settings.model_fields)}"
        )

    keys = group_field.annotation.model_fields
    if key not in keys:
        raise ConfigError(
            f"environment variable {variable} names no setting '{group}.{key}'; "
            f"the keys of [{group}] are {', '.join(keys)}"
        )


def _parse_env_value(value: str) -> Any:
    """Lists are written as comma-separated values; everything else as text."""
    if value.startswith("[") and value.endswith("]"):
        return [item.strip() for item in value[1:-1].split(",") if item.strip()]
    return value


def _merge(target: dict[str, Any], layer: dict[str, Any]) -> None:
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _validate(merged: dict[str, Any]) -> Settings:
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc)) from None


def _describe_validation_error(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            group = key.rsplit(".", 1)[0] if "." in key else "settings"
            problems.append(
                f"unknown setting '{key}'; valid keys of [{group}] are listed in "
                f"config/default.toml"
            )
        else:
            problems.append(f"setting '{key}': {error['msg']} (got {error['input']!r})")
    return "; ".join(problems)
