"""``otel_gitjob.kopf.instrument`` and the kopf example, run by the real kopf against the kmock emulator."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import kopf
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from support import named_points, points_of

import otel_gitjob
import otel_gitjob.kopf
from otel_gitjob._internal.core.lifecycle import hooks_of
from otel_gitjob.fleet import GITREPO


class Operator:
    """``kopf.operator`` on its own loop in a thread, logged in to the emulator."""

    def __init__(self, registry: kopf.OperatorRegistry, port: int) -> None:
        @kopf.on.login(registry=registry)
        def login(**_: Any) -> kopf.ConnectionInfo:
            return kopf.ConnectionInfo(server="http://127.0.0.1:%d" % port, token="t")

        settings = kopf.OperatorSettings()
        settings.posting.enabled = False  # kmock serves no core/v1 events
        settings.scanning.disabled = True
        settings.watching.reconnect_backoff = 0.1
        settings.persistence.finalizer = "otel-gitjob.test/kopf-finalizer"
        self.settings = settings
        self.stop, self.ready = threading.Event(), threading.Event()
        self.error: BaseException | None = None

        def run() -> None:
            try:
                asyncio.run(
                    kopf.operator(
                        registry=registry,
                        settings=settings,
                        clusterwide=True,
                        standalone=True,
                        stop_flag=self.stop,
                        ready_flag=self.ready,
                    )
                )
            except BaseException as exc:  # surfaced by the test
                self.error = exc

        self.thread = threading.Thread(target=run, name="kopf-operator", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(20)
        assert not self.thread.is_alive(), "kopf did not stop"
        self.settings.execution.executor.shutdown(wait=True)  # kopf's pool for sync handlers


@pytest.fixture()
def stack() -> Iterator[tuple[Any, Any, Any, InMemoryMetricReader]]:
    lifecycle = otel_gitjob.Lifecycle()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
    gitjob = otel_gitjob.GitJobMetrics(provider, lifecycle=lifecycle)
    yield lifecycle, provider, gitjob, reader
    provider.shutdown()
    lifecycle.shutdown()


@pytest.mark.parametrize("finalizer", [False, True], ids=["DELETED event", "finalizer"])
def test_instrument_forgets_deleted_objects_and_serves_status_gauges(emulator, stack, wait_for, finalizer):
    lifecycle, provider, gitjob, reader = stack
    registry = kopf.OperatorRegistry()
    kopfed = otel_gitjob.kopf.instrument(
        lifecycle, GITREPO, meter_provider=provider, registry=registry, finalizer=finalizer
    )
    emulator.create("a", status={"readyClusters": 2})
    emulator.create("b")
    operator = Operator(registry, emulator.port)
    try:
        wait_for(lambda: len(kopfed.cache) == 2, timeout=20)
        for name in ("a", "b"):
            gitjob.job_created(("fleet-local", name))
        assert ("fleet_gitrepo_ready_clusters", "a") in named_points(reader.get_metrics_data(), "name")
        assert ("fleet_gitjobs_created_success_total", "a") in named_points(reader.get_metrics_data(), "name")
        if finalizer:  # kopf put its finalizer on the objects
            wait_for(
                lambda: "otel-gitjob.test/kopf-finalizer"
                in (emulator.api.get_namespaced_custom_object(
                    "fleet.cattle.io", "v1alpha1", "fleet-local", "gitrepos", "a"
                )["metadata"].get("finalizers") or []),
                timeout=20,
            )  # fmt: skip
        emulator.delete("a")
        wait_for(lambda: kopfed.cache.get(("fleet-local", "a")) is None, timeout=20)
        wait_for(lambda: not {name for _, name in named_points(reader.get_metrics_data(), "name")} & {"a"}, timeout=5)
        assert {name for _, name in named_points(reader.get_metrics_data(), "name")} == {"b"}
        assert hooks_of(lifecycle).registry.blocked_objects() == 1
    finally:
        operator.close()
    assert operator.error is None, operator.error


def test_instrument_serves_a_crs_kind_and_forgets_its_series_with_the_object(emulator, stack, wait_for):
    from rv_emulator import WIDGETS

    from otel_gitjob.listener import kinds_from_crs_config

    lifecycle, provider, _gitjob, reader = stack
    (kind,) = kinds_from_crs_config(
        "spec: {resources: [{groupVersionKind: {group: example.com, kind: Widget, version: v1}, metrics: [{"
        "name: size, help: Widget size, each: {type: Info, info: {labelsFromPath: "
        "{size: [spec, size], widget: [metadata, name]}}}}]}]}"
    )
    registry = kopf.OperatorRegistry()
    kopfed = otel_gitjob.kopf.instrument(lifecycle, kind, meter_provider=provider, registry=registry)
    for name in ("a", "b"):
        emulator.create_object(
            WIDGETS, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name, "namespace": "shop"},
                      "spec": {"size": "large"}},
        )  # fmt: skip
    operator = Operator(registry, emulator.port)

    def widgets() -> set[str]:
        points = [dict(attributes) for name, attributes in points_of(reader.get_metrics_data())]
        return {str(a["widget"]) for a in points if "widget" in a}

    try:
        wait_for(lambda: len(kopfed.cache) == 2, timeout=20)
        assert widgets() == {"a", "b"}
        assert hooks_of(lifecycle).registry.objects_by_kind() == {"Widget": 2}  # indexed without a name label
        emulator.delete_object(WIDGETS, "shop", "a")
        wait_for(lambda: hooks_of(lifecycle).registry.objects_by_kind() == {"Widget": 1}, timeout=20)
        assert widgets() == {"b"}
        assert hooks_of(lifecycle).registry.blocked_objects() == 1
    finally:
        operator.close()
    assert operator.error is None, operator.error
