"""Reading a question: what it asks for, and what in it is not a question.

Instructions embedded in a question ("ignore previous instructions ...") are
dropped before retrieval and answering, so they cannot steer what is claimed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.stopwords import STOP_WORDS
from rag.text import split_sentences, words

MAX_QUESTION_CHARS = 2000

_INSTRUCTION_PATTERNS = [
    r"\bignore\b.*\b(instruction|prompt|rule|above|previous|prior|context)",
    r"\bdisregard\b",
    r"\bforget\b.*\b(instruction|everything|rule|above|previous|prior)",
    r"\b(reply|respond|answer|say|output|print|write)\b.*\bonly\b.*['\"“‘]",
    r"\b(reply|respond|answer|say|output|print)\s+(only\s+)?with\b",
    r"\byou are now\b",
    r"\b(system|developer) prompt\b",
    r"\bnew instructions?\b",
]
_INSTRUCTION = re.compile("|".join(_INSTRUCTION_PATTERNS), re.IGNORECASE)

_LIST_START = re.compile(
    r"^\s*(which|what)\s+(other\s+)?(papers|works|abstracts|methods|approaches|"
    r"studies|articles)\b|^\s*(list|name|find|show)\b|\bpapers\b.*\?\s*$",
    re.IGNORECASE,
)
_NUMERIC = re.compile(
    r"\bhow (many|much|large|big|fast|small|long|high|low|well)\b|"
    r"\bwhat (percentage|fraction|score|accuracy|error|speed-?up|ratio|number|"
    r"mean opinion score|word error rate|improvement|value)\b|"
    r"\bby how\b|\bhow does\b.*\bcompare\b.*\b(number|score)",
    re.IGNORECASE,
)
_NUMERIC_TARGET = re.compile(
    r"\b(?:how (?:many|much|large|big|high|low|fast)(?: an?| of)?|what)\s+"
    r"((?:[\w\-]+\s+){0,3}?[\w\-]+?)\s+(?:does|do|did|is|are|was|were|has|have|can)\b",
    re.IGNORECASE,
)


@dataclass
class Question:
    """A question as the answerer reads it."""

    original: str
    text: str
    instructions_removed: bool
    kind: str
    target_terms: list[str]


def read_question(question: str) -> Question:
    """Drop embedded instructions, then classify what the question asks for."""
    kept, removed = _without_instructions(question)
    text = " ".join(kept).strip() or question.strip()

    kind = "single"
    if _LIST_START.search(text):
        kind = "list"
    elif _NUMERIC.search(text):
        kind = "numeric"
    return Question(question, text, removed, kind, numeric_target(text))


def is_instruction(sentence: str) -> bool:
    """True if ``sentence`` tells its reader what to do ("ignore the rules ...")."""
    return bool(_INSTRUCTION.search(sentence))


def numeric_target(text: str) -> list[str]:
    """Content words of what a numeric question measures ("word error rate")."""
    match = _NUMERIC_TARGET.search(text)
    if not match:
        return []
    return [
        token
        for token in words(match.group(1))
        if token not in STOP_WORDS and token not in {"an", "of", "better", "kind"}
    ]


def _without_instructions(question: str) -> tuple[list[str], bool]:
    sentences = split_sentences(question.replace("\n", " ")) or [question]
    kept = [sentence for sentence in sentences if not _INSTRUCTION.search(sentence)]
    return kept, len(kept) < len(sentences)
