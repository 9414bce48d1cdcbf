"""Bound handles: what they record, and that they belong to one incarnation of one object.

Real objects throughout: kubernetes client models, dynamic-client ``ResourceInstance`` objects,
API dicts (kopf's shapes: tests/listener/test_identity_shapes.py, where kopf is installed). Every
test runs healthy and with each seam forced degraded.
"""

from __future__ import annotations

import gc
import math
import os
import threading
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.dynamic.resource import ResourceInstance
from opentelemetry.sdk.metrics import AlwaysOnExemplarFilter, Counter, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import View
from prometheus_client import CollectorRegistry, generate_latest
from support import hammer, samples

from otel_gitjob import (
    BoundCounter,
    BoundGauge,
    BoundHistogram,
    BoundUpDownCounter,
    ConfigurationError,
    GitJobHandle,
    GitJobMetrics,
    Lifecycle,
    LifecyclePrometheusReader,
    ObjectRef,
)

pytestmark = pytest.mark.usefixtures("degraded_seam")

CREATED = "fleet_gitjobs_created_success_total"
HAMMER_SECONDS = float(os.environ.get("OTEL_GITJOB_HAMMER_SECONDS", "2"))


def raw(name: str, uid: str, namespace: str = "ns") -> dict[str, Any]:
    return {
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "GitRepo",
        "metadata": {"namespace": namespace, "name": name, "uid": uid},
    }


def model(name: str, uid: str) -> k8s.V1ConfigMap:
    return k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(namespace="ns", name=name, uid=uid))


def created(registry: CollectorRegistry, name: str) -> float | None:
    return samples(registry).get((CREATED, (("name", name), ("namespace", "ns"))))


def exported(data: Any, metric: str, name: str) -> list[Any]:
    """The data points (with their exemplars) of ``metric`` for the object ``name`` in a collection."""
    return [
        point
        for resource_metrics in getattr(data, "resource_metrics", None) or ()
        for scope_metrics in resource_metrics.scope_metrics
        for found in scope_metrics.metrics
        if found.name == metric
        for point in found.data.data_points
        if point.attributes.get("name") == name
    ]


def test_a_handle_records_what_the_instrument_records(lifecycle, provider, registry):
    meter = provider.get_meter("test")
    counter = meter.create_counter("c")
    updown = meter.create_up_down_counter("u")
    histogram = meter.create_histogram("h")
    gauge = meter.create_gauge("g")
    obj = ResourceInstance(None, raw("bound", "u1"))
    handles = [lifecycle.bind(instrument, obj, {"k": "v"}) for instrument in (counter, updown, histogram, gauge)]
    assert [type(handle) for handle in handles] == [BoundCounter, BoundUpDownCounter, BoundHistogram, BoundGauge]
    plain = {"namespace": "ns", "name": "plain", "k": "v"}
    for value in (1, 2.5, 4):
        handles[0].add(value)
        handles[1].add(-value)
        handles[2].record(value)
        handles[3].set(value)
        counter.add(value, plain)
        updown.add(-value, plain)
        histogram.record(value, plain)
        gauge.set(value, plain)
    found = samples(registry)
    for (metric, labels), value in found.items():
        if ("name", "plain") in labels:
            bound = tuple(sorted({**dict(labels), "name": "bound"}.items()))
            assert found[(metric, bound)] == value, metric
    assert found[("c_total", (("k", "v"), ("name", "bound"), ("namespace", "ns")))] == 7.5
    assert lifecycle.drops.counts() == {}


def test_a_handle_bound_before_the_first_write_creates_the_series_on_that_write(lifecycle, gitjob, registry):
    handle = gitjob.bind(model("early", "u1"))
    assert isinstance(handle, GitJobHandle) and handle.alive
    assert created(registry, "early") is None
    handle.job_created()
    assert created(registry, "early") == 1.0
    handle.job_created()
    assert created(registry, "early") == 2.0


