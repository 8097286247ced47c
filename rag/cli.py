"""The ``rag`` command: ingest, stats, ask, eval, serve, models.

Exit codes: 0 success; 1 the command failed (store unreachable, model error, ...);
2 bad usage or settings; 3 ingestion finished but skipped invalid entries.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Callable

from rag.errors import ConfigError, RagError

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SKIPPED = 3


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)

    try:
        return args.handler(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted; what was stored is kept, rerun to finish", file=sys.stderr)
        return 130


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag", description="Cited question answering over paper abstracts."
    )
    parser.add_argument("--config", help="a TOML settings file (see config/)")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="add abstracts to the store")
    ingest.add_argument("paths", nargs="*", help="files or folders (default: seeds/)")
    ingest.add_argument("--metadata", help="a metadata TSV to join by first author")
    ingest.add_argument(
        "--rebuild", action="store_true", help="delete the store first (model change)"
    )
    ingest.set_defaults(handler=_run_ingest)

    stats = commands.add_parser("stats", help="papers, model and store location")
    stats.set_defaults(handler=_run_stats)

    _add_later_commands(commands)
    return parser


def _add_later_commands(commands) -> None:
    ask = commands.add_parser("ask", help="answer a question with citations")
    ask.add_argument("question")
    ask.add_argument(
        "--model", help="model spec, e.g. extractive, smollm2, openai:NAME"
    )
    ask.add_argument("-k", type=int, help="abstracts to use")
    ask.add_argument("--json", action="store_true", help="print the Answer as JSON")
    ask.set_defaults(handler=_lazy("rag.cli_ask", "run_ask"))

    evaluate = commands.add_parser("eval", help="score a question set (JSON Lines)")
    evaluate.add_argument("file")
    evaluate.add_argument("--model", help="model spec to evaluate")
    evaluate.add_argument("--json", action="store_true", help="print figures as JSON")
    evaluate.set_defaults(handler=_lazy("rag.cli_ask", "run_eval"))

    serve = commands.add_parser("serve", help="start the chat app in a browser")
    serve.add_argument("--host", help="interface (default from [ui] host)")
    serve.add_argument("--port", type=int, help="port (default from [ui] port)")
    serve.add_argument("--share", action="store_true", help="public Gradio link")
    serve.set_defaults(handler=_lazy("ui.app", "run_serve"))

    models = commands.add_parser("models", help="list model specs and availability")
    models.set_defaults(handler=_lazy("rag.cli_ask", "run_models"))


def _lazy(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    """Import a command's module only when it runs: start-up stays fast."""

    def handler(args: argparse.Namespace) -> int:
        import importlib

        return getattr(importlib.import_module(module), function)(args)

    return handler


def settings_from(args: argparse.Namespace, **overrides):
    from rag.settings import load_settings

    return load_settings(args.config, overrides=overrides or None)


def _run_ingest(args: argparse.Namespace) -> int:
    from rag.ingest import ingest

    overrides = {"corpus": {"metadata": args.metadata}} if args.metadata else {}
    settings = settings_from(args, **overrides)
    report = ingest(args.paths or None, settings=settings, rebuild=args.rebuild)

    for problem in report.skipped:
        print(f"skipped: {problem}", file=sys.stderr)
    print(report.summary())
    return EXIT_SKIPPED if report.skipped else EXIT_OK


def _run_stats(args: argparse.Namespace) -> int:
    from rag.embeddings import model_identity
    from rag.store import open_store

    settings = settings_from(args)
    identity = model_identity(settings.embedding.model, settings.embedding.backend)
    store = open_store(settings.store, identity)
    papers = store.all_papers()
    titled = sum(1 for paper in papers if paper.title)

    figures = {
        "papers": len(papers),
        "with_title": titled,
        "truncated": sum(1 for paper in papers if paper.truncated),
        "embedding_model": identity,
        "store": store.location,
        "collection": settings.store.collection,
    }
    for key, value in figures.items():
        print(f"{key:16} {value}")
    return EXIT_OK


def _configure_logging(verbosity: int) -> None:
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    # The level goes on the handler too: bm25s sets its own logger to DEBUG, which
    # the root logger's level alone does not hold back.
    handler = logging.StreamHandler()
    handler.setLevel(level)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", handlers=[handler]
    )


def print_json(data) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(main())
