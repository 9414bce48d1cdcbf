"""Through a real collector hop: exporter → rotel (OTLP receiver → OTLP exporter) → decoding sink.

OpenTelemetry Collector Contrib cannot be installed here; rotel (PyPI ``rotel``,
a Rust OTLP collector shipping its binary) can, and it forwards the data
points, flags included, as a Collector with an ``otlp`` exporter would. The
exporters are configured by the usual ``OTEL_EXPORTER_OTLP_*`` variables. A
missing rotel fails these tests, it never skips them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from otlp_helpers import (
    ATTRS_A,
    ATTRS_B,
    EXPECTED_KINDS,
    NO_RECORDED_VALUE,
    REPO_A,
    REPO_B,
    Point,
    Rotel,
    Sink,
    record_everything,
)
from support import FakeClock

from otel_gitjob import Lifecycle


def env_exporter(protocol: str, rotel: Rotel, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The OTLP exporter of ``protocol``, configured only through OTEL_EXPORTER_OTLP_* variables."""
    if protocol == "http":
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", rotel.http_endpoint)
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", rotel.grpc_endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_INSECURE", "true")
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter

    return GrpcExporter()


def count(attributes: tuple, metric: str = "fleet_gitjobs_created_success_total") -> Callable[[list[Point]], int]:
    return lambda points: len([p for p in points if p.attributes == attributes and p.metric == metric])


def test_live_series_arrive_through_rotel_with_names_temporality_and_start_times(
    sink: Sink, start_rotel: Any, lifecycle: Lifecycle, make_pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rotel = start_rotel(sink)
    pipeline = make_pipeline(env_exporter(sink.protocol, rotel, monkeypatch), lifecycle)
    record_everything(pipeline.gitjob, REPO_A)
    pipeline.flush()
    record_everything(pipeline.gitjob, REPO_A)
    pipeline.flush()
    points = sink.wait_for(lambda points: count(ATTRS_A)(points) == 2)
    first, second = sorted({p.time for p in points})
    by_export = [{p.metric: p for p in points if p.time == stamp} for stamp in (first, second)]
    assert set(by_export[0]) == set(by_export[1]) == set(EXPECTED_KINDS)
    for name, (kind, monotonic) in EXPECTED_KINDS.items():
        one, two = by_export[0][name], by_export[1][name]
        assert (one.kind, one.monotonic, one.attributes, one.flags) == (kind, monotonic, ATTRS_A, 0)
        if kind != "gauge":
            assert one.temporality == two.temporality == 2  # cumulative
            # A cumulative series keeps its start time; it precedes the first export.
            assert 0 < one.start == two.start <= one.time
    assert by_export[1]["fleet_gitjobs_created_success_total"].value == 2
    assert by_export[1]["fleet_gitjob_duration_seconds"].value == (2, 24.0)


def test_forgotten_repo_passes_rotel_once_flagged_then_never_again(
    sink: Sink, start_rotel: Any, lifecycle: Lifecycle, make_pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rotel = start_rotel(sink)
    pipeline = make_pipeline(env_exporter(sink.protocol, rotel, monkeypatch), lifecycle)
    record_everything(pipeline.gitjob, REPO_A)
    record_everything(pipeline.gitjob, REPO_B)
    pipeline.flush()
    lifecycle.forget(REPO_A)
    for _ in range(2):
        pipeline.gitjob.job_created(REPO_B)
        pipeline.flush()
    # The markers travel in requests of their own, which rotel may forward after a later export's: wait for
    # them, then for the last export (repo-b's third count), so that "never again" is observed, not assumed.
    sink.wait_for(lambda points: sum(p.stale and p.attributes == ATTRS_A for p in points) >= len(EXPECTED_KINDS))
    points = sink.wait_for(lambda points: count(ATTRS_B)(points) == 3)
    of_a = [p for p in points if p.attributes == ATTRS_A]
    live, stale = [p for p in of_a if not p.stale], [p for p in of_a if p.stale]
    assert sorted(p.metric for p in live) == sorted(EXPECTED_KINDS)
    assert sorted(p.metric for p in stale) == sorted(EXPECTED_KINDS)
    assert all(p.flags == NO_RECORDED_VALUE and p.points_in_metric == 1 for p in stale)
    assert {(p.metric, p.kind, p.monotonic) for p in stale} == {
        (name, kind, monotonic) for name, (kind, monotonic) in EXPECTED_KINDS.items()
    }
    assert min(p.time for p in stale) > max(p.time for p in live)
    b_times = sorted({p.time for p in points if p.attributes == ATTRS_B})
    # Stamped at the forget: after the export before it, before the export that carried it.
    assert all(b_times[0] < p.time < b_times[1] for p in stale)


def test_expired_gauge_passes_rotel_once_flagged_then_never_again(
    sink: Sink,
    start_rotel: Any,
    clock: FakeClock,
    lifecycle: Lifecycle,
    make_pipeline: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rotel = start_rotel(sink)
    pipeline = make_pipeline(env_exporter(sink.protocol, rotel, monkeypatch), lifecycle, gauge_ttl=120)
    pipeline.gitjob.job_succeeded(REPO_A, 7.5)
    pipeline.flush()
    clock.advance(121)
    pipeline.flush()
    pipeline.flush()
    histogram, gauge_metric = "fleet_gitjob_duration_seconds", "fleet_gitjob_duration_seconds_gauge"
    # The marker travels in a request of its own, which rotel may forward after a later export's: wait for
    # the marker itself (a lost one fails here), then one more export, so that "never again" is observed.
    sink.wait_for(lambda points: any(p.stale and p.metric == gauge_metric for p in points))
    pipeline.flush()
    points = sink.wait_for(lambda points: count(ATTRS_A, histogram)(points) == 4)
    gauge = sorted((p for p in points if p.metric == gauge_metric), key=lambda p: p.time)
    assert [(p.stale, p.value) for p in gauge] == [(False, 7.5), (True, None)]
    assert gauge[1].kind == "gauge" and gauge[1].attributes == ATTRS_A
    times = sorted({p.time for p in points if p.metric == histogram})
    # Stamped when it expired, in the second collection's expiry step (so before that collection's own
    # timestamp): after the export of its value, before the third export.
    assert gauge[0].time < gauge[1].time < times[2]
