"""A Custom Resource State kind through the listener and a real Lifecycle: forgotten with its object.

Its series carry no ``namespace``/``name`` labels (KSM's families carry whatever the config says),
so the lifecycle learns each series' object from the listener (``SeriesOwners``) and ``forget``,
``retain`` and label edits evict exactly that object's series from SDK storage.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from rv_emulator import WIDGETS
from support import points_of
from test_listener_watch import ERROR_410

import otel_gitjob
from otel_gitjob._internal.core.lifecycle import hooks_of
from otel_gitjob._internal.kube.cache import ObjectCache
from otel_gitjob._internal.kube.events import ADDED, MODIFIED
from otel_gitjob._internal.kube.gauges import serve_kind
from otel_gitjob.listener import GaugeSpec, KindSpec, kinds_from_crs_config

CONFIG = """
kind: CustomResourceStateMetrics
spec:
  resources:
    - groupVersionKind: {group: example.com, kind: Widget, version: v1}
      labelsFromPath: {widget: [metadata, name]}
      metrics:
        - name: version_info
          help: Widget version
          each: {type: Info, info: {labelsFromPath: {version: [spec, version]}}}
        - name: phase
          help: Widget phase
          each: {type: StateSet, stateSet: {path: [status, phase], labelName: phase, list: [Ready, Failed]}}
"""


def widget(name: str, version: str = "1", phase: str = "Ready") -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"version": version},
        "status": {"phase": phase},
    }


def series(reader: InMemoryMetricReader) -> dict[tuple[str, str], set[tuple[str, ...]]]:
    """``{(metric, widget): {other label values}}`` in the reader's next collection."""
    out: dict[tuple[str, str], set[tuple[str, ...]]] = {}
    for name, attributes in points_of(reader.get_metrics_data()):
        if name.startswith("kube_customresource_"):
            labels = dict(attributes)
            rest = tuple(str(labels[k]) for k in sorted(labels) if k in ("version", "phase"))
            out.setdefault((name, str(labels["widget"])), set()).add(rest)
    return out


def _watching_widgets_a_and_b(emulator: Any, make_listener: Any) -> tuple[Any, InMemoryMetricReader, Any]:
    """Widgets a and b, and a synced listener of the config's kind feeding a fresh lifecycle and reader."""
    (kind,) = kinds_from_crs_config(CONFIG)
    lifecycle = otel_gitjob.Lifecycle()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
    emulator.create_object(WIDGETS, widget("a"))
    emulator.create_object(WIDGETS, widget("b"))
    listener = make_listener(lifecycle, kind=kind, meter_provider=provider)
    assert listener.wait_synced(5) and listener.wait_idle(5)
    emulator.wait_watching_resource(WIDGETS)
    return lifecycle, reader, listener


def test_crs_series_are_indexed_by_object_and_forgotten_with_it(emulator, make_listener, wait_for):
    lifecycle, reader, listener = _watching_widgets_a_and_b(emulator, make_listener)
    assert series(reader) == {
        ("kube_customresource_version_info", "a"): {("1",)},
        ("kube_customresource_version_info", "b"): {("1",)},
        ("kube_customresource_phase", "a"): {("Ready",), ("Failed",)},
        ("kube_customresource_phase", "b"): {("Ready",), ("Failed",)},
    }
    # Indexed under their objects although no label names them: 3 series each.
    assert hooks_of(lifecycle).registry.objects_by_kind() == {"Widget": 2}
    assert hooks_of(lifecycle).registry.series_by_kind() == {"Widget": 6}

    # A label value edit leaves one series for the object, not one per value ever seen.
    emulator.patch_object(WIDGETS, "team", "b", {"spec": {"version": "2"}})
    wait_for(lambda: series(reader).get(("kube_customresource_version_info", "b")) == {("2",)})
    series(reader)  # the collection that retires the old label set
    assert hooks_of(lifecycle).registry.series_by_kind() == {"Widget": 6}

    # Deleted: forgotten, every series of it evicted from SDK storage; the other object is untouched.
    emulator.delete_object(WIDGETS, "team", "a")
    wait_for(lambda: hooks_of(lifecycle).registry.objects_by_kind() == {"Widget": 1})
    assert hooks_of(lifecycle).registry.series_by_kind() == {"Widget": 3}
    assert hooks_of(lifecycle).registry.blocked_objects() == 1
    assert set(series(reader)) == {("kube_customresource_version_info", "b"), ("kube_customresource_phase", "b")}
    assert lifecycle.drops.counts() == {}


