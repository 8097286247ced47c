"""What the app shows: the sources panel, the paper list, small notes, chat text.

Everything that comes from an abstract, a title, an author list or a question is
escaped here before it reaches the page, and only http(s) links are kept: the
collection is data anyone can write, so it is never trusted as markup.
"""

from __future__ import annotations

import html
import re
from typing import Iterable, Sequence
from urllib.parse import urlparse

from rag.citations import UNSUPPORTED
from rag.types import Answer, Paper, Source

ABSTAINED_TITLE = "The abstracts do not answer this"
_EMPTY = '<p class="qa-heading">Sources</p><div class="qa-empty">{}</div>'
EMPTY_SOURCES = _EMPTY.format(
    "The abstracts behind an answer appear here. Open one to read it with the "
    "sentences the answer relies on highlighted."
)
PENDING_SOURCES = _EMPTY.format("Searching the abstracts…")
ERROR_SOURCES = _EMPTY.format("No sources: the question was not answered.")
UNSUPPORTED_MARK = "⚠️"

# Scoped by gr.HTML to the sources panel; theme variables keep dark mode legible.
SOURCES_CSS = """
.qa-empty { color: var(--body-text-color-subdued); font-size: 0.92em;
  padding: 14px; border: 1px dashed var(--border-color-primary);
  border-radius: 8px; }
.qa-heading { font-weight: 600; font-size: 1.05em; margin: 4px 0 10px;
  color: var(--body-text-color); }
.qa-sub { font-size: 0.88em; color: var(--body-text-color-subdued);
  margin: 0 0 6px; }
.qa-source { border: 1px solid var(--border-color-primary); border-radius: 8px;
  margin-bottom: 8px; background: var(--background-fill-primary); }
.qa-source[open] { border-color: var(--color-accent); }
.qa-source summary { cursor: pointer; padding: 10px 12px; list-style: none;
  display: flex; gap: 10px; align-items: baseline; }
.qa-source summary::-webkit-details-marker { display: none; }
.qa-num { flex: none; font-weight: 700; color: var(--color-accent); }
.qa-title, .qa-meta, .qa-toggle { display: block; }
.qa-title { font-weight: 600; line-height: 1.35; }
.qa-title a { color: inherit; text-decoration: underline;
  text-decoration-color: var(--border-color-primary); }
.qa-meta { font-size: 0.85em; color: var(--body-text-color-subdued);
  margin-top: 2px; }
.qa-toggle { font-size: 0.8em; color: var(--color-accent); margin-top: 4px; }
.qa-source[open] .qa-toggle { display: none; }
.qa-abstract { padding: 0 12px 12px 34px; margin: 0; line-height: 1.55;
  font-size: 0.93em; }
.qa-abstract mark { background: #fde68a; color: #1f2937; padding: 1px 2px;
  border-radius: 3px; }
.qa-note { padding: 0 12px 10px 34px; font-size: 0.8em;
  color: var(--body-text-color-subdued); }
.qa-abstained { border-left: 4px solid #f59e0b; padding: 10px 14px;
  background: var(--background-fill-secondary); border-radius: 6px;
  margin-bottom: 10px; }
.qa-abstained strong { display: block; margin-bottom: 4px; }
.qa-unsupported { border-left: 4px solid #dc2626; padding: 10px 14px;
  background: var(--background-fill-secondary); border-radius: 6px;
  margin-bottom: 10px; font-size: 0.92em; }
.qa-unsupported ul { margin: 6px 0 0; padding-left: 18px; }
"""

PAPERS_CSS = """
.qa-count { font-size: 0.9em; color: var(--body-text-color);
  margin: 4px 0 8px; }
.qa-papers { width: 100%; border-collapse: collapse; font-size: 0.92em;
  border: none; }
.qa-papers th, .qa-papers td { border: none; text-align: left; padding: 8px;
  vertical-align: top; }
.qa-papers th { font-weight: 600;
  border-bottom: 2px solid var(--border-color-primary); }
.qa-papers td { border-bottom: 1px solid var(--border-color-primary); }
.qa-papers td.qa-title-cell { width: 45%; }
.qa-papers td.qa-nowrap { white-space: nowrap; }
.qa-papers a { color: inherit; }
"""

