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
from typing import TYPE_CHECKING, Callable

from rag.prompts import NO_ANSWER
from rag.questions import Question, is_instruction
from rag.retrieval import PaperSentences, keyword_tokens
from rag.types import Source

if TYPE_CHECKING:
    import numpy as np

# Weight of keyword overlap (by inverse document frequency) beside cosine
# similarity when scoring a sentence.
KEYWORD_WEIGHT = 0.35
PREFIX_CHARS = 7
# A numeric question favours sentences that hold a number.
NUMBER_BONUS = 0.1
# In a list answer, a paper is listed if its best sentence, less the rank
# penalty, scores at least this share of the best paper's.
LIST_RATIO = 0.75
MAX_LISTED = 5
# A single-paper answer quotes up to this many sentences, each scoring at least
# this share of the best one.
SENTENCES_PER_ANSWER = 3
SECOND_SENTENCE_RATIO = 0.75
# Score a paper loses per retrieval rank when choosing which paper answers.
RANK_PENALTY = 0.05
_HAS_NUMBER = re.compile(r"\d")

# What kind of sentence answers what kind of question, by cue words. A "how"
# question is answered by the method, a "why" by a reason, a question about
# results or evaluation by the findings; background sentences answer none.
CUE_BONUS = 0.08
BACKGROUND_PENALTY = 0.05
_ASKS = {
    "method": re.compile(
        r"^\s*how (do|does|did|can|is|are)\b|\bwhat (method|approach|technique|"
        r"idea|mechanism)\b|\bhow\b.*\b(obtain|achieve|handle|answer|solve)",
        re.IGNORECASE,
    ),
    "result": re.compile(
        r"\b(results?|report|achiev\w*|perform\w*|evaluat\w*|outperform\w*|"
        r"accuracy|show|find|findings|conclu\w*|experiments?|benchmarks?|"
        r"datasets?|tasks?|systems?|tested|demonstrat\w*)\b",
        re.IGNORECASE,
    ),
    "reason": re.compile(
        r"^\s*why\b|\bwhat\b.*\b(makes?|causes?|explains?|allows?|enables?)\b",
        re.IGNORECASE,
    ),
    "definition": re.compile(r"^\s*what (is|are)\s+[\w\-]+\s*\??\s*$", re.I),
}
_ANSWERS = {
    "method": re.compile(
        r"\b(we (propose|introduce|present|develop|formulate|translate|cast|use|"
        r"generalize|design|derive|extend|leverage|adopt|employ|learn|train|build|"
        r"construct|combine|apply|show how)|our (method|approach|framework)|"
        r"by (\w+ing)|based on|via)\b",
        re.IGNORECASE,
    ),
    "result": re.compile(
        r"\b(show|shows|demonstrat\w*|outperform\w*|achiev\w*|improv\w*|"
        r"experiment\w*|results?|evaluat\w*|state[- ]of[- ]the[- ]art|"
        r"benchmarks?|empirical\w*)\b|\d",
        re.IGNORECASE,
    ),
    "reason": re.compile(
        r"\b(because|due to|since|thus|therefore|hence|as a result|which "
        r"(makes|allows|enables)|(we|they) (show|prove|find) that)\b",
        re.IGNORECASE,
    ),
    "definition": re.compile(
        r"\b(called|named|dubbed|termed|we (propose|introduce|present))\b", re.I
    ),
}
_FIRST_PERSON = re.compile(r"\b(we|our|this (paper|work))\b", re.IGNORECASE)


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
    term_weight: Callable[[str], float] = lambda term: 1.0,
    unknown_terms: list[str] | None = None,
    titled: set[str] | None = None,
) -> Draft:
    """Choose the sentences that answer ``question`` and cite them.

    ``named`` holds the papers whose author or title the question names;
    ``titled`` those named by title, which answer the question like any paper.
    """
    scored = _score_all(question, sources, sentences, query_vector, term_weight)
    if not scored:
        return Draft(NO_ANSWER, [], True)

    by_author = set(named) - set(titled or ())
    if any(source.id in by_author for source in sources):
        return _named_answer(sources, sentences, scored, by_author)

    reason = abstention_reason(question, scored, sources, min_relevance, unknown_terms)
    if reason:
        return Draft(f"{NO_ANSWER} {reason}", [], True)

    if question.kind == "list":
        return _list_answer(sources, scored)
    forced = next((i for i, s in enumerate(sources) if s.id in (titled or ())), None)
    return _single_answer(question, sources, scored, forced)


def abstention_reason(
    question: Question,
    scored: list[ScoredSentence],
    sources: list[Source],
    min_relevance: float,
    unknown_terms: list[str] | None = None,
) -> str | None:
    """Why the abstracts do not answer, or None when they do."""
    if unknown_terms:
        names = ", ".join(unknown_terms)
        return f"None of the abstracts mentions {names}."

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


def _score_all(
    question, sources, sentences, query_vector, term_weight
) -> list[ScoredSentence]:
    import numpy as np

    query_terms = {
        _prefix(term): term_weight(term) for term in keyword_tokens(question.text)
    }
    asks = asked_kinds(question.text)
    scored: list[ScoredSentence] = []
    for index, source in enumerate(sources):
        paper = sentences.get(source.id)
        if paper is None or not paper.texts:
            continue
        similarities = paper.vectors @ np.asarray(query_vector, dtype=np.float32)
        for position, (text, similarity) in enumerate(zip(paper.texts, similarities)):
            if is_instruction(text):
                continue  # "say the paper proves X" is no finding of the paper
            score = float(similarity) + KEYWORD_WEIGHT * _overlap(query_terms, text)
            if question.kind == "numeric" and _HAS_NUMBER.search(text):
                score += NUMBER_BONUS
            score += _kind_fit(asks, text, position)
            scored.append(
                ScoredSentence(index, position, text, score, float(similarity))
            )
    return sorted(scored, key=lambda sentence: -sentence.score)


