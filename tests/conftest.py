"""Shared fixtures: a fresh registry, lifecycle and provider per test, and exact-sample helpers."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from _helpers import FakeClock
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry

from otel_gitjob import GitJobMetrics, Lifecycle


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def lifecycle(clock: FakeClock) -> Iterator[Lifecycle]:
    lifecycle = Lifecycle(clock=clock)
    yield lifecycle
    lifecycle.shutdown()


@pytest.fixture
def memory_reader(lifecycle: Lifecycle) -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def provider(
    lifecycle: Lifecycle, registry: CollectorRegistry, memory_reader: InMemoryMetricReader
) -> Iterator[MeterProvider]:
    provider = MeterProvider(
        metric_readers=[lifecycle.prometheus_reader(registry), memory_reader], views=lifecycle.views()
    )
    yield provider
    provider.shutdown()


@pytest.fixture
def gitjob(provider: MeterProvider, lifecycle: Lifecycle) -> GitJobMetrics:
    return GitJobMetrics(provider, lifecycle=lifecycle)


@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    """Every test stops the threads it started (sweepers, servers, listeners)."""
    before = set(threading.enumerate())
    yield
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=5)
    leaked = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not leaked, "threads left running: %s" % leaked
