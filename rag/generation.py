"""Answers written by a chat model from the retrieved abstracts, then verified.

``generate()`` is what ``Engine.stream`` runs for every spec but ``extractive``:

1. abstain without calling the model when no abstract is close to the question;
2. build a short prompt: the question, the last turns of the chat, and the most
   question-relevant sentences of the top abstracts, numbered [1]..[k], within
   ``[answer] context_chars`` (prompt length sets time-to-first-token on a CPU);
3. stream the model's text as it comes, with citation numbers already rewritten
   to the final numbering (``rag.citations.StreamRenumberer``);
4. verify every sentence against the abstracts it cites (``rag.citations``).

A timeout, or a server that stops mid-answer, ends the answer with a message in
``Answer.error``. A server that cannot be reached at all, a missing key or an
unknown model raise a ModelError: the configured model is never swapped for
another. Timings (seconds): ``retrieve``; ``first_token`` from the question to
the first piece of text; ``generate``, the model call; ``verify``; ``total``;
and ``tokens``, the answer's tokens, when the model reports them.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from rag.citations import (
    UNSUPPORTED_CLOSE,
    UNSUPPORTED_OPEN,
    StreamRenumberer,
    strip_citations,
    verify,
)
from rag.errors import ModelError
from rag.extractive import ScoredSentence, abstention_reason
from rag.models import get_chat_model, is_timeout, model_failure, reports_finish
from rag.prompts import (
    ABSTRACT_TEMPLATE,
    ANSWER_REMINDER,
    CONTEXT_HEADER,
    INSTRUCTIONS_IGNORED,
    NO_ANSWER,
    QUESTION_HEADER,
    SYSTEM_PROMPT,
)
from rag.questions import Question, read_question
from rag.types import Answer, Source

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage

    from rag.answering import Engine
    from rag.retrieval import PaperSentences, Retrieval
    from rag.settings import AnswerSettings

logger = logging.getLogger(__name__)

# Only as much context as the question needs (prompt length sets time-to-first-
# token on a CPU): a source enters the prompt when its best sentence is within
# SOURCE_MARGIN of the best sentence of all. Each kept source shows its best
# sentence, the closest source up to TOP_SOURCE_SENTENCES (the best-matching
# sentence is not always the one that defines the method), and other sentences
# come in when within SENTENCE_MARGIN of the best one.
SOURCE_MARGIN = 0.2
TOP_SOURCE_SENTENCES = 3
SENTENCE_MARGIN = 0.15
# Chat history: the last messages kept, each cut to this many characters.
HISTORY_MESSAGES = 4
HISTORY_CHARS = 300
# Authors named per source in the prompt before "et al.".
PROMPT_AUTHORS = 3
# Where an answer is over: small models go on to write the next question.
STOP_SEQUENCES = ["\nQuestion:", "\nAbstracts:", "\nAbstract ["]
_UNSUPPORTED_MARKS = re.compile(f"[{UNSUPPORTED_OPEN}{UNSUPPORTED_CLOSE}]")


@dataclass
class Context:
    """The numbered sources a prompt shows, and its text block."""

    sources: list[Source]
    text: str


@dataclass
class _Run:
    """What the model produced, filled while it streams."""

    pieces: list[str] = field(default_factory=list)
    first_token: float | None = None
    tokens: int | None = None
    finished: bool = False
    error: str | None = None


def generate(
    engine: Engine,
    parsed: Question,
    history: Sequence[Any] | None,
    retrieval: Retrieval,
    spec: str,
    timings: dict[str, float],
    started: float,
) -> Iterator[str | Answer]:
    """Yield the answer's text pieces as the model writes them, then the Answer."""
    settings = engine.settings.answer
    sentences = engine.index.sentences_of([s.id for s in retrieval.sources])
    scored = score_sentences(retrieval.sources, sentences, retrieval.query_vector)

    reason = _abstention(parsed, retrieval, scored, settings.min_relevance)
    if reason:
        yield from _abstain(f"{NO_ANSWER} {reason}", spec, timings, started)
        return

    chat_model = get_chat_model(spec, engine.settings)
    context = select_context(
        retrieval.sources, scored, settings.context_chars, retrieval.named_papers
    )
    messages = build_messages(parsed.text, history, context)

    run = _Run()
    renumberer = StreamRenumberer(len(context.sources))
    calling = time.perf_counter()
    for piece in _model_text(chat_model, messages, spec, settings, run, started):
        shown = renumberer.feed(piece)
        if shown:
            yield shown
    tail = renumberer.flush()
    if tail:
        yield tail
    timings["generate"] = time.perf_counter() - calling

    yield from _finish(engine, parsed, spec, context, sentences, run, timings, started)


