"""``StalenessMarkers``: ties the store, the encoding, the transport and the flusher to one OTLP exporter.

Each export goes out first, exactly as the exporter alone would send it; then
the pending items, in order, in requests of their own.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

from otel_gitjob._internal.core import _sdk
from otel_gitjob._internal.core.locks import ranked_lock
from otel_gitjob._internal.push._seam import Transport, transport_for
from otel_gitjob._internal.push.encoding import (
    ShapeBook,
    ShapeKey,
    attributes_key,
    build_requests,
    encode,
    final_deltas,
    live_keys,
    metrics_by_shape,
)
from otel_gitjob._internal.push.flusher import IdleFlusher
from otel_gitjob._internal.push.store import Item, MarkerStore, SeriesKey

if TYPE_CHECKING:
    from otel_gitjob._internal.core.registry import ObjectKey, SeriesRegistry
    from otel_gitjob._internal.core.selfmetrics import SelfMetrics

__all__ = ["StalenessMarkers", "staleness_markers_for"]

_logger = logging.getLogger("otel_gitjob")

# A final delta and its marker must not share a millisecond: Prometheus keys samples by millisecond,
# and remote write refuses a second sample (the stale NaN) at the same timestamp.
_MARKER_AFTER_FINAL_NS = 1_000_000


def staleness_markers_for(
    registry: SeriesRegistry,
    exporter: MetricExporter,
    *,
    owner: Any = None,
    self_metrics: SelfMetrics | None = None,
) -> StalenessMarkers | None:
    """:class:`StalenessMarkers` (same arguments) when ``exporter`` is an OTLP/HTTP or OTLP/gRPC exporter, else None."""
    transport = transport_for(exporter)
    if transport is None:
        return None
    return StalenessMarkers(registry, exporter, transport, owner=owner, self_metrics=self_metrics)


class StalenessMarkers:
    """Sends each series the lifecycle removes one final time, flagged ``NO_RECORDED_VALUE``.

    Owned by the :class:`~otel_gitjob.LifecycleExporter` wrapping an OTLP exporter; listens to the
    registry's removals. The bounds and counters are the :attr:`store`'s; items pending with no
    export for ``OTEL_METRIC_EXPORT_INTERVAL`` are sent by the :attr:`flusher`.

    Args:
        registry: The registry whose removals are marked; its clock ages the items.
        exporter: The OTLP metric exporter (HTTP or gRPC) that sends the markers.
        transport: How requests are sent through that exporter.
        owner: The exporter the SDK reader calls (final deltas of that reader only); ``exporter`` when None.
        self_metrics: Where ``otel_gitjob_staleness_markers_*`` are reported.
    """

    def __init__(
        self,
        registry: SeriesRegistry,
        exporter: MetricExporter,
        transport: Transport,
        *,
        owner: Any = None,
        self_metrics: SelfMetrics | None = None,
    ) -> None:
        self._registry = registry
        self._exporter = exporter
        self._owner = owner if owner is not None else exporter
        self._transport = transport
        interval = _export_interval_seconds()
        self.store = MarkerStore(clock=getattr(registry, "_clock", time.monotonic), warn_interval=max(interval, 60.0))
        self._shapes = ShapeBook()
        self._seen_removal_ns = 0
        # Serialises the sends (exports and item-only flushes); shapes are only touched under it.
        self._send_lock = ranked_lock("markers.send")
        self.flusher = IdleFlusher(interval, self.store, self.flush)
        self._closed = False
        self._self_metrics = self_metrics
        self._sources: list[tuple[str, Callable[[], Any]]] = [
            ("otel_gitjob_staleness_markers_pending", lambda: [(self.store.pending(), {})]),
            ("otel_gitjob_staleness_markers_sent", lambda: [(self.store.sent_total, {})]),
            ("otel_gitjob_staleness_markers_dropped", lambda: [(self.store.dropped_total, {})]),
        ]
        if self_metrics is not None:
            for name, source in self._sources:
                self_metrics.add(name, source)
        transport.install()
        registry.add_removal_listener(self._on_removed)

    # -- the removal listener (called by the registry under its op lock) ----------------------------------------

    def _on_removed(
        self,
        identity: ObjectKey | None,
        removed: list[tuple[Any, Mapping[str, Any]]],
        finals: list[_sdk.FinalPoint] | None = None,
    ) -> None:
        if self._closed:
            return
        keys: list[tuple[SeriesKey, Mapping[str, Any]]] = []
        for instrument, attributes in removed:
            scope_name = getattr(getattr(instrument, "instrumentation_scope", None), "name", "")
            attributes_id = attributes_key(attributes)
            # Keyed by the exported stream name (a View may rename the instrument), as the shapes are.
            for name in _sdk.stream_names(instrument):
                keys.append(((scope_name, name, attributes_id), attributes))
        ours = [
            ((final.scope.name, final.name, attributes_key(final.point.attributes or {})), final)
            for final in finals or ()
            if final.exporter is self._owner
        ]
        stamp = time.time_ns()
        if ours:
            stamp = max(stamp, max(final.point.time_unix_nano for _, final in ours) + _MARKER_AFTER_FINAL_NS)
        forgotten = identity is not None and self._registry.is_blocked(identity)
        self.store.removed(identity, keys, ours, forgotten, stamp)
        self.flusher.poke()

    # -- exporting ----------------------------------------------------------------------------------------------

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        """Export ``metrics_data`` as the exporter would alone, then the pending items in requests of their own."""
        with self._send_lock:
            result = self._exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            by_shape = metrics_by_shape(metrics_data)
            if result is MetricExportResult.SUCCESS:
                # Otherwise the receiver is unreachable or refuses: the items would only fail too, and wait.
                self._send_pending(by_shape)
            # Learnt after the items went: a delta marker's interval starts at the previous export.
            self._learn(by_shape)
            return result

    def flush(self) -> bool:
        """Send the pending items now, on their own. Returns False when a send failed."""
        with self._send_lock:
            return self._send_pending({})

    def _learn(self, by_shape: Mapping[ShapeKey, list[Any]]) -> None:
        object_of = self._registry.object_of
        tracked = []
        for (scope_name, name), metrics in self._shapes.learn(by_shape):
            for metric, _, _ in metrics:
                for point in metric.data.data_points:
                    attributes = point.attributes
                    identity = object_of(name, attributes)
                    # object_of(_, None) is None, so the attributes check changes nothing but narrows.
                    if identity is not None and attributes is not None:
                        tracked.append((identity, (scope_name, name, attributes_key(attributes)), attributes))
        if tracked:
            self.store.track_delta(tracked)

    def _mark_forgotten_delta_series(self) -> None:
        """Mark tracked delta series of objects forgotten since the last look (the listener saw none of them)."""
        stamp = self._registry.last_removal_ns
        if stamp != self._seen_removal_ns and (tracked := self.store.tracked_identities()):
            blocks = self._registry.blocked()  # a snapshot, since forget changes the blocks concurrently
            self.store.forgotten([identity for identity in tracked if identity in blocks], time.time_ns())
        self._seen_removal_ns = stamp

    def _send_pending(self, by_shape: Mapping[ShapeKey, list[Any]]) -> bool:
        """Send every pending item in order, in requests within the exporter's limits; stop at a failure."""
        self._mark_forgotten_delta_series()
        items = self.store.take()
        if not items:
            return True
        # Without live data in this send, no series can be alive again in it.
        send, settled = self._select(items, by_shape) if by_shape else (items, [])
        if not self._transport.sends_requests:
            return self._send_public(send, settled)
        encode(send, self._shapes)
        unneeded = [item for item in send if item.encoded is None]  # never exported here: nothing to delete
        if unneeded:
            settled.extend(unneeded)
            send = [item for item in send if item.encoded is not None]
        self.store.settle(settled)
        if not send:
            return True
        max_points, max_bytes = self._transport.limits()
        for request, carried in build_requests(send, max_points, max_bytes):
            if not self._deliver(functools.partial(self._transport.send, request), carried):
                return False  # in order, so a marker never overtakes the final delta it ends: the rest waits too
        return True

    def _deliver(self, send: Callable[[], MetricExportResult], carried: list[Item]) -> bool:
        """Send ``carried``; settle them when it succeeded."""
        try:
            result = send()
        except Exception:
            _logger.exception("otel-gitjob: sending %d staleness markers or final deltas failed", len(carried))
            result = MetricExportResult.FAILURE
        if result is not MetricExportResult.SUCCESS:
            _logger.info("otel-gitjob: a send failed; %d staleness markers stay pending", self.store.pending())
            return False
        self.store.settle(carried, sent=sum(1 for item in carried if not item.is_final))
        return True

    def _send_public(self, send: list[Item], settled: list[Item]) -> bool:
        """The degraded path: final deltas through the exporter's public ``export()``; markers are dropped, counted."""
        data, finals = final_deltas(send, self._shapes)
        carried = {id(item) for item in finals}
        markers = [item for item in send if not item.is_final]
        # Final deltas of streams never exported here need no sending, as on the healthy path.
        settled.extend(item for item in send if item.is_final and id(item) not in carried)
        self.store.settle(settled)
        if markers:
            self.store.drop(markers)
        return data is None or self._deliver(functools.partial(self._exporter.export, data), finals)

    def _select(self, items: list[Item], by_shape: Mapping[ShapeKey, list[Any]]) -> tuple[list[Item], list[Item]]:
        """Split items into those to send and those settled without sending (alive again in this export)."""
        send: list[Item] = []
        settled: list[Item] = []
        live: dict[ShapeKey, set[Hashable]] = {}
        is_blocked = self._registry.is_blocked
        for item in items:
            if item.is_final or (item.identity is not None and is_blocked(item.identity)):
                # Final deltas always go; a still-forgotten object's late writes are dropped, so its
                # series cannot be in this export.
                send.append(item)
                continue
            shape_key = item.key[:2]
            keys = live.get(shape_key)
            if keys is None:
                keys = live[shape_key] = live_keys(by_shape.get(shape_key, ()))
            if item.key[2] in keys:
                settled.append(item)  # the series is alive again (re-created) and in this very export
            else:
                send.append(item)
        return send, settled

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Send what is pending (best effort), stop listening and stop the idle flusher. Idempotent."""
        if self._closed:
            return
        try:
            self.flush()
        except Exception:
            _logger.exception("otel-gitjob: sending staleness markers at shutdown failed")
        self._closed = True
        self._registry.remove_removal_listener(self._on_removed)
        self.flusher.close()
        self.store.clear()
        self._transport.uninstall()
        if self._self_metrics is not None:
            for name, source in self._sources:
                self._self_metrics.remove(name, source)


def _export_interval_seconds() -> float:
    raw = os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "")
    try:
        millis = float(raw) if raw.strip() else 60_000.0
    except ValueError:
        millis = 60_000.0
    return millis / 1000.0 if millis > 0 else 60.0
