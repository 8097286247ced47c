"""Small typed results shared by the library: papers, sources and answers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Paper:
    """One abstract with what is known about its paper."""

    id: str
    abstract: str
    authors: list[str] = field(default_factory=list)
    title: str | None = None
    venue: str | None = None
    year: int | None = None
    url: str | None = None
    truncated: bool = False

    @property
    def first_author(self) -> str | None:
        return self.authors[0] if self.authors else None

    def embedding_text(self) -> str:
        """The text whose vector represents the paper: title, then abstract."""
        if self.title:
            return f"{self.title}\n\n{self.abstract}"
        return self.abstract


@dataclass
class Source:
    """A retrieved abstract, as cited by an answer."""

    id: str
    title: str | None
    authors: list[str]
    abstract: str
    score: float
    url: str | None = None
    venue: str | None = None
    year: int | None = None
    truncated: bool = False
    evidence: list[str] = field(default_factory=list)

    def label(self) -> str:
        """A short human label: the title, else the first author's paper."""
        if self.title:
            return self.title
        first = self.authors[0] if self.authors else "unknown author"
        return f"Paper by {first}"

    def author_line(self) -> str:
        if not self.authors:
            return "unknown authors"
        if len(self.authors) == 1:
            return self.authors[0]
        return f"{self.authors[0]} et al."


@dataclass
class Answer:
    """A short answer whose ``[n]`` markers refer to ``sources[n-1]``."""

    text: str
    sources: list[Source]
    abstained: bool
    model: str
    timings: dict[str, float] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)
    supported_share: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
