"""answer(), stream_answer() and retrieve(): the library's front door.

An ``Engine`` holds what is slow to build (the embedding model, the store, the
keyword index) and is made once per settings; the module-level functions use a
shared default engine unless one is passed.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any, Iterator, Sequence

from rag.errors import QuestionError, UnknownModelError
from rag.prompts import INSTRUCTIONS_IGNORED, NO_ANSWER, NO_PAPERS
from rag.questions import MAX_QUESTION_CHARS, Question, read_question
from rag.settings import Settings, load_settings
from rag.types import Answer, Source

logger = logging.getLogger(__name__)

EXTRACTIVE = "extractive"
MAX_K = 100
# Control characters, and lone surrogates (JSON "\ud800"): the tokenizer refuses
# those, so they would crash the embedder instead of being read as blanks.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


class Engine:
    """Embedding model, store and indexes for one set of settings."""

    def __init__(self, settings: Settings | None = None, store=None, embedder=None):
        from rag.embeddings import get_embedder
        from rag.retrieval import HybridIndex
        from rag.store import open_store

        self.settings = settings or load_settings()
        self.embedder = embedder or get_embedder(
            self.settings.embedding.model, self.settings.embedding.backend
        )
        self.store = store or open_store(self.settings.store, self.embedder.identity)
        self.index = HybridIndex(self.store, self.embedder, self.settings.retrieval)

    def retrieve(
        self, question: str, k: int | None = None, history=None
    ) -> list[Source]:
        text = clean_question(question)
        check_request(history, None, k)
        retrieval = self.index.search(read_question(text).text, k, history)
        return retrieval.sources

    def stream(
        self,
        question: str,
        history: Sequence[Any] | None = None,
        model: str | None = None,
        k: int | None = None,
    ) -> Iterator[str | Answer]:
        """Yield pieces of the answer text as they are ready, then the Answer."""
        started = time.perf_counter()
        parsed = read_question(clean_question(question))
        check_request(history, model, k)
        spec = model or self.settings.answer.model

        if self.store.count() == 0:
            yield NO_PAPERS
            yield Answer(NO_PAPERS, [], True, spec, {"total": 0.0})
            return

        retrieval = self.index.search(parsed.text, k, history)
        timings = {"retrieve": time.perf_counter() - started}
        if spec == EXTRACTIVE:
            yield from self._extractive(parsed, retrieval, timings, started)
            return

        from rag.generation import generate

        yield from generate(self, parsed, history, retrieval, spec, timings, started)

    def answer(self, question: str, history=None, model=None, k=None) -> Answer:
        final = None
        for event in self.stream(question, history, model, k):
            if isinstance(event, Answer):
                final = event
        return final

    def _extractive(self, parsed: Question, retrieval, timings, started):
        from rag.extractive import compose

        composing = time.perf_counter()
        sentences = self.index.sentences_of([s.id for s in retrieval.sources])
        draft = compose(
            parsed,
            retrieval.sources,
            sentences,
            retrieval.query_vector,
            retrieval.named_papers,
            self.settings.answer.min_relevance,
            self.index.term_weight,
            retrieval.unknown_terms,
            retrieval.titled_papers,
        )
        text = draft.text
        if parsed.instructions_removed:
            text = f"{text}\n\n{INSTRUCTIONS_IGNORED}"
        _attach_evidence(draft.cited, text)
        timings["compose"] = time.perf_counter() - composing
        timings["total"] = time.perf_counter() - started

        yield from _pieces(text)
        yield Answer(
            text=text,
            sources=draft.cited,
            abstained=draft.abstained,
            model=EXTRACTIVE,
            timings={name: round(value, 4) for name, value in timings.items()},
            supported_share=None if draft.abstained else 1.0,
        )


def clean_question(question: Any) -> str:
    """Check and tidy a question; raise QuestionError with the fix when unusable."""
    if not isinstance(question, str):
        raise QuestionError(
            f"the question must be text, not {type(question).__name__}; pass a str"
        )
    text = _CONTROL_CHARS.sub(" ", question).strip()
    if not text:
        raise QuestionError(
            "the question is empty; type a question about the abstracts"
        )
    if len(text) > MAX_QUESTION_CHARS:
        logger.info(
            "question of %d characters cut to %d", len(text), MAX_QUESTION_CHARS
        )
        text = text[:MAX_QUESTION_CHARS]
    return text


def check_request(history: Any, model: Any, k: Any) -> None:
    """Raise the error that names an unusable argument, before any work is done."""
    if history is not None and not isinstance(history, (list, tuple)):
        raise QuestionError(
            f"the history must be a list of turns, not {type(history).__name__}; "
            "pass [] or [{'role': 'user', 'content': '...'}, ...]"
        )
    if model is not None and not isinstance(model, str):
        raise UnknownModelError(
            f"the model must be a spec such as '{EXTRACTIVE}', not "
            f"{type(model).__name__}; see `rag models`"
        )
    whole = isinstance(k, int) and not isinstance(k, bool)
    if k is not None and not (whole and 1 <= k <= MAX_K):
        raise QuestionError(
            f"k, the number of abstracts, must be a whole number from 1 to {MAX_K}; "
            f"got {k!r}"
        )


def _attach_evidence(sources: list[Source], text: str) -> None:
    """Record on each cited source the sentences of its abstract the answer quotes."""
    for source in sources:
        source.evidence = [
            sentence for sentence in _abstract_sentences(source) if sentence in text
        ]


def _abstract_sentences(source: Source) -> list[str]:
    from rag.text import split_sentences

    return split_sentences(source.abstract)


def _pieces(text: str) -> Iterator[str]:
    """Split a finished answer into lines, so a chat shows it arriving."""
    for line in text.splitlines(keepends=True):
        yield line


_default_engine: Engine | None = None
_engine_lock = threading.Lock()


def get_engine(settings: Settings | None = None) -> Engine:
    """The shared engine for the default settings, or a new one for ``settings``."""
    global _default_engine
    if settings is not None:
        return Engine(settings)
    with _engine_lock:
        if _default_engine is None:
            _default_engine = Engine()
        return _default_engine


def set_default_engine(engine: Engine | None) -> None:
    """Use ``engine`` for the module-level functions (None: build on next use)."""
    global _default_engine
    _default_engine = engine


def retrieve(question: str, k: int | None = None, history=None, engine=None):
    """The best sources for ``question``, best first."""
    return (engine or get_engine()).retrieve(question, k, history)


def answer(question: str, history=None, model=None, k=None, engine=None) -> Answer:
    """A short answer whose every sentence cites the abstracts it comes from."""
    return (engine or get_engine()).answer(question, history, model, k)


def stream_answer(question: str, history=None, model=None, k=None, engine=None):
    """Like answer(), but yields text pieces first and the Answer last."""
    yield from (engine or get_engine()).stream(question, history, model, k)


__all__ = ["Engine", "answer", "get_engine", "retrieve", "stream_answer", "NO_ANSWER"]
