"""Hybrid retrieval: dense search in Chroma, BM25 keywords, and metadata, fused.

Four signals rank candidate papers: the question's similarity to the whole
abstract, to its best sentence, to its title (all dense, in Chroma), and BM25 over
title, authors and abstract. They are fused either by z-score (each signal's
scores standardised over its candidates, then summed: the default, which keeps
how much better the top hit is) or by reciprocal rank fusion (RRF, ranks only).
On top of that, a question that names an author or a title reaches every paper
of that author or title, whatever the embedding says: those papers go first.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from rag.text import fold, words
from rag.types import Paper, Source

if TYPE_CHECKING:
    import numpy as np

    from rag.settings import RetrievalSettings
    from rag.store import SentenceRows, Store

logger = logging.getLogger(__name__)

# Words that say a question leans on the previous turn ("what dataset did it use?").
_FOLLOW_UP_WORDS = {
    "it", "its", "they", "them", "their", "this", "that", "these", "those",
    "he", "she", "his", "her", "above", "same", "former", "latter",
}
_FOLLOW_UP_PHRASES = (
    "the paper", "that paper", "this paper", "the method", "the model"
)
# A token with two capitals or a capital and a digit names something: "LSTM",
# "ResNet", "GPT-3".
_NAME_LIKE = re.compile(r"\b(?=[\w\-]*[A-Z][\w\-]*[A-Z0-9])[A-Za-z][\w\-]*\b")
# Author surnames shorter than this are too ambiguous to match on their own.
_MIN_SURNAME_CHARS = 4


@dataclass
class PaperSentences:
    """The sentences of one abstract and their vectors (computed at ingest)."""

    texts: list[str]
    vectors: np.ndarray


@dataclass
class Retrieval:
    """Retrieved sources with the query vector the answerer reuses."""

    sources: list[Source]
    query_vector: np.ndarray
    query_text: str
    named_papers: set[str] = field(default_factory=set)
    unknown_terms: list[str] = field(default_factory=list)
    titled_papers: set[str] = field(default_factory=set)


class HybridIndex:
    """Keyword, author and title indexes over the store, kept in memory.

    Built lazily from the store and rebuilt when the store's size changes, so a
    running app sees papers that another process ingested.
    """

    def __init__(self, store: Store, embedder, settings: RetrievalSettings):
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self._lock = threading.Lock()
        self._built_for = -1
        self.papers: list[Paper] = []
        self.by_id: dict[str, Paper] = {}

    def search(
        self,
        question: str,
        k: int | None = None,
        history: Sequence[tuple[str, str]] | None = None,
    ) -> Retrieval:
        """The ``k`` best sources for ``question`` in the light of ``history``."""
        self.refresh()
        k = k or self.settings.k
        query_text = retrieval_query(question, history)
        vector = self.embedder.encode_one(query_text)

        dense = self.store.query(vector, self.settings.candidates)
        # Sentence-level search finds a paper by one specific passage that the
        # whole-abstract vector dilutes.
        by_sentence = self.store.query_sentences(vector, 4 * self.settings.candidates)
        by_title = self.store.query_titles(vector, self.settings.candidates)
        keyword = self._keyword_scores(query_text)
        signals = [dense, by_sentence, by_title, keyword]
        if self.settings.fusion == "rrf":
            rankings = [_ids(signal) for signal in signals]
            fused = reciprocal_rank_fusion(rankings, self.settings.rrf_k)
        else:
            fused = zscore_fusion(signals)

        named = self.named_papers(question)
        ranked = _named_first(fused, named)
        limit = max(k, len(named))
        similarity = dict(dense)
        sources = [self._source(pid, fused, similarity) for pid in ranked[:limit]]
        unknown = [] if named else self.unknown_terms(question)
        titled = set(self.titled_papers(question))
        return Retrieval(sources, vector, query_text, set(named), unknown, titled)

    def refresh(self) -> None:
        """Rebuild the in-memory indexes if the store changed size."""
        count = self.store.count()
        if count == self._built_for:
            return
        with self._lock:
            if count != self._built_for:
                self._build(count)

    def term_weight(self, term: str) -> float:
        """Inverse document frequency of a keyword token: rare terms weigh more."""
        frequency = self._document_frequency.get(term, 0)
        return math.log((len(self.papers) + 1) / (frequency + 0.5))

    def unknown_terms(self, question: str) -> list[str]:
        """Names and acronyms in the question ("LSTM", "GPT-3") that no stored
        abstract, title or author list contains."""
        unknown = []
        for token in _NAME_LIKE.findall(question):
            stems = keyword_tokens(token)
            if stems and all(stem not in self._document_frequency for stem in stems):
                unknown.append(token)
        return unknown

    def sentences_of(self, paper_ids: Sequence[str]) -> dict[str, PaperSentences]:
        known = self._sentences
        return {pid: known[pid] for pid in paper_ids if pid in known}

    def named_papers(self, question: str) -> list[str]:
        """Papers whose author or title the question names, in corpus order."""
        found = self.authored_papers(question) + self.titled_papers(question)
        return list(dict.fromkeys(found))

    def authored_papers(self, question: str) -> list[str]:
        """Papers of the authors the question names, by full name or surname."""
        folded = f" {' '.join(words(question))} "
        found: list[str] = []
        for name, paper_ids in self._authors.items():
            if f" {name} " in folded:
                found.extend(paper_ids)
        found.extend(self._surname_matches(question, folded))
        return list(dict.fromkeys(found))

    def titled_papers(self, question: str) -> list[str]:
        """Papers whose whole title the question quotes."""
        folded = f" {' '.join(words(question))} "
        return [pid for title, pid in self._titles.items() if f" {title} " in folded]

    def _build(self, count: int) -> None:
        papers = self.store.all_papers()
        self.papers = papers
        self.by_id = {paper.id: paper for paper in papers}
        self._build_keyword_index(papers)
        self._build_metadata_indexes(papers)
        self._sentences = _group_sentences(self.store.all_sentences())
        self._built_for = count
        logger.info("built keyword and metadata indexes over %d papers", count)

    def _build_keyword_index(self, papers: list[Paper]) -> None:
        import bm25s

        self._bm25 = bm25s.BM25()
        self._bm25_ids = [paper.id for paper in papers]
        tokenized = [keyword_tokens(_keyword_text(paper)) for paper in papers]
        if papers:
            self._bm25.index(tokenized, show_progress=False)

        self._document_frequency: Counter[str] = Counter()
        for tokens in tokenized:
            self._document_frequency.update(set(tokens))

    def _build_metadata_indexes(self, papers: list[Paper]) -> None:
        self._authors: dict[str, list[str]] = defaultdict(list)
        self._surnames: dict[str, list[str]] = defaultdict(list)
        self._titles: dict[str, str] = {}
        for paper in papers:
            for author in paper.authors:
                name = " ".join(words(author))
                self._authors[name].append(paper.id)
                surname = name.split()[-1] if name else ""
                if len(surname) >= _MIN_SURNAME_CHARS:
                    self._surnames[surname].append(paper.id)
            if paper.title and len(words(paper.title)) >= 2:
                self._titles[" ".join(words(paper.title))] = paper.id

    def _surname_matches(self, question: str, folded: str) -> list[str]:
        """A capitalised surname alone ("Levine's papers") names its author."""
        found = []
        for token in re.findall(r"\b[A-Z][\w\-]+", question):
            surname = fold(token)
            if surname.endswith("'s"):
                surname = surname[:-2]
            if surname in self._surnames and f" {surname} " in folded:
                found.extend(self._surnames[surname])
        return found

    def _keyword_scores(self, query_text: str) -> list[tuple[str, float]]:
        """The best BM25 matches as (id, score), best first."""
        tokens = keyword_tokens(query_text)
        if not tokens or not self._bm25_ids:
            return []
        scores = self._bm25.get_scores(tokens)
        return _top_scores(scores, self._bm25_ids, self.settings.candidates)

    def _source(self, paper_id: str, fused: dict[str, float], similarity) -> Source:
        paper = self.by_id.get(paper_id) or self.store.get_papers([paper_id])[0]
        return Source(
            id=paper.id,
            title=paper.title,
            authors=list(paper.authors),
            abstract=paper.abstract,
            score=round(float(similarity.get(paper_id, fused.get(paper_id, 0.0))), 4),
            url=paper.url,
            venue=paper.venue,
            year=paper.year,
            truncated=paper.truncated,
        )


def reciprocal_rank_fusion(rankings: list[list[str]], k: int = 60) -> dict[str, float]:
    """Merge rankings: each list adds 1 / (k + rank) to the items it ranks."""
    scores: dict[str, float] = defaultdict(float)
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] += 1.0 / (k + rank)
    return dict(sorted(scores.items(), key=lambda item: -item[1]))


def zscore_fusion(signals: list[list[tuple[str, float]]]) -> dict[str, float]:
    """Sum each signal's standardised scores; a paper a signal did not return
    gets that signal's lowest standardised score."""
    import numpy as np

    totals: dict[str, float] = defaultdict(float)
    candidates = {paper_id for signal in signals for paper_id, _ in signal}
    for signal in signals:
        if not signal:
            continue
        values = np.asarray([score for _, score in signal], dtype=np.float64)
        spread = values.std() or 1.0
        standardised = {pid: (score - values.mean()) / spread for pid, score in signal}
        floor = min(standardised.values())
        for paper_id in candidates:
            totals[paper_id] += standardised.get(paper_id, floor)
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def retrieval_query(question: str, history: Sequence[tuple[str, str]] | None) -> str:
    """The text to search with: a follow-up carries the previous question with it."""
    previous = _last_user_turn(history)
    if previous and is_follow_up(question):
        return f"{previous} {question}"
    return question