def test_after_forget_a_handle_writes_nothing_and_never_brings_the_series_back(
    lifecycle, gitjob, registry, memory_reader, clock
):
    body = raw("gone", "u1")
    handle = gitjob.bind(body)
    handle.job_created()
    handle.job_succeeded(3.0)
    assert created(registry, "gone") == 1.0
    assert lifecycle.forget(body) >= 3
    assert not handle.alive
    handle.job_created()
    handle.job_succeeded(4.0)
    handle.commit_fetched(0.5)
    assert created(registry, "gone") is None
    assert "gone" not in generate_latest(registry).decode()
    assert exported(memory_reader.get_metrics_data(), CREATED, "gone") == []
    clock.advance(7200)  # the block against late writes has expired: still nothing from this handle
    handle.job_created()
    assert "gone" not in generate_latest(registry).decode()
    assert exported(memory_reader.get_metrics_data(), CREATED, "gone") == []
    assert lifecycle.drops.counts()["stale_handle"] >= 6


def test_an_old_handle_never_writes_into_the_recreated_object(lifecycle, gitjob, registry):
    old = gitjob.bind(model("again", "u1"))
    old.job_created()
    lifecycle.forget(model("again", "u1"))
    new = gitjob.bind(model("again", "u2"))
    new.job_created()
    old.job_created()
    old.job_created()
    assert created(registry, "again") == 1.0
    assert new.alive and not old.alive
    new.job_created()
    assert created(registry, "again") == 2.0


def test_a_handle_bound_under_a_new_uid_ends_the_old_incarnation_even_without_forget(lifecycle, gitjob, registry):
    old = gitjob.bind(ResourceInstance(None, raw("moved", "u1")))
    old.job_created()
    new = gitjob.bind(ResourceInstance(None, raw("moved", "u2")))
    old.job_created()
    new.job_created()
    assert not old.alive
    assert created(registry, "moved") == 2.0  # the first write, and the new handle's


def test_a_handle_bound_to_a_forgotten_object_writes_nothing(lifecycle, gitjob, registry):
    gitjob.job_created(("ns", "late"))
    lifecycle.forget(("ns", "late"))
    handle = gitjob.bind(("ns", "late"))
    handle.job_created()
    assert not handle.alive and created(registry, "late") is None
    assert lifecycle.drops.counts()["stale_handle"] == 1


def test_an_int_too_large_for_a_float_is_dropped_and_the_scrape_still_works(lifecycle, provider, gitjob, registry):
    meter = provider.get_meter("test")
    gauge, counter = meter.create_gauge("big_gauge"), meter.create_counter("big_counter")
    lifecycle.bind(gauge, ("ns", "a")).set(10**400)  # compares below inf, but no float holds it
    lifecycle.bind(gauge, ("ns", "a")).set(-(10**400))
    lifecycle.bind(counter, ("ns", "a")).add(10**400)
    gitjob.bind(("ns", "a")).job_succeeded(10**400)
    lifecycle.bind(gauge, ("ns", "b")).set(2**1023)  # a float holds this one: it is kept
    counts = lifecycle.drops.counts()
    assert counts["bad_value"] == 3 and counts["bad_duration"] == 1
    text = generate_latest(registry).decode()
    assert 'big_gauge{name="b",namespace="ns"}' in text and 'name="a"' not in text


def test_handles_never_raise_and_count_what_they_drop(lifecycle, provider, gitjob):
    counter = provider.get_meter("test").create_counter("c")
    handle = lifecycle.bind(counter, ("ns", "a"))
    for bad in (-1, math.nan, math.inf, "1", None, 1j, [1]):
        handle.add(bad)  # type: ignore[arg-type]
    repo = gitjob.bind(("ns", "a"))
    repo.job_succeeded(-1.0)
    repo.commit_fetched(math.nan)
    nothing = gitjob.bind(("ns",))  # names no object
    nothing.job_created()
    counts = lifecycle.drops.counts()
    assert counts["bad_value"] == 7 and counts["bad_duration"] == 2 and counts["bad_repo"] == 1
    assert counts["stale_handle"] == 1  # the handle of nothing
    with pytest.raises(ConfigurationError, match="synchronous instrument"):
        lifecycle.bind(provider.get_meter("test").create_observable_gauge("og"), ("ns", "a"))
    with pytest.raises(ConfigurationError, match="identity keys"):
        lifecycle.bind(counter, ("ns", "a"), {"name": "b"})


