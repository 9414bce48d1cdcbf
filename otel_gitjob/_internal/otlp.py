"""OTLP staleness markers: a removed series is sent one last time, flagged ``NO_RECORDED_VALUE``.

Forgetting a repo (or expiring a transient series) stops its points at the
source, but whatever sits behind the OTLP exporter still holds the series: the
Collector's ``prometheus`` exporter keeps serving it until ``metric_expiration``
and Prometheus keeps the last sample of a remote-written series for its
5-minute lookback. OTLP's staleness marker is a data point whose ``flags`` carry
``NO_RECORDED_VALUE`` (DataPointFlags bit 1); on it the ``prometheus`` exporter
drops the series and ``prometheusremotewrite`` writes a Prometheus stale marker,
so deletion reaches the end of the pipeline with the next export.

The SDK's data model has no flags, so they are added where the OTLP request is
encoded, and only here:

* :class:`StalenessMarkers` listens to the lifecycle's removals and keeps a
  bounded, ordered set of pending markers (oldest dropped first, each drop
  logged; markers older than ``max_age_seconds`` are dropped, logged, too).
* At the next export it encodes the markers with the exporter's own public
  encoder (``encode_metrics``), sets the flag and clears the values, and the
  wrapped exporter's encode step appends them to the request it sends: through
  ``_export_batch`` for OTLP/HTTP and ``_translate_data`` for OTLP/gRPC, both
  patched on the exporter *instance*. The request therefore goes out with the
  exporter's own endpoint, TLS, headers, compression, timeout and retries.
* Markers leave the pending set only when the export that carried them
  succeeded; a failed export leaves them for the next one.

Every marker is its own ``Metric`` message with one data point: the Collector
Contrib ``prometheus`` exporter's accumulator returns from a metric's point loop
at the first flagged point, so a marker sharing a ``Metric`` with other points
would hide them (live points or other markers) from it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Buckets,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)

from otel_gitjob._internal import _sdk
from otel_gitjob._internal.points import collection_stamp

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from otel_gitjob._internal.registry import ObjectKey as Identity
    from otel_gitjob._internal.registry import SeriesRegistry

__all__ = [
    "NO_RECORDED_VALUE",
    "StalenessMarkers",
    "staleness_markers_for",
]

_logger = logging.getLogger("otel_gitjob")

NO_RECORDED_VALUE = 1
"""``DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK`` of the OTLP metrics proto."""

_HTTP_MODULE = "opentelemetry.exporter.otlp.proto.http.metric_exporter"
_GRPC_MODULE = "opentelemetry.exporter.otlp.proto.grpc.metric_exporter"

# 50,000 series is the deletion of ~7,000 GitRepos (7 series each) in one export
# interval, a few MB at most, which no Collector outage can grow past.
DEFAULT_MAX_PENDING = 50_000
# Past 5 minutes a marker is pointless: the Collector's prometheus exporter
# (metric_expiration) and Prometheus (lookback delta) have dropped the series by then.
DEFAULT_MAX_AGE_SECONDS = 300.0
# Delta series tracked to mark idle ones on forget (see _track_delta): far more
# than the SDK's default cardinality limit (2,000 per instrument) times Fleet's 7 instruments.
DEFAULT_MAX_TRACKED_DELTA = 200_000

_SeriesKey = tuple[str, str, Hashable]  # (scope name, metric name, attribute key)
_ShapeKey = tuple[str, str]  # (scope name, metric name)
_Exported = tuple[Metric, Any, Any]  # (metric, its SDK Resource, its InstrumentationScope)


def staleness_markers_for(registry: SeriesRegistry, exporter: MetricExporter) -> StalenessMarkers | None:
    """Staleness markers for ``exporter`` when it is an OTLP/HTTP or OTLP/gRPC metric exporter, else None.

    Looks the exporter classes up in ``sys.modules`` so that nothing is imported
    for other exporters (the OTLP packages are optional).
    """
    for module_name, transport_class in ((_HTTP_MODULE, _HttpTransport), (_GRPC_MODULE, _GrpcTransport)):
        module = sys.modules.get(module_name)
        exporter_class = getattr(module, "OTLPMetricExporter", None)
        if exporter_class is not None and isinstance(exporter, exporter_class):
            missing = [name for name in transport_class.needs if not hasattr(exporter, name)]
            if missing:
                _logger.warning(
                    "otel-gitjob: %s has no %s; forgotten series are still not exported, but no staleness "
                    "markers are sent (the Collector drops them at its metric_expiration)",
                    exporter_class.__qualname__,
                    ", ".join(missing),
                )
                return None
            return StalenessMarkers(registry, exporter, transport_class(exporter))
    return None


@dataclass(slots=True, eq=False)
class _Marker:
    """A removed series waiting to be sent flagged."""

    key: _SeriesKey
    identity: Identity | None
    attributes: Mapping[str, Any]
    enqueued_at: float
    seq: int


@dataclass(slots=True, eq=False)
class _Shape:
    """What an exported metric looks like, learnt from the exports: markers must match it exactly."""

    resource: Resource
    scope: InstrumentationScope
    name: str
    description: str | None
    unit: str | None
    data_type: type
    temporality: AggregationTemporality | None
    is_monotonic: bool
    start_time_unix_nano: int
    time_unix_nano: int


@dataclass(slots=True, eq=False)
class _Batch:
    """The markers one export carries; ``owner`` is the first request (or gRPC data) they were attached to."""

    markers: list[_Marker]
    encoded: Any  # ExportMetricsServiceRequest holding only the flagged points
    owner: Any = None
    resolved: list[_Marker] = field(default_factory=list)


class StalenessMarkers:
    """Sends each series the lifecycle removes one final time, flagged ``NO_RECORDED_VALUE``.

    Owned by a :class:`~otel_gitjob._internal.export.LifecycleExporter` wrapping an
    OTLP exporter; registers itself as a removal listener of the lifecycle.

    Args:
        registry: The registry whose removals are marked.
        exporter: The OTLP metric exporter (HTTP or gRPC) that sends the markers.
        transport: How markers are attached to that exporter's requests.
        max_pending: Markers kept while they cannot be sent; the oldest are dropped beyond it.
        max_age_seconds: A marker not sent within this time is dropped.
        idle_flush_seconds: When this long passes with markers pending and no export
            (the SDK skips the export of an empty collection, e.g. after the last
            repo is forgotten), they are sent on their own. ``OTEL_METRIC_EXPORT_INTERVAL``
            (the reader's own default) when None; 0 disables.
        max_tracked_delta: Bound on the delta series remembered so that a forget
            marks them even when they were idle (see :meth:`_track_delta`).
        clock: Monotonic clock in seconds for marker ages; the lifecycle's by default.
    """

    def __init__(
        self,
        registry: SeriesRegistry,
        exporter: MetricExporter,
        transport: _Transport,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        idle_flush_seconds: float | None = None,
        max_tracked_delta: int = DEFAULT_MAX_TRACKED_DELTA,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._registry = registry
        self._exporter = exporter
        self._transport = transport
        self.max_pending = max_pending
        self.max_age_seconds = max_age_seconds
        self.max_tracked_delta = max_tracked_delta
        if idle_flush_seconds is None:
            idle_flush_seconds = _export_interval_seconds()
        self.idle_flush_seconds = idle_flush_seconds
        self._clock = clock if clock is not None else getattr(registry, "_clock", time.monotonic)
        # _lock guards the pending markers and the delta index; never held during I/O and
        # taken by the removal listener (forget/expiry path), never by the recording path.
        self._lock = threading.Lock()
        self._pending: OrderedDict[_SeriesKey, _Marker] = OrderedDict()
        self._seq = 0
        self._delta: dict[Identity, dict[_SeriesKey, Mapping[str, Any]]] = {}
        self._delta_count = 0
        self._delta_full_logged = False
        self._seen_removal_ns = 0
        # _send_lock serialises the sends (exports and marker-only flushes); shapes are only
        # touched under it.
        self._send_lock = threading.Lock()
        self._shapes: dict[_ShapeKey, _Shape] = {}
        self._local = threading.local()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._closed = False
        self.dropped_total = 0
        self.sent_total = 0
        transport.install(self._attach)
        registry.add_removal_listener(self._on_removed)

    # -- the removal listener (called by the lifecycle under its op lock) ----------------------------------

    def _on_removed(self, identity: Identity | None, removed: list[tuple[Any, Mapping[str, Any]]]) -> None:
        now = self._clock()
        with self._lock:
            if self._closed:
                return
            tracked = self._delta.get(identity) if identity is not None else None
            # tracked is only set when identity is not None; the explicit check narrows identity.
            if tracked is not None and identity is not None and self._registry.is_blocked(identity):
                # A forget: every delta series of the repo goes, also those idle in this interval.
                del self._delta[identity]
                self._delta_count -= len(tracked)
                for key, attributes in tracked.items():
                    self._enqueue_locked(key, identity, attributes, now)
            for instrument, attributes in removed:
                scope = getattr(instrument, "instrumentation_scope", None)
                key = (getattr(scope, "name", ""), instrument.name, _attributes_key(attributes))
                if tracked is not None and tracked.pop(key, None) is not None:
                    self._delta_count -= 1
                self._enqueue_locked(key, identity, attributes, now)
            if tracked is not None and identity is not None and not tracked and self._delta.get(identity) is tracked:
                del self._delta[identity]
            self._trim_locked()
            self._start_idle_flusher_locked()

    def _enqueue_locked(
        self, key: _SeriesKey, identity: Identity | None, attributes: Mapping[str, Any], now: float
    ) -> None:
        self._seq += 1
        # A newer removal of the same series replaces the older marker and moves to the back.
        self._pending.pop(key, None)
        self._pending[key] = _Marker(key, identity, attributes, now, self._seq)

    def _trim_locked(self) -> None:
        excess = len(self._pending) - self.max_pending
        if excess <= 0:
            return
        for _ in range(excess):
            self._pending.popitem(last=False)
        self.dropped_total += excess
        _logger.warning(
            "otel-gitjob: %d staleness markers dropped, oldest first (more than %d pending: is the Collector "
            "down?); the Collector drops those series at its own expiry instead",
            excess,
            self.max_pending,
        )

    # -- exporting -----------------------------------------------------------------------------------------

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        """Export ``metrics_data`` (already filtered by the lifecycle) with the pending markers attached."""
        with self._send_lock:
            by_shape = _metrics_by_shape(metrics_data)
            stamp = collection_stamp(metrics_data)
            self._mark_forgotten_delta_series()
            batch = self._prepare(by_shape, stamp)
            self._learn(by_shape)
            exporter = self._exporter
            if batch is None:
                return exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            return self._send(batch, lambda: exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs))

    def flush(self) -> bool:
        """Send the pending markers now, on their own. Returns False when a send failed."""
        with self._send_lock:
            self._mark_forgotten_delta_series()
            batch = self._prepare({}, None)
            if batch is None:
                return True
            if batch.encoded is None:  # nothing left to send, only markers to settle
                return self._send(batch, _succeed) is MetricExportResult.SUCCESS
            return self._send(batch, self._transport.send_alone) is MetricExportResult.SUCCESS

    def _send(self, batch: _Batch, send: Callable[[], MetricExportResult]) -> MetricExportResult:
        local = self._local
        local.batch = batch
        try:
            result = send()
            if batch.owner is None and batch.encoded is not None and result is MetricExportResult.SUCCESS:
                # The exporter sent no request (a batch size split an empty collection): send them alone.
                result = self._transport.send_alone()
        except Exception:
            _logger.exception("otel-gitjob: OTLP export with %d staleness markers failed", len(batch.markers))
            result = MetricExportResult.FAILURE
        finally:
            local.batch = None
        delivered = result is MetricExportResult.SUCCESS and (batch.owner is not None or batch.encoded is None)
        done = batch.resolved + batch.markers if delivered else batch.resolved
        with self._lock:
            pending = self._pending
            for marker in done:
                # Only if not replaced meanwhile by a newer removal of the same series.
                if pending.get(marker.key) is marker:
                    del pending[marker.key]
        if delivered:
            self.sent_total += len(batch.markers)
        elif batch.markers:
            _logger.info(
                "otel-gitjob: export failed; %d staleness markers stay pending for the next export",
                len(batch.markers),
            )
        return result

    def _prepare(self, by_shape: Mapping[_ShapeKey, list[_Exported]], stamp: int | None) -> _Batch | None:
        """The pending markers to send with this export, encoded; None when there are none."""
        now = self._clock()
        with self._lock:
            if not self._pending:
                return None
            markers = list(self._pending.values())
        aged = [marker for marker in markers if now - marker.enqueued_at > self.max_age_seconds]
        if aged:
            self.dropped_total += len(aged)
            _logger.warning(
                "otel-gitjob: %d staleness markers dropped after %.0f s unsent (exports failing?); the "
                "Collector drops those series at its own expiry instead",
                len(aged),
                self.max_age_seconds,
            )
            markers = [marker for marker in markers if now - marker.enqueued_at <= self.max_age_seconds]
        batch = _Batch(markers=[], encoded=None, resolved=aged)
        live: dict[_ShapeKey, set[Hashable]] = {}
        unknown = 0
        is_blocked = self._registry.is_blocked
        for marker in markers:
            shape_key = marker.key[:2]
            if shape_key not in self._shapes:
                # Never exported by this exporter, so nothing downstream to delete.
                unknown += 1
                batch.resolved.append(marker)
                continue
            if marker.identity is not None and is_blocked(marker.identity):
                # Still forgotten: its late writes are dropped, so it cannot be in this export.
                batch.markers.append(marker)
                continue
            keys = live.get(shape_key)
            if keys is None:
                keys = live[shape_key] = _live_keys(by_shape.get(shape_key, ()))
            if marker.key[2] in keys:
                # The series is alive again (re-created) and in this very export: not stale.
                batch.resolved.append(marker)
                continue
            batch.markers.append(marker)
        if unknown:
            _logger.debug("otel-gitjob: %d removed series were never exported here; no marker needed", unknown)
        if batch.markers:
            batch.encoded = self._encode(batch.markers, stamp if stamp is not None else time.time_ns())
        return batch

    def _encode(self, markers: list[_Marker], time_unix_nano: int) -> Any:
        """An ExportMetricsServiceRequest with one flagged, value-less point per marker, one Metric each."""
        from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

        # encode_metrics keys resources and scopes by value: group so that none is overwritten.
        grouped: dict[Any, dict[Any, list[Metric]]] = {}
        for marker in markers:
            shape = self._shapes[marker.key[:2]]
            metric = Metric(
                name=shape.name,
                description=shape.description,
                unit=shape.unit,
                data=_marker_data(shape, marker.attributes, time_unix_nano),
            )
            grouped.setdefault(shape.resource, {}).setdefault(shape.scope, []).append(metric)
        data = MetricsData(
            resource_metrics=[
                ResourceMetrics(
                    resource=resource,
                    scope_metrics=[
                        ScopeMetrics(scope=scope, metrics=metrics, schema_url=scope.schema_url or "")
                        for scope, metrics in scopes.items()
                    ],
                    schema_url=resource.schema_url or "",
                )
                for resource, scopes in grouped.items()
            ]
        )
        request = encode_metrics(data)
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    for point in getattr(metric, kind).data_points:
                        point.flags |= NO_RECORDED_VALUE
                        # OTLP: a flagged point's value is to be ignored; send none at all.
                        if kind in ("sum", "gauge"):
                            point.ClearField("value")
                        else:
                            for name in ("sum", "min", "max"):
                                point.ClearField(name)
        return request

    def _attach(self, owner: Any, request: Any) -> None:
        """Called by the patched encode step with each request the exporter is about to send."""
        batch = getattr(self._local, "batch", None)
        if batch is None or batch.encoded is None:
            return
        if batch.owner is None:
            batch.owner = owner
        elif batch.owner is not owner:
            return  # a later split batch of the same export: the markers ride on the first
        _merge(request, batch.encoded)

    # -- learning from the exports -------------------------------------------------------------------------

    def _learn(self, by_shape: Mapping[_ShapeKey, list[_Exported]]) -> None:
        for (scope_name, name), metrics in by_shape.items():
            metric, resource, scope = metrics[0]
            data = metric.data
            first = data.data_points[0]
            temporality = getattr(data, "aggregation_temporality", None)
            self._shapes[(scope_name, name)] = _Shape(
                resource=resource,
                scope=scope,
                name=metric.name,
                description=metric.description,
                unit=metric.unit,
                data_type=type(data),
                temporality=temporality,
                is_monotonic=getattr(data, "is_monotonic", False),
                start_time_unix_nano=getattr(first, "start_time_unix_nano", 0) or 0,
                time_unix_nano=first.time_unix_nano,
            )
            if temporality is AggregationTemporality.DELTA:
                self._track_delta(scope_name, name, metrics)

    def _track_delta(self, scope_name: str, name: str, metrics: list[_Exported]) -> None:
        """Remember exported delta series by repo.

        The SDK drops a delta series from its storage at each collection, so a
        repo idle in the interval before its ``forget`` has nothing left to
        evict and the lifecycle reports no removal: the series exported earlier
        would be left to the Collector's expiry. Only series with a repo
        identity are tracked, since only those can be forgotten.
        """
        object_of = self._registry.object_of
        with self._lock:
            delta = self._delta
            for metric, _, _ in metrics:
                for point in metric.data.data_points:
                    attributes = point.attributes
                    identity = object_of(name, attributes)
                    # object_of(_, None) is None, so the attributes check changes nothing but narrows.
                    if identity is None or attributes is None:
                        continue
                    series = delta.get(identity)
                    if series is None:
                        if self._delta_count >= self.max_tracked_delta:
                            if not self._delta_full_logged:
                                self._delta_full_logged = True
                                _logger.warning(
                                    "otel-gitjob: more than %d delta series tracked; repos first exported after "
                                    "this get no staleness marker when forgotten while idle",
                                    self.max_tracked_delta,
                                )
                            continue
                        series = delta[identity] = {}
                    key = (scope_name, name, _attributes_key(attributes))
                    if key not in series:
                        series[key] = attributes
                        self._delta_count += 1

    def _mark_forgotten_delta_series(self) -> None:
        """Mark tracked delta series of repos forgotten since the last look (the listener saw none of them)."""
        registry = self._registry
        stamp = registry.last_removal_ns
        if stamp == self._seen_removal_ns or not self._delta:
            self._seen_removal_ns = stamp
            return
        self._seen_removal_ns = stamp
        now = self._clock()
        # A snapshot, since forget changes the blocks concurrently.
        blocks = registry.blocked()
        with self._lock:
            delta = self._delta
            forgotten = [identity for identity in delta if identity in blocks]
            for identity in forgotten:
                tracked = delta.pop(identity)
                self._delta_count -= len(tracked)
                for key, attributes in tracked.items():
                    self._enqueue_locked(key, identity, attributes, now)
            if forgotten:
                self._trim_locked()

    # -- idle flushing -------------------------------------------------------------------------------------

    def _start_idle_flusher_locked(self) -> None:
        if self._thread is not None or not self.idle_flush_seconds or self._closed:
            self._wake.notify()
            return
        self._thread = threading.Thread(target=self._idle_flusher, name="otel-gitjob-otlp-markers", daemon=True)
        self._thread.start()

    def _idle_flusher(self) -> None:
        """Send markers that waited a whole export interval without an export to carry them."""
        while True:
            with self._lock:
                while not self._closed and not self._pending:
                    self._wake.wait()
                waiting_since = self._seq
                if not self._sleep_locked(self.idle_flush_seconds):
                    return
                oldest = next(iter(self._pending.values()), None)
                due = oldest is not None and oldest.seq <= waiting_since
            if due:
                try:
                    self.flush()
                except Exception:  # the flusher must outlive any exporter error
                    _logger.exception("otel-gitjob: sending staleness markers failed")

    def _sleep_locked(self, seconds: float) -> bool:
        """Wait ``seconds`` of real time (enqueues notify, they don't shorten it); False once closed."""
        deadline = time.monotonic() + seconds
        while not self._closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            self._wake.wait(remaining)
        return False

    # -- lifecycle -----------------------------------------------------------------------------------------

    def pending(self) -> int:
        """Markers waiting to be sent."""
        with self._lock:
            return len(self._pending)

    def close(self, flush: bool = True) -> None:
        """Send what is pending (best effort), stop listening and stop the idle flusher. Idempotent."""
        if self._closed:
            return
        if flush:
            try:
                self.flush()
            except Exception:
                _logger.exception("otel-gitjob: sending staleness markers at shutdown failed")
        with self._lock:
            self._closed = True
            self._wake.notify_all()
            thread, self._thread = self._thread, None
            self._pending.clear()
            self._delta.clear()
        self._registry.remove_removal_listener(self._on_removed)
        self._transport.uninstall()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)


# -- transports: where the markers join the exporter's request -------------------------------------------------


class _Transport:
    """Patches one OTLP exporter instance so that its encode step calls ``attach(owner, request)``."""

    needs: tuple[str, ...] = ()

    def __init__(self, exporter: Any) -> None:
        self.exporter = exporter

    def install(self, attach: Callable[[Any, Any], None]) -> None:
        raise NotImplementedError

    def uninstall(self) -> None:
        for name in self.needs:
            self.exporter.__dict__.pop(name, None)  # back to the class's method

    def send_alone(self) -> MetricExportResult:
        """Send a request holding nothing but what ``attach`` adds."""
        raise NotImplementedError


class _HttpTransport(_Transport):
    """OTLP/HTTP: ``export()`` encodes (and splits) the request, then sends each part with ``_export_batch``."""

    needs = ("_export_batch",)

    def install(self, attach: Callable[[Any, Any], None]) -> None:
        export_batch = self.exporter._export_batch

        def export_batch_with_markers(export_request: Any) -> MetricExportResult:
            attach(export_request, export_request)
            return export_batch(export_request)

        self.exporter._export_batch = export_batch_with_markers

    def send_alone(self) -> MetricExportResult:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

        if getattr(self.exporter, "_shutdown", False):
            return MetricExportResult.FAILURE
        return self.exporter._export_batch(ExportMetricsServiceRequest())


class _GrpcTransport(_Transport):
    """OTLP/gRPC: ``_export(data)`` calls ``_translate_data(data)`` once per attempt (retries re-encode)."""

    needs = ("_translate_data", "_export")

    def install(self, attach: Callable[[Any, Any], None]) -> None:
        translate = self.exporter._translate_data

        def translate_with_markers(data: MetricsData) -> Any:
            request = translate(data)
            attach(data, request)  # keyed by data: each retry of the same batch carries them again
            return request

        self.exporter._translate_data = translate_with_markers

    def uninstall(self) -> None:
        self.exporter.__dict__.pop("_translate_data", None)

    def send_alone(self) -> MetricExportResult:
        return self.exporter._export(data=MetricsData(resource_metrics=[]))


# -- helpers ---------------------------------------------------------------------------------------------------


def _succeed() -> MetricExportResult:
    return MetricExportResult.SUCCESS


def _attributes_key(attributes: Mapping[str, Any]) -> Hashable:
    try:
        return frozenset(attributes.items())
    except TypeError:  # an unhashable value: fall back to the SDK's own (slower) key
        return _sdk.series_key(attributes)


def _metrics_by_shape(metrics_data: MetricsData) -> dict[_ShapeKey, list[_Exported]]:
    """Exported metrics with points, by (scope name, metric name), with their resource and scope."""
    by_shape: dict[_ShapeKey, list[_Exported]] = {}
    for resource_metrics in metrics_data.resource_metrics:
        resource = resource_metrics.resource
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope
            for metric in scope_metrics.metrics:
                if metric.data.data_points:
                    by_shape.setdefault((scope.name, metric.name), []).append((metric, resource, scope))
    return by_shape


def _live_keys(metrics: Iterable[_Exported]) -> set[Hashable]:
    # The SDK types point attributes as optional, but its collected points always carry a mapping.
    return {
        _attributes_key(cast("Mapping[str, Any]", point.attributes))
        for metric, _, _ in metrics
        for point in metric.data.data_points
    }


def _marker_data(shape: _Shape, attributes: Mapping[str, Any], time_unix_nano: int) -> Any:
    """SDK data holding one zero point for ``shape``; the flag is set after encoding."""
    if shape.temporality is AggregationTemporality.DELTA:
        # The interval since the last export: where this series' next delta would have started.
        start = shape.time_unix_nano
    else:
        # Cumulative: the metric's start as last exported (receivers key a stale point by name and
        # attributes, so the exact per-series start the SDK no longer holds is not needed).
        start = shape.start_time_unix_nano
    start = min(start, time_unix_nano)
    # Sum, Histogram and ExponentialHistogram always carry an aggregation_temporality, so a shape
    # learnt from one (see _learn) has one; only a Gauge's shape has None.
    temporality = cast(AggregationTemporality, shape.temporality)
    if shape.data_type is Sum:
        sum_point = NumberDataPoint(attributes, start, time_unix_nano, 0)
        return Sum([sum_point], temporality, shape.is_monotonic)
    if shape.data_type is Histogram:
        histogram_point = HistogramDataPoint(attributes, start, time_unix_nano, 0, 0, [], [], 0, 0)
        return Histogram([histogram_point], temporality)
    if shape.data_type is ExponentialHistogram:
        empty = Buckets(offset=0, bucket_counts=[])
        exponential_point = ExponentialHistogramDataPoint(
            attributes, start, time_unix_nano, 0, 0, 0, 0, empty, empty, NO_RECORDED_VALUE, 0, 0
        )
        return ExponentialHistogram([exponential_point], temporality)
    gauge_point = NumberDataPoint(attributes, 0, time_unix_nano, 0)
    return Gauge([gauge_point])


def _merge(request: Any, markers: Any) -> None:
    """Append the markers' metrics to ``request``, under the same resource and scope when present."""
    for marker_rm in markers.resource_metrics:
        target_rm = next(
            (
                rm
                for rm in request.resource_metrics
                if rm.resource == marker_rm.resource and rm.schema_url == marker_rm.schema_url
            ),
            None,
        )
        if target_rm is None:
            request.resource_metrics.append(marker_rm)
            continue
        for marker_sm in marker_rm.scope_metrics:
            target_sm = next(
                (
                    sm
                    for sm in target_rm.scope_metrics
                    if sm.scope == marker_sm.scope and sm.schema_url == marker_sm.schema_url
                ),
                None,
            )
            if target_sm is None:
                target_rm.scope_metrics.append(marker_sm)
            else:
                target_sm.metrics.extend(marker_sm.metrics)


def _export_interval_seconds() -> float:
    raw = os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "")
    try:
        millis = float(raw) if raw.strip() else 60_000.0
    except ValueError:
        millis = 60_000.0
    return millis / 1000.0 if millis > 0 else 60.0
