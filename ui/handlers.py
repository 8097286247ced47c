"""The app's event handlers: plain functions that tests call directly.

Each takes an optional ``engine`` (default: the shared engine of the default
settings). None of them raises for a person's mistake or a failing model: errors
become readable chat messages, and the full trace goes to the server log only.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from rag.answering import EXTRACTIVE, Engine, get_engine, stream_answer
from rag.errors import RagError
from rag.settings import Settings
from rag.types import Answer
from ui.render import (
    ERROR_SOURCES,
    PENDING_SOURCES,
    chat_text,
    model_note,
    papers_table,
    render_sources,
    render_timings,
)

logger = logging.getLogger(__name__)

ChatHistory = list[dict[str, Any]]
# What the chat handler shows after each step: the chat, the sources panel, timings.
ChatUpdate = tuple[ChatHistory, str, str]

THINKING = "*Searching the abstracts…*"
CURSOR = " ▍"
MAX_K = 100
_ROLES = ("user", "assistant", "system")


@dataclass
class ModelChoice:
    """A model spec the dropdown offers, and why it cannot answer if it cannot."""

    spec: str
    available: bool = True
    reason: str = ""
    description: str = ""


def respond(
    message: str | None,
    history: Sequence[Any] | None,
    model: str | None = None,
    k: float | None = None,
    engine: Engine | None = None,
) -> Iterator[ChatUpdate]:
    """Answer ``message`` in the light of ``history``; yield the chat as it grows."""
    engine = engine or get_engine()
    question = message if isinstance(message, str) else ""
    shown: ChatHistory = list(history or [])
    if question.strip():
        shown.append(_message("user", _escape(question)))
    shown.append(_message("assistant", THINKING))
    yield list(shown), PENDING_SOURCES, ""

    text = ""
    pairs = history_pairs(history, unescape=True)
    for event in safe_stream(question, pairs, model, k, engine):
        if isinstance(event, Answer):
            shown[-1] = _message("assistant", _final_text(event, text))
            yield list(shown), _sources_html(event), render_timings(event)
            return
        text += event
        shown[-1] = _message("assistant", chat_text(text) + CURSOR)
        yield list(shown), PENDING_SOURCES, ""


def ask(
    question: str,
    history: Sequence[Any] | None = None,
    model: str | None = None,
    k: float | None = None,
    engine: Engine | None = None,
) -> tuple[str, dict[str, Any]]:
    """The finished answer's text and the whole Answer as a dict (for the API)."""
    engine = engine or get_engine()
    # Anything but a list goes on as it came, so the engine's check names it.
    turns = history_pairs(history) if isinstance(history, (list, tuple)) else history
    final = None
    for event in safe_stream(question, turns, model, k, engine):
        if isinstance(event, Answer):
            final = event
    if final is None:
        final = error_answer("the model gave no answer; try again", model or "")
    return final.text, final.to_dict()


def safe_stream(
    question: Any,
    history: list[tuple[str, str]],
    model: str | None,
    k: float | None,
    engine: Engine,
) -> Iterator[str | Answer]:
    """stream_answer(), with every failure turned into a final Answer with error."""
    spec = model or engine.settings.answer.model
    problem = _request_problem(spec, k, engine.settings)
    if problem:
        yield error_answer(problem, spec)
        return

    try:
        yield from stream_answer(question, history, spec, _as_k(k), engine=engine)
    except RagError as exc:
        logger.info("answer with %s failed: %s", spec, exc)
        yield error_answer(str(exc), spec)
    except Exception as exc:
        logger.exception("unexpected failure answering with %s", spec)
        message = (
            f"answering failed unexpectedly ({type(exc).__name__}: {exc}); the app "
            "is still running and the server log has the details"
        )
        yield error_answer(message, spec)


def error_answer(message: str, spec: str) -> Answer:
    """An Answer that carries only an error, shaped like any other Answer."""
    text = message[:1].upper() + message[1:]
    return Answer(text=text, sources=[], abstained=False, model=spec, error=text)


def history_pairs(
    history: Sequence[Any] | None, unescape: bool = False
) -> list[tuple[str, str]]:
    """(role, text) pairs from Gradio message dicts, (role, text) pairs or
    [question, answer] pairs; ``unescape`` undoes the escaping the chat applied."""
    pairs: list[tuple[str, str]] = []
    for turn in history or []:
        if isinstance(turn, dict):
            text = _text_of(turn.get("content"))
            pairs.append((str(turn.get("role", "")), text))
        elif isinstance(turn, (list, tuple)) and len(turn) == 2:
            pairs.extend(_pair_turns(turn))
    if unescape:
        pairs = [(role, html.unescape(text)) for role, text in pairs]
    return [(role, text) for role, text in pairs if text.strip()]


