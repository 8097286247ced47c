"""Citation checks for answers written by any model.

A model cites the prompt's numbered abstracts with markers such as ``[2]`` (also
``[1, 3]`` or ``[1-3]``). ``verify()`` then:

- renumbers the markers to the sources actually cited, in order of first
  citation, so ``[n]`` in ``Answer.text`` is ``Answer.sources[n-1]``; a marker to
  a number the prompt did not have is dropped;
- splits the answer into sentences and checks each one against the sentences of
  the abstracts it cites: it is supported when its embedding's cosine similarity
  to one of them reaches ``SUPPORT_THRESHOLD``; the abstract sentences that
  support it become the source's ``evidence``;
- counts a sentence as unsupported when it has no citation (except the "the
  abstracts do not answer" sentence, ``rag.prompts.NO_ANSWER``, and a short
  lead-in such as "Answer:"), or when it states a number that none of its cited
  abstracts contains: embeddings barely change when a figure does, so "50%
  better" would pass for "8% better".

Convention for unsupported sentences in ``Answer.text``: each is wrapped in
``UNSUPPORTED_OPEN`` and ``UNSUPPORTED_CLOSE`` ("⟦" and "⟧", U+27E6 and U+27E7),
for example ``⟦Transformers were invented in 1950 [1].⟧``. ``UNSUPPORTED`` matches
one such sentence (group 1 is the sentence) so a UI can style it; the same
sentences, without the marks, are listed in ``Answer.unsupported``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Sequence

from rag.prompts import NO_ANSWER
from rag.questions import is_instruction
from rag.text import fold, split_sentences, words

if TYPE_CHECKING:
    import numpy as np

    from rag.retrieval import PaperSentences
    from rag.types import Source

# Cosine similarity (all-MiniLM-L6-v2) from which an answer sentence counts as
# stated by an abstract sentence. Measured on the seeds: restatements of an
# abstract's sentence score 0.63-0.75; vague sentences on the same field
# ("the paper discusses large networks") 0.3-0.47; other topics below 0.35.
SUPPORT_THRESHOLD = 0.55
# Every sentence with a word in it is checked, however short ("P=NP [1]."), but
# an uncited lead-in of at most this many words ending in ":" ("Answer:") is not.
LEAD_IN_WORDS = 5

UNSUPPORTED_OPEN = "\u27e6"
UNSUPPORTED_CLOSE = "\u27e7"
UNSUPPORTED = re.compile(f"{UNSUPPORTED_OPEN}(.*?){UNSUPPORTED_CLOSE}", re.DOTALL)

# A marker with the blank before it, so a dropped marker leaves no stray space.
_MARKER = re.compile(r"(\s*)\[(\d{1,3}(?:\s*[,;\-\u2013]\s*\d{1,3})*)\]")
# The start of a marker still being streamed, or trailing blanks that may precede
# one: held back until the next piece shows what they are.
_OPEN_END = re.compile(r"\s*(\[[\d,;\-\u2013\s]{0,24})?$")
_LEADING_MARKERS = re.compile(r"(?:\s*\[[^\]\n]{1,20}\])+")
_BULLET = re.compile(r"\s*(?:[-*\u2022]|\d{1,2}[.)])\s+")
_NO_ANSWER_CORE = fold(NO_ANSWER).rstrip(".")
_FIGURE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")

Encoder = Callable[[list[str]], "np.ndarray"]


@dataclass
class Verified:
    """An answer after the checks: renumbered and marked text, cited sources."""

    text: str
    sources: list[Source]
    unsupported: list[str]
    supported_share: float | None
    abstained: bool


@dataclass
class _Claim:
    start: int
    end: int
    text: str
    cited: list[int]


class Renumbering:
    """Maps the prompt's source numbers to the answer's, in order of first use."""

    def __init__(self, count: int):
        self.count = count
        self.order: list[int] = []

    def rewrite(self, match: re.Match) -> str:
        """The replacement of one marker: renumbered, or nothing if invalid."""
        numbers = [self._number(n) for n in _numbers(match.group(2)) if self._valid(n)]
        numbers = list(dict.fromkeys(numbers))
        if not numbers:
            return ""
        return match.group(1) + "".join(f"[{number}]" for number in numbers)

    def _valid(self, number: int) -> bool:
        return 1 <= number <= self.count

    def _number(self, old: int) -> int:
        if old not in self.order:
            self.order.append(old)
        return self.order.index(old) + 1


def renumber(text: str, renumbering: Renumbering) -> str:
    return _MARKER.sub(renumbering.rewrite, text)


class StreamRenumberer:
    """Renumbers markers in streamed text exactly as ``verify()`` will.

    A piece that ends inside a possible marker ("... [1") is held back until the
    next piece completes it, so what streams matches the final numbering.
    """

    def __init__(self, count: int):
        self.renumbering = Renumbering(count)
        self._held = ""

    def feed(self, piece: str) -> str:
        text = self._held + piece
        cut = _OPEN_END.search(text).start()
        self._held = text[cut:]
        return renumber(text[:cut], self.renumbering)

    def flush(self) -> str:
        text, self._held = self._held, ""
        return renumber(text, self.renumbering)


def strip_citations(text: str) -> str:
    """``text`` without its ``[n]`` markers."""
    return _MARKER.sub("", text)


def verify(
    text: str,
    sources: Sequence[Source],
    sentences: dict[str, PaperSentences],
    encode: Encoder,
    threshold: float = SUPPORT_THRESHOLD,
) -> Verified:
    """Renumber, check and mark ``text``, whose ``[n]`` cite ``sources[n-1]``.

    ``sentences`` holds each source's abstract sentences and their vectors (from
    ingestion); ``encode`` embeds the answer's sentences into the same space with
    unit-length vectors, so a dot product is the cosine similarity.
    """
    renumbering = Renumbering(len(sources))
    text = renumber(text, renumbering)
    cited = [sources[old - 1] for old in renumbering.order]
    claims, abstains = _claims(text)

    if abstains and not claims:
        return Verified(text, [], [], None, True)
    if not claims:
        return Verified(text, cited, [], None, False)

    support = _support(claims, cited, sentences, encode, threshold)
    unsupported = [c for c, found in zip(claims, support, strict=True) if not found]
    evidence = _evidence(cited, support)
    return Verified(
        text=_mark(text, unsupported),
        sources=[replace(s, evidence=evidence[i]) for i, s in enumerate(cited)],
        unsupported=[claim.text for claim in unsupported],
        supported_share=round(1 - len(unsupported) / len(claims), 4),
        abstained=False,
    )


@dataclass
class _Support:
    """The abstract sentence that supports a claim best, and whose it is."""

    source_index: int
    sentence: str
    similarity: float


def _support(
    claims: list[_Claim],
    cited: list[Source],
    sentences: dict[str, PaperSentences],
    encode: Encoder,
    threshold: float,
) -> list[_Support | None]:
    """For each claim, its best support among the abstracts it cites, if any."""
    import numpy as np

    vectors = np.asarray(encode([strip_citations(c.text) for c in claims]))
    abstracts = [_abstract_sentences(source, sentences, encode) for source in cited]
    figures = [_figures(f"{source.title or ''} {source.abstract}") for source in cited]

    found = []
    for claim, vector in zip(claims, vectors, strict=True):
        stated = set().union(*(figures[number - 1] for number in claim.cited))
        if not _figures(strip_citations(claim.text)) <= stated:
            found.append(None)
        else:
            found.append(_best_support(claim, vector, abstracts, threshold))
    return found


def _best_support(
    claim: _Claim,
    vector: np.ndarray,
    abstracts: list[tuple[list[str], np.ndarray]],
    threshold: float,
) -> _Support | None:
    best = None
    for number in claim.cited:
        texts, matrix = abstracts[number - 1]
        if not texts:
            continue
        similarities = matrix @ vector
        position = int(similarities.argmax())
        similarity = float(similarities[position])
        if similarity >= threshold and (best is None or similarity > best.similarity):
            best = _Support(number - 1, texts[position], similarity)
    return best


def _abstract_sentences(source: Source, sentences, encode):
    """A source's sentences and vectors (from ingestion, else embedded now), less
    any instruction: "say the paper proves X" in an abstract does not state X."""
    import numpy as np

    paper = sentences.get(source.id)
    if paper is not None and paper.texts:
        texts, vectors = paper.texts, np.asarray(paper.vectors, dtype=np.float32)
    else:
        texts = split_sentences(source.abstract)
        vectors = np.asarray(encode(texts), dtype=np.float32) if texts else None
    keep = [index for index, text in enumerate(texts) if not is_instruction(text)]
    if not keep:
        return [], np.zeros((0, 1), dtype=np.float32)
    return [texts[index] for index in keep], vectors[keep]


def _evidence(cited: list[Source], support: list[_Support | None]) -> list[list[str]]:
    evidence: list[list[str]] = [[] for _ in cited]
    for found in support:
        if found is not None and found.sentence not in evidence[found.source_index]:
            evidence[found.source_index].append(found.sentence)
    return evidence


def _mark(text: str, unsupported: list[_Claim]) -> str:
    for claim in sorted(unsupported, key=lambda c: -c.start):
        text = (
            text[: claim.start]
            + UNSUPPORTED_OPEN
            + text[claim.start : claim.end]
            + UNSUPPORTED_CLOSE
            + text[claim.end :]
        )
    return text


# ---------------------------------------------------------------------------
# Sentences of an answer


def _claims(text: str) -> tuple[list[_Claim], bool]:
    """The sentences to check, and whether one of the others says NO_ANSWER."""
    claims = []
    abstains = False
    for start, end in sentence_spans(text):
        sentence = text[start:end]
        body = strip_citations(sentence)
        cited = [int(n) for n in re.findall(r"\[(\d+)\]", sentence)]
        if _NO_ANSWER_CORE in fold(body):
            abstains = True
        elif words(body) and not _is_lead_in(body, cited):
            claims.append(_Claim(start, end, sentence, list(dict.fromkeys(cited))))
    return claims, abstains


def _is_lead_in(body: str, cited: list[int]) -> bool:
    """A short uncited label before the answer proper ("Answer:", "In short:")."""
    return (
        not cited
        and body.rstrip().endswith(":")
        and len(words(body)) <= LEAD_IN_WORDS
    )


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text``, line by line.

    Markers written after the full stop ("... data. [2] Next ...") belong to the
    sentence before them; list bullets are left outside the span.
    """
    spans: list[tuple[int, int]] = []
    for line in re.finditer(r"[^\n]+", text):
        spans.extend(_line_spans(line.group(), line.start()))
    return spans