def test_a_crs_object_deleted_unseen_is_forgotten_after_the_relist(emulator, make_listener, wait_for):
    lifecycle, reader, listener = _watching_widgets_a_and_b(emulator, make_listener)
    series(reader)  # the collection that creates (and indexes) the series
    assert hooks_of(lifecycle).registry.objects_by_kind() == {"Widget": 2}
    emulator.delete_unseen("b", "team", WIDGETS)  # its DELETED event was compacted away
    emulator._await(emulator.kmock._buses[WIDGETS].put(ERROR_410))
    wait_for(lambda: listener.relists == 2 and listener.wait_idle(5))
    wait_for(lambda: hooks_of(lifecycle).registry.objects_by_kind() == {"Widget": 1})
    assert {widget_name for _metric, widget_name in series(reader)} == {"a"}
    assert hooks_of(lifecycle).registry.series_by_kind() == {"Widget": 3}


def test_collections_keep_no_per_series_state_in_the_gauges():
    """The series are projected at the object's event: collecting them allocates nothing that outlives it.

    A key per series kept between collections (a frozenset of its label pairs) cost about 1.5 KB per series.
    """
    import gc
    import tracemalloc

    from otel_gitjob._internal.kube import gauges

    (kind,) = kinds_from_crs_config(CONFIG)
    lifecycle = otel_gitjob.Lifecycle()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
    cache = ObjectCache()
    gauges.serve_kind(lifecycle, kind, cache, meter_provider=provider, status_gauges=True, user="test", scope="crs")
    objects = 200
    for i in range(objects):
        cache.apply_event(ADDED, kind.project(widget("w%d" % i)))
    tracemalloc.start()
    try:
        reader.collect()  # creates the series: their owners are looked up
        reader.collect()  # creates none
        gc.collect()  # live memory only: garbage in reference cycles waits for the collector
        held = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, gauges.__file__)])
    finally:
        tracemalloc.stop()
    # Per object and gauge: its entry in the last-collected table (3 series each, 600 in all).
    assert sum(stat.size for stat in held.statistics("filename")) < objects * 2 * 100
    assert hooks_of(lifecycle).registry.series_by_kind() == {"Widget": 3 * objects}


def test_an_object_with_odd_label_keys_leaves_the_other_objects_owned():
    """Labels no SDK series carries as given (a non-string key) leave that object unowned, not the whole kind."""

    def samples(obj, dropped):
        labels = {"item": obj["metadata"]["name"], "version": obj["spec"]["version"]}
        return [({1: "odd", **labels} if labels["item"] == "odd" else labels, 1.0)]

    kind = KindSpec("example.com", "v1", "widgets", "Widget", gauges=(GaugeSpec("widget_item", "", samples=samples),))
    lifecycle = otel_gitjob.Lifecycle()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
    cache = ObjectCache()
    serve_kind(lifecycle, kind, cache, meter_provider=provider, status_gauges=True, user="test", scope="crs")
    for name in ("odd", "a", "b"):
        cache.apply_event(ADDED, kind.project(widget(name)))
    assert points(reader) == 3
    assert hooks_of(lifecycle).registry.series_by_kind() == {"Widget": 2}
    cache.apply_event(MODIFIED, kind.project(widget("odd", version="2")))  # its old label set is retired
    assert points(reader) == 3


def points(reader: InMemoryMetricReader) -> int:
    """Points of a collection, whatever their attribute keys (older SDKs keep a non-string key as it is)."""
    data = reader.get_metrics_data()
    return sum(
        len(metric.data.data_points)
        for resource_metrics in (data.resource_metrics if data else ())
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    )