def prompt_for(
    engine: Engine, question: str, history: Sequence[Any] | None = None
) -> tuple[Context, list[BaseMessage]]:
    """The sources and messages ``generate()`` sends a model for ``question``."""
    from rag.answering import clean_question

    parsed = read_question(clean_question(question))
    retrieval = engine.index.search(parsed.text, None, history)
    sentences = engine.index.sentences_of([s.id for s in retrieval.sources])
    scored = score_sentences(retrieval.sources, sentences, retrieval.query_vector)
    context = select_context(
        retrieval.sources,
        scored,
        engine.settings.answer.context_chars,
        retrieval.named_papers,
    )
    return context, build_messages(parsed.text, history, context)


def _finish(
    engine: Engine,
    parsed: Question,
    spec: str,
    context: Context,
    sentences: dict[str, PaperSentences],
    run: _Run,
    timings: dict[str, float],
    started: float,
) -> Iterator[str | Answer]:
    """Verify the text, add the closing notes, and yield them and the Answer."""
    verifying = time.perf_counter()
    raw = "".join(run.pieces).strip()
    checked = verify(raw, context.sources, sentences, engine.embedder.encode)
    timings["verify"] = time.perf_counter() - verifying

    if not raw and run.error is None:
        run.error = (
            f"The model '{spec}' returned no text; ask again or choose another model."
        )
    notes = []
    if parsed.instructions_removed:
        notes.append(INSTRUCTIONS_IGNORED)
    if run.error:
        notes.append(run.error)
    for note in notes:
        yield f"\n\n{note}"

    _record_timings(timings, run, started)
    yield Answer(
        text="\n\n".join([checked.text, *notes]).strip(),
        sources=checked.sources,
        abstained=checked.abstained,
        model=spec,
        timings={name: round(value, 4) for name, value in timings.items()},
        unsupported=checked.unsupported,
        supported_share=checked.supported_share,
        error=run.error,
    )


def _record_timings(timings: dict[str, float], run: _Run, started: float) -> None:
    if run.first_token is not None:
        timings["first_token"] = run.first_token
    if run.tokens is not None:
        timings["tokens"] = float(run.tokens)
    timings["total"] = time.perf_counter() - started


def _abstain(
    text: str, spec: str, timings: dict[str, float], started: float
) -> Iterator[str | Answer]:
    timings["total"] = time.perf_counter() - started
    yield text
    yield Answer(
        text=text,
        sources=[],
        abstained=True,
        model=spec,
        timings={name: round(value, 4) for name, value in timings.items()},
    )


# ---------------------------------------------------------------------------
# Relevance and context


def score_sentences(
    sources: list[Source],
    sentences: dict[str, PaperSentences],
    query_vector: np.ndarray,
) -> list[ScoredSentence]:
    """Every sentence of the sources with its similarity to the question, best first."""
    import numpy as np

    query = np.asarray(query_vector, dtype=np.float32)
    scored = []
    for index, source in enumerate(sources):
        paper = sentences.get(source.id)
        if paper is None or not paper.texts:
            continue
        for position, similarity in enumerate(paper.vectors @ query):
            value = float(similarity)
            scored.append(
                ScoredSentence(index, position, paper.texts[position], value, value)
            )
    return sorted(scored, key=lambda sentence: -sentence.similarity)


def _abstention(
    parsed: Question,
    retrieval: Retrieval,
    scored: list[ScoredSentence],
    min_relevance: float,
) -> str | None:
    """The extractive answerer's abstention rule; a named paper is always relevant."""
    if not scored:
        return "No abstract is close enough to the question."
    if any(source.id in retrieval.named_papers for source in retrieval.sources):
        return None
    return abstention_reason(parsed, scored, retrieval.sources, min_relevance)


