"""The listener's one way to the lifecycle: the declared Sink protocol, every call with ``kind=``."""

from __future__ import annotations

import inspect
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from sinks import SinkBase

import otel_gitjob
from otel_gitjob._internal.core.identity import ObjectRef
from otel_gitjob._internal.core.lifecycle import hooks_of
from otel_gitjob._internal.kube._types import Sink
from otel_gitjob.fleet import GITREPO, HELMOP
from otel_gitjob.listener import ResourceListener


class KindAware(SinkBase):
    """Records every call, with the kind it was made for."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = self.other_calls

    def forget(self, ref: Any, *, kind: str | None = None) -> int:
        self.calls.append(("forget", ref.name, kind))
        return 2

    def observe(self, ref: Any, *, kind: str | None = None) -> None:
        self.calls.append(("observe", ref.name, kind))

    def provider_for(self, meter_provider: Any, user: str) -> Any:
        self.calls.append(("provider_for", user))
        return super().provider_for(meter_provider, user)


def helmop(name: str, uid: str, chart: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid}, "spec": {"helm": {"chart": chart}}}


def test_every_call_carries_the_kind() -> None:
    sink = KindAware()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        listener = ResourceListener(sink, HELMOP, api=object(), meter_provider=provider)  # type: ignore[arg-type]
        listener.apply_event({"type": "ADDED", "object": helmop("x", "u1", "a")})
        reader.collect()
        listener.apply_event(
            {"type": "MODIFIED", "object": helmop("x", "u1", "b")}
        )  # a label edit: the old set retires
        reader.collect()
        listener.apply_event({"type": "DELETED", "object": helmop("x", "u1", "b")})
    finally:
        provider.shutdown()
    assert ("declare_kind", "HelmOp", HELMOP.gauge_names) in sink.calls
    assert ("provider_for", "ResourceListener") in sink.calls
    assert ("observe", "x", "HelmOp") in sink.calls and ("forget", "x", "HelmOp") in sink.calls
    retired = [call for call in sink.calls if call[0] == "forget_series"]
    assert len(retired) == len(HELMOP.gauges) and all(
        call[2]["chart"] == "a" and call[3] == "HelmOp" for call in retired
    )


def test_the_lifecycle_has_every_member_of_the_sink_protocol_with_the_same_keywords() -> None:
    members = [name for name in vars(Sink) if not name.startswith("_")]
    assert set(members) == {
        "drops",
        "self_metrics",
        "degraded",
        "forget",
        "observe",
        "retain",
        "forget_series",
        "declare_kind",
        "provider_for",
    }
    lifecycle = otel_gitjob.Lifecycle()
    try:
        for name in members:
            declared = vars(Sink)[name]
            if isinstance(declared, property):
                assert getattr(lifecycle, name) is not None, name
                continue
            ours = inspect.signature(getattr(lifecycle, name)).parameters
            theirs = list(inspect.signature(declared).parameters.values())[1:]  # without self
            assert [(p.name, p.kind) for p in theirs] == [(p.name, p.kind) for p in ours.values()], name
    finally:
        lifecycle.shutdown()


def test_listener_declares_its_gauges_and_own_instruments_to_the_kind(emulator, make_listener) -> None:
    import dataclasses

    sink = KindAware()
    make_listener(sink, kind=dataclasses.replace(HELMOP, instruments=("my_helmop_counter",)), start=False)
    ((_, kind, names),) = [c for c in sink.calls if c[0] == "declare_kind"]
    assert kind == "HelmOp" and names == HELMOP.gauge_names + ("my_helmop_counter",)


def test_relist_retains_the_live_set_through_the_lifecycles_retain(emulator, make_listener, wait_for) -> None:
    sink = KindAware()
    emulator.create("a")
    emulator.create("b")
    listener = make_listener(sink)
    assert listener.wait_synced(5) and listener.wait_idle(5)
    assert ("retain", ["a", "b"], "GitRepo") in sink.calls


def test_retain_through_a_real_lifecycle_forgets_only_this_kinds_missing_objects() -> None:
    lifecycle = otel_gitjob.Lifecycle()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
    try:
        gitjob = otel_gitjob.GitJobMetrics(provider, lifecycle=lifecycle)
        lifecycle.declare_kind("HelmOp", "fleet_helmop_ready_clusters")
        helmop_gauge = provider.get_meter("t").create_gauge("fleet_helmop_ready_clusters")
        for name in ("gone", "live"):
            gitjob.job_created(("ns", name))
        helmop_gauge.set(1, {"namespace": "ns", "name": "gone"})  # a HelmOp of the same name lives on
        assert lifecycle.retain([ObjectRef("ns", "live")], kind=GITREPO.kind) == 1
        assert hooks_of(lifecycle).registry.objects_of_kind("GitRepo") == [("GitRepo", ("ns", "live"))]
        assert hooks_of(lifecycle).registry.objects_of_kind("HelmOp") == [("HelmOp", ("ns", "gone"))]
    finally:
        provider.shutdown()
        lifecycle.shutdown()


def test_the_listener_reports_relists_restarts_and_its_work_queue_in_the_self_metrics(emulator, make_listener) -> None:
    lifecycle = otel_gitjob.Lifecycle()
    try:
        emulator.create("a")
        listener = make_listener(lifecycle)
        assert listener.wait_synced(5) and listener.wait_idle(5)
        observe = lifecycle.self_metrics.observe
        assert observe("otel_gitjob_relists") == [(1.0, {"kind": "GitRepo"})]
        assert observe("otel_gitjob_workqueue_depth") == [(0.0, {"kind": "GitRepo"})]
        assert observe("otel_gitjob_workqueue_latency_seconds") == [(0.0, {"kind": "GitRepo"})]
        (duration,) = observe("otel_gitjob_relist_duration_seconds")
        assert duration[0] > 0 and duration[1] == {"kind": "GitRepo"}
        restarts = {attributes["reason"]: value for value, attributes in observe("otel_gitjob_watch_restarts")}
        assert set(restarts) == {"stream_end", "error"} and restarts["error"] == 0
    finally:
        lifecycle.shutdown()