def _line_spans(line: str, offset: int) -> list[tuple[int, int]]:
    spans: list[list[int]] = []
    cursor = 0
    for piece in split_sentences(line):
        start = line.find(piece, cursor)
        end = start + len(piece)
        cursor = end

        leading = _LEADING_MARKERS.match(piece)
        if leading and spans:
            spans[-1][1] = start + leading.end()
            start += leading.end()
        bullet = _BULLET.match(line, start) if not spans else None
        if bullet:
            start = bullet.end()
        start += len(line[start:end]) - len(line[start:end].lstrip())
        if start < end:
            spans.append([start, end])
    return [(offset + start, offset + end) for start, end in spans]


def _figures(text: str) -> set[str]:
    """The numbers written in ``text``, as written: {"8", "0.5", "2021"}."""
    return set(_FIGURE.findall(text.replace(",", "")))


def _numbers(body: str) -> list[int]:
    """The numbers a marker's inside names: "1, 3" -> [1, 3]; "2-4" -> [2, 3, 4]."""
    numbers: list[int] = []
    for part in re.split(r"\s*[,;]\s*", body):
        bounds = [int(n) for n in re.findall(r"\d+", part)]
        if len(bounds) == 2 and bounds[0] <= bounds[1] <= bounds[0] + 10:
            numbers.extend(range(bounds[0], bounds[1] + 1))
        else:
            numbers.extend(bounds)
    return numbers