def _kind_fit(asks: list[str], text: str, position: int) -> float:
    """Bonus when the sentence is of the kind the question asks for."""
    bonus = sum(CUE_BONUS for kind in asks if _ANSWERS[kind].search(text))
    if position == 0 and not _FIRST_PERSON.search(text):
        bonus -= BACKGROUND_PENALTY
    return bonus


def _overlap(query_terms: dict[str, float], text: str) -> float:
    """Share of the question's term weight that the sentence contains."""
    total = sum(query_terms.values())
    if not total:
        return 0.0
    present = {_prefix(term) for term in keyword_tokens(text)}
    matched = sum(w for term, w in query_terms.items() if term in present)
    return matched / total


def _prefix(stem: str) -> str:
    """Stems agreeing on their first letters match ("parallel", "paralleliz")."""
    return stem[:PREFIX_CHARS]


def _single_answer(question, sources, scored, paper: int | None = None) -> Draft:
    """The answering paper's best sentence, the best sentence of each kind the
    question asks for (method, result, reason), then other close ones."""
    if paper is None:
        paper = _answering_paper(scored)
    own = [s for s in scored if s.source_index == paper]
    chosen = [own[0]]
    for kind in asked_kinds(question.text):
        fitting = [s for s in own if s not in chosen and _ANSWERS[kind].search(s.text)]
        if fitting and len(chosen) < SENTENCES_PER_ANSWER:
            chosen.append(fitting[0])
    for sentence in own[1:]:
        close = sentence.score >= SECOND_SENTENCE_RATIO * own[0].score
        if close and sentence not in chosen and len(chosen) < SENTENCES_PER_ANSWER:
            chosen.append(sentence)
    chosen.sort(key=lambda sentence: sentence.position)

    source = sources[paper]
    body = " ".join(f"{sentence.text} [1]" for sentence in chosen)
    return Draft(f"{_heading(source)}: {body}", [source], False)


def asked_kinds(text: str) -> list[str]:
    """Which kinds of sentence (method, result, reason) the question asks for."""
    return [kind for kind, pattern in _ASKS.items() if pattern.search(text)]


def _answering_paper(scored: list[ScoredSentence]) -> int:
    """The paper to answer from: retrieval rank first, overruled only when a
    lower-ranked paper holds a clearly better sentence."""
    best_by_paper: dict[int, float] = {}
    for sentence in scored:
        best_by_paper.setdefault(sentence.source_index, sentence.score)
    return max(
        best_by_paper,
        key=lambda index: best_by_paper[index] - RANK_PENALTY * index,
    )


def _list_answer(sources, scored) -> Draft:
    """One entry per relevant paper: its title and its best sentences."""
    best_per_paper: dict[int, ScoredSentence] = {}
    for sentence in scored:
        best_per_paper.setdefault(sentence.source_index, sentence)

    def standing(sentence: ScoredSentence) -> float:
        return sentence.score - RANK_PENALTY * sentence.source_index

    top = max(standing(sentence) for sentence in best_per_paper.values())
    listed = [
        sentence
        for sentence in sorted(best_per_paper.values(), key=standing, reverse=True)
        if standing(sentence) >= LIST_RATIO * top
    ][:MAX_LISTED]
    per_paper = 2 if len(listed) <= 2 else 1
    return _lines(sources, [_best_of_paper(scored, s, per_paper) for s in listed])


def _best_of_paper(scored, best: ScoredSentence, count: int) -> list[ScoredSentence]:
    """A paper's best sentence and, when close to it, the next best."""
    own = [s for s in scored if s.source_index == best.source_index]
    chosen = [best] + [
        s for s in own[1:count] if s.score >= SECOND_SENTENCE_RATIO * best.score
    ]
    return sorted(chosen, key=lambda sentence: sentence.position)


def _named_answer(sources, sentences, scored, named) -> Draft:
    """Every paper of the named author or title: its most central sentence, and
    when few papers are named, also the sentence that best fits the question."""
    named_indexes = [i for i, source in enumerate(sources) if source.id in named]
    per_paper = 2 if len(named_indexes) <= 2 else 1
    groups = []
    for index in named_indexes:
        own = [s for s in scored if s.source_index == index]
        if not own:
            continue
        central = _most_central(own, sentences[sources[index].id])
        group = [central] + [s for s in own if s is not central][: per_paper - 1]
        groups.append(sorted(group, key=lambda sentence: sentence.position))
    return _lines(sources, groups)


def _most_central(own: list[ScoredSentence], paper: PaperSentences):
    """The sentence closest to the abstract's own centroid plus the question."""
    centroid = paper.vectors.mean(axis=0)
    closeness = paper.vectors @ centroid
    return max(own, key=lambda s: s.score + float(closeness[s.position]))


def _lines(sources: list[Source], groups: list[list[ScoredSentence]]) -> Draft:
    """A bulleted entry per paper, each sentence followed by its citation."""
    cited: list[Source] = []
    lines = []
    for group in groups:
        source = sources[group[0].source_index]
        cited.append(source)
        number = len(cited)
        body = " ".join(f"{sentence.text} [{number}]" for sentence in group)
        lines.append(f"- {_heading(source)}: {body}")
    return Draft("\n".join(lines), cited, False)


def _heading(source: Source) -> str:
    if source.title:
        return f"**{source.title}**"
    return f"**{source.author_line()}**"