# The timings line and the model note: small print under the panels.
NOTE_CSS = """
.qa-timings, .qa-note { font-size: 0.8em; color: var(--body-text-color-subdued);
  padding: 2px 4px; line-height: 1.4; }
.qa-warn { color: var(--body-text-color); border-left: 3px solid #f59e0b;
  padding: 6px 10px; background: var(--background-fill-secondary);
  border-radius: 4px; font-size: 0.88em; }
"""


def render_sources(answer: Answer) -> str:
    """The sources panel for ``answer``: one collapsible card per cited abstract."""
    count = len(answer.sources)
    if not (count or answer.abstained or answer.unsupported):
        return ERROR_SOURCES

    heading = f"Sources ({count})" if count else "Sources"
    parts = [f'<p class="qa-heading">{heading}</p>']
    if answer.abstained:
        parts.append(_abstained_block())
    if answer.unsupported:
        parts.append(_unsupported_block(answer.unsupported))
    if count and answer.abstained:
        parts.append('<p class="qa-sub">The closest abstracts, not cited:</p>')

    parts.extend(
        _source_card(number, source)
        for number, source in enumerate(answer.sources, start=1)
    )
    return '<div class="qa-sources">' + "".join(parts) + "</div>"


def highlight(abstract: str, evidence: Iterable[str]) -> str:
    """The abstract as escaped HTML with each evidence sentence in <mark>."""
    spans = _merge(_find(abstract, sentence) for sentence in evidence)
    pieces: list[str] = []
    position = 0
    for start, end in spans:
        pieces.append(html.escape(abstract[position:start]))
        pieces.append(f"<mark>{html.escape(abstract[start:end])}</mark>")
        position = end
    pieces.append(html.escape(abstract[position:]))
    return "".join(pieces)


