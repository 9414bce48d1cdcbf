"""The lifecycle's views change nothing for what the lifecycle does not manage.

Each scenario runs twice, on a plain MeterProvider and on one with
``lifecycle.views()``, and the exports are compared: exemplars of unmanaged
series, a reader's or exporter's preferred aggregation, and a user's histogram
view on an asynchronous instrument (which the SDK refuses).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ExponentialHistogram,
    Gauge,
    InMemoryMetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
    Sum,
)
from opentelemetry.sdk.metrics.export import (
    Histogram as HistogramData,
)
from opentelemetry.sdk.metrics.view import (
    DropAggregation,
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    LastValueAggregation,
    View,
)
from opentelemetry.sdk.trace import TracerProvider
from support import ListExporter

from otel_gitjob import Lifecycle

MANAGED = {"namespace": "fleet-default", "name": "repo"}
UNMANAGED = {"route": "/healthz"}


def _metrics(data: MetricsData | None) -> dict[str, Any]:
    if data is None:
        return {}
    return {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def _both(
    record: Callable[[MeterProvider], None],
    reader: Callable[[], InMemoryMetricReader],
    user_views: Sequence[View] = (),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``record`` on a plain provider and on a lifecycle's; each one's collected metrics by name."""
    results = []
    for managed in (False, True):
        lifecycle = Lifecycle() if managed else None
        one = reader()
        views = lifecycle.views(*user_views) if lifecycle is not None else list(user_views)
        provider = MeterProvider(metric_readers=[one], views=views)
        try:
            record(provider)
            results.append(_metrics(one.get_metrics_data()))
        finally:
            provider.shutdown()
            if lifecycle is not None:
                lifecycle.shutdown()
    return results[0], results[1]


def _sampled_histogram(provider: MeterProvider) -> None:
    histogram = provider.get_meter("t").create_histogram("latency")
    with TracerProvider().get_tracer("t").start_as_current_span("request"):
        assert trace.get_current_span().get_span_context().trace_flags.sampled
        histogram.record(1.5, UNMANAGED)
        histogram.record(2.5, MANAGED)


def test_unmanaged_series_keep_the_sdks_exemplars_and_managed_ones_save_the_reservoir():
    plain, ours = _both(_sampled_histogram, InMemoryMetricReader)

    def exemplars(metrics: dict[str, Any]) -> dict[str, int]:
        return {p.attributes.get("route", "managed"): len(p.exemplars) for p in metrics["latency"].data.data_points}

    assert exemplars(plain) == {"/healthz": 1, "managed": 1}
    assert exemplars(ours) == {"/healthz": 1, "managed": 0}


def _counter_and_histogram(provider: MeterProvider) -> None:
    meter = provider.get_meter("t")
    for attributes in (UNMANAGED, MANAGED):
        meter.create_counter("requests").add(3, attributes)
        meter.create_histogram("latency").record(2.5, attributes)


@pytest.mark.parametrize(
    ("preferred", "expected"),
    [
        ({Histogram: ExponentialBucketHistogramAggregation()}, {"latency": ExponentialHistogram, "requests": Sum}),
        ({Counter: LastValueAggregation()}, {"latency": HistogramData, "requests": Gauge}),
        ({Counter: DropAggregation(), Histogram: DropAggregation()}, {}),
    ],
    ids=["exponential-histogram", "last-value", "drop"],
)
def test_a_readers_preferred_aggregation_is_used_for_instruments_no_view_configures(preferred, expected):
    plain, ours = _both(_counter_and_histogram, lambda: InMemoryMetricReader(preferred_aggregation=preferred))
    assert {name: type(m.data) for name, m in plain.items()} == expected
    assert {name: type(m.data) for name, m in ours.items()} == expected
    for name in expected:
        assert len(ours[name].data.data_points) == 2


def test_an_exporters_preferred_aggregation_reaches_the_series_through_its_reader():
    lifecycle = Lifecycle()
    exporter = ListExporter(
        preferred_temporality={Counter: AggregationTemporality.CUMULATIVE},
        preferred_aggregation={Histogram: ExponentialBucketHistogramAggregation()},
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
    try:
        _counter_and_histogram(provider)
        provider.force_flush()
        assert type(_metrics(exporter.exports[-1])["latency"].data) is ExponentialHistogram
    finally:
        provider.shutdown()
        lifecycle.shutdown()


def _observable_counter(provider: MeterProvider) -> None:
    provider.get_meter("t").create_observable_counter(
        "cpu_seconds", callbacks=[lambda options: [Observation(7.0, UNMANAGED), Observation(9.0, MANAGED)]]
    )


def test_a_histogram_view_on_an_asynchronous_instrument_is_refused_with_a_warning_and_the_sum_exported(caplog):
    view = View(instrument_name="cpu_seconds", aggregation=ExplicitBucketHistogramAggregation())
    with caplog.at_level(logging.WARNING):
        plain, ours = _both(_observable_counter, InMemoryMetricReader, [view])
    refusals = [r for r in caplog.records if "semantic errors" in r.getMessage()]
    assert len(refusals) == 2  # one for the plain provider, one for ours
    for metrics in (plain, ours):
        data = metrics["cpu_seconds"].data
        assert type(data) is Sum
        assert sorted(p.value for p in data.data_points) == [7.0, 9.0]