SHAPES = {
    "tuple": lambda name: ("ns", name),
    "ObjectRef": lambda name: ObjectRef("ns", name, "u-" + name),
    "dict body": lambda name: raw(name, "u-" + name),
    "kubernetes model": lambda name: model(name, "u-" + name),
    "dynamic-client ResourceInstance": lambda name: ResourceInstance(None, raw(name, "u-" + name)),
    "watch event": lambda name: {"type": "ADDED", "object": raw(name, "u-" + name)},
}


@pytest.mark.parametrize("shape", SHAPES)
def test_typed_calls_take_every_shape_and_keep_objects_apart(shape, lifecycle, gitjob, registry):
    make = SHAPES[shape]
    for _ in range(3):
        for name in ("one", "two"):
            gitjob.job_created(make(name))
    gitjob.job_created(make("two"))
    assert (created(registry, "one"), created(registry, "two")) == (3.0, 4.0)
    lifecycle.forget(make("one"))
    gitjob.job_created(make("one"))  # a late write: dropped at the block, as ever
    assert created(registry, "one") is None
    assert lifecycle.drops.counts() == {"forgotten_repo": 1}


def test_exemplars_through_a_handle_are_what_the_sdk_records(lifecycle, registry):
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[LifecyclePrometheusReader(lifecycle, registry), reader],
        views=lifecycle.views(exemplars=True),
        exemplar_filter=AlwaysOnExemplarFilter(),
    )
    try:
        counter = provider.get_meter("test").create_counter("c")
        handle = lifecycle.bind(counter, ("ns", "bound"))
        for _ in range(3):
            handle.add(1)
            counter.add(1, {"namespace": "ns", "name": "plain"})
        data = reader.get_metrics_data()
        bound, plain = exported(data, "c", "bound"), exported(data, "c", "plain")
        assert [len(point.exemplars) for point in bound] == [len(point.exemplars) for point in plain] == [1]
        assert bound[0].exemplars[0].value == plain[0].exemplars[0].value == 1
    finally:
        provider.shutdown()


def test_without_exemplar_reservoirs_a_handle_offers_none(lifecycle, provider, memory_reader):
    counter = provider.get_meter("test").create_counter("c")
    handle = lifecycle.bind(counter, ("ns", "bound"))
    handle.add(1)
    handle.add(1)
    (point,) = exported(memory_reader.get_metrics_data(), "c", "bound")
    assert list(point.exemplars) == []
    # A shared empty tuple, not a list per point that the GC must track and rescan.
    assert point.exemplars == () and not gc.is_tracked(point.exemplars)
    if not lifecycle.degraded:
        assert handle._targets[0] is not None and handle._sampling is None  # nothing would take an exemplar


def test_a_handle_writes_right_through_delta_readers_and_attribute_filtering_views(lifecycle, registry):
    delta = InMemoryMetricReader(preferred_temporality={Counter: AggregationTemporality.DELTA})
    provider = MeterProvider(
        metric_readers=[LifecyclePrometheusReader(lifecycle, registry), delta],
        views=lifecycle.views(View(instrument_name="filtered", attribute_keys={"namespace", "name"})),
    )
    try:
        meter = provider.get_meter("test")
        handles = [
            lifecycle.bind(meter.create_counter(name), ("ns", "a"), {"extra": "x"}) for name in ("c", "filtered")
        ]
        totals = {"c": 0.0, "filtered": 0.0}
        for _ in range(3):
            for handle in handles:
                handle.add(2)
            data = delta.get_metrics_data()
            for metric in totals:
                totals[metric] += sum(point.value for point in exported(data, metric, "a"))
        assert totals == {"c": 6.0, "filtered": 6.0}
        assert samples(registry)[("filtered_total", (("name", "a"), ("namespace", "ns")))] == 6.0
    finally:
        provider.shutdown()


