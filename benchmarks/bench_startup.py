"""Cold start of `rag ask` against the floor of importing torch and
sentence-transformers.

    .venv/bin/python benchmarks/bench_startup.py [--runs 7] [--data-dir DIR]

Each run starts a new process; the sides alternate run by run, so drift on a
shared machine hits both alike. Also shown: where the time of one `rag ask` goes
(phases measured inside one cold process), and which heavy or optional modules
its import graph holds (from ``python -X importtime``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from _common import ROOT, machine, median, table, timed

PYTHON = ROOT / ".venv" / "bin" / "python"
RAG = ROOT / ".venv" / "bin" / "rag"
QUESTION = "What is SMiRL?"
GOAL_RATIO = 1.5
FLOOR = "import torch, sentence_transformers"
# Modules `rag ask` with the extractive answerer has no use for.
UNWANTED = (
    "gradio",
    "langchain",
    "langchain_core",
    "langchain_chroma",
    "langchain_openai",
    "langchain_ollama",
    "langchain_anthropic",
    "langchain_huggingface",
    "llama_cpp",
    "openai",
    "anthropic",
    "onnx",
    "optimum",
    "ui",
)
# Reported with their own cumulative import time.
HEAVY = ("torch", "transformers", "sentence_transformers", "sklearn", "chromadb",
         "bm25s", "pydantic", "numpy", "scipy", "pandas", "rag")

PHASES = r"""
import json, sys, time
started = time.perf_counter()
marks = {}
from rag.cli import main
marks["import rag.cli"] = time.perf_counter()
import sentence_transformers, chromadb
marks["import sentence_transformers, chromadb"] = time.perf_counter()
from rag.answering import Engine
from rag.settings import load_settings
engine = Engine(load_settings())
marks["Engine(): load model, open store"] = time.perf_counter()
engine.index.refresh()
marks["build keyword and sentence indexes"] = time.perf_counter()
engine.answer(sys.argv[1])
marks["answer the question"] = time.perf_counter()
last, out = started, {}
for name, at in marks.items():
    out[name], last = at - last, at
print(json.dumps(out))
"""


def main() -> int:
    args = _parse_args()
    env = _environment(args.data_dir)
    _check_ask_works(env)

    ask, floor = [], []
    for _ in range(args.runs):
        ask.append(timed(lambda: _run([str(RAG), "ask", QUESTION], env)))
        floor.append(
            timed(lambda: _run([str(PYTHON), "-c", FLOOR], env))
        )
    phases = _phases(env)
    imported = _imported_modules(env)

    print(f"machine: {machine()}")
    print(f"{args.runs} cold runs per side, alternating; medians\n")
    print(_summary(ask, floor))
    print()
    print(table(["phase of one cold `rag ask`", "seconds"],
                [[name, f"{value:.2f}"] for name, value in phases.items()]))
    print()
    print(_imports_report(imported))
    return 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="cold runs per side")
    parser.add_argument(
        "--data-dir", default=str(ROOT / ".rag-data"), help="a built index"
    )
    return parser.parse_args()


def _environment(data_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env["RAG_STORE__DATA_DIR"] = data_dir
    return env


def _run(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout


def _check_ask_works(env: dict[str, str]) -> None:
    output = _run([str(RAG), "ask", QUESTION], env)
    if "SMiRL" not in output:
        raise SystemExit(f"`rag ask` did not answer from the index:\n{output}")


def _phases(env: dict[str, str]) -> dict[str, float]:
    return json.loads(_run([str(PYTHON), "-c", PHASES, QUESTION], env))


def _imported_modules(env: dict[str, str]) -> dict[str, float]:
    """Cumulative import seconds of every module `rag ask` imports."""
    code = (
        "import sys; from rag.cli import main; "
        f"sys.exit(main(['ask', {QUESTION!r}]))"
    )
    done = subprocess.run(
        [str(PYTHON), "-X", "importtime", "-c", code],
        env=env, cwd=ROOT, capture_output=True, text=True, check=True,
    )
    modules: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if cumulative.strip().isdigit():
            modules[name.strip()] = int(cumulative) / 1e6
    return modules


def _summary(ask: list[float], floor: list[float]) -> str:
    ratios = [a / f for a, f in zip(ask, floor)]
    ratio = median(ask) / median(floor)
    verdict = "met" if ratio <= GOAL_RATIO else f"missed ({ratio:.2f}x)"
    rows = [
        [f"rag ask {QUESTION!r}", f"{median(ask):.2f}", f"{min(ask):.2f}"],
        ["python -c 'import torch, sentence_transformers'", f"{median(floor):.2f}",
         f"{min(floor):.2f}"],
    ]
    return (
        table(["command", "median s", "min s"], rows)
        + f"\n\nratio of medians {ratio:.2f}; per-pair ratios "
        + ", ".join(f"{r:.2f}" for r in ratios)
        + f"\ngoal <= {GOAL_RATIO}x the floor: {verdict}"
    )


def _imports_report(modules: dict[str, float]) -> str:
    unwanted = [name for name in UNWANTED if name in modules]
    heavy = [[name, f"{modules[name]:.2f}"] for name in HEAVY if name in modules]
    return (
        table(["module (cumulative import, one run)", "seconds"], heavy)
        + "\n\nunwanted modules imported by `rag ask`: "
        + (", ".join(unwanted) if unwanted else "none")
    )


if __name__ == "__main__":
    sys.exit(main())
