"""SmolLM2 through our stack against llama.cpp alone, on one real prompt.

    .venv/bin/python benchmarks/bench_llm.py [--rounds 3] [--question TEXT]

Needs the seed index (`rag ingest`). Sides, interleaved round by round:

- ours: ``rag.stream_answer(question, model="smollm2")`` end to end: retrieval,
  prompt, llama.cpp through LangChain in a worker thread, streaming renumbering,
  then the citation check;
- llama.cpp: ``Llama.create_chat_completion(stream=True)`` on its own instance of
  the same GGUF, with the same messages (built by ``rag.generation.prompt_for``),
  n_ctx, threads, sampling and stop sequences; called from a worker thread as our
  stack does, and from the main thread. (In a process that has run the embedding
  model, llama.cpp has measured slower from the main thread than from a fresh
  thread; the ratios use the worker-thread figures, the like-for-like ones.)

Both sample greedily (temperature 0) so they write the same tokens, and both start
from an empty KV cache each round, so every time-to-first-token includes reading
the whole prompt. Time to first token is counted from the call; tokens per second
over the tokens after the first. Figures are medians over rounds.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from typing import Callable

from _common import machine, median, table

from rag.answering import Engine, stream_answer
from rag.generation import STOP_SEQUENCES, prompt_for
from rag.llamacpp_chat import as_llama_message
from rag.models import get_chat_model
from rag.settings import load_settings
from rag.types import Answer

QUESTION = (
    "How much better accuracy does MONGOOSE reach compared with earlier LSH approaches?"
)


def main() -> int:
    args = _parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = load_settings(overrides={"answer": {"temperature": 0.0}})
    engine = Engine(settings)
    if engine.store.count() == 0:
        print("the store is empty; run `rag ingest` first", file=sys.stderr)
        return 1

    ours = get_chat_model("smollm2", settings)
    direct = _direct_llama(ours)
    context, messages = prompt_for(engine, args.question)
    chat = [as_llama_message(message) for message in messages]

    print(machine())
    print(f"question: {args.question}")
    print(f"prompt: {len(context.sources)} abstract(s), "
          f"{sum(len(m['content']) for m in chat)} characters; n_ctx {ours.n_ctx}, "
          f"threads {direct.context_params.n_threads}, max_tokens {ours.max_tokens}")

    sides = {
        "ours": lambda: _run_ours(engine, ours, args.question),
        "llama.cpp": lambda: _in_thread(lambda: _run_direct(direct, ours, chat)),
        "llama.cpp, main thread": lambda: _run_direct(direct, ours, chat),
    }
    for side in sides.values():
        side()
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, side in sides.items():
            rounds[name].append(side())

    print()
    print(_report(rounds))
    return 0


def _direct_llama(ours):
    from llama_cpp import Llama

    return Llama(
        model_path=ours.model_path,
        n_ctx=ours.n_ctx,
        n_threads=ours.n_threads,
        verbose=False,
    )


def _run_ours(engine: Engine, ours, question: str) -> dict[str, float]:
    ours.load().llama.reset()
    started = time.perf_counter()
    first = last = None
    final = None
    for event in stream_answer(question, model="smollm2", engine=engine):
        now = time.perf_counter() - started
        if isinstance(event, Answer):
            final = event
        elif event.strip():
            first = now if first is None else first
            last = now
    total = time.perf_counter() - started
    tokens = final.timings.get("tokens", 0.0)
    return _figures(first, last, total, tokens, final.timings.get("retrieve", 0.0))


def _in_thread(function: Callable[[], dict[str, float]]) -> dict[str, float]:
    result: dict[str, float] = {}
    worker = threading.Thread(target=lambda: result.update(function()))
    worker.start()
    worker.join()
    return result


def _run_direct(direct, ours, chat: list[dict[str, str]]) -> dict[str, float]:
    direct.reset()
    started = time.perf_counter()
    first = last = None
    tokens = 0
    stream = direct.create_chat_completion(
        messages=chat,
        stream=True,
        temperature=0.0,
        max_tokens=ours.max_tokens,
        repeat_penalty=ours.repeat_penalty,
        stop=STOP_SEQUENCES,
    )
    for part in stream:
        if part["choices"][0]["delta"].get("content"):
            now = time.perf_counter() - started
            first = now if first is None else first
            last = now
            tokens += 1
    total = time.perf_counter() - started
    return _figures(first, last, total, float(tokens), 0.0)


def _figures(first, last, total, tokens, retrieve) -> dict[str, float]:
    first = total if first is None else first
    decoding = (last or first) - first
    rate = (tokens - 1) / decoding if tokens > 1 and decoding > 0 else float("nan")
    return {
        "first": first,
        "rate": rate,
        "total": total,
        "tokens": tokens,
        "retrieve": retrieve,
    }


def _report(rounds: dict[str, list[dict[str, float]]]) -> str:
    middle = {
        side: {key: median([r[key] for r in runs]) for key in runs[0]}
        for side, runs in rounds.items()
    }
    ours, raw = middle["ours"], middle["llama.cpp"]
    rows = [
        [side, f["first"], f["rate"], f["total"], int(f["tokens"])]
        for side, f in middle.items()
    ]
    rows.append([
        "ours / llama.cpp",
        ours["first"] / raw["first"],
        ours["rate"] / raw["rate"],
        ours["total"] / raw["total"],
        "",
    ])
    header = ["side", "first token (s)", "tokens/s", "total (s)", "tokens"]
    note = f"\nours includes retrieval: median {ours['retrieve']:.3f} s"
    return table(header, rows) + note


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--question", default=QUESTION)
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