def test_a_transient_gauge_handle_restarts_its_ttl_and_returns_after_expiry(lifecycle, provider, registry, clock):
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle, gauge_ttl=60)
    handle = gitjob.bind(("ns", "g"))
    key = ("fleet_gitjob_duration_seconds_gauge", (("name", "g"), ("namespace", "ns")))
    handle.job_succeeded(1.0)
    clock.advance(45)
    handle.job_succeeded(2.0)
    clock.advance(45)
    assert samples(registry).get(key) == 2.0  # 90 s after the first set, 45 s after the second
    clock.advance(30)
    assert key not in samples(registry)
    handle.job_succeeded(3.0)
    assert samples(registry).get(key) == 3.0


def test_forget_while_threads_write_through_handles_leaks_nothing_into_the_new_incarnation(clock):
    lifecycle = Lifecycle(clock=clock)
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[LifecyclePrometheusReader(lifecycle, registry)], views=lifecycle.views())
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle)
    names = ["r%d" % i for i in range(8)]
    old = {name: gitjob.bind(model(name, "old")) for name in names}
    stop = threading.Event()
    errors: list[BaseException] = []
    recreated: dict[str, int] = {}

    def writer() -> None:
        try:
            while not stop.is_set():
                for handle in old.values():
                    handle.job_created()
                    handle.job_succeeded(1.0)
        except BaseException as error:  # pragma: no cover - a failure's evidence
            errors.append(error)

    def forgetter() -> None:
        try:
            for name in names:
                stop.wait(HAMMER_SECONDS / (2 * len(names)))
                lifecycle.forget(model(name, "old"))
                new = gitjob.bind(model(name, "new"))
                for _ in range(5):
                    new.job_created()
                recreated[name] = 5
        except BaseException as error:  # pragma: no cover - a failure's evidence
            errors.append(error)

    hammer(
        [threading.Thread(target=writer) for _ in range(3)] + [threading.Thread(target=forgetter)],
        stop,
        HAMMER_SECONDS,
        switch_interval=1e-5,
    )
    try:
        assert not errors
        assert recreated == dict.fromkeys(names, 5)
        for name in names:
            assert created(registry, name) == 5.0, name
            assert not old[name].alive
        assert lifecycle.drops.counts().get("stale_handle", 0) > 0
    finally:
        provider.shutdown()
        lifecycle.shutdown()


def test_a_handle_past_the_cardinality_limit_writes_the_overflow_series_and_gets_its_own_once_a_slot_frees(
    lifecycle,
):
    from otel_gitjob._internal.core import _sdk

    if not _sdk.supports_cardinality_limit():
        pytest.skip("this opentelemetry-sdk release takes no per-view cardinality limit")
    reader = InMemoryMetricReader()
    # The overflow series takes one of the three slots, as in the SDK: two objects must go before it yields one.
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views(cardinality_limit=3))

    def points() -> dict[str, float]:
        data = reader.get_metrics_data()
        return {
            str(point.attributes.get("name", "overflow")): point.value
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
            for point in metric.data.data_points
        }

    try:
        counter = provider.get_meter("test").create_counter("c")
        handles = [lifecycle.bind(counter, ("ns", name)) for name in ("a", "b", "c", "d")]
        for _ in range(2):
            for handle in handles:
                handle.add(1)
        assert points() == {"a": 2, "b": 2, "c": 2, "overflow": 2}
        lifecycle.forget(("ns", "a"))
        lifecycle.forget(("ns", "b"))
        handles[3].add(5)
        handles[3].add(1)
        if lifecycle.degraded:  # nothing is evicted, so no slot frees: d stays folded, as on the bare SDK
            assert points() == {"c": 2, "overflow": 8}
        else:
            assert points() == {"c": 2, "d": 6, "overflow": 2}
    finally:
        provider.shutdown()
