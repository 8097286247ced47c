"""The built-in offline answerer: an answer made of the abstracts' own sentences.

No language model is involved. Each sentence of the retrieved abstracts is scored
against the question (embedding similarity from vectors computed at ingest time,
plus keyword overlap); the best ones are quoted, each followed by its citation.
When no sentence is relevant enough, or the question asks about something the
abstracts never mention, the answer abstains and says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag.prompts import NO_ANSWER
from rag.questions import Question
from rag.retrieval import PaperSentences, keyword_tokens
from rag.types import Source

if TYPE_CHECKING:
    import numpy as np

# Weight of keyword overlap beside cosine similarity when scoring a sentence.
KEYWORD_WEIGHT = 0.25
# A numeric question favours sentences that hold a number.
NUMBER_BONUS = 0.1
# In a list answer, a paper is listed if its best sentence scores within this
# margin of the best paper's.
LIST_MARGIN = 0.12
MAX_LISTED = 5
_HAS_NUMBER = re.compile(r"\d")


@dataclass
class ScoredSentence:
    source_index: int
    position: int
    text: str
    score: float
    similarity: float


@dataclass
class Draft:
    """The composed answer: text with ``[n]`` markers into ``cited`` sources."""

    text: str
    cited: list[Source]
    abstained: bool


def compose(
    question: Question,
    sources: list[Source],
    sentences: dict[str, PaperSentences],
    query_vector: np.ndarray,
    named: set[str],
    min_relevance: float,
) -> Draft:
    """Choose the sentences that answer ``question`` and cite them."""
    scored = _score_all(question, sources, sentences, query_vector)
    if not scored:
        return Draft(NO_ANSWER, [], True)

    if named and any(source.id in named for source in sources):
        return _named_answer(sources, sentences, scored, named)

    reason = abstention_reason(question, scored, sources, min_relevance)
    if reason:
        return Draft(f"{NO_ANSWER} {reason}", [], True)

    if question.kind == "list":
        return _list_answer(sources, scored)
    return _single_answer(question, sources, scored)


def abstention_reason(
    question: Question,
    scored: list[ScoredSentence],
    sources: list[Source],
    min_relevance: float,
) -> str | None:
    """Why the abstracts do not answer, or None when they do."""
    best = max(scored, key=lambda sentence: sentence.similarity)
    if best.similarity < min_relevance:
        return "No abstract is close enough to the question."

    if question.kind == "numeric" and question.target_terms:
        return _missing_measure(question, scored, sources)
    return None


def _missing_measure(question, scored, sources) -> str | None:
    """A numeric question needs its measure named beside a number in the paper."""
    wanted = set(keyword_tokens(" ".join(question.target_terms)))
    top_paper = scored[0].source_index
    for sentence in scored:
        if sentence.source_index != top_paper or not _HAS_NUMBER.search(sentence.text):
            continue
        if wanted & set(keyword_tokens(sentence.text)):
            return None

    measure = " ".join(question.target_terms)
    return f"The closest abstract reports no figure for {measure}."


def _score_all(question, sources, sentences, query_vector) -> list[ScoredSentence]:
    import numpy as np

    query_terms = set(keyword_tokens(question.text))
    scored: list[ScoredSentence] = []
    for index, source in enumerate(sources):
        paper = sentences.get(source.id)
        if paper is None or not paper.texts:
            continue
        similarities = paper.vectors @ np.asarray(query_vector, dtype=np.float32)
        for position, (text, similarity) in enumerate(zip(paper.texts, similarities)):
            score = float(similarity) + KEYWORD_WEIGHT * _overlap(query_terms, text)
            if question.kind == "numeric" and _HAS_NUMBER.search(text):
                score += NUMBER_BONUS
            scored.append(
                ScoredSentence(index, position, text, score, float(similarity))
            )
    return sorted(scored, key=lambda sentence: -sentence.score)


def _overlap(query_terms: set[str], text: str) -> float:
    if not query_terms:
        return 0.0
    return len(query_terms & set(keyword_tokens(text))) / len(query_terms)


def _single_answer(question, sources, scored) -> Draft:
    """The best paper's one or two best sentences, in abstract order."""
    best = scored[0]
    own = [s for s in scored if s.source_index == best.source_index]
    chosen = [best]
    if len(own) > 1 and own[1].score >= 0.8 * best.score:
        chosen.append(own[1])
    chosen.sort(key=lambda sentence: sentence.position)

    source = sources[best.source_index]
    body = " ".join(f"{sentence.text} [1]" for sentence in chosen)
    return Draft(f"{_heading(source)}: {body}", [source], False)


def _list_answer(sources, scored) -> Draft:
    """One line per relevant paper: its title and its best sentence."""
    best_per_paper: dict[int, ScoredSentence] = {}
    for sentence in scored:
        best_per_paper.setdefault(sentence.source_index, sentence)

    top_score = scored[0].score
    chosen = [
        sentence
        for sentence in best_per_paper.values()
        if sentence.score >= top_score - LIST_MARGIN
    ][:MAX_LISTED]
    return _lines(sources, chosen)


def _named_answer(sources, sentences, scored, named) -> Draft:
    """Every paper of the named author or title, with its most central sentence."""
    chosen = []
    for index, source in enumerate(sources):
        if source.id not in named:
            continue
        own = [s for s in scored if s.source_index == index]
        central = _most_central(own, sentences[source.id]) if own else None
        if central:
            chosen.append(central)
    return _lines(sources, chosen)


def _most_central(own: list[ScoredSentence], paper: PaperSentences):
    """The sentence closest to the abstract's own centroid plus the question."""
    centroid = paper.vectors.mean(axis=0)
    closeness = paper.vectors @ centroid
    return max(own, key=lambda s: s.score + float(closeness[s.position]))


def _lines(sources: list[Source], chosen: list[ScoredSentence]) -> Draft:
    cited: list[Source] = []
    lines = []
    for sentence in chosen:
        source = sources[sentence.source_index]
        cited.append(source)
        number = len(cited)
        lines.append(f"- {_heading(source)}: {sentence.text} [{number}]")
    return Draft("\n".join(lines), cited, False)


def _heading(source: Source) -> str:
    if source.title:
        return f"**{source.title}**"
    return f"**{source.author_line()}**"