def safe_url(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) link, else None (no javascript: etc.)."""
    if not url:
        return None
    parsed = urlparse(url.strip())
    if parsed.scheme.lower() not in ("http", "https") or not parsed.netloc:
        return None
    return url.strip()


def chat_text(text: str, unsupported: Sequence[str] = ()) -> str:
    """Answer text for the chat: escaped, with unsupported sentences flagged.

    The citation check wraps each in ⟦ ⟧ (see rag.citations); in an answer without
    those marks, the sentences listed in ``unsupported`` are found by their text.
    """
    shown = html.escape(text, quote=False)
    shown, flagged = UNSUPPORTED.subn(lambda found: _flag(found.group(1)), shown)
    if not flagged:
        shown, flagged = _flag_listed(shown, unsupported)

    if flagged:
        shown += (
            f"\n\n*{UNSUPPORTED_MARK} marks sentences that no cited abstract "
            "supports.*"
        )
    return shown


def render_timings(answer: Answer) -> str:
    """One small line: the model and how long the answer took, step by step."""
    timings = dict(answer.timings)
    total = timings.pop("total", None)
    steps = ", ".join(_timing(name, value) for name, value in timings.items())
    line = html.escape(answer.model or "")
    if total is not None:
        line += f" · {_seconds(total)}"
    if steps:
        line += f" ({html.escape(steps)})"
    return f'<div class="qa-timings">{line}</div>'


def papers_table(papers: Sequence[Paper], text: str = "") -> str:
    """Every paper whose title, authors, venue or year contain all words of
    ``text``, as an HTML table sorted by title."""
    terms = text.casefold().split()
    shown = [paper for paper in papers if _matches(paper, terms)]
    shown.sort(key=lambda paper: (paper.title or paper.abstract).casefold())

    count = f"{len(shown)} of {len(papers)} papers"
    if text.strip():
        count += f" match “{html.escape(text.strip())}”"
    rows = "".join(_paper_row(paper) for paper in shown)
    head = "<tr><th>Title</th><th>Authors</th><th>Venue</th><th>Year</th></tr>"
    return (
        f'<p class="qa-count">{count}</p>'
        f'<table class="qa-papers"><thead>{head}</thead><tbody>{rows}</tbody></table>'
    )


def model_note(spec: str, available: bool, reason: str = "", about: str = "") -> str:
    """A small line under the model picker: what the model is, or why it cannot
    answer here."""
    name = html.escape(spec)
    if not available:
        return (
            f'<div class="qa-warn">⚠️ <strong>{name}</strong> cannot answer here: '
            f"{html.escape(reason or 'marked unavailable')}. Pick another model.</div>"
        )
    if about:
        about = html.escape(about)
        return f'<div class="qa-note"><strong>{name}</strong>: {about}</div>'
    return ""


def _abstained_block() -> str:
    return (
        f'<div class="qa-abstained"><strong>{ABSTAINED_TITLE}.</strong>'
        "No abstract in the collection says enough about this question. Try other "
        "words, or look through the Browse tab.</div>"
    )


def _unsupported_block(sentences: Sequence[str]) -> str:
    items = "".join(f"<li>{html.escape(sentence)}</li>" for sentence in sentences)
    return (
        f'<div class="qa-unsupported"><strong>{UNSUPPORTED_MARK} Not supported by '
        f"the cited abstracts</strong><ul>{items}</ul></div>"
    )


def _source_card(number: int, source: Source) -> str:
    title = html.escape(source.label())
    url = safe_url(source.url)
    if url:
        title = (
            f'<a href="{html.escape(url)}" target="_blank" '
            f'rel="noopener noreferrer">{title}</a>'
        )
    note = ""
    if source.truncated:
        note = '<div class="qa-note">The collection holds a shortened abstract.</div>'

    return (
        f'<details class="qa-source" id="source-{number}">'
        f'<summary><span class="qa-num">[{number}]</span><span>'
        f'<span class="qa-title">{title}</span>'
        f'<span class="qa-meta">{_meta_line(source)}</span>'
        f'<span class="qa-toggle">Show abstract</span></span></summary>'
        f'<p class="qa-abstract">{highlight(source.abstract, source.evidence)}</p>'
        f"{note}</details>"
    )


def _meta_line(source: Source) -> str:
    authors = ", ".join(source.authors) if source.authors else "unknown authors"
    parts = [authors]
    if source.venue:
        parts.append(source.venue)
    if source.year and not (source.venue and str(source.year) in source.venue):
        parts.append(str(source.year))
    return html.escape(" · ".join(parts))


def _paper_row(paper: Paper) -> str:
    title = html.escape(paper.title or "Untitled")
    url = safe_url(paper.url)
    if url:
        title = (
            f'<a href="{html.escape(url)}" target="_blank" '
            f'rel="noopener noreferrer">{title}</a>'
        )
    cells = [
        title,
        html.escape(", ".join(paper.authors) or "unknown"),
        html.escape(paper.venue or ""),
        html.escape(str(paper.year or "")),
    ]
    return (
        f'<tr><td class="qa-title-cell">{cells[0]}</td><td>{cells[1]}</td>'
        f'<td class="qa-nowrap">{cells[2]}</td><td>{cells[3]}</td></tr>'
    )


def _matches(paper: Paper, terms: list[str]) -> bool:
    fields = [paper.title or "", " ".join(paper.authors), paper.venue or ""]
    haystack = " ".join(fields + [str(paper.year or "")]).casefold()
    return all(term in haystack for term in terms)


def _find(abstract: str, sentence: str) -> tuple[int, int] | None:
    """Where ``sentence`` sits in ``abstract``, tolerating differing whitespace."""
    sentence = sentence.strip()
    if not sentence:
        return None
    start = abstract.find(sentence)
    if start >= 0:
        return start, start + len(sentence)
    pattern = r"\s+".join(re.escape(word) for word in sentence.split())
    found = re.search(pattern, abstract)
    return (found.start(), found.end()) if found else None


def _merge(spans: Iterable[tuple[int, int] | None]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping spans, so no <mark> is ever nested or broken."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(span for span in spans if span):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _flag_listed(shown: str, unsupported: Sequence[str]) -> tuple[str, int]:
    flagged = 0
    for sentence in unsupported:
        escaped = html.escape(sentence, quote=False).strip()
        if escaped and escaped in shown:
            shown = shown.replace(escaped, _flag(escaped), 1)
            flagged += 1
    return shown, flagged


def _flag(sentence: str) -> str:
    """A sentence in italics after a warning sign; its own * and _ kept literal."""
    literal = sentence.strip().replace("*", r"\*").replace("_", r"\_")
    return f"{UNSUPPORTED_MARK} *{literal}*"


def _timing(name: str, value: float) -> str:
    # Generated answers also report how many tokens they took, among the times.
    if name == "tokens":
        return f"{value:.0f} tokens"
    return f"{name.replace('_', ' ')} {_seconds(value)}"


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value >= 0.01 else f"{value * 1000:.0f} ms"
