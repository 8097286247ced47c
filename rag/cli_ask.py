"""The ``ask``, ``eval`` and ``models`` commands (imported only when they run)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from rag.cli import EXIT_OK, settings_from
from rag.types import Answer


def run_ask(args: argparse.Namespace) -> int:
    from rag.answering import Engine

    overrides = {"answer": {"model": args.model}} if args.model else {}
    engine = Engine(settings_from(args, **overrides))
    if args.json:
        print(json.dumps(asdict(engine.answer(args.question, k=args.k)), indent=2,
                         ensure_ascii=False))
        return EXIT_OK

    final = None
    for event in engine.stream(args.question, k=args.k):
        if isinstance(event, Answer):
            final = event
        else:
            print(event, end="", flush=True)
    print()
    _print_unsupported(final)
    _print_sources(final)
    return EXIT_OK


def _print_unsupported(answer: Answer) -> None:
    """Generated sentences no cited abstract supports, so a reader discounts them."""
    if answer.unsupported:
        print("\nNot supported by the cited abstracts:")
        for sentence in answer.unsupported:
            print(f"  ! {sentence}")


def _print_sources(answer: Answer) -> None:
    if not answer.sources:
        return
    print("\nSources:")
    for number, source in enumerate(answer.sources, start=1):
        details = ", ".join(
            part for part in (source.venue, source.url) if part
        )
        print(f"[{number}] {source.label()} — {source.author_line()}"
              + (f" ({details})" if details else ""))


def run_eval(args: argparse.Namespace) -> int:
    from rag.answering import Engine
    from rag.corpus import read_papers
    from rag.evaluation import (
        evaluate_question,
        format_table,
        load_questions,
        summarize,
    )
    from rag.settings import SEEDS_DIR

    engine = Engine(settings_from(args))
    corpus = read_papers(SEEDS_DIR / "iclr2021_orals_abstracts.txt").papers
    outcomes = [
        evaluate_question(engine, item, corpus, args.model)
        for item in load_questions(args.file)
    ]
    table = summarize(outcomes)
    if args.json:
        print(json.dumps({"summary": table, "questions": [asdict(o) for o in outcomes]},
                         indent=2))
    else:
        print(format_table(table))
        _print_misses(outcomes)
    return EXIT_OK


def _print_misses(outcomes) -> None:
    for outcome in outcomes:
        problems = []
        if outcome.recall_at_5 is not None and outcome.recall_at_5 < 1:
            problems.append(f"recall@5={outcome.recall_at_5:.2f}")
        if outcome.missing_facts:
            problems.append(f"missing {outcome.missing_facts}")
        if outcome.cited_gold < outcome.cited:
            problems.append(f"cited {outcome.cited - outcome.cited_gold} non-gold")
        wrong_abstain = outcome.abstained != (outcome.type == "unanswerable")
        if wrong_abstain:
            problems.append("abstained" if outcome.abstained else "did not abstain")
        if problems:
            print(f"  {outcome.id} ({outcome.type}): " + "; ".join(problems),
                  file=sys.stderr)


def run_models(args: argparse.Namespace) -> int:
    from rag.models import describe_models

    for line in describe_models(settings_from(args)):
        print(line)
    return EXIT_OK
