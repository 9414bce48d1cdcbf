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
from otel_gitjob.listener import kinds_from_crs_config

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
