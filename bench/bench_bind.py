"""Stretch goal of issue 13: a bound handle that records straight into a series' aggregation (prototype).

Not an API of the package: this script builds the prototype handle on the SDK
internals the package already relies on (``_sdk.py``), checks that it stays
correct under forget, expiry and re-creation, and times it against
prometheus_client's ``labels(...).inc()`` and today's calls.

    python bench/bench_bind.py            # 200,000 calls x 7 rounds
    python bench/bench_bind.py --quick

The handle keeps, per reader storage, the storage's table and the aggregation
it found there for the series key. A write first checks that each table still
holds that very aggregation (one dict lookup per reader); if the series was
evicted (forget, expiry) or never existed, the write takes the ordinary
``instrument.add`` path, where the lifecycle decides (a forgotten repo's write
lands on a placeholder and is dropped, so a handle never resurrects a
forgotten series), and the handle re-binds to whatever that path left.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import time
from time import time_ns
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import prometheus_client  # noqa: E402
from opentelemetry.context import get_current  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics._internal.measurement import Measurement  # noqa: E402

from otel_gitjob import GitJobMetrics, Lifecycle, LifecyclePrometheusReader  # noqa: E402
from otel_gitjob._internal.core import _sdk  # noqa: E402


class BoundCounter:
    """A counter series handle (prototype)."""

    __slots__ = ("_attributes", "_consumer", "_filter", "_instrument", "_key", "_targets")

    def __init__(self, instrument: Any, attributes: dict[str, str]) -> None:
        self._instrument = instrument
        self._attributes = dict(attributes)
        self._key = _sdk.series_key(self._attributes)
        self._consumer = instrument._measurement_consumer
        self._filter = self._consumer._sdk_config.exemplar_filter
        self._targets: tuple[tuple[dict[Any, Any], Any], ...] = ()

    def _bind(self) -> tuple[tuple[dict[Any, Any], Any], ...]:
        targets = []
        for storage in self._consumer._reader_storages.values():
            for match in storage._instrument_view_instrument_matches.get(self._instrument, ()):
                table = match._attributes_aggregation
                aggregation = table.get(self._key)
                if aggregation is None:
                    return ()
                targets.append((table, aggregation))
        return tuple(targets)

    def add(self, amount: float) -> None:
        targets = self._targets
        if targets:
            key = self._key
            for table, aggregation in targets:
                if table.get(key) is not aggregation:
                    break
            else:
                if not (amount >= 0 and math.isfinite(amount)):
                    return
                measurement = Measurement(amount, time_ns(), self._instrument, get_current(), self._attributes)
                sample = self._filter.should_sample(
                    amount, measurement.time_unix_nano, self._attributes, measurement.context
                )
                for _, aggregation in targets:
                    aggregation.aggregate(measurement, sample)
                return
        # Not bound, or the series left the storage: the ordinary path decides, then bind to its result.
        self._instrument.add(amount, self._attributes)
        self._targets = self._bind()


def check_correctness() -> list[str]:
    """Forget, re-creation and the handle; returns failures (empty when correct)."""
    failures = []
    lc = Lifecycle()
    registry = prometheus_client.CollectorRegistry()
    provider = MeterProvider(metric_readers=[LifecyclePrometheusReader(lc, registry)], views=lc.views())
    gitjob = GitJobMetrics(provider, lifecycle=lc)
    try:
        attrs = {"namespace": "ns", "name": "a"}
        handle = BoundCounter(gitjob._created_success, attrs)
        for _ in range(3):
            handle.add(1)
        line = b'fleet_gitjobs_created_success_total{name="a",namespace="ns"}'

        def value() -> bytes | None:
            for text in prometheus_client.generate_latest(registry).splitlines():
                if text.startswith(line):
                    return text.split()[-1]
            return None

        if value() != b"3.0":
            failures.append("bound writes not counted: %r" % value())
        lc.forget(("ns", "a"))
        handle.add(1)  # a handle to a forgotten series
        handle.add(1)
        if value() is not None:
            failures.append("a handle resurrected a forgotten series: %r" % value())
        if value() is not None:  # and after the placeholder was pruned by a collection
            failures.append("resurrected after a collection")
        handle.add(1)
        if value() is not None:
            failures.append("resurrected after the placeholder was pruned")
        fresh = BoundCounter(gitjob._created_success, {"namespace": "ns", "name": "b"})
        fresh.add(2)
        if b'name="b"' not in prometheus_client.generate_latest(registry):
            failures.append("a handle to a new series did not create it")
    finally:
        provider.shutdown()
    return failures


def timed(fn: Any, calls: int) -> float:
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        fn(calls)
        return (time.perf_counter() - started) / calls * 1e9
    finally:
        gc.enable()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    calls, rounds = (20_000, 3) if args.quick else (200_000, 7)
    failures = check_correctness()

    prometheus_client.disable_created_metrics()
    registry = prometheus_client.CollectorRegistry()
    prom = prometheus_client.Counter("fleet_gitjobs_created_success", "x", ("name", "namespace"), registry=registry)
    lc = Lifecycle()
    provider = MeterProvider(
        metric_readers=[LifecyclePrometheusReader(lc, prometheus_client.CollectorRegistry())], views=lc.views()
    )
    gitjob = GitJobMetrics(provider, lifecycle=lc)
    for i in range(1000):  # 1,000 live repos on each side
        prom.labels("repo-%d" % i, "ns").inc()
        gitjob.job_created(("ns", "repo-%d" % i))
    attrs = {"namespace": "ns", "name": "repo-7"}
    counter = gitjob._created_success
    handle = BoundCounter(counter, attrs)
    handle.add(1)

    def run_prom(n: int) -> None:
        labels = prom.labels
        for _ in range(n):
            labels("repo-7", "ns").inc()

    def run_add(n: int) -> None:
        add = counter.add
        for _ in range(n):
            add(1, attrs)

    def run_typed(n: int) -> None:
        created = gitjob.job_created
        repo = ("ns", "repo-7")
        for _ in range(n):
            created(repo)

    def run_bound(n: int) -> None:
        add = handle.add
        for _ in range(n):
            add(1)

    variants = {
        "prometheus_client `labels(...).inc()`": run_prom,
        "OTel `counter.add(1, attrs)` (lifecycle provider)": run_add,
        "`GitJobMetrics.job_created((ns, name))`": run_typed,
        "prototype bound handle `.add(1)`": run_bound,
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds):
        for name, fn in variants.items() if r % 2 == 0 else list(variants.items())[::-1]:
            samples[name].append(timed(fn, calls))
    provider.shutdown()
    base = samples["prometheus_client `labels(...).inc()`"]
    typed = samples["`GitJobMetrics.job_created((ns, name))`"]
    print("load average %.2f %.2f %.2f; %d calls x %d rounds\n" % (*os.getloadavg(), calls, rounds))
    print("| variant | ns/call (median) | vs prometheus_client | vs typed call |")
    print("|---|---:|---:|---:|")
    for name in variants:
        s = samples[name]
        print(
            "| %s | %.0f | %.2f× | %.2f× |"
            % (
                name,
                statistics.median(s),
                statistics.median(a / b for a, b in zip(s, base, strict=True)),
                statistics.median(a / b for a, b in zip(s, typed, strict=True)),
            )
        )
    print()
    print("correctness (forget / no resurrection / new series): %s" % ("ok" if not failures else failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