def is_follow_up(question: str) -> bool:
    folded = fold(question)
    tokens = set(words(question))
    if any(phrase in folded for phrase in _FOLLOW_UP_PHRASES):
        return True
    return bool(tokens & _FOLLOW_UP_WORDS)


_STEMMER = None


def keyword_tokens(text: str) -> list[str]:
    """Stemmed word tokens without English stop words, for BM25.

    A hyphenated word counts whole, joined and as its parts, so "pre-trained"
    meets "pretrained" and "trained".
    """
    global _STEMMER
    if _STEMMER is None:
        import Stemmer

        _STEMMER = Stemmer.Stemmer("english")
    from rag.stopwords import STOP_WORDS

    kept: list[str] = []
    for token in words(text):
        if "-" in token:
            parts = [part for part in token.split("-") if part]
            kept.extend([token.replace("-", ""), *parts])
        else:
            kept.append(token)
    return _STEMMER.stemWords([token for token in kept if token not in STOP_WORDS])


def _keyword_text(paper: Paper) -> str:
    return " ".join([paper.title or "", " ".join(paper.authors), paper.abstract])


def _last_user_turn(history: Sequence[Any] | None) -> str | None:
    for role, content in reversed(list(_pairs(history))):
        if role == "user" and content.strip():
            return content
    return None


