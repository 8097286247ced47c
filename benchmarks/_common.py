"""Helpers shared by the benchmark scripts: corpus, timing, machine and tables.

Timings on a shared machine drift, so every script measures the sides it compares
in the same process, interleaved round by round, and reports their ratios.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

from rag.types import Paper

ROOT = Path(__file__).resolve().parent.parent
SEED_FILE = ROOT / "seeds" / "iclr2021_orals_abstracts.txt"
DEV_QUESTIONS = Path("/work/shared/eval/dev.jsonl")


def seed_papers() -> list[Paper]:
    from rag.corpus import read_papers

    return read_papers(SEED_FILE).papers


def perturbed_papers(total: int) -> list[Paper]:
    """``total`` distinct papers made from the seeds: copy ``r`` of a seed has its
    sentences rotated by ``r`` and a marked title, so ids, hashes and vectors differ
    while lengths stay those of real abstracts."""
    from rag.text import split_sentences

    seeds = seed_papers()
    papers: list[Paper] = []
    for index in range(total):
        seed = seeds[index % len(seeds)]
        copy = index // len(seeds)
        if copy == 0:
            papers.append(seed)
            continue
        sentences = split_sentences(seed.abstract)
        turn = copy % len(sentences)
        abstract = " ".join(sentences[turn:] + sentences[:turn])
        title = f"{seed.title or 'Untitled'} (variant {copy})"
        papers.append(
            replace(seed, id=f"{seed.id}-v{copy}", abstract=abstract, title=title)
        )
    return papers


def write_jsonl(papers: Iterable[Paper], path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for paper in papers:
            record = {
                "id": paper.id,
                "title": paper.title,
                "authors": paper.authors,
                "abstract": paper.abstract,
                "venue": paper.venue,
                "year": paper.year,
                "url": paper.url,
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def dev_questions() -> list[str]:
    with open(DEV_QUESTIONS, encoding="utf-8") as handle:
        return [json.loads(line)["question"] for line in handle if line.strip()]


def timed(function: Callable[[], object]) -> float:
    """Seconds one call of ``function`` takes."""
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def percentile(values: Sequence[float], share: float) -> float:
    """The ``share`` quantile (0..1) by linear interpolation."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = share * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def rss_mib() -> float:
    """Resident memory of this process now, in MiB."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pid_rss_mib(pid: int) -> float:
    """Resident memory of another process, in MiB (nan when it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def machine() -> str:
    """One line naming the machine: cores, memory, CPU model, load, date."""
    cpu = "unknown CPU"
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = subprocess.run(
        ["free", "-h"], capture_output=True, text=True, check=False
    ).stdout.split("\n")[1].split()[1]
    load = os.getloadavg()[0]
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        f"{os.cpu_count()} cores, {memory} RAM, {cpu}, "
        f"Python {platform.python_version()}"
        f"; load average {load:.1f}; {stamp}"
    )


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table, columns padded for reading in a terminal."""
    cells = [[str(cell) for cell in header]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [_row(cells[0], widths), _row(["-" * w for w in widths], widths)]
    lines += [_row(row, widths) for row in cells[1:]]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
