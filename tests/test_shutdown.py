"""A Lifecycle shared by two providers, and shutdown that never waits for the sweeper under a lock."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
from prometheus_client import CollectorRegistry
from support import FakeClock, ListExporter, samples

from otel_gitjob import GitJobMetrics, Lifecycle, LifecycleExporter, LifecyclePrometheusReader
from otel_gitjob._internal.core import _sdk
from otel_gitjob._internal.core.lifecycle import hooks_of

NS, NAME = "fleet-local", "repo-a"
REPO = (NS, NAME)
LABELS = (("name", NAME), ("namespace", NS))
CREATED = "fleet_gitjobs_created_success_total"


@pytest.mark.parametrize("shut_down", ["prometheus reader", "wrapped exporter"])
def test_shutting_down_one_provider_leaves_a_shared_lifecycle_forgetting_for_the_other(shut_down):
    lifecycle = Lifecycle()
    other_registry = CollectorRegistry()
    exporter = ListExporter()
    if shut_down == "prometheus reader":
        first_reader: Any = LifecyclePrometheusReader(lifecycle, CollectorRegistry())
    else:
        first_reader = PeriodicExportingMetricReader(LifecycleExporter(lifecycle, exporter), math.inf)
    first = MeterProvider(metric_readers=[first_reader], views=lifecycle.views())
    second = MeterProvider(
        metric_readers=[LifecyclePrometheusReader(lifecycle, other_registry)], views=lifecycle.views()
    )
    try:
        GitJobMetrics(first, lifecycle=lifecycle).job_created(REPO)
        second_gitjob = GitJobMetrics(second, lifecycle=lifecycle)
        second_gitjob.job_created(REPO)
        assert samples(other_registry)[(CREATED, LABELS)] == 1

        first.shutdown()

        assert lifecycle.forget(REPO) >= 1  # the second provider's series are still indexed
        second_gitjob.job_created(REPO)  # a late write: still blocked
        for _ in range(3):
            assert all(dict(labels).get("name") != NAME for _, labels in samples(other_registry))
        assert hooks_of(lifecycle).registry.blocked_objects() == 1
    finally:
        second.shutdown()
        lifecycle.shutdown()


def _fill_with_pending_expiries(lifecycle: Lifecycle, provider: MeterProvider, series: int) -> Any:
    lifecycle.transient("job_gauge", 60.0)
    gauge = provider.get_meter("hardening").create_gauge("job_gauge")
    for i in range(series):
        gauge.set(float(i), {"namespace": "ns", "name": "r%d" % i})
    return gauge


def test_shutdown_with_100000_pending_expiries_returns_at_once_and_leaves_no_thread():
    lifecycle = Lifecycle()
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()], views=lifecycle.views(cardinality_limit=200_000))
    try:
        _fill_with_pending_expiries(lifecycle, provider, 100_000)
        expiry = hooks_of(lifecycle).expiry
        assert expiry is not None and expiry.sweeper_alive() and expiry.heap_size() == 100_000
        started = time.perf_counter()
        lifecycle.shutdown()
        elapsed = time.perf_counter() - started
        print("shutdown with 100,000 pending expiries: %.3f s" % elapsed)
        # The whole sweep would take over 200 s (100,000 × 2 ms); the bound leaves room for a loaded CI machine.
        assert elapsed < 5.0
        assert not expiry.sweeper_alive()
        assert not [t for t in threading.enumerate() if t.name == "otel-gitjob-expiry"]
    finally:
        provider.shutdown()


def test_shutdown_during_a_sweep_of_100000_expiries_returns_at_once_and_stops_the_sweep():
    clock = FakeClock()
    lifecycle = Lifecycle(clock=clock)
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()], views=lifecycle.views(cardinality_limit=200_000))
    sweeping = threading.Event()

    def slow_listener(obj: Any, gone: list[Any], *final_points: Any) -> None:
        # Stands for a slow removal listener (an OTLP staleness store under load): each call takes a while.
        sweeping.set()
        time.sleep(0.002)

    try:
        _fill_with_pending_expiries(lifecycle, provider, 100_000)
        expiry = hooks_of(lifecycle).expiry
        assert expiry is not None
        hooks_of(lifecycle).registry.add_removal_listener(slow_listener)
        clock.advance(60.0)
        expiry.wake()  # all 100,000 are due: the sweeper starts evicting them
        assert sweeping.wait(30), "the sweep never started"
        started = time.perf_counter()
        lifecycle.shutdown()
        elapsed = time.perf_counter() - started
        print("shutdown during a sweep of 100,000 expiries: %.3f s" % elapsed)
        # The whole sweep would take over 200 s (100,000 × 2 ms); the bound leaves room for a loaded CI machine.
        assert elapsed < 5.0
        assert not expiry.sweeper_alive()
        assert not [t for t in threading.enumerate() if t.name == "otel-gitjob-expiry"]
        assert _sdk.series_count(provider) > 0, "the sweep ran to the end instead of stopping between slices"
    finally:
        provider.shutdown()