def select_context(
    sources: list[Source],
    scored: list[ScoredSentence],
    budget: int,
    named: set[str] = frozenset(),
) -> Context:
    """The best sentences of the closest sources, within ``budget`` characters.

    Sources keep the retrieval order and are numbered from 1; within a source,
    sentences keep the abstract's order, with "..." where some were left out.
    """
    kept = _close_sources(sources, scored, named)
    chosen: dict[int, list[ScoredSentence]] = {index: [] for index in kept}
    used = 0
    for sentence in _by_priority(scored, kept):
        size = len(sentence.text) + 1
        if used and used + size > budget:
            continue
        chosen[sentence.source_index].append(sentence)
        used += size

    numbered = [index for index in kept if chosen[index]]
    blocks = [
        _source_block(number, sources[index], chosen[index])
        for number, index in enumerate(numbered, start=1)
    ]
    return Context([sources[index] for index in numbered], "\n\n".join(blocks))


def _by_priority(scored: list[ScoredSentence], kept: list[int]) -> list[ScoredSentence]:
    """Sentences in the order they claim the budget: the best of each kept source,
    more of the closest source, then any other close enough to the question."""
    if not scored:
        return []
    own = {index: [s for s in scored if s.source_index == index] for index in kept}
    closest = own[scored[0].source_index]

    first = [own[index][0] for index in kept] + closest[1:TOP_SOURCE_SENTENCES]
    taken = {id(sentence) for sentence in first}
    floor = scored[0].similarity - SENTENCE_MARGIN
    rest = [
        s
        for s in scored
        if s.source_index in own and id(s) not in taken and s.similarity >= floor
    ]
    return first + rest


def _close_sources(
    sources: list[Source], scored: list[ScoredSentence], named: set[str]
) -> list[int]:
    """Sources close to the question, or named by it, in retrieval order."""
    best: dict[int, float] = {}
    for sentence in scored:
        best.setdefault(sentence.source_index, sentence.similarity)
    top = max(best.values(), default=0.0)
    return [
        index
        for index, source in enumerate(sources)
        if index in best and (best[index] >= top - SOURCE_MARGIN or source.id in named)
    ]


def _source_block(number: int, source: Source, chosen: list[ScoredSentence]) -> str:
    """A source as the prompt shows it: number, title, authors, chosen sentences."""
    chosen = sorted(chosen, key=lambda sentence: sentence.position)
    parts = []
    for previous, sentence in zip([None, *chosen], chosen):
        if previous is not None and sentence.position != previous.position + 1:
            parts.append("...")
        parts.append(sentence.text)

    authors = ", ".join(source.authors[:PROMPT_AUTHORS]) or "unknown authors"
    if len(source.authors) > PROMPT_AUTHORS:
        authors += " et al."
    return abstract_block(number, source.title or "untitled", authors, " ".join(parts))


def abstract_block(number: int, title: str, authors: str, text: str) -> str:
    """One abstract in a prompt, its text in quotes: data, not instructions."""
    return ABSTRACT_TEMPLATE.format(
        number=number, title=title, authors=authors, text=f'"{text}"'
    )


# ---------------------------------------------------------------------------
# Prompt


def build_messages(
    question: str, history: Sequence[Any] | None, context: Context
) -> list[BaseMessage]:
    """The rules, the last turns of the chat, then the abstracts and the question.

    The system prompt comes first and never changes, so llama.cpp reuses its work
    on it from one question to the next.
    """
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    messages: list[BaseMessage] = [SystemMessage(SYSTEM_PROMPT)]
    for role, content in recent_turns(history):
        kind = HumanMessage if role == "user" else AIMessage
        messages.append(kind(content))

    messages.append(HumanMessage(_user_prompt(context.text, question)))
    return messages


def _user_prompt(abstracts: str, question: str) -> str:
    return (
        f"{CONTEXT_HEADER}\n\n{abstracts}\n\n"
        f"{QUESTION_HEADER} {question}\n\n{ANSWER_REMINDER}"
    )


def recent_turns(history: Sequence[Any] | None) -> list[tuple[str, str]]:
    """The last user and assistant turns, cut short and without citations.

    Old answers' [n] refer to other sources than this prompt's, so they go; a
    user turn loses embedded instructions as a question does.
    """
    turns = []
    for role, content in _pairs(history):
        if role == "user":
            content = read_question(content).text if content.strip() else content
        elif role == "assistant":
            content = _UNSUPPORTED_MARKS.sub("", strip_citations(content))
        else:
            continue
        content = " ".join(content.split())[:HISTORY_CHARS]
        if content:
            turns.append((role, content))
    return turns[-HISTORY_MESSAGES:]


def _pairs(history: Sequence[Any] | None) -> Iterator[tuple[str, str]]:
    """(role, content) pairs, or the {"role", "content"} dicts Gradio holds."""
    for turn in history or []:
        if isinstance(turn, dict):
            role, content = turn.get("role"), turn.get("content")
        elif isinstance(turn, (list, tuple)) and len(turn) == 2:
            role, content = turn
        else:
            continue
        if isinstance(content, str):
            yield str(role), content


