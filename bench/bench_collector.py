"""Benchmark: deletions and markers through the real OpenTelemetry Collector (collector/*.yaml as shipped).

Usage::

    python bench/bench_collector.py [--deletions 20] [--live 1000] [--rounds 7] [--quick]

Needs the Collector (``$OTELCOL_BIN``, else ``scripts/otelcol`` builds it) and
Debian's ``prometheus``. Measures, printing markdown tables:

1. **forget → absent** for each of ``--deletions`` repos, one at a time: the
   time from ``lifecycle.forget(repo)`` (followed by one export) until the
   repo's series are gone from the Collector's ``/metrics`` and from an
   instant query in Prometheus (scraping every second), for the
   ``prometheus`` pipeline; and until Prometheus stops returning them for the
   ``prometheusremotewrite`` pipeline. Baseline, same run: a bare SDK provider
   (delta, so the repo stops being exported at all) with ``metric_expiration``
   at 15 s: the time until the Collector drops it.
2. **export cost of markers**: an export of ``--live`` repos (7 series each)
   through the Collector, alone and carrying the markers of 10 % and 100 % of
   them, interleaved per round; median wall time of ``force_flush`` and the
   ratio against the plain export of the same round.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make the checkout and the test helpers importable
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "collector"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from collector_helpers import (  # noqa: E402
    PROMETHEUS_CONFIG,
    REMOTE_WRITE_CONFIG,
    Collector,
    bare_pipeline,
    lifecycle_pipeline,
    otelcol_binary,
    record_everything,
)
from prometheus_server import PrometheusServer  # noqa: E402

BASELINE_EXPIRATION = 15.0
COUNTER = "fleet_gitjobs_created_success_total"
ACCEPTED = "otelcol_receiver_accepted_metric_points_total"  # the Collector's own count of received points


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def poll(condition: Callable[[], bool], timeout: float, interval: float) -> float:
    """Seconds until ``condition()`` holds (``inf`` when it did not within ``timeout``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(interval)
    return float("inf")


def stats(values: list[float]) -> list[str]:
    finite = [v for v in values if v != float("inf")]
    missing = len(values) - len(finite)
    median = statistics.median(values)
    return [
        "%.2f" % median if median != float("inf") else "never",
        "%.2f" % max(finite) if finite else "–",
        "%d/%d" % (len(finite), len(values)) + (" (%d timed out)" % missing if missing else ""),
    ]


# -- 1. forget -> absent --------------------------------------------------------------------------------------


def repo_query(name: str, namespace_label: str, metric: str = "") -> str:
    return '%s{%s="fleet-local", name="%s"}' % (metric, namespace_label, name)


def bench_latency_scrape(binary: str, deletions: int) -> list[list[str]]:
    log("forget -> absent, prometheus exporter: %d deletions" % deletions)
    collector = Collector(binary, PROMETHEUS_CONFIG, OTELCOL_METRIC_EXPIRATION="%ds" % BASELINE_EXPIRATION)
    prometheus = PrometheusServer(["127.0.0.1:%d" % collector.prometheus_port])
    ours = lifecycle_pipeline(collector.otlp_http, "lifecycle")
    bare = bare_pipeline(collector.otlp_http, "bare", temporality="delta")
    try:
        names = ["repo-%d" % i for i in range(deletions)]
        for name in names + ["keeper"]:
            record_everything(ours.gitjob, ("fleet-local", name))
        ours.flush()
        prometheus.wait_scraping()
        for name in names:
            prometheus.wait_for(repo_query(name, "exported_namespace"), lambda r: len(r) > 0)
        on_collector, in_prometheus = [], []
        rng = random.Random(1)
        for name in names:
            # A random phase against the batch timer and the scrape interval (both 1 s): deletions made
            # right after the previous one was seen gone would all land at the same point of both cycles.
            time.sleep(rng.uniform(0, 1))
            started = time.monotonic()
            ours.lifecycle.forget(("fleet-local", name))
            ours.flush()
            on_collector.append(poll(lambda n=name: not collector.series_of(n), 30, 0.01))
            query = repo_query(name, "exported_namespace")
            poll(lambda q=query: not prometheus.query(q), 30, 0.05)
            in_prometheus.append(time.monotonic() - started)
        assert collector.series_of("keeper"), "a repo nobody deleted must stay"

        # Baseline: the bare SDK has no delete; with delta temporality the repo at least stops being
        # exported, and the Collector drops it metric_expiration after its last point.
        log("baseline: bare SDK, delta, metric_expiration %.0f s" % BASELINE_EXPIRATION)
        for name in names:
            bare.record(("fleet-local", "bare-" + name))
        bare.flush()
        sent = time.monotonic()
        poll(lambda: all(collector.series_of("bare-" + n) for n in names), 10, 0.05)
        gone: dict[str, float] = {}

        def all_gone() -> bool:
            present = {name for (_, labels) in collector.samples(COUNTER) for key, name in labels if key == "name"}
            for n in names:
                if n not in gone and "bare-" + n not in present:
                    gone[n] = time.monotonic() - sent
            return len(gone) == len(names)

        poll(all_gone, BASELINE_EXPIRATION * 3, 0.1)
        baseline = [gone.get(n, float("inf")) for n in names]
        return [
            ["prometheus exporter: Collector /metrics", *stats(on_collector)],
            ["prometheus exporter: Prometheus instant query", *stats(in_prometheus)],
            ["baseline, bare SDK (delta): Collector /metrics, metric_expiration 15 s", *stats(baseline)],
        ]
    finally:
        ours.shutdown()
        bare.shutdown()
        prometheus.stop()
        collector.stop()


def bench_latency_remote_write(binary: str, deletions: int) -> list[list[str]]:
    log("forget -> absent, prometheusremotewrite exporter: %d deletions" % deletions)
    prometheus = PrometheusServer([], extra_args=["--web.enable-remote-write-receiver"])
    collector = Collector(
        binary, REMOTE_WRITE_CONFIG, OTELCOL_REMOTE_WRITE_ENDPOINT="http://127.0.0.1:%d/api/v1/write" % prometheus.port
    )
    ours = lifecycle_pipeline(collector.otlp_http, "lifecycle")
    try:
        names = ["repo-%d" % i for i in range(deletions)]
        for name in names:
            record_everything(ours.gitjob, ("fleet-local", name))
        ours.flush()
        for name in names:
            prometheus.wait_for(repo_query(name, "namespace", COUNTER), lambda r: len(r) == 1, timeout=30)
        counter_gone, lingering = [], []
        rng = random.Random(2)
        for name in names:
            time.sleep(rng.uniform(0, 1))  # a random phase against the batch timer
            started = time.monotonic()
            ours.lifecycle.forget(("fleet-local", name))
            ours.flush()
            query = repo_query(name, "namespace", COUNTER)
            poll(lambda q=query: not prometheus.query(q), 30, 0.05)
            counter_gone.append(time.monotonic() - started)
            # Series of the repo still returned once its counter is gone (histogram buckets and sums
            # whose marker point carries no bounds and no sum get no StaleNaN).
            lingering.append(len(prometheus.query(repo_query(name, "namespace"))))
        return [
            ["prometheusremotewrite: Prometheus instant query (counter)", *stats(counter_gone)],
            [
                "prometheusremotewrite: series of the repo still returned then (median, max)",
                "%g" % statistics.median(lingering),
                "%d" % max(lingering),
                "%d/%d" % (len(lingering), len(lingering)),
            ],
        ]
    finally:
        ours.shutdown()
        prometheus.stop()
        collector.stop()


# -- 2. export cost of markers --------------------------------------------------------------------------------


def bench_export_cost(binary: str, live: int, rounds: int) -> list[list[str]]:
    log("export cost: %d live repos x %d rounds" % (live, rounds))
    collector = Collector(binary, PROMETHEUS_CONFIG)
    try:
        fractions = [0.0, 0.1, 1.0]
        times: dict[float, list[float]] = {f: [] for f in fractions}
        points: dict[float, list[float]] = {f: [] for f in fractions}
        for round_index in range(rounds):
            order = fractions if round_index % 2 == 0 else list(reversed(fractions))
            for fraction in order:
                pipeline = lifecycle_pipeline(collector.otlp_http, "cost-%d-%s" % (round_index, fraction))
                try:
                    repos = [("fleet-local", "repo-%d" % i) for i in range(live)]
                    for repo in repos:
                        record_everything(pipeline.gitjob, repo)
                    pipeline.flush()  # the repos' first export (teaches the exporter their shapes)
                    for repo in repos[: int(live * fraction)]:
                        pipeline.lifecycle.forget(repo)
                    accepted = collector.telemetry(ACCEPTED)
                    started = time.perf_counter()
                    pipeline.flush()
                    times[fraction].append(time.perf_counter() - started)
                    poll(lambda a=accepted: collector.telemetry(ACCEPTED) > a, 10, 0.05)
                    points[fraction].append(collector.telemetry(ACCEPTED) - accepted)
                finally:
                    pipeline.shutdown()
        rows = []
        for fraction in fractions:
            ratios = [t / b for t, b in zip(times[fraction], times[0.0], strict=True)]
            rows.append(
                [
                    "%d live, %d forgotten" % (live - int(live * fraction), int(live * fraction)),
                    "%.1f" % (statistics.median(times[fraction]) * 1000),
                    "%.1f–%.1f" % (min(times[fraction]) * 1000, max(times[fraction]) * 1000),
                    "%.2f" % statistics.median(ratios),
                    "%d" % statistics.median(points[fraction]),
                ]
            )
        return rows
    finally:
        collector.stop()


def environment(binary: str) -> str:
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    prometheus = subprocess.run(
        [os.environ.get("PROMETHEUS_BIN", "prometheus"), "--version"], capture_output=True, text=True, check=False
    )
    first = (prometheus.stdout or prometheus.stderr).splitlines()[:1]
    return "%s · Python %s · %s · %s · %d CPUs" % (
        datetime.date.today().isoformat(),
        platform.python_version(),
        version,
        first[0] if first else "prometheus ?",
        os.cpu_count() or 0,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deletions", type=int, default=20)
    parser.add_argument("--live", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="5 deletions, 200 repos, 3 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.deletions, args.live, args.rounds = 5, 200, 3
    binary = otelcol_binary()
    latency = bench_latency_scrape(binary, args.deletions) + bench_latency_remote_write(binary, args.deletions)
    # The ratio against the bare-SDK baseline of the same run (the third row), on medians.
    baseline = float(latency[2][1])
    for row in latency:
        if row[1].replace(".", "", 1).isdigit() and not row[0].startswith("prometheusremotewrite: series"):
            row.append("%.0f×" % (baseline / float(row[1])) if float(row[1]) > 0 else "–")
        else:
            row.append("–")
    cost = bench_export_cost(binary, args.live, args.rounds)
    print("## bench_collector%s\n" % (" (--quick)" if args.quick else ""))
    print(environment(binary) + "\n")
    print("### forget → absent (s), %d deletions one at a time, shipped batch timeout 1 s\n" % args.deletions)
    print(table(["path", "median", "max", "absent within 30 s", "baseline ÷ this"], latency))
    print(
        "\n### export through the Collector, %d repos × 7 series, %d rounds (interleaved)\n" % (args.live, args.rounds)
    )
    print(table(["export", "median ms", "min–max ms", "vs no markers", "points accepted"], cost))
    return 0


if __name__ == "__main__":
    sys.exit(main())
