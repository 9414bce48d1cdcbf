"""The marker encoding: each marker is what the exporter's own encoder makes of it; requests keep every scope."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common import metrics_encoder
from opentelemetry.proto.metrics.v1.metrics_pb2 import ScopeMetrics as ScopeMetricsProto
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ExponentialHistogram,
    Gauge,
    Histogram,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_gitjob._internal.core._sdk import FinalPoint
from otel_gitjob._internal.push import encoding
from otel_gitjob._internal.push.store import Item

RESOURCE = Resource.create({"service.name": "controller"})
SCOPE = InstrumentationScope("otel-gitjob", "1.0", "https://example.com/scope")
DELTA, CUMULATIVE = AggregationTemporality.DELTA, AggregationTemporality.CUMULATIVE
SHAPES = {
    "counter": (Sum, CUMULATIVE, True, ()),
    "updown_delta": (Sum, DELTA, False, ()),
    "gauge": (Gauge, None, False, ()),
    "histogram": (Histogram, CUMULATIVE, False, (0.5, 1.0, 10.0)),
    "histogram_delta": (Histogram, DELTA, False, (1.0,)),
    "exponential": (ExponentialHistogram, DELTA, False, ()),
}
ATTRIBUTES = [
    {"namespace": "fleet-local", "name": "repo-a"},
    {"flag": True, "count": 3, "ratio": 0.25, "empty": ""},
    {},
    # Types the template path leaves to the exporter's encoder: a sequence, a value out of int64's range, None.
    {"name": "repo-b", "paths": ("a", "b")},
    {"name": "repo-c", "huge": 2**70},
    {"name": "repo-d", "nothing": None},
]


def _book(kind: str) -> tuple[encoding.ShapeBook, encoding.Shape]:
    data_type, temporality, monotonic, bounds = SHAPES[kind]
    shape = encoding.Shape(RESOURCE, SCOPE, kind, "the " + kind, "s", data_type, temporality, monotonic, 100, 5_000)
    shape.explicit_bounds = bounds
    book = encoding.ShapeBook()
    book.shapes[(SCOPE.name, kind)] = shape
    return book, shape


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_each_marker_is_what_the_exporters_encoder_makes_of_it_flagged(kind: str) -> None:
    book, shape = _book(kind)
    # Times before the shape's start (2_000) and after it: the start is the earlier of the two.
    items = [
        Item((SCOPE.name, kind, i), None, attributes, 0.0, i, 2_000 + 10_000 * i)
        for i, attributes in enumerate(ATTRIBUTES)
    ]
    encoding.encode(items, book)
    for item, attributes in zip(items, ATTRIBUTES, strict=True):
        expected = ScopeMetricsProto()
        expected.metrics.append(encoding._sdk_marker(book, shape, attributes, item.time_unix_nano))
        assert item.encoded == expected.SerializeToString(), attributes
        assert item.attributes is None  # released once encoded
    decoded = ScopeMetricsProto.FromString(items[0].encoded).metrics[0]
    point = getattr(decoded, decoded.WhichOneof("data")).data_points[0]
    assert point.flags & encoding.NO_RECORDED_VALUE
    assert [(kv.key, kv.value.string_value) for kv in point.attributes] == list(ATTRIBUTES[0].items())


def _final(scope: InstrumentationScope, name: str, value: int) -> Item:
    point = NumberDataPoint({"name": name}, 1_000, 2_000, value)
    final = FinalPoint(None, RESOURCE, scope, name, "", "1", True, point)
    return Item((scope.name, name, name), None, None, 0.0, value, 2_000, True, final)


def test_final_deltas_of_two_scopes_under_one_resource_all_reach_the_request() -> None:
    # Before: one ResourceMetrics per (resource, scope), and the encoder, keying them by resource, kept the last.
    book = encoding.ShapeBook()
    other = InstrumentationScope("user-controller")
    items = [_final(SCOPE, "created", 1), _final(other, "reconciled", 2), _final(SCOPE, "failed", 3)]
    data, carried = encoding.final_deltas(items, book)
    assert data is not None and sorted(item.seq for item in carried) == [1, 2, 3]
    request = metrics_encoder.encode_metrics(data)
    sent = {
        (scope_metrics.scope.name, metric.name, metric.sum.data_points[0].as_int)
        for resource_metrics in request.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    }
    assert sent == {("otel-gitjob", "created", 1), ("user-controller", "reconciled", 2), ("otel-gitjob", "failed", 3)}


def test_requests_keep_order_within_a_scope_and_stay_within_the_limits() -> None:
    book = encoding.ShapeBook()
    other = InstrumentationScope("user-controller")
    items = [_final(SCOPE if i % 3 else other, "series-%d" % i, i) for i in range(1, 31)]
    encoding.encode(items, book)
    max_bytes = 600
    requests = encoding.build_requests(items, max_points=8, max_bytes=max_bytes)
    assert [item for _, carried in requests for item in carried] == items
    names: list[str] = []
    for request, carried in requests:
        assert len(carried) <= 8 and request.ByteSize() <= max_bytes
        in_request: dict[str, list[str]] = {}
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                in_request.setdefault(scope_metrics.scope.name, []).extend(m.name for m in scope_metrics.metrics)
        names.extend(name for scope in in_request.values() for name in scope)
        for scope_name, scope_names in in_request.items():
            assert scope_names == [item.key[1] for item in carried if item.key[0] == scope_name]
    assert sorted(names) == sorted(item.key[1] for item in items)


def test_attributes_the_template_cannot_copy_are_left_to_the_exporters_encoder(monkeypatch: Any) -> None:
    book, shape = _book("counter")
    calls: list[Any] = []
    original = metrics_encoder.encode_metrics
    monkeypatch.setattr(metrics_encoder, "encode_metrics", lambda data: calls.append(data) or original(data))
    items = [Item((SCOPE.name, "counter", i), None, {"name": "r-%d" % i}, 0.0, i, 9_000) for i in range(100)]
    items.append(Item((SCOPE.name, "counter", "odd"), None, {"paths": ("a",)}, 0.0, 100, 9_000))
    encoding.encode(items, book)
    assert len(calls) == 2  # the shape's template, and the one marker with a sequence attribute
