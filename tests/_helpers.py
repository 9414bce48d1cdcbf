"""Helpers shared by the tests: a hand-moved clock and exact-sample scraping."""

from __future__ import annotations

import sys
import threading
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Scrape ``registry`` and return {(sample name, sorted labels): value}."""
    text = generate_latest(registry).decode()
    result = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            result[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return result


def sample_names_for(registry: CollectorRegistry, **labels: str) -> set[str]:
    """Names of the samples carrying all of ``labels``."""
    wanted = set(labels.items())
    return {name for (name, sample_labels) in samples(registry) if wanted <= set(sample_labels)}


def points_of(metrics_data: MetricsData | None) -> dict[tuple[str, tuple[tuple[str, Any], ...]], Any]:
    """{(metric name, sorted attributes): value, or count for a histogram} of every point of a collection."""
    found: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}
    for resource_metrics in getattr(metrics_data, "resource_metrics", None) or ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    found[(metric.name, tuple(sorted(point.attributes.items())))] = (
                        value if value is not None else point.count
                    )
    return found


def hammer(threads: list[threading.Thread], stop: threading.Event, seconds: float, switch_interval: float) -> None:
    """Run ``threads`` for ``seconds``, switching between them every ``switch_interval`` s, then stop and join them.

    Switching threads every few bytecodes instead of every 5 ms makes races happen that a loaded machine
    would produce.
    """
    interval = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval)
    try:
        for thread in threads:
            thread.start()
        stop.wait(seconds)
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)


class ListExporter(MetricExporter):
    """A real MetricExporter that keeps what it was given (the OTLP exporters need a Collector)."""

    def __init__(self) -> None:
        super().__init__()
        self.exports: list[MetricsData] = []

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        self.exports.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass
