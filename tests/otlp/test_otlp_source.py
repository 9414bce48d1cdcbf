"""Deleted repos stop at the source: after forget or expiry no live point of the series is exported again."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from otlp_helpers import ATTRS_A, ATTRS_B, REPO_A, REPO_B, Sink, otlp_exporter, record_everything
from support import FakeClock

from otel_gitjob import GitJobMetrics, Lifecycle


def test_forgotten_repo_exports_no_live_point_again(
    sink: Sink, temporality: str, lifecycle: Lifecycle, make_pipeline: Any
) -> None:
    pipeline = make_pipeline(otlp_exporter(sink.protocol, sink.endpoint), lifecycle)
    for _ in range(2):
        record_everything(pipeline.gitjob, REPO_A)
        record_everything(pipeline.gitjob, REPO_B)
        pipeline.flush()
    lifecycle.forget(REPO_A)
    record_everything(pipeline.gitjob, REPO_A)  # late writes of a reconcile still running
    record_everything(pipeline.gitjob, REPO_B)
    pipeline.flush()
    pipeline.flush()
    sink.wait_requests(4)
    live_a = [p for p in sink.points() if p.attributes == ATTRS_A and not p.stale]
    assert {p.request for p in live_a} == {0, 1}
    assert len([p for p in sink.points() if p.attributes == ATTRS_B and p.request == 2]) == 7


def test_expired_gauge_exports_no_live_point_again(
    sink: Sink, temporality: str, clock: FakeClock, lifecycle: Lifecycle, make_pipeline: Any
) -> None:
    pipeline = make_pipeline(otlp_exporter(sink.protocol, sink.endpoint), lifecycle, gauge_ttl=60)
    pipeline.gitjob.job_succeeded(REPO_A, 3.0)
    pipeline.flush()
    clock.advance(61)
    pipeline.gitjob.job_created(REPO_B)
    pipeline.flush()
    pipeline.gitjob.job_created(REPO_B)
    pipeline.flush()
    sink.wait_requests(4)
    gauge = [p for p in sink.points() if p.metric == "fleet_gitjob_duration_seconds_gauge"]
    # Request 1 is the export after the expiry (repo-b only); the marker follows in a request of its own.
    assert [(p.request, p.stale) for p in gauge] == [(0, False), (2, True)]


def test_collection_taken_before_the_forget_does_not_leak_the_repo(
    sink: Sink, temporality: str, lifecycle: Lifecycle, make_pipeline: Any
) -> None:
    pipeline = make_pipeline(otlp_exporter(sink.protocol, sink.endpoint), lifecycle)
    # A second reader hands us a collection taken now, to export after the forget (the race the
    # export filter closes).
    delta = AggregationTemporality.DELTA if temporality == "delta" else AggregationTemporality.CUMULATIVE
    early = InMemoryMetricReader(preferred_temporality={Counter: delta, Histogram: delta})
    provider = MeterProvider(metric_readers=[early], views=lifecycle.views())
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle)
    record_everything(gitjob, REPO_A)
    record_everything(gitjob, REPO_B)
    collected = early.get_metrics_data()
    try:
        lifecycle.forget(REPO_A)
        pipeline.exporter.export(collected)
    finally:
        provider.shutdown()
    sink.wait_requests(1)
    assert not [p for p in sink.points() if p.attributes == ATTRS_A and not p.stale]
    assert len([p for p in sink.points() if p.attributes == ATTRS_B]) == 7
