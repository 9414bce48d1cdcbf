"""Helpers the benchmark scripts share: timing, ratios, process figures, tables and the run's stamp."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(message: str) -> None:
    """Progress on stderr (stdout is the markdown)."""
    print("[%s] %s" % (time.strftime("%H:%M:%S"), message), file=sys.stderr, flush=True)


def load() -> str:
    """The load average (1/5/15 min) as /proc/loadavg has it."""
    return "%.2f %.2f %.2f" % os.getloadavg()


def timed(fn: Callable[[], Any]) -> float:
    """Wall seconds of ``fn()`` with the garbage collector off (as ``timeit`` does)."""
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started
    finally:
        gc.enable()


def median(values: Iterable[float]) -> float:
    return statistics.median(values)


def paired(values: list[float], base: list[float]) -> float:
    """Median of the per-round ratios: each round measured both back to back, so drift cancels."""
    return statistics.median(v / b for v, b in zip(values, base, strict=True) if b > 0)


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def rss_kib(pid: int | str = "self") -> int:
    """Resident set size of a process, KiB."""
    with open("/proc/%s/status" % pid) as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all threads (10 ms ticks)."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def commit() -> str:
    """The checkout's commit, ``+dirty`` when the package measured differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True, check=True).stdout.strip()

    try:
        dirty = git("status", "--porcelain", "--", "otel_gitjob")
        return git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def stamp() -> str:
    """The run's date, commit and versions, as a markdown line."""
    from importlib.metadata import version

    return "**Run:** %s · commit %s · Python %s · opentelemetry-sdk %s · prometheus_client %s · %s, %d cores" % (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        commit(),
        platform.python_version(),
        version("opentelemetry-sdk"),
        version("prometheus_client"),
        platform.machine(),
        os.cpu_count() or 0,
    )


def goals_summary(goals: list[tuple[str, bool]]) -> str:
    """The ``**Goals:** n/m met`` line and one bullet per goal."""
    lines = ["**Goals:** %d/%d met" % (sum(ok for _, ok in goals), len(goals))]
    lines += ["* %s: %s" % (name, "met" if ok else "NOT met") for name, ok in goals]
    return "\n".join(lines) + "\n"
