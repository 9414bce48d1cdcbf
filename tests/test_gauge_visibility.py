"""The transient job-duration gauge is in every scrape and every export for its TTL, then gone, on every SDK release.

opentelemetry-sdk releases before 1.45.0 clear a synchronous gauge at each
collection: without the lifecycle keeping its last value, the gauge was in the
first scrape only and a second scraper (an HA Prometheus pair, a readiness
probe) took it away from the first. These tests use the public API only and
run on every release of the SDK matrix.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
from prometheus_client import CollectorRegistry
from support import FakeClock, ListExporter, points_of, samples

from otel_gitjob import GitJobMetrics, Lifecycle, LifecycleExporter, LifecyclePrometheusReader

# The export-correctness tests run healthy and with each seam forced degraded (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("degraded_seam")

GAUGE = "fleet_gitjob_duration_seconds_gauge"
REPO = ("fleet-local", "simple")
LABELS = (("name", "simple"), ("namespace", "fleet-local"))
TTL = 60.0


def scraped(registry: CollectorRegistry) -> float | None:
    return samples(registry).get((GAUGE, LABELS))


def collected(reader: InMemoryMetricReader) -> float | None:
    return points_of(reader.get_metrics_data()).get((GAUGE, LABELS))


def exported(reader: PeriodicExportingMetricReader, exporter: ListExporter) -> float | None:
    before = len(exporter.exports)
    reader.force_flush()
    assert len(exporter.exports) == before + 1
    return points_of(exporter.exports[-1]).get((GAUGE, LABELS))


def test_five_scrapes_of_metrics_all_show_the_gauge_within_its_ttl_and_none_after(provider, lifecycle, clock, registry):
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle, gauge_ttl=TTL)
    gitjob.job_succeeded(REPO, 42.0)

    seen = []
    for _ in range(5):
        seen.append(scraped(registry))
        clock.advance(10)
    assert seen == [42.0] * 5  # a release that clears gauges gave [42.0, None, None, None, None]

    clock.advance(TTL - 50)  # exactly last set + TTL
    assert [scraped(registry) for _ in range(3)] == [None] * 3


def test_a_pull_reader_and_a_memory_reader_each_see_the_gauge_in_every_collection(
    provider, lifecycle, clock, registry, memory_reader
):
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle, gauge_ttl=TTL)
    gitjob.job_succeeded(REPO, 42.0)

    # Interleaved: one reader's collection must not take the value away from the other, nor from itself.
    seen = []
    for _ in range(5):
        seen.append((scraped(registry), collected(memory_reader), collected(memory_reader), scraped(registry)))
        clock.advance(11)
    assert seen == [(42.0, 42.0, 42.0, 42.0)] * 5

    clock.advance(TTL - 55)
    assert (scraped(registry), collected(memory_reader)) == (None, None)


@pytest.fixture
def pull_and_push(
    lifecycle: Lifecycle,
) -> Iterator[tuple[MeterProvider, CollectorRegistry, PeriodicExportingMetricReader, ListExporter]]:
    registry = CollectorRegistry()
    exporter = ListExporter()
    periodic = PeriodicExportingMetricReader(LifecycleExporter(lifecycle, exporter), math.inf)
    provider = MeterProvider(
        metric_readers=[LifecyclePrometheusReader(lifecycle, registry), periodic], views=lifecycle.views()
    )
    yield provider, registry, periodic, exporter
    provider.shutdown()


def test_a_prometheus_scrape_and_a_periodic_export_both_carry_the_gauge_for_its_ttl(
    pull_and_push, lifecycle: Lifecycle, clock: FakeClock
):
    provider, registry, periodic, exporter = pull_and_push
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle, gauge_ttl=TTL)
    gitjob.job_succeeded(REPO, 7.5)

    seen = []
    for _ in range(5):
        seen.append((exported(periodic, exporter), scraped(registry), exported(periodic, exporter)))
        clock.advance(11)
    assert seen == [(7.5, 7.5, 7.5)] * 5

    clock.advance(TTL - 55)
    assert (exported(periodic, exporter), scraped(registry)) == (None, None)


def test_setting_the_gauge_again_shows_the_new_value_in_every_later_scrape(provider, lifecycle, clock, registry):
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle, gauge_ttl=TTL)
    gitjob.job_succeeded(REPO, 1.0)
    assert scraped(registry) == 1.0
    clock.advance(30)
    gitjob.job_succeeded(REPO, 2.0)
    assert [scraped(registry) for _ in range(3)] == [2.0] * 3
    clock.advance(TTL - 1)  # 89 s after the first set, 59 s after the second
    assert scraped(registry) == 2.0
    clock.advance(1)
    assert scraped(registry) is None
