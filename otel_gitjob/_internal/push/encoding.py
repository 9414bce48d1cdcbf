"""Shape learning and encoding: what a marker must look like, and the requests that carry it.

A marker must match the exported stream exactly (name, type, temporality,
monotonicity, resource, scope), so the shapes are learnt from the exports
themselves. Each item is encoded once, with the exporter's own public encoder
(``encode_metrics``), into a serialized OTLP ``Metric`` holding its one point;
a marker's point is then flagged ``NO_RECORDED_VALUE`` and its value cleared.
Requests are assembled from those bytes, split to the exporter's limits: a
failed send re-sends the same bytes, it never re-encodes.

Every item is its own ``Metric`` message with one data point: the Collector
Contrib ``prometheus`` exporter's accumulator returns from a metric's point loop
at the first flagged point, so a marker sharing a ``Metric`` with other points
would hide them from it.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
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
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)

from otel_gitjob._internal.core import _sdk

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from otel_gitjob._internal.push.store import Item

__all__ = ["NO_RECORDED_VALUE", "Shape", "ShapeBook", "attributes_key", "build_requests", "encode", "final_deltas"]

NO_RECORDED_VALUE = 1
"""``DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK`` of the OTLP metrics proto."""

ShapeKey = tuple[str, str]  # (scope name, stream name)
Exported = tuple[Metric, Any, Any]  # (metric, its SDK Resource, its InstrumentationScope)

# Bytes a Metric adds to a request beyond its own: a tag and a length varint (at most 5 bytes).
_PER_METRIC_OVERHEAD = 6
# A request's bytes beyond its metrics, per (resource, scope) group: tags and lengths of the
# ResourceMetrics and ScopeMetrics messages and their schema URLs (resource and scope counted apart).
_PER_GROUP_OVERHEAD = 32


@dataclass(slots=True, eq=False)
class Shape:
    """What an exported stream looks like, learnt from the exports: markers must match it exactly."""

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
    # A histogram's bucket bounds: its marker must carry them (see _marker_data).
    explicit_bounds: tuple[float, ...] = ()


def attributes_key(attributes: Mapping[str, Any]) -> Hashable:
    """A compact key of an attribute set: its keys and values, sorted by key, in one flat tuple.

    A flat tuple costs a third of a ``frozenset`` of item pairs, and each pending
    marker holds one.
    """
    try:
        key = tuple(itertools.chain.from_iterable(sorted(attributes.items())))
        hash(key)
        return key
    except TypeError:  # an unhashable value: fall back to the SDK's own (slower) key
        return _sdk.series_key(attributes)


def metrics_by_shape(metrics_data: MetricsData) -> dict[ShapeKey, list[Exported]]:
    """Exported metrics with points, by (scope name, stream name), with their resource and scope."""
    by_shape: dict[ShapeKey, list[Exported]] = {}
    for resource_metrics in metrics_data.resource_metrics:
        resource = resource_metrics.resource
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope
            for metric in scope_metrics.metrics:
                if metric.data.data_points:
                    by_shape.setdefault((scope.name, metric.name), []).append((metric, resource, scope))
    return by_shape


def live_keys(metrics: Iterable[Exported]) -> set[Hashable]:
    # The SDK types point attributes as optional, but its collected points always carry a mapping.
    return {
        attributes_key(cast("Mapping[str, Any]", point.attributes))
        for metric, _, _ in metrics
        for point in metric.data.data_points
    }


class ShapeBook:
    """The shapes of the streams this exporter has exported; touched by the sender only."""

    def __init__(self) -> None:
        self.shapes: dict[ShapeKey, Shape] = {}

    def learn(self, by_shape: Mapping[ShapeKey, list[Exported]]) -> list[tuple[ShapeKey, list[Exported]]]:
        """Learn from one export; returns its delta streams (for the store's delta index)."""
        delta = []
        for shape_key, metrics in by_shape.items():
            metric, resource, scope = metrics[0]
            data = metric.data
            first = data.data_points[0]
            temporality = getattr(data, "aggregation_temporality", None)
            self.shapes[shape_key] = Shape(
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
                explicit_bounds=tuple(getattr(first, "explicit_bounds", None) or ()),
            )
            if temporality is AggregationTemporality.DELTA:
                delta.append((shape_key, metrics))
        return delta

    def learn_final(self, item: Item) -> None:
        """Learn the shape a final delta carries: its stream may never have been exported yet."""
        final = item.final
        assert final is not None
        point = final.point
        if isinstance(point, HistogramDataPoint):
            data_type: type = Histogram
        elif isinstance(point, ExponentialHistogramDataPoint):
            data_type = ExponentialHistogram
        else:
            data_type = Sum
        self.shapes.setdefault(
            item.key[:2],
            Shape(
                resource=final.resource,
                scope=final.scope,
                name=final.name,
                description=final.description,
                unit=final.unit,
                data_type=data_type,
                temporality=AggregationTemporality.DELTA,
                is_monotonic=final.monotonic,
                start_time_unix_nano=point.start_time_unix_nano,
                time_unix_nano=point.start_time_unix_nano,
                explicit_bounds=tuple(getattr(point, "explicit_bounds", None) or ()),
            ),
        )


def _marker_data(shape: Shape, attributes: Mapping[str, Any], time_unix_nano: int) -> Any:
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
    # learnt from one has one; only a Gauge's shape has None.
    temporality = cast(AggregationTemporality, shape.temporality)
    if shape.data_type is Sum:
        return Sum([NumberDataPoint(attributes, start, time_unix_nano, 0)], temporality, shape.is_monotonic)
    if shape.data_type is Histogram:
        # The Collector's remote-write translator ends a histogram's _sum and each finite le bucket only
        # when the flagged point carries them: the marker keeps the bounds (zero counts) and a sum.
        bounds = list(shape.explicit_bounds)
        zero = HistogramDataPoint(attributes, start, time_unix_nano, 0, 0, [0] * (len(bounds) + 1), bounds, 0, 0)
        return Histogram([zero], temporality)
    if shape.data_type is ExponentialHistogram:
        empty = Buckets(offset=0, bucket_counts=[])
        point = ExponentialHistogramDataPoint(
            attributes, start, time_unix_nano, 0, 0, 0, 0, empty, empty, NO_RECORDED_VALUE, 0, 0
        )
        return ExponentialHistogram([point], temporality)
    return Gauge([NumberDataPoint(attributes, 0, time_unix_nano, 0)])


def _final_data(shape: Shape, item: Item) -> Any:
    final = item.final
    assert final is not None
    point = final.point
    if shape.data_type is Histogram:
        return Histogram([point], AggregationTemporality.DELTA)
    if shape.data_type is ExponentialHistogram:
        return ExponentialHistogram([point], AggregationTemporality.DELTA)
    return Sum([point], AggregationTemporality.DELTA, shape.is_monotonic)


@dataclass(frozen=True, slots=True, eq=False)
class Group:
    """The resource and scope a set of encoded metrics belongs to, as protobuf messages."""

    resource: Any
    resource_schema_url: str
    scope: Any
    scope_schema_url: str
    size: int


def encode(items: list[Item], shapes: ShapeBook) -> None:
    """Encode each item without an encoding yet (``item.encoded``); one ``encode_metrics`` call per group.

    Items whose stream was never exported here need no marker: they are left
    unencoded (the caller settles them). The attributes are released once encoded.
    """
    # Imported here: the OTLP packages are optional, and only their users get here.
    from opentelemetry.exporter.otlp.proto.common import metrics_encoder

    for (resource, scope), pairs in _grouped(items, shapes).items():
        data = _metrics_data(resource, scope, [metric for _, metric in pairs])
        request = metrics_encoder.encode_metrics(data)
        resource_metrics = request.resource_metrics[0]
        scope_metrics = resource_metrics.scope_metrics[0]
        group = Group(
            resource_metrics.resource,
            resource_metrics.schema_url,
            scope_metrics.scope,
            scope_metrics.schema_url,
            resource_metrics.resource.ByteSize() + scope_metrics.scope.ByteSize() + _PER_GROUP_OVERHEAD,
        )
        # One scope in, one scope out, metrics in the order given.
        for (item, _), encoded in zip(pairs, scope_metrics.metrics, strict=True):
            if not item.is_final:
                _flag(encoded)
            item.encoded = encoded.SerializeToString()
            item.group = group
            # The key identifies the series from now on: release what the encoding holds.
            item.attributes = None
            item.final = None


def final_deltas(items: list[Item], shapes: ShapeBook) -> tuple[MetricsData | None, list[Item]]:
    """The final deltas among ``items`` as SDK data, for an exporter's public ``export()``, and those items.

    The degraded push path sends these (they carry what was recorded before a
    forget); markers need the OTLP point flag, which SDK data cannot carry.
    """
    finals = [item for item in items if item.is_final]
    grouped = _grouped(finals, shapes)
    if not grouped:
        return None, []
    resource_metrics = [
        _metrics_data(resource, scope, [metric for _, metric in pairs]).resource_metrics[0]
        for (resource, scope), pairs in grouped.items()
    ]
    carried = [item for pairs in grouped.values() for item, _ in pairs]
    return MetricsData(resource_metrics=resource_metrics), carried


def _grouped(items: list[Item], shapes: ShapeBook) -> dict[tuple[Any, Any], list[tuple[Item, Metric]]]:
    """Items not encoded yet as SDK metrics, by (resource, scope); those of streams never exported are left out."""
    grouped: dict[tuple[Any, Any], list[tuple[Item, Metric]]] = {}
    for item in items:
        if item.encoded is not None:
            continue
        if item.is_final:
            shapes.learn_final(item)
        shape = shapes.shapes.get(item.key[:2])
        if shape is None:
            continue
        if item.is_final:
            data = _final_data(shape, item)
        else:
            data = _marker_data(shape, cast("Mapping[str, Any]", item.attributes), item.time_unix_nano)
        metric = Metric(name=shape.name, description=shape.description, unit=shape.unit, data=data)
        grouped.setdefault((shape.resource, shape.scope), []).append((item, metric))
    return grouped


def _metrics_data(resource: Any, scope: Any, metrics: list[Metric]) -> MetricsData:
    return MetricsData(
        resource_metrics=[
            ResourceMetrics(
                resource=resource,
                scope_metrics=[ScopeMetrics(scope=scope, metrics=metrics, schema_url=scope.schema_url or "")],
                schema_url=resource.schema_url or "",
            )
        ]
    )


def _flag(metric: Any) -> None:
    kind = metric.WhichOneof("data")
    for point in getattr(metric, kind).data_points:
        point.flags |= NO_RECORDED_VALUE
        # OTLP: a flagged point's value is to be ignored; send none at all.
        if kind in ("sum", "gauge"):
            point.ClearField("value")
        else:
            # The sum stays (a zero): the remote-write translator ends _sum only when the point has one.
            for name in ("min", "max"):
                point.ClearField(name)


def build_requests(items: list[Item], max_points: int | None, max_bytes: int) -> list[tuple[Any, list[Item]]]:
    """Requests holding the encoded items in order, each within ``max_points`` metrics and ``max_bytes``.

    An item that alone exceeds ``max_bytes`` (attributes of absurd size) still
    gets a request of its own: the exporter refuses it, and it ages out.
    """
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    requests: list[tuple[Any, list[Item]]] = []
    current: list[Item] = []
    size = 0
    groups: set[Group] = set()
    for item in items:
        assert item.encoded is not None
        grows = len(item.encoded) + _PER_METRIC_OVERHEAD + (0 if item.group in groups else item.group.size)
        if current and (size + grows > max_bytes or (max_points is not None and len(current) >= max_points)):
            requests.append((_assemble(ExportMetricsServiceRequest, current), current))
            current, size, groups = [], 0, set()
            grows = len(item.encoded) + _PER_METRIC_OVERHEAD + item.group.size
        current.append(item)
        groups.add(item.group)
        size += grows
    if current:
        requests.append((_assemble(ExportMetricsServiceRequest, current), current))
    return requests


def _assemble(request_class: Any, items: list[Item]) -> Any:
    request = request_class()
    scopes: dict[Group, Any] = {}
    for item in items:
        scope_metrics = scopes.get(item.group)
        if scope_metrics is None:
            group = item.group
            resource_metrics = request.resource_metrics.add()
            resource_metrics.resource.CopyFrom(group.resource)
            resource_metrics.schema_url = group.resource_schema_url
            scope_metrics = scopes[group] = resource_metrics.scope_metrics.add()
            scope_metrics.scope.CopyFrom(group.scope)
            scope_metrics.schema_url = group.scope_schema_url
        scope_metrics.metrics.add().MergeFromString(item.encoded)
    return request
