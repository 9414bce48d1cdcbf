"""Regression tests of the OTLP defects of issue 11 §4 (each failed before the fix it names)."""

from __future__ import annotations

import gc
import logging
import math
import tracemalloc
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import View
from otlp_helpers import ATTRS_A, ATTRS_B, REPO_A, REPO_B, HttpSink, Sink, exporter_options, otlp_exporter

from otel_gitjob import Lifecycle, LifecycleExporter

CREATED = "fleet_gitjobs_created_success_total"


def test_markers_never_delay_or_drop_live_data(sink: Sink, lifecycle: Lifecycle, make_pipeline: Any) -> None:
    # Before: the markers rode on the first request of the export, whatever max_export_batch_size said;
    # past the HTTP exporter's max_request_size that request was dropped, live data and all.
    options: dict[str, Any] = {"max_export_batch_size": 40}
    if sink.protocol == "http":
        options["max_request_size"] = 20_000
    # Older exporter releases take neither limit: markers then go in requests within the default limits.
    options = {name: value for name, value in options.items() if name in exporter_options(sink.protocol)}
    pipeline = make_pipeline(otlp_exporter(sink.protocol, sink.endpoint, **options), lifecycle)
    repos = [("fleet-local", "r-%d" % i) for i in range(300)]
    for repo in repos:
        pipeline.gitjob.job_created(repo)
    pipeline.flush()
    for repo in repos:
        lifecycle.forget(repo)
    for _ in range(3):
        pipeline.gitjob.job_created(REPO_B)
        pipeline.flush()
    points = sink.wait_for(lambda points: len([p for p in points if p.attributes == ATTRS_B]) == 3)
    assert [p.value for p in points if p.attributes == ATTRS_B] == [1, 2, 3]
    stale = {p.attrs()["name"] for p in points if p.stale}
    assert stale == {name for _, name in repos}
    with sink.cond:
        requests = list(sink.requests)
    for request in requests:
        assert sum(
            len(m.sum.data_points) for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        ) <= options.get("max_export_batch_size", math.inf)
        assert request.ByteSize() <= options.get("max_request_size", 4 * 1024 * 1024)
    # Live data is never held back behind markers: repo-b's first export precedes every marker.
    first_b = min(p.request for p in points if p.attributes == ATTRS_B)
    assert first_b < min(p.request for p in points if p.stale)


def test_tracked_delta_series_cap_holds_across_forgets(
    http_sink: Sink, lifecycle: Lifecycle, make_pipeline: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    # Before: a forget decremented the count twice for series recorded since the last export
    # (-6 after one repo), so the cap never triggered.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
    pipeline = make_pipeline(otlp_exporter("http", http_sink.endpoint), lifecycle)
    staleness = pipeline.exporter.staleness
    staleness.store.max_tracked_delta = 2
    gitjob = pipeline.gitjob
    gitjob.job_created(REPO_A)
    gitjob.job_creation_failed(REPO_A)
    pipeline.flush()  # repo-a's two delta series are tracked
    gitjob.job_created(REPO_A)
    gitjob.job_creation_failed(REPO_A)
    lifecycle.forget(REPO_A)  # both recorded since: evicted, and tracked
    assert staleness.store.tracked_delta() == 0
    with caplog.at_level(logging.WARNING, logger="otel_gitjob"):
        for name in ("b", "c"):
            gitjob.job_created(("fleet-local", name))
            gitjob.job_creation_failed(("fleet-local", name))
        pipeline.flush()
    assert staleness.store.tracked_delta() == 2
    assert "more than 2 delta series tracked" in caplog.text


def test_view_that_renames_an_instrument_gets_markers(sink: Sink, temporality: str, lifecycle: Lifecycle) -> None:
    # Before: markers were keyed by the instrument name and shapes by the exported stream name.
    reader = PeriodicExportingMetricReader(
        LifecycleExporter(lifecycle, otlp_exporter(sink.protocol, sink.endpoint)), export_interval_millis=math.inf
    )
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views(View(instrument_name="x", name="renamed")))
    try:
        counter = provider.get_meter("test").create_counter("x")
        counter.add(1, dict(ATTRS_A))
        counter.add(1, dict(ATTRS_B))
        provider.force_flush()
        counter.add(1, dict(ATTRS_A))
        lifecycle.forget(REPO_A)
        counter.add(1, dict(ATTRS_B))
        provider.force_flush()
        points = sink.wait_for(lambda points: any(p.stale for p in points))
    finally:
        provider.shutdown()
    stale = [p for p in points if p.stale]
    assert [(p.metric, p.attributes) for p in stale] == [("renamed", ATTRS_A)]


