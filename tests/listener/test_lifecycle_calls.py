"""The one seam between the listener and the lifecycle: kind keywords, declare_kind, retain, retire."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import otel_gitjob
from otel_gitjob._internal.core.identity import RepoRef
from otel_gitjob._internal.kube.lifecycle_calls import KindCalls, accepts_keyword
from otel_gitjob.fleet import GITREPO, HELMOP


class KindAware:
    """The shape the kind-aware lifecycle will have."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def forget(self, ref: Any, *, kind: str | None = None) -> int:
        self.calls.append(("forget", ref.name, kind))
        return 2

    def observe(self, ref: Any, kind: str | None = None) -> None:
        self.calls.append(("observe", ref.name, kind))

    def declare_kind(self, kind: str, *names: str) -> None:
        self.calls.append(("declare_kind", kind, names))

    def retain(self, live: list[Any], *, kind: str) -> int:
        self.calls.append(("retain", sorted(ref.name for ref in live), kind))
        return 0

    def forget_series(self, instrument: str, attributes: Any, **kwargs: Any) -> int:
        self.calls.append(("forget_series", instrument, dict(attributes), kwargs.get("kind")))
        return 1


class Plain:
    """Today's sink shape: no kind anywhere."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def forget(self, ref: Any) -> int:
        self.calls.append(("forget", ref.name))
        return 1

    def observe(self, ref: Any) -> None:
        self.calls.append(("observe", ref.name))


def test_kind_is_passed_only_to_methods_that_take_it() -> None:
    aware, plain = KindAware(), Plain()
    for sink in (aware, plain):
        calls = KindCalls(sink, "HelmOp")
        assert calls.forget(RepoRef("ns", "x")) in (1, 2)
        calls.observe(RepoRef("ns", "x"))
    assert aware.calls == [("forget", "x", "HelmOp"), ("observe", "x", "HelmOp")]
    assert plain.calls == [("forget", "x"), ("observe", "x")]
    assert accepts_keyword(lambda ref, **kw: None, "kind") and not accepts_keyword(len, "kind")


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
        calls = KindCalls(lifecycle, GITREPO.kind)
        assert calls.retain([RepoRef("ns", "live")]) == 1
        assert lifecycle.registry.objects_of_kind("GitRepo") == [("GitRepo", ("ns", "live"))]
        assert lifecycle.registry.objects_of_kind("HelmOp") == [("HelmOp", ("ns", "gone"))]
    finally:
        provider.shutdown()
        lifecycle.shutdown()


def test_retire_uses_the_lifecycles_method_when_it_has_one() -> None:
    sink = KindAware()
    assert KindCalls(sink, "GitRepo").retire("fleet_gitrepo_ready_clusters", {"name": "x", "branch": "old"}) == 1
    assert sink.calls == [("forget_series", "fleet_gitrepo_ready_clusters", {"name": "x", "branch": "old"}, "GitRepo")]
    assert KindCalls(Plain(), "GitRepo").retire("fleet_gitrepo_ready_clusters", {"name": "x"}) == 0


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
