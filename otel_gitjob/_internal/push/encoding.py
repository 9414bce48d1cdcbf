"""Shapes and encoding: what a marker must look like, and the requests that carry it.

A marker must match its exported stream exactly (name, type, temporality,
monotonicity, resource, scope), so shapes are learnt from the exports. Per shape
and flush, one marker goes through the exporter's own ``encode_metrics`` and is
flagged ``NO_RECORDED_VALUE``; the shape's markers are copies of it with their
series' attributes and timestamps. Final deltas go through ``encode_metrics``,
one call per shape. Each item is encoded once, as a serialized ``ScopeMetrics``
holding its one ``Metric`` of one point: a request joins a group's items with one
parse, and a failed send never re-encodes. One point per ``Metric``, since the
Collector's ``prometheus`` exporter stops reading a metric at its first flagged point.
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

# A group's bytes in a request beyond its header's: the tag and length varints of its ResourceMetrics and
# ScopeMetrics, which grow with the metrics they hold.
_PER_GROUP_OVERHEAD = 16
# The AnyValue field of each attribute type a marker copies itself; any other goes through encode_metrics.
_VALUE_FIELDS = {str: "string_value", bool: "bool_value", int: "int_value", float: "double_value"}
_DATA_TYPES: dict[type, type] = {HistogramDataPoint: Histogram, ExponentialHistogramDataPoint: ExponentialHistogram}


@dataclass(frozen=True, slots=True, eq=False)
class Group:
    """A resource and scope: an encoded ``ResourceMetrics`` holding one empty ``ScopeMetrics``, and its size."""

    header: Any
    size: int


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
    group: Group | None = None  # set by the first encoding


def attributes_key(attributes: Mapping[str, Any]) -> Hashable:
    """A compact key of an attribute set: its keys and values, sorted by key, in one flat tuple."""
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
        # One Group per (resource, scope), so that a request carries each once; hashed once per shape.
        self._groups: dict[tuple[Resource, InstrumentationScope], Group] = {}

    def learn(self, by_shape: Mapping[ShapeKey, list[Exported]]) -> list[tuple[ShapeKey, list[Exported]]]:
        """Learn from one export; returns its delta streams (for the store's delta index)."""
        delta = []
        for shape_key, metrics in by_shape.items():
            metric, resource, scope = metrics[0]
            shape = self.shapes[shape_key] = _shape(metric, resource, scope, metric.data.data_points[0].time_unix_nano)
            if shape.temporality is AggregationTemporality.DELTA:
                delta.append((shape_key, metrics))
        return delta

    def learn_final(self, item: Item) -> None:
        """Learn the shape a final delta carries: its stream may never have been exported yet."""
        final = cast("_sdk.FinalPoint", item.final)
        shape = _shape(_final_metric(final), final.resource, final.scope, final.point.start_time_unix_nano)
        self.shapes.setdefault(item.key[:2], shape)

    def encode_sdk(self, shape: Shape, metrics: list[Metric]) -> list[Any]:
        """``metrics`` of ``shape``'s stream as protobuf ``Metric`` messages, by the exporter's own encoder."""
        # Imported here: the OTLP packages are optional, and only their users get here.
        from opentelemetry.exporter.otlp.proto.common import metrics_encoder

        request = metrics_encoder.encode_metrics(metrics_data({shape.resource: {shape.scope: metrics}}))
        resource_metrics = request.resource_metrics[0]
        scope_metrics = resource_metrics.scope_metrics[0]
        if shape.group is None:
            header = type(resource_metrics)(resource=resource_metrics.resource, schema_url=resource_metrics.schema_url)
            header.scope_metrics.add(scope=scope_metrics.scope, schema_url=scope_metrics.schema_url)
            group = Group(header, header.ByteSize() + _PER_GROUP_OVERHEAD)
            shape.group = self._groups.setdefault((shape.resource, shape.scope), group)
        return list(scope_metrics.metrics)  # one scope in, one scope out, metrics in the order given


def _shape(metric: Metric, resource: Resource, scope: InstrumentationScope, time_unix_nano: int) -> Shape:
    data = metric.data
    first = data.data_points[0]
    return Shape(
        resource=resource,
        scope=scope,
        name=metric.name,
        description=metric.description,
        unit=metric.unit,
        data_type=type(data),
        temporality=getattr(data, "aggregation_temporality", None),
        is_monotonic=getattr(data, "is_monotonic", False),
        start_time_unix_nano=getattr(first, "start_time_unix_nano", 0) or 0,
        time_unix_nano=time_unix_nano,
        explicit_bounds=tuple(getattr(first, "explicit_bounds", None) or ()),
    )


def _marker_start(shape: Shape) -> int:
    """The latest start of a marker of ``shape`` (the marker's own time when earlier)."""
    if shape.temporality is AggregationTemporality.DELTA:
        # The interval since the last export: where this series' next delta would have started.
        return shape.time_unix_nano
    # Cumulative: the metric's start as last exported (receivers key a stale point by name and
    # attributes, so the exact per-series start the SDK no longer holds is not needed).
    return shape.start_time_unix_nano


def _marker_data(shape: Shape, attributes: Mapping[str, Any], time_unix_nano: int) -> Any:
    """SDK data holding one zero point for ``shape``; the flag is set after encoding."""
    start = min(_marker_start(shape), time_unix_nano)
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


def _sdk_marker(book: ShapeBook, shape: Shape, attributes: Mapping[str, Any], time_unix_nano: int) -> Any:
    """A marker through the exporter's own encoder, flagged."""
    data = _marker_data(shape, attributes, time_unix_nano)
    metric = Metric(name=shape.name, description=shape.description, unit=shape.unit, data=data)
    encoded = book.encode_sdk(shape, [metric])[0]
    kind = encoded.WhichOneof("data")
    point = getattr(encoded, kind).data_points[0]
    point.flags |= NO_RECORDED_VALUE
    # OTLP: a flagged point's value is to be ignored; send none at all. A histogram keeps its (zero)
    # sum: the remote-write translator ends _sum only when the point has one.
    for field in ("value",) if kind in ("sum", "gauge") else ("min", "max"):
        point.ClearField(field)
    return encoded


def _encode_markers(book: ShapeBook, shape: Shape, items: list[Item], framing: type) -> None:
    """Each marker is the shape's template (encoded by ``_sdk_marker``) with its attributes and timestamps."""
    template = _sdk_marker(book, shape, {}, shape.time_unix_nano)
    kind = template.WhichOneof("data")
    framed_template = _framed(framing, template)
    latest_start = _marker_start(shape)
    for item in items:
        attributes = cast("Mapping[str, Any]", item.attributes)
        time_unix_nano = item.time_unix_nano
        frame = framing.FromString(framed_template)  # type: ignore[attr-defined]
        point = getattr(frame.metrics[0], kind).data_points[0]
        entries = point.attributes
        try:
            for key, value in attributes.items():
                setattr(entries.add(key=key).value, _VALUE_FIELDS[type(value)], value)
        except (KeyError, TypeError, ValueError):  # another type, or out of range: the exporter's encoder decides
            _encoded(item, _framed(framing, _sdk_marker(book, shape, attributes, time_unix_nano)), shape)
            continue
        point.time_unix_nano = time_unix_nano
        if kind != "gauge":
            point.start_time_unix_nano = min(latest_start, time_unix_nano)
        _encoded(item, frame.SerializeToString(), shape)


def _framed(framing: type, metric: Any) -> bytes:
    frame = framing()
    frame.metrics.append(metric)
    return frame.SerializeToString()  # type: ignore[no-any-return]


def _final_metric(final: _sdk.FinalPoint) -> Metric:
    points: Any = [final.point]
    data_type = _DATA_TYPES.get(type(final.point), Sum)
    if data_type is Sum:
        data = Sum(points, AggregationTemporality.DELTA, final.monotonic)
    else:
        data = data_type(points, AggregationTemporality.DELTA)
    return Metric(name=final.name, description=final.description, unit=final.unit, data=data)


def _by_shape(items: Iterable[Item], book: ShapeBook, finals_only: bool) -> dict[int, tuple[Shape, list[Item]]]:
    """Items not encoded yet by the shape of their stream (by identity); those never exported are left out."""
    grouped: dict[int, tuple[Shape, list[Item]]] = {}
    for item in items:
        if item.encoded is not None or (finals_only and not item.is_final):
            continue
        if item.is_final:
            book.learn_final(item)
        shape = book.shapes.get(item.key[:2])
        if shape is not None:
            grouped.setdefault(id(shape), (shape, []))[1].append(item)
    return grouped


def encode(items: list[Item], book: ShapeBook) -> None:
    """Encode each item without an encoding yet (``item.encoded``), releasing its attributes.

    Items whose stream was never exported here need no marker: they are left
    unencoded (the caller settles them).
    """
    from opentelemetry.proto.metrics.v1.metrics_pb2 import ScopeMetrics as framing

    for shape, shape_items in _by_shape(items, book, finals_only=False).values():
        finals = [item for item in shape_items if item.is_final]
        if len(finals) < len(shape_items):
            _encode_markers(book, shape, [item for item in shape_items if not item.is_final], framing)
        if finals:
            encoded = book.encode_sdk(shape, [_final_metric(cast("_sdk.FinalPoint", item.final)) for item in finals])
            for item, metric in zip(finals, encoded, strict=True):
                _encoded(item, _framed(framing, metric), shape)


def _encoded(item: Item, encoded: bytes, shape: Shape) -> None:
    item.encoded = encoded
    item.group = shape.group
    # The key identifies the series from now on: release what the encoding holds.
    item.attributes = None
    item.final = None


def final_deltas(items: list[Item], book: ShapeBook) -> tuple[MetricsData | None, list[Item]]:
    """The final deltas among ``items`` as SDK data, for an exporter's public ``export()``, and those items.

    The degraded push path sends these (they carry what was recorded before a
    forget); markers need the OTLP point flag, which SDK data cannot carry.
    """
    groups: dict[Any, dict[Any, list[Metric]]] = {}
    carried: list[Item] = []
    for shape, finals in _by_shape(items, book, finals_only=True).values():
        metrics = groups.setdefault(shape.resource, {}).setdefault(shape.scope, [])
        metrics.extend(_final_metric(cast("_sdk.FinalPoint", item.final)) for item in finals)
        carried.extend(finals)
    return (metrics_data(groups), carried) if carried else (None, [])


def metrics_data(groups: Mapping[Any, Mapping[Any, list[Metric]]]) -> MetricsData:
    """SDK data of ``{resource: {scope: metrics}}``: one ResourceMetrics per resource, as the encoder expects."""
    return MetricsData(
        resource_metrics=[
            ResourceMetrics(
                resource=resource,
                scope_metrics=[
                    ScopeMetrics(scope=scope, metrics=metrics, schema_url=scope.schema_url or "")
                    for scope, metrics in scopes.items()
                ],
                schema_url=resource.schema_url or "",
            )
            for resource, scopes in groups.items()
        ]
    )


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
        grows = len(item.encoded) + (0 if item.group in groups else item.group.size)
        if current and (size + grows > max_bytes or (max_points is not None and len(current) >= max_points)):
            requests.append((_assemble(ExportMetricsServiceRequest, current), current))
            current, size, groups = [], 0, set()
            grows = len(item.encoded) + item.group.size
        current.append(item)
        groups.add(item.group)
        size += grows
    if current:
        requests.append((_assemble(ExportMetricsServiceRequest, current), current))
    return requests


def _assemble(request_class: Any, items: list[Item]) -> Any:
    """The request of ``items``, in order within each (resource, scope) group: one parse per group."""
    chunks: dict[Group, list[bytes]] = {}
    for item in items:
        chunks.setdefault(item.group, []).append(cast(bytes, item.encoded))
    request = request_class()
    for group, encoded in chunks.items():
        resource_metrics = request.resource_metrics.add()
        resource_metrics.CopyFrom(group.header)
        resource_metrics.scope_metrics[0].MergeFromString(b"".join(encoded))  # each a ScopeMetrics of one Metric
    return request