def test_nothing_recorded_is_lost_under_delta(
    sink: Sink, start_rotel: Any, lifecycle: Lifecycle, make_pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: a forget evicted the aggregation at once; what was recorded since the last export vanished.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
    rotel = start_rotel(sink)
    endpoint = rotel.http_endpoint if sink.protocol == "http" else rotel.grpc_endpoint
    pipeline = make_pipeline(otlp_exporter(sink.protocol, endpoint), lifecycle)
    gitjob = pipeline.gitjob
    for _ in range(5):
        gitjob.job_created(REPO_A)
    gitjob.job_succeeded(REPO_A, 2.0)
    gitjob.job_created(REPO_B)
    pipeline.flush()
    for _ in range(3):
        gitjob.job_created(REPO_A)  # recorded after the last export, forgotten before the next
    gitjob.job_succeeded(REPO_A, 4.0)
    lifecycle.forget(REPO_A)
    gitjob.job_created(REPO_B)
    pipeline.flush()

    def done(points: list[Any]) -> bool:
        return any(p.stale and p.metric == CREATED and p.attributes == ATTRS_A for p in points)

    points = sink.wait_for(done)
    created = [p for p in points if p.metric == CREATED and p.attributes == ATTRS_A]
    live, stale = [p for p in created if not p.stale], [p for p in created if p.stale]
    assert sum(p.value for p in live) == 8  # all N recorded, none lost
    assert [p.temporality for p in live] == [1, 1]
    # The final delta, then the marker, a millisecond later at least (Prometheus keys samples by ms).
    assert len(stale) == 1 and stale[0].time >= live[-1].time + 1_000_000
    histogram = [p for p in points if p.metric == "fleet_gitjob_duration_seconds" and p.attributes == ATTRS_A]
    assert [p.value for p in histogram if not p.stale] == [(1, 2.0), (1, 4.0)]


def test_collector_down_warns_once_and_encodes_each_marker_once(
    lifecycle: Lifecycle, make_pipeline: Any, caplog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: each forget past max_pending logged a WARNING, and every failed export re-encoded every marker.
    from otel_gitjob._internal.push import encoding

    encoded = []
    original = encoding._encoded

    def counting(item: Any, *args: Any) -> None:
        encoded.append(item)
        original(item, *args)

    sink = HttpSink()
    pipeline = make_pipeline(otlp_exporter("http", sink.endpoint, timeout=1), lifecycle)
    staleness = pipeline.exporter.staleness
    staleness.flusher.interval = 0
    staleness.store.max_pending = 500
    repos = [("fleet-local", "r-%d" % i) for i in range(2_000)]
    for repo in repos:
        pipeline.gitjob.job_created(repo)
    pipeline.flush()
    sink.close()  # the Collector goes away; its port refuses connections
    monkeypatch.setattr(encoding, "_encoded", counting)
    with caplog.at_level(logging.WARNING, logger="otel_gitjob"):
        for repo in repos:
            lifecycle.forget(repo)
        for _ in range(3):
            pipeline.gitjob.job_created(REPO_B)
            pipeline.provider.force_flush(10_000)  # the export and a marker-only flush, both failing
    dropped = [r for r in caplog.records if "staleness markers dropped, oldest first" in r.getMessage()]
    assert len(dropped) == 1
    assert staleness.store.pending() == 500 and staleness.store.dropped_total == 1_500
    observe = lifecycle.self_metrics.observe
    assert observe("otel_gitjob_staleness_markers_pending") == [(500.0, {})]
    assert observe("otel_gitjob_staleness_markers_dropped") == [(1_500.0, {})]
    assert observe("otel_gitjob_staleness_markers_sent") == [(0.0, {})]
    assert len(encoded) == 500  # each pending marker encoded once, however often its send fails


def test_memory_of_pending_markers_matches_the_documented_bound(lifecycle: Lifecycle, make_pipeline: Any) -> None:
    """The figure in store.py (DEFAULT_MAX_PENDING's comment) is measured here, encoded markers included."""
    from otel_gitjob._internal.push import store

    sink = HttpSink()
    pipeline = make_pipeline(otlp_exporter("http", sink.endpoint, timeout=1), lifecycle)
    staleness = pipeline.exporter.staleness
    staleness.flusher.interval = 0
    count = 10_000
    repos = [("fleet-local", "repo-%d" % i) for i in range(count // 7 + 1)]
    for repo in repos:
        pipeline.gitjob.job_succeeded(repo, 1.0)
        pipeline.gitjob.job_created(repo)
        pipeline.gitjob.job_creation_failed(repo)
        pipeline.gitjob.commit_fetched(repo, 0.5)
        pipeline.gitjob.commit_fetch_failed(repo)
    pipeline.flush()
    sink.close()
    gc.collect()
    # No log records: the test's log capture would keep a failed send's exception, its frames and their items.
    logging.disable(logging.CRITICAL)
    tracemalloc.start()
    try:
        for repo in repos:
            lifecycle.forget(repo)
        staleness.flush()  # fails: every marker is now encoded, and stays pending
        pending = staleness.store.pending()
        encoded = sum(len(item.encoded or b"") for item in staleness.store.take()) / pending
        gc.collect()
        with_markers = tracemalloc.get_traced_memory()[0]
        staleness.store.clear()
        gc.collect()
        without = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        logging.disable(logging.NOTSET)
    per_marker = (with_markers - without) / pending
    assert pending >= count
    # Clearing the store frees what a pending marker holds, its encoding at least (nothing else keeps items alive).
    assert encoded <= per_marker <= store.BYTES_PER_PENDING_MARKER, (encoded, per_marker)
