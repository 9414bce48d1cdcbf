"""Benchmark: OTLP/HTTP export of 10,000 GitRepos through the lifecycle vs the bare SDK exporter.

Usage::

    python bench/bench_otlp.py [--repos 10000] [--rounds 7] [--deletions 1000]

Both pipelines hold the same series (7 per repo) and export, in the same run,
alternately, to the same local OTLP/HTTP sink running in a child process (so
that decoding requests doesn't compete with the exporter for the GIL). Each
export is ``reader.collect()``: SDK collection, the lifecycle's filter and
marker bookkeeping (lifecycle only), protobuf encoding and the HTTP round trip.
Then the cost of marking deletions: forget ``--deletions`` repos and time the
export that carries their staleness markers.

``--only outage``: ``--markers`` staleness markers pending because the sink
refused every request (HTTP 400, not retried) while their repos were forgotten;
then the sink comes back and the pending markers are flushed. CPU seconds
(``time.process_time``; the sink is another process) of that flush, of a flush
that follows a failed attempt, and, as the baseline in the same run, of the bare
OTLP exporter exporting the same number of ordinary points. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import http.server
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from otel_gitjob import LifecycleExporter

GOAL = 1.15
OUTAGE_GOAL_SECONDS = 0.5


def serve_sink(port_file: str) -> None:
    """Child process: an OTLP/HTTP sink that reads each request and answers 200 (empty response).

    While a file named ``<port_file>.down`` exists it answers 400 instead (an outage, not retried).
    """
    down_file = port_file + ".down"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(400 if os.path.exists(down_file) else 200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file, "w") as file:
        file.write(str(server.server_address[1]))
    server.serve_forever()


def start_sink() -> tuple[subprocess.Popen, str, str]:
    """The sink process, its endpoint, and the file whose existence makes it refuse requests."""
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".port", delete=False) as file:
        port_file = file.name
    process = subprocess.Popen([sys.executable, __file__, "--sink", port_file])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(port_file) as file:
            port = file.read().strip()
        if port:
            os.unlink(port_file)
            return process, "http://127.0.0.1:%s/v1/metrics" % port, port_file + ".down"
        time.sleep(0.05)
    process.kill()
    raise SystemExit("the sink did not start")


def record(gitjob: Any, repos: list[tuple[str, str]]) -> None:
    for repo in repos:
        gitjob.job_created(repo)
        gitjob.job_creation_failed(repo)
        gitjob.job_succeeded(repo, 12.0)
        gitjob.commit_fetched(repo, 0.3)
        gitjob.commit_fetch_failed(repo)


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def bench_export(args: argparse.Namespace, endpoint: str) -> None:
    """The export of ``--repos`` repos, and of ``--deletions`` forgotten ones' markers."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.metrics.view import View

    from otel_gitjob import GitJobMetrics, Lifecycle

    repos = [("ns-%d" % (i % 50), "repo-%d" % i) for i in range(args.repos)]
    # Cardinality above the SDK's default 2,000 per instrument, for both pipelines alike.
    limit = args.repos + args.deletions + 10

    bare_reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=endpoint, timeout=60), export_interval_millis=math.inf
    )
    # GitJobMetrics needs a lifecycle's views on its provider: both pipelines have them, so the
    # difference measured is the LifecycleExporter (filter, markers).
    bare_lifecycle = Lifecycle()
    bare_provider = MeterProvider(
        metric_readers=[bare_reader],
        views=bare_lifecycle.views(View(instrument_name="*", aggregation_cardinality_limit=limit)),
    )
    bare = GitJobMetrics(bare_provider, lifecycle=bare_lifecycle)

    lifecycle = Lifecycle()
    reader = PeriodicExportingMetricReader(
        LifecycleExporter(lifecycle, OTLPMetricExporter(endpoint=endpoint, timeout=60)),
        export_interval_millis=math.inf,
    )
    provider = MeterProvider(
        metric_readers=[reader],
        views=lifecycle.views(View(instrument_name="*", aggregation_cardinality_limit=limit)),
    )
    managed = GitJobMetrics(provider, lifecycle=lifecycle)

    record(bare, repos)
    record(managed, repos)
    bare_reader.collect()  # warm-up: connections, first-export bookkeeping
    reader.collect()

    bare_times, managed_times = [], []
    for _ in range(args.rounds):
        bare_times.append(timed(bare_reader.collect))
        managed_times.append(timed(reader.collect))
    bare_median, managed_median = statistics.median(bare_times), statistics.median(managed_times)
    ratio = managed_median / bare_median

    # Deletions: each round re-creates the deleted repos and exports them (timed: the export
    # before), forgets them, and times the export that carries their markers (the live export,
    # then the markers in requests of their own). Encoding the markers is timed apart too,
    # being immune to the machine's noise.
    from otel_gitjob._internal.push import markers as markers_module

    staleness = reader._exporter.staleness
    encode = markers_module.encode
    encode_times: list[float] = []

    def timed_encode(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return encode(*args, **kwargs)
        finally:
            encode_times.append(time.perf_counter() - started)

    markers_module.encode = timed_encode  # type: ignore[assignment]
    deleted = repos[: args.deletions]
    before_times, forget_times, marker_times, marker_prepare = [], [], [], []
    sent_before = staleness.store.sent_total
    for _ in range(args.rounds):
        for repo in deleted:
            lifecycle.observe(repo)
        record(managed, deleted)
        reader.collect()  # the re-created repos reach the exporter
        before_times.append(timed(reader.collect))
        forget_times.append(timed(lambda: [lifecycle.forget(repo) for repo in deleted]))
        encode_times.clear()
        marker_times.append(timed(reader.collect))
        marker_prepare.append(sum(encode_times))
    markers_module.encode = encode  # type: ignore[assignment]
    markers_per_export = (staleness.store.sent_total - sent_before) // args.rounds
    before_median = statistics.median(before_times)
    marker_median = statistics.median(marker_times)
    forget_median = statistics.median(forget_times)
    prepare_median = statistics.median(marker_prepare)

    print(
        "## OTLP/HTTP export, %d repos (%d series), median of %d rounds\n" % (args.repos, 7 * args.repos, args.rounds)
    )
    print("| pipeline | export (collect + encode + send) | ratio |")
    print("| --- | ---: | ---: |")
    print("| bare SDK exporter | %.1f ms | 1.00× |" % (bare_median * 1e3))
    print(
        "| through the lifecycle | %.1f ms | %.2f× (goal ≤ %.2f×: %s) |"
        % (managed_median * 1e3, ratio, GOAL, "met" if ratio <= GOAL else "NOT met")
    )
    print()
    print(
        "## Marking %d deletions (%d staleness markers) in one export, median of %d rounds\n"
        % (args.deletions, markers_per_export, args.rounds)
    )
    print("| step | median |")
    print("| --- | ---: |")
    print("| `forget()` × %d (eviction + enqueueing the markers) | %.1f ms |" % (args.deletions, forget_median * 1e3))
    print("| export just before the forget (%d live series) | %.1f ms |" % (7 * args.repos, before_median * 1e3))
    print(
        "| export carrying the markers (%d live series + %d markers) | %.1f ms |"
        % (7 * (args.repos - args.deletions), markers_per_export, marker_median * 1e3)
    )
    print(
        "| of which encoding and flagging the markers (once each) | %.1f ms (%.1f µs per marker) |"
        % (prepare_median * 1e3, prepare_median * 1e6 / max(markers_per_export, 1))
    )

    provider.shutdown()
    bare_provider.shutdown()
    bare_lifecycle.shutdown()


def bench_outage(args: argparse.Namespace, endpoint: str, down_file: str) -> None:
    """CPU of flushing ``--markers`` markers left pending by an outage, vs exporting as many ordinary points."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
    from opentelemetry.sdk.metrics.view import View

    from otel_gitjob import GitJobMetrics, Lifecycle

    per_repo = 7
    count = -(-args.markers // per_repo)
    limit = count + 10  # forgotten series leave the SDK's storage, so each round fits
    lifecycle = Lifecycle()
    exporter = LifecycleExporter(lifecycle, OTLPMetricExporter(endpoint=endpoint, timeout=60))
    staleness = exporter.staleness
    assert staleness is not None, "the push seam is degraded: no markers to flush"
    staleness.flusher.interval = 0  # only the timed flushes send
    staleness.store.max_pending = max(staleness.store.max_pending, count * per_repo)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=math.inf)
    provider = MeterProvider(
        metric_readers=[reader], views=lifecycle.views(View(instrument_name="*", aggregation_cardinality_limit=limit))
    )
    managed = GitJobMetrics(provider, lifecycle=lifecycle)

    # The baseline: the bare exporter sending as many ordinary points (the same series, alive).
    memory = InMemoryMetricReader()
    bare_lifecycle = Lifecycle()
    bare_provider = MeterProvider(
        metric_readers=[memory],
        views=bare_lifecycle.views(View(instrument_name="*", aggregation_cardinality_limit=limit)),
    )
    record(GitJobMetrics(bare_provider, lifecycle=bare_lifecycle), [("ns", "repo-%d" % i) for i in range(count)])
    data = memory.get_metrics_data()
    assert data is not None
    points = sum(
        len(metric.data.data_points) for rm in data.resource_metrics for sm in rm.scope_metrics for metric in sm.metrics
    )
    bare_exporter = OTLPMetricExporter(endpoint=endpoint, timeout=60)

    def cpu(action: Callable[[], Any]) -> tuple[float, Any]:
        started = time.process_time()
        result = action()
        return time.process_time() - started, result

    def outage(round_name: str) -> int:
        """Export ``count`` repos, forget them all while the sink is down; returns the markers pending."""
        repos = [("ns-%d" % (i % 50), "%s-%d" % (round_name, i)) for i in range(count)]
        record(managed, repos)
        reader.collect()  # exported: the streams' shapes are known
        open(down_file, "w").close()
        for repo in repos:
            lifecycle.forget(repo)
        reader.collect()  # fails: the markers stay pending
        return staleness.store.pending()

    baseline, first, failed, retried = [], [], [], []
    pending = 0
    for number in range(args.rounds):
        baseline.append(cpu(lambda: bare_exporter.export(data))[0])

        pending = outage("a%d" % number)
        os.unlink(down_file)
        sent = staleness.store.sent_total
        seconds, ok = cpu(staleness.flush)
        assert ok and staleness.store.pending() == 0 and staleness.store.sent_total - sent == pending, (
            "flush lost markers"
        )
        first.append(seconds)

        pending = outage("b%d" % number)
        seconds, ok = cpu(staleness.flush)  # an idle flush during the outage: encodes, fails to send
        assert not ok and staleness.store.pending() == pending
        failed.append(seconds)
        os.unlink(down_file)
        seconds, ok = cpu(staleness.flush)
        assert ok and staleness.store.pending() == 0, "retry lost markers"
        retried.append(seconds)
        print(
            "round %d: %.3f s, %.3f s / %.3f s, baseline %.3f s"
            % (number, first[-1], failed[-1], retried[-1], baseline[-1]),
            file=sys.stderr,
        )

    base = statistics.median(baseline)
    print(
        "## Flushing %d staleness markers after an outage: CPU seconds, median of %d rounds\n" % (pending, args.rounds)
    )
    print("| step | CPU | vs baseline |")
    print("| --- | ---: | ---: |")
    print("| baseline: bare OTLP exporter, %d ordinary points | %.3f s | 1.00× |" % (points, base))
    for label, times in (
        ("first flush once the endpoint is back", first),
        ("a flush attempt during the outage (fails)", failed),
        ("the flush after that failed attempt", retried),
    ):
        median = statistics.median(times)
        print("| %s | %.3f s | %.2f× |" % (label, median, median / base))
    met = statistics.median(first) <= OUTAGE_GOAL_SECONDS
    print("\n**Goal:** first flush ≤ %.1f s CPU: %s" % (OUTAGE_GOAL_SECONDS, "met" if met else "NOT met"))
    provider.shutdown()
    bare_provider.shutdown()
    bare_exporter.shutdown()
    lifecycle.shutdown()
    bare_lifecycle.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--deletions", type=int, default=1_000)
    parser.add_argument("--markers", type=int, default=50_000, help="markers pending after the outage")
    parser.add_argument("--only", action="append", choices=["export", "outage"], help="repeatable; default: both")
    parser.add_argument("--sink", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        serve_sink(args.sink)
        return
    only = set(args.only or ["export", "outage"])
    sink, endpoint, down_file = start_sink()
    try:
        if "export" in only:
            bench_export(args, endpoint)
        if "outage" in only:
            bench_outage(args, endpoint, down_file)
    finally:
        if os.path.exists(down_file):
            os.unlink(down_file)
        sink.terminate()
        sink.wait(5)


if __name__ == "__main__":
    main()