# ---------------------------------------------------------------------------
# Calling the model


class GenerationTimeout(ModelError):
    """The model did not finish within ``[answer] timeout``."""


def _model_text(
    chat_model: BaseChatModel,
    messages: list[BaseMessage],
    spec: str,
    settings: AnswerSettings,
    run: _Run,
    started: float,
) -> Iterator[str]:
    """The model's text pieces; a failure after the first one ends it with a note."""
    try:
        for chunk in chunks_within(chat_model, messages, settings.timeout):
            usage = getattr(chunk, "usage_metadata", None)
            if usage:
                run.tokens = usage.get("output_tokens", run.tokens)
            run.finished = run.finished or _says_finished(chunk)
            text = _chunk_text(chunk)
            if not text:
                continue
            if run.first_token is None:
                run.first_token = time.perf_counter() - started
            run.pieces.append(text)
            yield text
    except GenerationTimeout:
        run.error = _timeout_note(spec, settings, bool(run.pieces))
    except Exception as exc:  # any client's failure, reported in its own words
        run.error = _failure_note(exc, spec, settings, run)
    else:
        if not run.finished and reports_finish(spec):
            logger.warning("model %s ended its stream without a finish reason", spec)
            run.error = (
                f"The model '{spec}' stopped sending before it said the answer was "
                "complete, so the answer may be cut short; ask again."
            )


def _says_finished(chunk: Any) -> bool:
    """True for the chunk by which OpenAI, Anthropic, Ollama or llama.cpp clients
    say why the answer ended (a stream cut off midway never carries one)."""
    metadata = getattr(chunk, "response_metadata", None) or {}
    return any(
        metadata.get(key) for key in ("finish_reason", "stop_reason", "done_reason")
    )


def _failure_note(
    exc: Exception, spec: str, settings: AnswerSettings, run: _Run
) -> str:
    """Raise if nothing came yet and it is not a timeout; else the note to end with."""
    if is_timeout(exc):
        return _timeout_note(spec, settings, bool(run.pieces))

    failure = model_failure(exc, spec, settings)
    if not run.pieces:
        raise failure from None
    logger.warning("model %s stopped mid-answer: %s", spec, failure)
    return f"The answer stops here: {failure}."


def _timeout_note(spec: str, settings: AnswerSettings, partial: bool) -> str:
    what = "finish" if partial else "answer"
    return (
        f"The model '{spec}' did not {what} within {settings.timeout:g} s, so the "
        "answer stops here; raise [answer] timeout (RAG_ANSWER__TIMEOUT) or use a "
        "faster model."
    )


def _chunk_text(chunk: Any) -> str:
    content = getattr(chunk, "content", "")
    if isinstance(content, str):
        return content
    return "".join(
        part if isinstance(part, str) else str(part.get("text", ""))
        for part in content
        if isinstance(part, (str, dict))
    )


_DONE = object()


def chunks_within(
    chat_model: BaseChatModel, messages: list[BaseMessage], timeout: float
) -> Iterator[Any]:
    """``chat_model.stream(messages)``, given up after ``timeout`` seconds in all.

    The model runs in a worker thread so the wait is bounded even while a client
    blocks on a socket or llama.cpp reads the prompt. When the caller stops (time
    is up, or it closes this generator), the worker closes the stream at its next
    chunk, which stops llama.cpp and frees the model for the next question.
    """
    chunks: queue.Queue = queue.Queue()
    stop = threading.Event()
    worker = threading.Thread(
        target=contextvars.copy_context().run,
        args=(_produce, chat_model, messages, chunks, stop),
        name="rag-generate",
        daemon=True,
    )
    worker.start()

    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise queue.Empty
                item = chunks.get(timeout=remaining)
            except queue.Empty:
                raise GenerationTimeout(f"no answer within {timeout:g} s") from None
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _produce(chat_model, messages, chunks: queue.Queue, stop: threading.Event) -> None:
    stream = chat_model.stream(messages, stop=STOP_SEQUENCES)
    try:
        for chunk in stream:
            if stop.is_set():
                break
            chunks.put(chunk)
    except Exception as exc:  # handed to the consumer, which reports it
        chunks.put(exc)
    finally:
        stream.close()
        chunks.put(_DONE)