def take_question(text: str | None) -> tuple[str, str]:
    """Empty the input box and hand its text on to the chat handler."""
    return "", text or ""


def filter_papers(text: str | None, engine: Engine | None = None) -> str:
    """The Browse tab's table of every paper that matches ``text``."""
    engine = engine or get_engine()
    try:
        engine.index.refresh()
        papers = engine.index.papers
    except RagError as exc:
        return f'<p class="qa-count">{html.escape(str(exc))}</p>'
    return papers_table(papers, text or "")


def list_models(settings: Settings) -> list[ModelChoice]:
    """The registry's models, or just the built-in one if the registry is missing."""
    try:
        from rag.models import available_models
    except ImportError as exc:
        logger.warning("model registry unavailable (%s); offering extractive only", exc)
        return [ModelChoice(EXTRACTIVE)]

    try:
        infos = available_models(settings)
    except Exception:
        # A broken provider must not take the whole app down with it.
        logger.exception("listing models failed; offering extractive only")
        return [ModelChoice(EXTRACTIVE)]

    choices = [
        ModelChoice(
            info.spec,
            bool(info.available),
            str(info.reason or ""),
            str(getattr(info, "description", "") or ""),
        )
        for info in infos
    ]
    return choices or [ModelChoice(EXTRACTIVE)]


def model_choices(choices: Sequence[ModelChoice]) -> list[tuple[str, str]]:
    """Dropdown entries (label, spec); an unavailable model says so in its label."""
    return [(_label(choice), choice.spec) for choice in choices]


def describe_model(spec: str | None, engine: Engine | None = None) -> str:
    """The note under the model picker: what ``spec`` is, or why it cannot answer."""
    engine = engine or get_engine()
    for choice in list_models(engine.settings):
        if choice.spec == spec:
            return model_note(spec, choice.available, choice.reason, choice.description)
    about = "not in the model list; an answer says so if it cannot run"
    return model_note(spec or "", True, about=about)


def model_problem(spec: str | None, settings: Settings) -> str | None:
    """Why the registry says ``spec`` cannot answer, or None if it can (or is
    unknown to it: the engine's own error then names the valid specs)."""
    if not spec or spec == EXTRACTIVE:
        return None
    for choice in list_models(settings):
        if choice.spec == spec and not choice.available:
            return choice.reason or "the model registry marks it unavailable"
    return None


def _request_problem(spec: str, k: Any, settings: Settings) -> str | None:
    try:
        count = _as_k(k)
    except (TypeError, ValueError):
        count = 0
    if k is not None and not 1 <= count <= MAX_K:
        return f"the number of abstracts must be between 1 and {MAX_K}; got {k!r}"
    reason = model_problem(spec, settings)
    if reason:
        return f"the model {spec} cannot answer: {reason}; choose another model"
    return None


def _label(choice: ModelChoice) -> str:
    return choice.spec if choice.available else f"{choice.spec} (unavailable)"


def _as_k(k: float | None) -> int | None:
    return None if k is None else int(round(float(k)))


def _final_text(answer: Answer, streamed: str) -> str:
    if answer.error:
        prefix = chat_text(streamed) + "\n\n" if streamed.strip() else ""
        return f"{prefix}⚠️ {_escape(answer.error)}"
    return chat_text(answer.text, answer.unsupported)


def _sources_html(answer: Answer) -> str:
    return ERROR_SOURCES if answer.error else render_sources(answer)


def _escape(text: str) -> str:
    """Escape for Markdown shown in the page: no markup gets through."""
    return html.escape(text, quote=False)


def _message(role: str, content: str) -> dict[str, Any]:
    return {"role": role, "content": content}


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or Gradio's list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or "")
    if isinstance(content, (list, tuple)):
        return "\n".join(_text_of(part) for part in content if part).strip()
    return ""


def _pair_turns(turn: Sequence[Any]) -> list[tuple[str, str]]:
    first, second = turn
    if first in _ROLES:
        return [(str(first), _text_of(second))]
    return [("user", _text_of(first)), ("assistant", _text_of(second))]
