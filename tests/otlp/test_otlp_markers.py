"""Staleness markers: a removed series goes out once more, flagged NO_RECORDED_VALUE, then never again.

The exporters talk straight to a decoding sink here (HTTP and gRPC); the hop
through a real collector is in test_otlp_rotel.py.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
from otlp_helpers import (
    ATTRS_A,
    ATTRS_B,
    EXPECTED_KINDS,
    NO_RECORDED_VALUE,
    REPO_A,
    REPO_B,
    Sink,
    of,
    otlp_exporter,
    record_everything,
)
from sdk_storage import stored_attribute_sets
from support import FakeClock

from otel_gitjob import Lifecycle, LifecycleExporter
from otel_gitjob._internal.core.lifecycle import hooks_of
from otel_gitjob._internal.push import StalenessMarkers


def test_forgotten_repo_is_sent_once_flagged_then_never_again(
    sink: Sink, temporality: str, lifecycle: Lifecycle, make_pipeline: Any
) -> None:
    pipeline = make_pipeline(otlp_exporter(sink.protocol, sink.endpoint), lifecycle)
    record_everything(pipeline.gitjob, REPO_A)
    record_everything(pipeline.gitjob, REPO_B)
    pipeline.flush()
    sink.wait_requests(1)

    # forget evicts what the SDK still holds of the repo: all seven series under cumulative; under delta
    # the SDK from 1.45 drops a delta series from its storage at each collection (only the gauge is then
    # left), earlier releases keep it. Either way the markers come from what this exporter sent.
    held = sum(dict(ATTRS_A).items() <= attrs.items() for attrs in stored_attribute_sets(pipeline.provider))
    assert held == 7 if temporality == "cumulative" else held in (1, 7)
    assert lifecycle.forget(REPO_A) == held
    pipeline.gitjob.job_created(REPO_B)  # keeps the next collections non-empty under delta too
    pipeline.flush()
    sink.wait_requests(3)
    # The live export first, as the exporter alone would send it; the markers in a request of their own.
    assert not of(sink.points(), ATTRS_A, request=1)
    markers = of(sink.points(), ATTRS_A, request=2)

    assert sorted(p.metric for p in markers) == sorted(EXPECTED_KINDS)
    want_temporality = 1 if temporality == "delta" else 2
    first_export = {p.metric: p for p in of(sink.points(), ATTRS_A, request=0)}
    for marker in markers:
        kind, monotonic = EXPECTED_KINDS[marker.metric]
        assert marker.flags == NO_RECORDED_VALUE
        assert (marker.kind, marker.monotonic) == (kind, monotonic)
        if kind == "gauge":
            assert marker.value is None
        else:
            assert marker.temporality == (want_temporality if kind == "histogram" or marker.monotonic else 2)
            # A sum carries no value; a histogram keeps a zero count and sum (with its bounds), so that the
            # Collector's remote-write translator ends its _sum and every bucket series too.
            assert marker.value == (None if kind == "sum" else (0, 0.0))
            assert marker.start <= marker.time
        # One flagged point per Metric message: the Collector's prometheus exporter stops reading a
        # metric's points at the first flagged one.
        assert marker.points_in_metric == 1
        assert marker.time > first_export[marker.metric].time

    pipeline.gitjob.job_created(REPO_B)
    pipeline.flush()
    pipeline.flush()
    sink.wait_requests(4)
    assert of(sink.points(), ATTRS_A, request=None) == of(sink.points(), ATTRS_A, request=0) + markers
    assert all(not p.stale for p in of(sink.points(), ATTRS_B))


def test_forget_between_exports_needs_no_marker_for_a_series_never_exported(
    sink: Sink, lifecycle: Lifecycle, make_pipeline: Any
) -> None:
    pipeline = make_pipeline(otlp_exporter(sink.protocol, sink.endpoint), lifecycle)
    pipeline.gitjob.job_created(REPO_B)
    pipeline.flush()
    pipeline.gitjob.job_created(REPO_A)
    lifecycle.forget(REPO_A)  # before any export carried it
    pipeline.flush()
    sink.wait_requests(2)
    # fleet_gitjobs_created_success_total was exported (for repo-b), so a marker is harmless but sent;
    # the other six metrics were never exported here, so nothing downstream needs deleting.
    stale = [p for p in sink.points() if p.stale]
    assert [(p.metric, p.attributes) for p in stale] in ([], [("fleet_gitjobs_created_success_total", ATTRS_A)])


def test_expired_gauge_is_sent_once_flagged_then_never_again(
    sink: Sink, clock: FakeClock, lifecycle: Lifecycle, make_pipeline: Any
) -> None:
    pipeline = make_pipeline(otlp_exporter(sink.protocol, sink.endpoint), lifecycle, gauge_ttl=30)
    pipeline.gitjob.job_succeeded(REPO_A, 5.0)
    pipeline.flush()
    clock.advance(31)
    pipeline.flush()
    pipeline.flush()
    sink.wait_requests(4)
    gauge = [p for p in sink.points() if p.metric == "fleet_gitjob_duration_seconds_gauge"]
    # The export (histogram only), then the marker on its own.
    assert [(p.request, p.stale) for p in gauge] == [(0, False), (2, True)]
    assert gauge[1].attributes == ATTRS_A and gauge[1].kind == "gauge" and gauge[1].value is None
    # The histogram of the same repo is not transient: it stays, live.
    histogram = [p for p in sink.points() if p.metric == "fleet_gitjob_duration_seconds"]
    assert [(p.request, p.stale) for p in histogram] == [(0, False), (1, False), (3, False)]


def test_series_recreated_before_the_next_export_is_not_marked(
    sink: Sink, lifecycle: Lifecycle, make_pipeline: Any
) -> None:
    pipeline = make_pipeline(otlp_exporter(sink.protocol, sink.endpoint), lifecycle)
    pipeline.gitjob.job_created(REPO_A)
    pipeline.flush()
    lifecycle.forget(REPO_A)
    lifecycle.observe(REPO_A)  # the GitRepo was re-created
    pipeline.gitjob.job_created(REPO_A)
    pipeline.flush()
    sink.wait_requests(2)
    second = of(sink.points(), ATTRS_A, request=1)
    assert [(p.stale, p.value) for p in second] == [(False, 1)]
    assert pipeline.exporter.staleness.store.pending() == 0


def test_marker_survives_a_failed_export_and_goes_out_with_the_next(
    sink: Sink, lifecycle: Lifecycle, make_pipeline: Any
) -> None:
    pipeline = make_pipeline(otlp_exporter(sink.protocol, sink.endpoint, timeout=2), lifecycle)
    pipeline.gitjob.job_created(REPO_A)
    pipeline.gitjob.job_created(REPO_B)
    pipeline.flush()
    lifecycle.forget(REPO_A)
    sink.fail_next = 2  # 400 / INTERNAL, not retried by the exporters: the export, then force_flush's marker send
    pipeline.provider.force_flush(10_000)
    assert pipeline.exporter.staleness.store.pending() == 1
    pipeline.flush()
    sink.wait_requests(3)
    stale = [p for p in sink.points() if p.stale]
    assert [(p.request, p.metric, p.attributes) for p in stale] == [(2, "fleet_gitjobs_created_success_total", ATTRS_A)]
    assert pipeline.exporter.staleness.store.pending() == 0


def test_pending_markers_are_bounded_oldest_dropped_with_a_log_line(
    http_sink: Sink, lifecycle: Lifecycle, make_pipeline: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = make_pipeline(otlp_exporter("http", http_sink.endpoint, timeout=2), lifecycle)
    staleness: StalenessMarkers = pipeline.exporter.staleness
    staleness.store.max_pending = 3
    repos = [("fleet-local", "repo-%d" % i) for i in range(5)]
    for repo in repos:
        pipeline.gitjob.job_created(repo)
    pipeline.flush()
    with caplog.at_level(logging.WARNING, logger="otel_gitjob"):
        for repo in repos:
            lifecycle.forget(repo)
    assert staleness.store.pending() == 3
    assert staleness.store.dropped_total == 2
    assert "staleness markers dropped, oldest first" in caplog.text
    pipeline.gitjob.job_created(REPO_B)
    pipeline.flush()
    http_sink.wait_requests(2)
    assert sorted(p.attrs()["name"] for p in http_sink.points() if p.stale) == ["repo-2", "repo-3", "repo-4"]


def test_unsent_marker_is_dropped_after_max_age_with_a_log_line(
    http_sink: Sink, clock: FakeClock, lifecycle: Lifecycle, make_pipeline: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = make_pipeline(otlp_exporter("http", http_sink.endpoint, timeout=2), lifecycle)
    staleness: StalenessMarkers = pipeline.exporter.staleness
    pipeline.gitjob.job_created(REPO_A)
    pipeline.gitjob.job_created(REPO_B)
    pipeline.flush()
    lifecycle.forget(REPO_A)
    http_sink.fail_next = 2
    pipeline.provider.force_flush(10_000)  # export and the marker-only flush fail
    assert staleness.store.pending() == 1
    clock.advance(staleness.store.max_age_seconds + 1)
    with caplog.at_level(logging.WARNING, logger="otel_gitjob"):
        pipeline.flush()
    assert "staleness markers dropped after" in caplog.text
    assert staleness.store.pending() == 0
    assert not [p for p in http_sink.points() if p.stale]


def test_forget_does_not_wait_for_a_hanging_collector(sink: Sink, lifecycle: Lifecycle, make_pipeline: Any) -> None:
    pipeline = make_pipeline(otlp_exporter(sink.protocol, sink.endpoint, timeout=5), lifecycle)
    pipeline.gitjob.job_created(REPO_A)
    pipeline.gitjob.job_created(REPO_B)
    pipeline.flush()
    sink.release.clear()  # the collector accepts the request and hangs
    exporting = threading.Thread(target=pipeline.provider.force_flush, args=(10_000,), name="stuck-export")
    exporting.start()
    try:
        assert sink.hanging.wait(10), "the export never reached the collector"
        started = time.perf_counter()
        assert lifecycle.forget(REPO_A) == 1
        pipeline.gitjob.job_created(REPO_B)  # the recording path neither
        assert time.perf_counter() - started < 0.5
    finally:
        sink.release.set()
        exporting.join(10)
    pipeline.flush()
    sink.wait_for(lambda points: any(p.stale and p.attributes == ATTRS_A for p in points))


def test_markers_go_out_on_force_flush_when_the_collection_is_empty(
    sink: Sink, lifecycle: Lifecycle, make_pipeline: Any
) -> None:
    pipeline = make_pipeline(otlp_exporter(sink.protocol, sink.endpoint), lifecycle)
    pipeline.gitjob.job_created(REPO_A)
    pipeline.flush()
    lifecycle.forget(REPO_A)  # the last repo: the SDK collects nothing and skips the export
    pipeline.flush()
    stale = sink.wait_for(lambda points: any(p.stale for p in points))
    stale = [p for p in stale if p.stale]
    assert [(p.metric, p.attributes) for p in stale] == [("fleet_gitjobs_created_success_total", ATTRS_A)]
    assert stale[0].request > 0


def test_idle_flusher_sends_markers_when_no_export_comes(
    http_sink: Sink, lifecycle: Lifecycle, make_pipeline: Any
) -> None:
    pipeline = make_pipeline(otlp_exporter("http", http_sink.endpoint), lifecycle)
    pipeline.exporter.staleness.flusher.interval = 0.2
    pipeline.gitjob.job_created(REPO_A)
    pipeline.flush()
    lifecycle.forget(REPO_A)  # no flush from the test from here on
    http_sink.wait_for(lambda points: any(p.stale for p in points), timeout=5)


def test_delta_series_idle_before_the_forget_is_marked_too(
    sink: Sink, lifecycle: Lifecycle, make_pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
    pipeline = make_pipeline(otlp_exporter(sink.protocol, sink.endpoint), lifecycle)
    pipeline.gitjob.job_created(REPO_A)
    pipeline.gitjob.job_created(REPO_B)
    pipeline.flush()
    pipeline.gitjob.job_created(REPO_B)
    pipeline.flush()  # repo-a idle: the SDK dropped its delta series, nothing is left to evict
    lifecycle.forget(REPO_A)
    pipeline.gitjob.job_created(REPO_B)
    pipeline.flush()
    sink.wait_requests(3)
    stale = [p for p in sink.points() if p.stale]
    assert [(p.request, p.metric, p.attributes, p.temporality) for p in stale] == [
        (3, "fleet_gitjobs_created_success_total", ATTRS_A, 1)
    ]
    # The marker's interval starts where the last export's ended.
    live_b = of(sink.points(), ATTRS_B, request=1)[0]
    assert stale[0].start == live_b.time


def test_other_exporters_get_no_markers() -> None:
    lifecycle = Lifecycle()
    try:
        wrapped = LifecycleExporter(lifecycle, ConsoleMetricExporter())
        assert wrapped.staleness is None
        assert hooks_of(lifecycle).registry.removal_listeners() == 0
    finally:
        lifecycle.shutdown()


def test_shutdown_stops_listening_and_restores_the_exporter(
    sink: Sink, lifecycle: Lifecycle, make_pipeline: Any
) -> None:
    exporter = otlp_exporter(sink.protocol, sink.endpoint)
    # Only the gRPC exporter is patched (its encode step hands back our requests); HTTP sends them as they are.
    patched = "_translate_data"
    pipeline = make_pipeline(exporter, lifecycle)
    assert (patched in vars(exporter)) == (sink.protocol == "grpc")
    assert hooks_of(lifecycle).registry.removal_listeners() == 1
    pipeline.provider.shutdown()
    assert patched not in vars(exporter)
    assert hooks_of(lifecycle).registry.removal_listeners() == 0


def test_installed_otlp_exporters_pass_the_push_seams_self_check(
    sink: Sink, lifecycle: Lifecycle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The adapter for this exporter release must be found and must deliver a request to a real receiver;
    # a release that renames what the adapters use fails here (at run time it would run degraded).
    from otel_gitjob._internal.core import degraded
    from otel_gitjob._internal.push import _seam

    monkeypatch.setattr(degraded, "_checked", {})
    _seam.reset_checks()
    exporter = otlp_exporter(sink.protocol, sink.endpoint)
    transport = _seam.transport_for(exporter)
    assert transport is not None and transport.sends_requests, transport
    assert degraded.seam_states() == {"push": None}
    exporter.shutdown()


def test_exporter_whose_internals_fit_no_adapter_runs_degraded_with_one_warning(
    http_sink: Sink, lifecycle: Lifecycle, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    from otel_gitjob._internal.core import degraded
    from otel_gitjob._internal.push import _seam

    monkeypatch.setattr(degraded, "_checked", {})
    monkeypatch.setattr(_seam, "_warned_markers", threading.Event())
    _seam.reset_checks()
    for name in ("_export_batch", "_export_with_retries", "_export"):
        monkeypatch.delattr(OTLPMetricExporter, name, raising=False)
    with caplog.at_level(logging.WARNING, logger="otel_gitjob"):
        wrapped = LifecycleExporter(lifecycle, OTLPMetricExporter(endpoint=http_sink.endpoint))
        LifecycleExporter(lifecycle, OTLPMetricExporter(endpoint=http_sink.endpoint)).shutdown()
    _seam.reset_checks()
    assert wrapped.staleness is not None and not wrapped.staleness._transport.sends_requests
    assert "push" in degraded.degraded_seams()
    assert len([r for r in caplog.records if "push seam runs degraded" in r.getMessage()]) == 1
    assert len([r for r in caplog.records if "staleness markers are not sent" in r.getMessage()]) == 1
    wrapped.shutdown()


def test_an_adapter_whose_method_no_longer_delivers_fails_the_self_check(
    http_sink: Sink, lifecycle: Lifecycle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A release where the private method the adapter calls still exists, with the same parameters, but
    # sends nothing: only the behavioural check (a receiver on loopback) can tell.
    import functools
    import types

    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics.export import MetricExportResult

    from otel_gitjob._internal.core import degraded
    from otel_gitjob._internal.push import _seam

    monkeypatch.setattr(degraded, "_checked", {})
    monkeypatch.setattr(_seam, "_warned_markers", threading.Event())
    _seam.reset_checks()
    adapter = next(a for a in _seam._ADAPTERS[0][2] if a.fits(OTLPMetricExporter))
    method, result = {
        "http-export-batch": ("_export_batch", MetricExportResult.SUCCESS),
        "http-export-with-retries": ("_export_with_retries", MetricExportResult.SUCCESS),
        "http-export-bytes": ("_export", types.SimpleNamespace(ok=True, status_code=200)),
    }[adapter.name]
    original = getattr(OTLPMetricExporter, method)

    @functools.wraps(original)
    def sends_nothing(self: Any, *args: Any, **kwargs: Any) -> Any:
        return result

    monkeypatch.setattr(OTLPMetricExporter, method, sends_nothing)
    transport = _seam.transport_for(OTLPMetricExporter(endpoint=http_sink.endpoint))
    _seam.reset_checks()
    assert isinstance(transport, _seam.PublicTransport)
    assert "failed its self-check" in (degraded.seam_states()["push"] or "")


def test_a_grpc_exporter_that_no_longer_sends_what_translate_data_returns_fails_the_self_check(
    lifecycle: Lifecycle, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functools

    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.sdk.metrics.export import MetricExportResult

    from otel_gitjob._internal.core import degraded
    from otel_gitjob._internal.push import _seam

    monkeypatch.setattr(degraded, "_checked", {})
    monkeypatch.setattr(_seam, "_warned_markers", threading.Event())
    _seam.reset_checks()
    original = OTLPMetricExporter._export

    @functools.wraps(original)
    def encodes_itself(self: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
        self._client.Export(request=ExportMetricsServiceRequest(), metadata=None, timeout=5)
        return MetricExportResult.SUCCESS

    monkeypatch.setattr(OTLPMetricExporter, "_export", encodes_itself)
    transport = _seam.transport_for(OTLPMetricExporter(endpoint="127.0.0.1:9", insecure=True))
    _seam.reset_checks()
    assert isinstance(transport, _seam.PublicTransport)
    assert "failed its self-check" in (degraded.seam_states()["push"] or "")
