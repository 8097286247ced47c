"""Concurrent chat sessions against the served app, through gradio_client.

    .venv/bin/python benchmarks/load_chat.py [--sessions 1 8 32] [--cap 600]

Starts the app (`python -m ui.app`, extractive answerer) in a subprocess on a free
127.0.0.1 port over a store of the seed abstracts (ingested at start into a
temporary folder, or reused with --data-dir), then, for each N, runs N sessions at
once, each with its own gradio_client.Client calling /ask:

1. a question naming one paper by its title (a different paper per session);
2. a follow-up, "How does it work?", sent with the session's own history: it must
   cite the paper of the session's first question, never another session's;
3. a question naming a second paper by its title.

Before the runs, a calibration pass asks each seed paper's pair once, alone, and
keeps the papers whose follow-up resolves to them at all: some do not even
without load (docs/reliability.md), and a load test must not count those as
mixed histories. Every request and every N is bounded in time (--cap seconds);
the totals are 3 x (sum of N) requests. Prints, per N: requests, errors, mixed
follow-ups, throughput and latency percentiles, with the queue settings used.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from _common import ROOT, machine, percentile, seed_papers, table

# The clients are this script's; nothing here may phone home.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

HOST = "127.0.0.1"
MODEL = "extractive"
K = 5
FOLLOW_UP = "How does it work?"
START_SECONDS = 600.0


@dataclass
class Plan:
    """What one session asks, and which paper each answer must cite first."""

    first: str
    first_id: str
    third: str
    third_id: str

    @property
    def questions(self) -> list[str]:
        return [self.first, FOLLOW_UP, self.third]


@dataclass
class Outcome:
    """What one session saw."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    mixed: bool = False
    done: bool = False


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="load-chat-") as folder:
        data_dir = Path(args.data_dir or Path(folder) / "store")
        with serve(data_dir, args.concurrency, Path(folder) / "server.log") as url:
            plans = calibrate(url, max(args.sessions))
            rows = [run(url, plans, count, args.cap) for count in args.sessions]

    print(f"\n{machine()}")
    print(
        f"server: python -m ui.app in a subprocess at {HOST}; answerer {MODEL}, "
        f"k={K}, embedding backend {embedding_backend()}; Gradio queue "
        f"default_concurrency_limit={args.concurrency} ([ui] concurrency), "
        "max_size=None (unbounded)"
    )
    papers = len({plan.first_id for plan in plans})
    print(f"clients: one gradio_client.Client per session, threads of this process; "
          f"first questions on {papers} different papers\n")
    header = ["N", "requests", "errors", "mixed", "unfinished", "wall s", "req/s",
              "p50 s", "p95 s", "max s"]
    print(table(header, rows))
    failed = sum(row[2] + row[3] + row[4] for row in rows)
    return 1 if failed else 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--cap", type=float, default=600.0, help="seconds per N")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="[ui] concurrency of the server"
    )
    parser.add_argument("--data-dir", help="reuse this store (default: a new one)")
    return parser.parse_args()


def embedding_backend() -> str:
    """The backend the server's settings choose (config/default.toml)."""
    from rag.settings import load_settings

    environ = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    return load_settings(environ=environ).embedding.backend


# ---------------------------------------------------------------------------
# The server


@contextmanager
def serve(data_dir: Path, concurrency: int, log_path: Path) -> Iterator[str]:
    """The app in a subprocess on a free loopback port; stopped on exit."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_STORE__DATA_DIR=str(data_dir), RAG_UI__CONCURRENCY=str(concurrency))
    command = [sys.executable, "-m", "ui.app", "--host", HOST, "--port", str(port)]
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://{HOST}:{port}/"
    try:
        wait_until_up(url, server, log_path)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the app exited:\n{log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2.0):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise SystemExit(f"the app did not answer {url} within {START_SECONDS:.0f} s")


# ---------------------------------------------------------------------------
# Sessions


def client_for(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, analytics_enabled=False)


def ask(client, question: str, history: list, timeout: float) -> tuple[str, dict]:
    job = client.submit(question, history, MODEL, K, api_name="/ask")
    return job.result(timeout=max(timeout, 0.1))


def calibrate(url: str, wanted: int) -> list[Plan]:
    """One plan per seed paper whose title question and follow-up, asked alone,
    both cite it first; each plan's third question names the next such paper."""
    client = client_for(url)
    papers = seed_papers()
    kept = []
    for paper in papers:
        first = f'What does the paper "{paper.title}" propose?'
        text, answer = ask(client, first, [], 120.0)
        history = turns(first, text)
        _, follow = ask(client, FOLLOW_UP, history, 120.0)
        if top_id(answer) == paper.id == top_id(follow):
            kept.append((first, paper.id))

    print(f"calibration: {len(kept)} of {len(papers)} papers resolve their "
          "follow-up when asked alone", file=sys.stderr)
    plans = [
        Plan(first, paper_id, *kept[(index + 1) % len(kept)])
        for index, (first, paper_id) in enumerate(kept)
    ]
    return [plans[index % len(plans)] for index in range(wanted)]


def run(url: str, plans: list[Plan], count: int, cap: float) -> list:
    """N sessions at once; one table row of what they saw."""
    clients = [client_for(url) for _ in range(count)]
    deadline = time.monotonic() + cap
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [
            pool.submit(session, client, plan, deadline)
            for client, plan in zip(clients, plans)
        ]
        wait(futures, timeout=cap + 5.0)
    wall = time.perf_counter() - started

    outcomes = [future.result() for future in futures if future.done()]
    latencies = [value for outcome in outcomes for value in outcome.latencies]
    errors = sum(len(outcome.errors) for outcome in outcomes)
    mixed = sum(outcome.mixed for outcome in outcomes)
    unfinished = count - sum(outcome.done for outcome in outcomes)
    for outcome in outcomes:
        for error in outcome.errors[:1]:
            print(f"N={count}: {error}", file=sys.stderr)
    return [count, len(latencies), errors, mixed, unfinished, wall,
            len(latencies) / wall, percentile(latencies, 0.5),
            percentile(latencies, 0.95), max(latencies)]


def session(client, plan: Plan, deadline: float) -> Outcome:
    """Ask the plan's three questions in order, each with the history so far."""
    outcome = Outcome()
    history: list[dict] = []
    expected = [plan.first_id, plan.first_id, plan.third_id]
    for question, paper_id in zip(plan.questions, expected):
        started = time.perf_counter()
        try:
            text, answer = ask(client, question, history, deadline - time.monotonic())
        except Exception as exc:  # a timeout or a failed request, counted
            outcome.errors.append(f"{question!r}: {type(exc).__name__}: {exc}")
            return outcome
        outcome.latencies.append(time.perf_counter() - started)

        if answer.get("error"):
            outcome.errors.append(f"{question!r}: {answer['error']}")
        if top_id(answer) != paper_id:
            outcome.mixed = outcome.mixed or question == FOLLOW_UP
            if question != FOLLOW_UP:
                outcome.errors.append(f"{question!r} cited {top_id(answer)}")
        history += turns(question, text)
    outcome.done = True
    return outcome


def turns(question: str, text: str) -> list[dict]:
    return [
        {"role": "user", "content": question},
        {"role": "assistant", "content": text},
    ]


def top_id(answer: dict) -> str | None:
    sources = answer.get("sources") or []
    return sources[0]["id"] if sources else None


if __name__ == "__main__":
    sys.exit(main())
