"""Memory of the ``otel-gitjob watch`` sidecar at 1k/10k/30k GitRepos, against a real kube-apiserver.

What the Helm chart's memory formula (``docs/fleet.md``, sizing) is derived from. The script starts
its own etcd and kube-apiserver on 127.0.0.1 (``tests/kube/real_apiserver.py``; the binaries
``scripts/kube-apiserver`` builds) and, for each size, creates GitRepos up to that count through the
API (``bench_watch_real_server.populate``: the realistic shape of ``bench_listener.py``, status through
its subresource), then starts a **fresh** ``python -m otel_gitjob watch`` process (the chart's
command, default kinds ``gitrepos,helmops``) with the admin kubeconfig, waits until its
``otel_gitjob_objects{kind="GitRepo"}`` self-metric counts every repo, scrapes ``/metrics`` three
times as Prometheus 3 asks (OpenMetrics, gzip), and reads the process's ``VmRSS`` (resident now)
and ``VmHWM`` (the peak: what a memory limit must hold) from ``/proc/<pid>/status``, and its CPU
seconds per scrape (``/proc/<pid>/stat`` around the three). A size of 0
(no GitRepos) gives the base. Each sidecar gets ``OTEL_GITJOB_CARDINALITY_LIMIT`` as the chart sets it
(1.25 × the objects, at least 10,000): with the default 10,000 a 30,000-repo sidecar serves 10,000.
Each sidecar is SIGTERMed by PID before the next size; etcd and
kube-apiserver are killed by PID in a ``finally``.

Run (from the repository root; about 9 minutes for 0 and 30,000 on 2 shared cores at load 13, most of it
creating the repos)::

    nice -n 10 .venv/bin/python bench/bench_sidecar_memory.py [--sizes 0,1000,10000,30000] [--json PATH]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests" / "kube")]

from bench_watch_real_server import populate  # noqa: E402
from real_apiserver import KubeApiServer, find_binaries  # noqa: E402

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
CLK_TCK = os.sysconf("SC_CLK_TCK")
OBJECTS = re.compile(rb'^otel_gitjob_objects\{kind="GitRepo"\} ([0-9.e+]+)', re.MULTILINE)


def log(message: str) -> None:
    print("[%s] %s" % (time.strftime("%H:%M:%S"), message), file=sys.stderr, flush=True)


def proc_status(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of ``pid`` in KiB."""
    found = {}
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(line.split()[1])
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid``, all threads."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def scrape(url: str) -> tuple[bytes, float]:
    """One GET as Prometheus 3 sends it; the decompressed body and the wall seconds."""
    request = urllib.request.Request(url, headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        body = response.read()
        if response.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
    return body, time.perf_counter() - started


def measure(kubeconfig: str, repos: int) -> dict[str, Any]:
    """Start a fresh sidecar, wait until it tracks ``repos`` GitRepos, scrape three times, read its memory."""
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_gitjob", "watch", "--kubeconfig", kubeconfig],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=dict(
            os.environ,
            OTEL_EXPORTER_PROMETHEUS_PORT="0",
            PYTHONUNBUFFERED="1",
            # What the chart sets: room for every object in each instrument (the default is 10,000).
            OTEL_GITJOB_CARDINALITY_LIMIT=str(max(10_000, math.ceil(repos * 1.25))),
        ),
    )
    try:
        assert process.stdout is not None
        url = None
        while url is None:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError("the sidecar exited with %s" % process.wait())
            match = re.search(r"http://[\d.]+:\d+/metrics", line)
            url = match.group(0) if match else None
        started = time.perf_counter()
        while True:
            body, _ = scrape(url)
            counted = OBJECTS.search(body)
            if (int(float(counted.group(1))) if counted else 0) == repos:
                break
            if time.perf_counter() - started > 900:
                raise RuntimeError("the sidecar never tracked %d repos" % repos)
            time.sleep(1)
        synced = time.perf_counter() - started
        walls = []
        cpu_before = cpu_seconds(process.pid)
        for _ in range(3):
            body, wall = scrape(url)
            walls.append(wall)
        cpu = (cpu_seconds(process.pid) - cpu_before) / 3
        memory = proc_status(process.pid)
        return {
            "repos": repos,
            "rss_kib": memory["VmRSS"],
            "hwm_kib": memory["VmHWM"],
            "synced_s": synced,
            "scrape_s": sorted(walls)[1],
            "scrape_cpu_s": cpu,
            "body_bytes": len(body),
        }
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0,1000,10000,30000", help="GitRepo counts, ascending")
    parser.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))

    server = KubeApiServer(*find_binaries())
    rows = []
    try:
        server.start()
        created = 0
        for size in sizes:
            if size > created:
                seconds = populate(server, list(range(created, size)))
                log("created GitRepos %d..%d in %.0f s" % (created, size - 1, seconds))
                created = size
            row = measure(server.kubeconfig, size)
            log("measured: %s" % row)
            rows.append(row)
    finally:
        server.stop()

    base = rows[0] if rows and rows[0]["repos"] == 0 else None
    print(
        "| GitRepos | RSS after 3 scrapes | peak RSS (VmHWM) | peak per repo above the base | synced "
        "| scrape wall (median of 3) | sidecar CPU per scrape |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        per_repo = "%.1f KiB" % ((row["hwm_kib"] - base["hwm_kib"]) / row["repos"]) if base and row["repos"] else "–"
        print(
            "| %s | %.0f MiB | %.0f MiB | %s | %.1f s | %.2f s | %.2f s |"
            % (
                format(row["repos"], ","),
                row["rss_kib"] / 1024,
                row["hwm_kib"] / 1024,
                per_repo,
                row["synced_s"],
                row["scrape_s"],
                row["scrape_cpu_s"],
            )
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
