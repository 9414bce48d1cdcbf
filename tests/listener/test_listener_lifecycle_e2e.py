"""End to end: kmock emulator → listener → the real ``otel_gitjob.Lifecycle`` → a real MeterProvider."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from support import named_points

import otel_gitjob
from otel_gitjob._internal.core.lifecycle import hooks_of


def names(points: set[tuple[str, str, str]], prefix: str) -> set[str]:
    return {name for metric, _, name in points if metric.startswith(prefix)}


@pytest.fixture()
def metrics_stack() -> Any:
    lifecycle = otel_gitjob.Lifecycle()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
    gitjob = otel_gitjob.GitJobMetrics(provider, lifecycle=lifecycle)
    yield lifecycle, provider, reader, gitjob
    provider.shutdown()
    lifecycle.shutdown()


def series(reader: InMemoryMetricReader) -> set[tuple[str, ...]]:
    """{(metric, namespace, name)} of every point of one collection that names an object."""
    return named_points(reader.get_metrics_data(), "namespace", "name")


def test_deleted_gitrepo_series_are_gone_from_the_next_collect(emulator, make_listener, wait_for, metrics_stack):
    lifecycle, provider, reader, gitjob = metrics_stack
    emulator.create("a", status={"readyClusters": 1})
    emulator.create("b", status={"readyClusters": 2})
    listener = make_listener(lifecycle, meter_provider=provider)
    assert listener.wait_synced(5) and listener.wait_idle(5)
    emulator.wait_watching()
    for name in ("a", "b"):
        gitjob.job_created(("fleet-local", name))
        gitjob.job_succeeded(("fleet-local", name), duration_seconds=3.0)

    before = series(reader)
    assert names(before, "fleet_gitrepo_") == {"a", "b"}  # the listener's status gauges
    assert {"a", "b"} <= {name for metric, _, name in before if not metric.startswith("fleet_gitrepo_")}

    emulator.delete("a")
    wait_for(lambda: listener.cache.get(("fleet-local", "a")) is None and listener.wait_idle(5))
    after = series(reader)
    assert "a" not in {name for _, _, name in after}, sorted(after)
    assert names(after, "fleet_gitrepo_") == {"b"}
    assert hooks_of(lifecycle).registry.blocked_objects() == 1

    gitjob.job_created(("fleet-local", "a"))  # a late write from a reconcile still running
    assert "a" not in {name for _, _, name in series(reader)}


def test_recreated_gitrepo_is_observed_and_measured_again(emulator, make_listener, wait_for, metrics_stack):
    lifecycle, provider, reader, gitjob = metrics_stack
    emulator.create("a", uid="first")
    listener = make_listener(lifecycle, meter_provider=provider)
    assert listener.wait_synced(5)
    emulator.wait_watching()
    emulator.delete("a")
    wait_for(lambda: hooks_of(lifecycle).registry.blocked_objects() == 1)
    emulator.create("a", uid="second")
    wait_for(lambda: hooks_of(lifecycle).registry.blocked_objects() == 0)  # observe() lifted the block
    gitjob.job_created(("fleet-local", "a"))
    assert "a" in {name for metric, _, name in series(reader) if not metric.startswith("fleet_gitrepo_")}
