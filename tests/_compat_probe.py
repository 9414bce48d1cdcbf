"""What otel-gitjob's promises look like on the installed releases, observed through the public API.

Each behaviour of docs/compatibility.md's generated table is exercised once, the
way a user would meet it, and reported as ``yes``, ``no (what was seen)`` or
``n/a (why)``. ``scripts/sdk-matrix`` runs this in every leg and
``scripts/compat-table`` renders the results; ``tests/test_compatibility_table.py``
runs it in-process and compares it with the committed table.

    python tests/_compat_probe.py --leg 1.33.0 --out results/1.33.0.json
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import math
import platform
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
from prometheus_client import CollectorRegistry, generate_latest

try:
    from otel_gitjob import GitJobMetrics, Lifecycle, LifecycleExporter, LifecyclePrometheusReader, setup

    IMPORT_PROBLEM = None
except Exception as error:  # a release that breaks the import is a row of the table, not a crash of the run
    IMPORT_PROBLEM = "%s: %s" % (type(error).__name__, error)

BEHAVIOURS = {
    "eviction": "a forgotten object's series leave the SDK's storage; a write after observe() starts afresh",
    "race_guard": "writes racing forget()/observe() from other threads never raise",
    "gauge_visibility": "the job-duration gauge is in every scrape for its TTL, gone after",
    "otlp_http_markers": "a forgotten series gets a staleness marker over OTLP/HTTP",
    "otlp_grpc_markers": "a forgotten series gets a staleness marker over OTLP/gRPC",
    "fast_path": "/metrics is rendered by the fast path, byte for byte what prometheus_client renders",
}

PACKAGES = (
    "opentelemetry-sdk",
    "opentelemetry-exporter-prometheus",
    "prometheus-client",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-exporter-otlp-proto-grpc",
)

REPO = ("fleet-default", "probe")
ATTRS = {"namespace": REPO[0], "name": REPO[1]}


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _points(data: Any, name: str) -> list[Any]:
    if data is None:
        return []
    return [
        point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def eviction() -> str:
    with Lifecycle() as lifecycle:
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
        try:
            counter = provider.get_meter("probe").create_counter("probe_total")
            counter.add(1, ATTRS)
            removed = lifecycle.forget(REPO)
            left = len(_points(reader.get_metrics_data(), "probe_total"))
            counter.add(1, ATTRS)  # blocked: the object is forgotten
            lifecycle.observe(REPO)
            counter.add(1, ATTRS)
            values = [p.value for p in _points(reader.get_metrics_data(), "probe_total")]
        finally:
            provider.shutdown()
        if lifecycle.degraded:
            return "no (degraded: series are filtered, not freed)"
        if removed < 1 or left or values != [1]:
            return "no (forget removed %d, %d left, afterwards %s)" % (removed, left, values)
        return "yes"


def race_guard(seconds: float = 0.5) -> str:
    errors: list[BaseException] = []
    with Lifecycle() as lifecycle:
        provider = MeterProvider(metric_readers=[InMemoryMetricReader()], views=lifecycle.views())
        counter = provider.get_meter("probe").create_counter("probe_total")
        stop = threading.Event()

        def write() -> None:
            while not stop.is_set():
                try:
                    counter.add(1, ATTRS)
                except BaseException as error:  # what a controller thread would see
                    errors.append(error)
                    return

        writers = [threading.Thread(target=write, name="probe-writer-%d" % i) for i in range(2)]
        for thread in writers:
            thread.start()
        deadline = time.monotonic() + seconds
        rounds = 0
        try:
            while time.monotonic() < deadline and not errors:
                lifecycle.forget(REPO)
                lifecycle.observe(REPO)
                rounds += 1
        finally:
            stop.set()
            for thread in writers:
                thread.join()
            provider.shutdown()
    if errors:
        return "no (%s after %d rounds)" % (type(errors[0]).__name__, rounds)
    return "yes"


def gauge_visibility(ttl: float = 60.0, scrapes: int = 5) -> str:
    clock = _Clock()
    with Lifecycle(clock=clock) as lifecycle:
        registry = CollectorRegistry()
        reader = LifecyclePrometheusReader(lifecycle, registry)
        provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
        try:
            gitjob = GitJobMetrics(provider, lifecycle=lifecycle, gauge_ttl=ttl)
            gitjob.job_succeeded(REPO, 42.0)
            name = "fleet_gitjob_duration_seconds_gauge{"

            def seen() -> int:
                return int(name in generate_latest(registry).decode())

            within = [seen() for _ in range(scrapes)]
            clock.now += ttl + 1
            after = seen()
        finally:
            provider.shutdown()
    if within != [1] * scrapes or after:
        return "no (in scrapes %s, after the TTL %d)" % (within, after)
    return "yes"


def otlp_markers(protocol: str) -> str:
    module = "opentelemetry.exporter.otlp.proto.%s.metric_exporter" % protocol
    try:
        __import__(module)
    except ImportError:
        return "n/a (not installed)"
    sys.path.insert(0, str(Path(__file__).parent / "otlp"))
    import otlp_helpers

    sink = otlp_helpers.HttpSink() if protocol == "http" else otlp_helpers.GrpcSink()
    try:
        with Lifecycle() as lifecycle:
            exporter = LifecycleExporter(lifecycle, otlp_helpers.otlp_exporter(protocol, sink.endpoint))
            reader = PeriodicExportingMetricReader(exporter, export_interval_millis=math.inf)
            provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
            try:
                gitjob = GitJobMetrics(provider, lifecycle=lifecycle)
                gitjob.job_created(REPO)
                provider.force_flush(10_000)
                lifecycle.forget(REPO)
                provider.force_flush(10_000)
            finally:
                provider.shutdown()
        stale = [p for p in sink.points() if p.stale and p.attrs().get("name") == REPO[1]]
        sent = len(sink.requests)
    finally:
        sink.close()
    if not stale:
        return "no (%d requests, no marker)" % sent
    return "yes"


def fast_path() -> str:
    from otel_gitjob._internal.prometheus.endpoint import MetricsEndpoint

    registry = CollectorRegistry()
    instrumentation = setup(port=0, registry=registry, gauge_ttl=60)
    try:
        # A counter and a histogram: the gauge's visibility is a column of its own.
        instrumentation.gitjob.job_created(REPO)
        instrumentation.gitjob.commit_fetched(REPO, 1.5)
        host, port = instrumentation.address or ("", 0)
        with urllib.request.urlopen("http://%s:%d/metrics" % (host, port), timeout=10) as response:
            served = response.read()
        reference = generate_latest(registry)
        endpoint = getattr(instrumentation._server, "endpoint", None)
        fast = isinstance(endpoint, MetricsEndpoint) and endpoint.fast_path()
    finally:
        instrumentation.shutdown()

    def body(text: bytes) -> list[bytes]:  # the package's self-metrics move between two collections
        return [line for line in text.splitlines() if b"otel_gitjob_" not in line]

    if body(served) != body(reference):
        return "no (served bytes differ from prometheus_client's)"
    return "yes" if fast else "no (the exporter's path; same bytes)"


PROBES: dict[str, Callable[[], str]] = {
    "eviction": eviction,
    "race_guard": race_guard,
    "gauge_visibility": gauge_visibility,
    "otlp_http_markers": lambda: otlp_markers("http"),
    "otlp_grpc_markers": lambda: otlp_markers("grpc"),
    "fast_path": fast_path,
}


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "-"
    return found


def run() -> dict[str, str]:
    """Every behaviour's outcome; an exception is an outcome too, never a crash of the run."""
    if IMPORT_PROBLEM is not None:
        return dict.fromkeys(PROBES, "no (import otel_gitjob fails: %s)" % IMPORT_PROBLEM)
    results = {}
    for name, probe in PROBES.items():
        try:
            results[name] = probe()
        except Exception as error:  # the probe reports, the suites assert
            results[name] = "no (%s: %s)" % (
                type(error).__name__,
                str(error).splitlines()[0][:80] if str(error) else "",
            )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leg", required=True, help="the matrix leg's name (a row of the table)")
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    result = {"leg": args.leg, "versions": versions(), "behaviours": run()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(json.dumps(result["behaviours"], sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