def _pairs(history: Sequence[Any] | None):
    """Accept (role, content) pairs or the {"role", "content"} dicts Gradio holds."""
    for turn in history or []:
        if isinstance(turn, dict):
            yield str(turn.get("role", "")), str(turn.get("content") or "")
        elif isinstance(turn, (list, tuple)) and len(turn) == 2:
            yield str(turn[0]), str(turn[1] or "")


def _ids(ranking: list[tuple[str, float]]) -> list[str]:
    return [paper_id for paper_id, _ in ranking]


def _named_first(fused: dict[str, float], named: list[str]) -> list[str]:
    rest = [paper_id for paper_id in fused if paper_id not in set(named)]
    return list(named) + rest


def _top_scores(scores, ids: list[str], n: int) -> list[tuple[str, float]]:
    import numpy as np

    n = min(n, len(ids))
    top = np.argpartition(-scores, n - 1)[:n]
    top = top[np.argsort(-scores[top])]
    return [(ids[i], float(scores[i])) for i in top if scores[i] > 0]


def _group_sentences(rows: SentenceRows) -> dict[str, PaperSentences]:
    import numpy as np

    positions: dict[str, list[int]] = defaultdict(list)
    for index, owner in enumerate(rows.paper_ids):
        positions[owner].append(index)
    return {
        owner: PaperSentences(
            texts=[rows.texts[i] for i in indexes],
            vectors=rows.vectors[np.asarray(indexes)],
        )
        for owner, indexes in positions.items()
    }
