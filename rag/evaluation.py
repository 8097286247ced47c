"""``rag eval``: score retrieval and answers on a question set.

The set is JSON Lines with ``id``, ``question``, ``type``, ``gold`` (papers as
"INDEX|First Author", INDEX counting papers from 0 in the order of the corpus file)
and ``must_include`` (key facts; alternatives split on " || "). Figures per type
and overall: recall@5 and MRR of retrieve(), key facts present, citation
precision, abstention on unanswerable questions and false abstention elsewhere.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import CorpusError
from rag.text import fold

UNANSWERABLE = "unanswerable"


@dataclass
class Outcome:
    """How one question went."""

    id: str
    type: str
    recall_at_5: float | None
    reciprocal_rank: float | None
    facts_present: bool | None
    cited_gold: int
    cited: int
    abstained: bool
    words: int
    seconds: float
    missing_facts: list[str] = field(default_factory=list)


def load_questions(path: str | Path) -> list[dict]:
    questions = []
    for number, line in enumerate(Path(path).read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            questions.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise CorpusError(f"invalid JSON: {exc.msg}", str(path), f"line {number}")
    return questions


def gold_ids(gold: list[str], corpus_order: list) -> list[str]:
    """Map "INDEX|First Author" to stored ids, checking the author matches."""
    ids = []
    for entry in gold:
        index_text, _, author = entry.partition("|")
        paper = corpus_order[int(index_text)]
        if paper.authors and fold(paper.authors[0]) != fold(author):
            raise CorpusError(
                f"gold paper {entry} does not match the corpus (paper {index_text} is "
                f"by {paper.authors[0]}); evaluate against the corpus the set "
                "was made for"
            )
        ids.append(paper.id)
    return ids


def has_fact(text: str, fact: str) -> bool:
    """Whole-word, case-insensitive; any of the " || " alternatives counts."""
    folded = fold(text)
    for alternative in fact.split(" || "):
        pattern = r"(?<!\w)" + re.escape(fold(alternative.strip())) + r"(?!\w)"
        if re.search(pattern, folded):
            return True
    return False


def evaluate_question(engine, item: dict, corpus_order: list, model=None) -> Outcome:
    gold = gold_ids(item.get("gold", []), corpus_order)
    ranked = [source.id for source in engine.retrieve(item["question"], k=5)]

    started = time.perf_counter()
    result = engine.answer(item["question"], model=model)
    seconds = time.perf_counter() - started

    facts = item.get("must_include", [])
    missing = [fact for fact in facts if not has_fact(result.text, fact)]
    cited = [source.id for source in result.sources]
    return Outcome(
        id=item["id"],
        type=item.get("type", "unknown"),
        recall_at_5=_recall(gold, ranked) if gold else None,
        reciprocal_rank=_reciprocal_rank(gold, ranked) if gold else None,
        facts_present=(not missing) if gold else None,
        cited_gold=sum(1 for paper_id in cited if paper_id in gold),
        cited=len(cited),
        abstained=result.abstained,
        words=len(result.text.split()),
        seconds=seconds,
        missing_facts=missing,
    )


def summarize(outcomes: list[Outcome]) -> dict[str, dict[str, float | None]]:
    """Figures per question type and overall."""
    groups: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        groups[outcome.type].append(outcome)
    table = {name: _figures(group) for name, group in sorted(groups.items())}
    table["overall"] = _figures(outcomes)
    return table


def _figures(group: list[Outcome]) -> dict[str, float | None]:
    answerable = [o for o in group if o.type != UNANSWERABLE]
    unanswerable = [o for o in group if o.type == UNANSWERABLE]
    cited = sum(o.cited for o in answerable)
    return {
        "questions": len(group),
        "recall@5": _mean([o.recall_at_5 for o in answerable]),
        "mrr": _mean([o.reciprocal_rank for o in answerable]),
        "facts": _mean([float(o.facts_present) for o in answerable]),
        "citation_precision": (
            sum(o.cited_gold for o in answerable) / cited if cited else None
        ),
        "abstention": _mean([float(o.abstained) for o in unanswerable]),
        "false_abstention": _mean([float(o.abstained) for o in answerable]),
        "median_words": statistics.median([o.words for o in group]) if group else None,
        "median_ms": (
            statistics.median([o.seconds * 1000 for o in group]) if group else None
        ),
    }


def format_table(table: dict[str, dict[str, float | None]]) -> str:
    columns = list(next(iter(table.values())).keys())
    header = "| type | " + " | ".join(columns) + " |"
    rule = "|" + "---|" * (len(columns) + 1)
    rows = [header, rule]
    for name, figures in table.items():
        cells = [_cell(figures[column]) for column in columns]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"


def _recall(gold: list[str], ranked: list[str]) -> float:
    return sum(1 for paper_id in gold if paper_id in ranked[:5]) / len(gold)


def _reciprocal_rank(gold: list[str], ranked: list[str]) -> float:
    for rank, paper_id in enumerate(ranked, start=1):
        if paper_id in gold:
            return 1.0 / rank
    return 0.0


def _mean(values: list) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None
