"""A Custom Resource State family → the real Collector (remote write) → a real Prometheus: a deleted
object's series end with staleness markers at the next export.

The family's series carry no ``namespace``/``name`` labels (KSM's Info example labels them with
``version`` only); the lifecycle finds them through the kind's series owners, as the listener
declares them. The watch itself is the listener tier's business: here the cache is fed by hand
with the events the listener would apply.
"""

from __future__ import annotations

import math
import time

from collector_helpers import REMOTE_WRITE_CONFIG, resource
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

from otel_gitjob import Lifecycle, LifecycleExporter
from otel_gitjob._internal.kube.cache import ObjectCache
from otel_gitjob._internal.kube.events import ADDED, DELETED
from otel_gitjob._internal.kube.gauges import SeriesOwners, register_status_gauges
from otel_gitjob.listener import kinds_from_crs_config

CONFIG = """
kind: CustomResourceStateMetrics
spec:
  resources:
    - groupVersionKind: {group: myteam.io, kind: Foo, version: v1}
      metrics:
        - name: version
          help: Foo version
          each: {type: Info, info: {labelsFromPath: {version: [spec, version]}}}
"""
ARRIVAL = 10.0
LOOKBACK = 30.0


def foo(name: str, version: str) -> dict:
    return {"metadata": {"name": name, "namespace": "crs", "uid": name + "-uid"}, "spec": {"version": version}}


def test_deleted_foo_ends_in_prometheus_with_a_stale_marker(start_collector, start_prometheus) -> None:
    prometheus = start_prometheus([], extra_args=["--web.enable-remote-write-receiver"])
    collector = start_collector(
        REMOTE_WRITE_CONFIG, OTELCOL_REMOTE_WRITE_ENDPOINT="http://127.0.0.1:%d/api/v1/write" % prometheus.port
    )
    (kind,) = kinds_from_crs_config(CONFIG)
    lifecycle = Lifecycle()
    reader = PeriodicExportingMetricReader(
        LifecycleExporter(lifecycle, OTLPMetricExporter(endpoint=collector.otlp_http)), export_interval_millis=math.inf
    )
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views(), resource=resource("crs"))
    cache, owners = ObjectCache(), SeriesOwners()
    lifecycle.declare_kind(kind.kind, *kind.sample_gauge_names, owner=owners.owner)
    register_status_gauges(provider.get_meter("crs"), cache, kind.gauges, owners=owners)
    try:
        for name, version in (("a", "v1.2.3"), ("b", "v2.0.0")):
            cache.apply_event(ADDED, kind.project(foo(name, version)))
        assert provider.force_flush(10_000)
        series = "kube_customresource_version"
        prometheus.wait_for(series, lambda r: len(r) == 2, timeout=ARRIVAL)

        started = time.monotonic()
        state = kind.project(foo("a", "v1.2.3"))
        cache.apply_event(DELETED, state)
        assert lifecycle.forget(state.ref, kind=kind.kind) == 1  # what the listener's DELETED does
        assert provider.force_flush(10_000)
        result = prometheus.wait_for(series, lambda r: len(r) == 1, timeout=ARRIVAL)
        elapsed = time.monotonic() - started
        assert [sample["metric"]["version"] for sample in result] == ["v2.0.0"]
        assert elapsed < LOOKBACK / 3  # the StaleNaN sample ended it, not the query lookback
        print("deleted Foo -> absent in Prometheus over remote write: %.2f s" % elapsed)
    finally:
        provider.shutdown()
        lifecycle.shutdown()
