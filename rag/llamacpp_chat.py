"""A LangChain chat model over a GGUF file run in-process by llama.cpp.

``langchain-community`` is not a dependency, so this is the small adapter the
``smollm2`` and ``llamacpp:`` specs use: ``_stream`` calls llama-cpp-python's
``create_chat_completion(stream=True)`` and ``_generate`` joins the stream. The
prompt is laid out by the chat template stored in the GGUF file.

A loaded model is shared by every chat model on the same file and settings, and
calls to it take turns: a llama.cpp context is not safe to use from two threads.
"""

from __future__ import annotations

import atexit
import logging
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import (
    BaseChatModel,
    generate_from_stream,
)
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from rag.errors import ModelError

logger = logging.getLogger(__name__)

# Prompt plus answer must fit: ~2,400 characters of abstracts (~600 tokens), the
# system prompt, a few turns of history and up to a few hundred answer tokens.
DEFAULT_CONTEXT_TOKENS = 2048
# Small models at a low temperature fall into loops ("[1] [1] [1] ..."); a mild
# penalty on repeated tokens stops that without bending the wording much.
REPEAT_PENALTY = 1.1

_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


@dataclass
class LoadedLlama:
    """One llama.cpp model in memory and the lock its callers take turns with."""

    llama: Any
    lock: threading.Lock


@lru_cache(maxsize=4)
def load_llama(path: str, n_ctx: int, n_threads: int | None) -> LoadedLlama:
    """Load a GGUF file once per path, context size and thread count."""
    from llama_cpp import Llama

    if not Path(path).is_file():
        raise ModelError(
            f"GGUF file {path} does not exist; give the path of a .gguf model file"
        )

    logger.info("loading %s with llama.cpp (n_ctx=%d)", path, n_ctx)
    try:
        llama = Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads, verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(
            f"llama.cpp cannot load {path} ({exc}); check that it is a GGUF model file"
        ) from None
    # Freed before the interpreter tears its modules down; freed later, from
    # Llama.__del__, llama.cpp's bindings are gone and it prints a traceback.
    atexit.register(llama.close)
    return LoadedLlama(llama, threading.Lock())


class LlamaCppChat(BaseChatModel):
    """Chat with a GGUF model through llama-cpp-python, streaming tokens."""

    model_path: str
    temperature: float = 0.1
    max_tokens: int = 256
    repeat_penalty: float = REPEAT_PENALTY
    n_ctx: int = DEFAULT_CONTEXT_TOKENS
    # None: llama.cpp's own choice (half the logical CPUs).
    n_threads: int | None = None

    @property
    def _llm_type(self) -> str:
        return "llamacpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_path": self.model_path,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "n_ctx": self.n_ctx,
        }

    def load(self) -> LoadedLlama:
        """The loaded model (loaded on first use, then shared)."""
        return load_llama(self.model_path, self.n_ctx, self.n_threads)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        loaded = self.load()
        produced = 0
        finish_reason = None

        with loaded.lock:
            completion = loaded.llama.create_chat_completion(
                messages=[as_llama_message(message) for message in messages],
                stream=True,
                temperature=kwargs.get("temperature", self.temperature),
                max_tokens=kwargs.get("max_tokens", self.max_tokens),
                repeat_penalty=self.repeat_penalty,
                stop=stop,
            )
            try:
                for part in completion:
                    choice = part["choices"][0]
                    finish_reason = choice.get("finish_reason") or finish_reason
                    text = choice["delta"].get("content") or ""
                    if not text:
                        continue
                    produced += 1
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                    if run_manager:
                        run_manager.on_llm_new_token(text, chunk=chunk)
                    yield chunk
            finally:
                # Closing stops llama.cpp at once when the caller stops early.
                completion.close()
            # The context now holds the prompt followed by the answer's tokens.
            prompt_tokens = max(loaded.llama.n_tokens - produced, 0)

        yield _closing_chunk(prompt_tokens, produced, finish_reason)


def as_llama_message(message: BaseMessage) -> dict[str, str]:
    """A LangChain message as the {"role", "content"} dict llama.cpp expects."""
    role = _ROLES.get(message.type, getattr(message, "role", "user"))
    content = message.content
    if not isinstance(content, str):
        content = "".join(
            part if isinstance(part, str) else str(part.get("text", ""))
            for part in content
        )
    return {"role": role, "content": content}


def _closing_chunk(
    prompt_tokens: int, produced: int, finish_reason: str | None
) -> ChatGenerationChunk:
    """An empty last chunk that carries token counts, as hosted APIs send them."""
    usage = {
        "input_tokens": prompt_tokens,
        "output_tokens": produced,
        "total_tokens": prompt_tokens + produced,
    }
    return ChatGenerationChunk(
        message=AIMessageChunk(content="", usage_metadata=usage),
        generation_info={"finish_reason": finish_reason},
    )
