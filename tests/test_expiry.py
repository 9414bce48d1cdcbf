"""The transient job-duration gauge: visible for its TTL after the last set, then gone (injected clock)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry
from support import FakeClock, samples, wait_until

from otel_gitjob import ConfigurationError, GitJobMetrics, Lifecycle, LifecyclePrometheusReader
from otel_gitjob._internal.core import _sdk
from otel_gitjob._internal.core.lifecycle import hooks_of

# The export-correctness tests run healthy and with each seam forced degraded (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("degraded_seam")

GAUGE = "fleet_gitjob_duration_seconds_gauge"
REPO = ("fleet-local", "simple")
LABELS = (("name", "simple"), ("namespace", "fleet-local"))


def expired_by_now(lifecycle: Lifecycle, before: int, expected: int) -> int:
    """Run an expiry pass and return how many expired since ``before``.

    The real sweeper thread shares the injected clock: when it wakes after the test moved the
    clock, it may expire the series first, so wait (briefly) for the count to settle.
    """
    hooks_of(lifecycle).expiry.expire_due()
    deadline = time.monotonic() + 5
    while hooks_of(lifecycle).expiry.expired_total - before < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return hooks_of(lifecycle).expiry.expired_total - before


def metric_names(metrics_data) -> set[str]:
    return {m.name for rm in metrics_data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def gauge_value(registry: CollectorRegistry) -> float | None:
    return samples(registry).get((GAUGE, LABELS))


def test_gauge_is_visible_within_its_ttl_and_gone_exactly_at_last_set_plus_ttl(gitjob, clock, registry):
    gitjob.job_succeeded(REPO, 42.0)
    clock.advance(119.999)
    assert gauge_value(registry) == 42.0

    clock.advance(0.001)

    assert gauge_value(registry) is None
    # The histogram is not transient: it stays until the repo is deleted.
    assert samples(registry)[("fleet_gitjob_duration_seconds_count", LABELS)] == 1


def test_setting_again_within_the_ttl_extends_it_unlike_fleets_sleep_then_delete(gitjob, clock, registry):
    gitjob.job_succeeded(REPO, 10.0)
    clock.advance(100)
    gitjob.job_succeeded(REPO, 20.0)  # a second job finishes before the first value's TTL ran out

    clock.advance(30)  # 130 s after the first set: Fleet's goroutine would have deleted the new value here
    assert gauge_value(registry) == 20.0

    clock.advance(90)  # 120 s after the last set
    assert gauge_value(registry) is None


def test_gauge_ttl_is_configurable(provider, lifecycle, clock, registry):
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle, gauge_ttl=5)
    gitjob.job_succeeded(REPO, 1.0)
    clock.advance(4.9)
    assert gauge_value(registry) == 1.0
    clock.advance(0.1)
    assert gauge_value(registry) is None


def test_any_instrument_can_be_declared_transient_with_its_own_ttl(provider, lifecycle, clock, registry):
    lifecycle.transient("build_queue_depth", 30)
    depth = provider.get_meter("mine").create_gauge("build_queue_depth")
    depth.set(3, {"namespace": "ns", "name": "r"})
    depth.set(5, {"shard": "default"})  # transient without any repo identity, too
    clock.advance(29)
    # The exporter fills labels a point lacks with "": match on the ones each point has.
    values = {labels: v for (name, labels), v in samples(registry).items() if name == "build_queue_depth"}
    assert sorted(values.values()) == [3, 5]
    clock.advance(1)
    assert not [key for key in samples(registry) if key[0] == "build_queue_depth"]


@pytest.mark.seam_internals("sdk")
def test_expiry_frees_the_sdk_storage(gitjob, provider, clock, lifecycle):
    gitjob.job_succeeded(REPO, 1.0)
    before = _sdk.series_count(provider)
    expired_before = hooks_of(lifecycle).expiry.expired_total
    clock.advance(120)
    assert expired_by_now(lifecycle, expired_before, 1) == 1
    assert _sdk.series_count(provider) == before - 2  # the gauge, in both readers


def test_a_set_a_million_times_series_keeps_the_heap_at_one_entry_per_series(gitjob, lifecycle, clock):
    for round_ in range(200):
        for i in range(50):
            gitjob.job_succeeded(("ns", "r%d" % i), float(round_))
        clock.advance(1)
        hooks_of(lifecycle).expiry.expire_due()
    assert hooks_of(lifecycle).expiry.heap_size() == 50
    assert hooks_of(lifecycle).expiry.live_series() == 50


def test_forgotten_repos_leave_only_stale_entries_that_are_compacted(gitjob, lifecycle, clock):
    for i in range(1500):  # below the SDK's default cardinality limit of 2000
        gitjob.job_succeeded(("ns", "r%d" % i), 1.0)
    assert hooks_of(lifecycle).expiry.heap_size() == 1500
    for i in range(1000):
        lifecycle.forget(("ns", "r%d" % i))
    assert hooks_of(lifecycle).expiry.heap_size() < 1000  # compacted once stale entries dominated
    expired_before = hooks_of(lifecycle).expiry.expired_total
    clock.advance(121)
    assert expired_by_now(lifecycle, expired_before, 500) == 500
    assert hooks_of(lifecycle).expiry.heap_size() == 0


def test_repo_forgotten_while_its_gauge_is_pending_cannot_cut_short_a_recreated_repo(
    gitjob, lifecycle, clock, registry
):
    gitjob.job_succeeded(REPO, 1.0)
    clock.advance(10)
    lifecycle.forget(REPO)
    lifecycle.observe(REPO)  # recreated
    clock.advance(90)
    gitjob.job_succeeded(REPO, 2.0)

    clock.advance(25)  # past the first series' deadline (t=120), within the new one's (t=220)
    assert gauge_value(registry) == 2.0
    clock.advance(95)
    assert gauge_value(registry) is None


def test_expiring_a_forgotten_repos_gauge_is_a_no_op(gitjob, lifecycle, clock):
    gitjob.job_succeeded(REPO, 1.0)
    lifecycle.forget(REPO)
    expired_before = hooks_of(lifecycle).expiry.expired_total
    clock.advance(121)
    assert expired_by_now(lifecycle, expired_before, 0) == 0


def test_sweeper_starts_lazily_and_expires_without_a_scrape(provider, lifecycle, clock):
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle)
    assert hooks_of(lifecycle).expiry.sweeper_alive() is False  # the gauge is declared, nothing set yet
    gitjob.job_succeeded(REPO, 1.0)
    assert hooks_of(lifecycle).expiry.sweeper_alive()
    clock.advance(120)
    hooks_of(lifecycle).expiry.wake()  # the real sweeper would wake at the deadline by itself
    wait_until(lambda: hooks_of(lifecycle).expiry.expired_total, what="the sweeper's expiry")
    assert hooks_of(lifecycle).expiry.expired_total == 1


def test_sweeper_sleeps_until_the_deadline_without_busy_wakeups(gitjob, lifecycle):
    gitjob.job_succeeded(REPO, 1.0)
    time.sleep(0.3)
    assert hooks_of(lifecycle).expiry.wakeups <= 1


def test_sweeper_wakes_at_a_real_deadline():
    lifecycle = Lifecycle()
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[LifecyclePrometheusReader(lifecycle, registry)], views=lifecycle.views())
    try:
        gitjob = GitJobMetrics(provider, lifecycle=lifecycle, gauge_ttl=0.05)
        gitjob.job_succeeded(REPO, 1.0)
        wait_until(lambda: hooks_of(lifecycle).expiry.expired_total, what="the sweeper's expiry at the real deadline")
        assert hooks_of(lifecycle).expiry.expired_total == 1
    finally:
        provider.shutdown()
        lifecycle.shutdown()


def test_the_owners_shutdown_stops_the_sweeper_and_many_lifecycles_leak_no_threads():
    before = threading.active_count()
    for _ in range(20):
        lifecycle = Lifecycle()
        provider = MeterProvider(
            metric_readers=[LifecyclePrometheusReader(lifecycle, CollectorRegistry())], views=lifecycle.views()
        )
        GitJobMetrics(provider, lifecycle=lifecycle).job_succeeded(REPO, 1.0)
        assert hooks_of(lifecycle).expiry.sweeper_alive()
        provider.shutdown()
        assert hooks_of(lifecycle).expiry.sweeper_alive()  # a provider never shuts down the lifecycle it used
        lifecycle.shutdown()
        assert not hooks_of(lifecycle).expiry.sweeper_alive()
    assert threading.active_count() == before


def test_wrapped_exporter_drops_a_gauge_that_expired_between_collection_and_export(
    gitjob, lifecycle, memory_reader, clock
):
    gitjob.job_succeeded(REPO, 1.0)
    collected = memory_reader.get_metrics_data()
    clock.advance(120)
    filtered = hooks_of(lifecycle).filter(collected)
    assert GAUGE not in metric_names(filtered) and "fleet_gitjob_duration_seconds" in metric_names(filtered)


@pytest.mark.parametrize("ttl", [0, -5, float("nan"), "soon"])
def test_transient_with_a_bad_ttl_raises(lifecycle, ttl):
    with pytest.raises(ConfigurationError, match="finite number of seconds > 0"):
        lifecycle.transient("x", ttl)


@pytest.mark.seam_internals("sdk")
def test_expiry_racing_forget_sets_and_scrapes_stays_consistent():
    clock = FakeClock()
    lifecycle = Lifecycle(clock=clock)
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[LifecyclePrometheusReader(lifecycle, registry)], views=lifecycle.views())
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle, gauge_ttl=1.0)
    errors: list[BaseException] = []
    stop = threading.Event()

    def guard(work):
        def run():
            try:
                while not stop.is_set():
                    work()
            except BaseException as error:  # noqa: BLE001 - reported by the test
                errors.append(error)

        return run

    counter = iter(range(10**9))

    def setter():
        i = next(counter) % 50
        gitjob.job_succeeded(("ns", "r%d" % i), 1.0)

    def forgetter():
        i = next(counter) % 50
        lifecycle.forget(("ns", "r%d" % i))
        lifecycle.observe(("ns", "r%d" % i))

    def ticker():
        clock.advance(0.01)
        hooks_of(lifecycle).expiry.expire_due()

    def scraper():
        samples(registry)

    threads = [threading.Thread(target=guard(w)) for w in (setter, setter, forgetter, ticker, scraper)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        # Consistent: every gauge series left in storage has a live expiry entry, and vice versa. The
        # sweeper thread may be in the middle of a sweep of its own: the scrape must not show what it
        # has not evicted yet, and once it is stopped nothing may be left in the SDK's storage.
        clock.advance(2)
        hooks_of(lifecycle).expiry.expire_due()
        assert not [key for key in samples(registry) if key[0] == GAUGE]
        hooks_of(lifecycle).expiry.shutdown()
        hooks_of(lifecycle).expiry.expire_due()
        assert _sdk.series_count(provider, instrument=GAUGE) == 0
        assert hooks_of(lifecycle).expiry.live_series() == 0
    finally:
        provider.shutdown()
        lifecycle.shutdown()


def test_a_gauge_the_sweeper_expired_after_the_collection_is_not_exported(gitjob, lifecycle, memory_reader, clock):
    gitjob.job_succeeded(REPO, 1.0)
    collected = memory_reader.get_metrics_data()
    clock.advance(120)
    assert expired_by_now(lifecycle, 0, 1) == 1  # a sweep between collection and export
    filtered = hooks_of(lifecycle).filter(collected)
    assert GAUGE not in metric_names(filtered) and "fleet_gitjob_duration_seconds" in metric_names(filtered)


def test_a_collection_with_nothing_due_is_exported_untouched(gitjob, lifecycle, memory_reader, clock):
    gitjob.job_succeeded(REPO, 1.0)
    collected = memory_reader.get_metrics_data()
    clock.advance(60)
    assert hooks_of(lifecycle).filter(collected) is collected


def test_a_collection_during_a_sweep_on_another_thread_never_shows_what_it_expires(gitjob, lifecycle, clock, registry):
    gitjob.job_succeeded(REPO, 1.0)
    seen: list[float | None] = []
    real = hooks_of(lifecycle).registry.evict_series

    def scrape_then_evict(series, unless=None):
        # Between the sweep's decision (its entries are off the heap) and its eviction, a scrape.
        seen.append(gauge_value(registry))
        return real(series, unless)

    hooks_of(lifecycle).registry.evict_series = scrape_then_evict  # type: ignore[method-assign]
    clock.advance(120)
    assert expired_by_now(lifecycle, 0, 1) == 1  # by this thread or the sweeper: the hook sees either
    assert seen == [None]


@pytest.mark.seam_internals("sdk")
def test_a_series_written_again_while_its_expiry_evicts_it_is_still_forgotten_with_its_object(
    gitjob, lifecycle, provider, clock, registry, monkeypatch
):
    gitjob.job_succeeded(REPO, 1.0)
    real = _sdk.evict
    rewritten: list[bool] = []

    def evict_then_write(*args, **kwargs):
        removed = real(*args, **kwargs)
        if not rewritten:  # a job finishes right after the sweep evicted the gauge: it is created again
            rewritten.append(True)
            gitjob.job_succeeded(REPO, 2.0)
        return removed

    monkeypatch.setattr(_sdk, "evict", evict_then_write)
    clock.advance(120)
    assert expired_by_now(lifecycle, 0, 1) == 1
    monkeypatch.setattr(_sdk, "evict", real)
    assert gauge_value(registry) == 2.0
    # The GitRepo is deleted and created again: the gauge written during the sweep goes with it.
    lifecycle.forget(REPO)
    lifecycle.observe(REPO)
    assert _sdk.series_count(provider, instrument=GAUGE) == 0
    assert gauge_value(registry) is None


@pytest.mark.seam_internals("sdk")
def test_a_stale_expiry_never_evicts_the_gauge_of_the_object_created_again(
    gitjob, lifecycle, provider, clock, registry
):
    gitjob.job_succeeded(REPO, 1.0)
    real = hooks_of(lifecycle).registry.evict_series
    calls: list[int] = []
    evicted = threading.Event()

    def recreate_then_evict(series, unless=None):
        # After the sweep decided to expire the old gauge: the GitRepo is deleted, created again, runs a job.
        if not calls:
            lifecycle.forget(REPO)
            lifecycle.observe(REPO)
            gitjob.job_succeeded(REPO, 2.0)
        calls.append(len(series))
        try:
            return real(series, unless)
        finally:
            evicted.set()

    hooks_of(lifecycle).registry.evict_series = recreate_then_evict  # type: ignore[method-assign]
    clock.advance(120)
    hooks_of(lifecycle).expiry.expire_due()
    assert evicted.wait(5)  # by this thread or the sweeper, whichever took the entry
    assert calls == [1]
    assert gauge_value(registry) == 2.0
    # It lives for its own TTL, not the old incarnation's. (Counted in storage: before SDK 1.45 a
    # synchronous gauge's value is cleared at each collection, so a second scrape would show nothing.)
    clock.advance(119)
    before = hooks_of(lifecycle).expiry.expired_total
    assert expired_by_now(lifecycle, before, 0) == 0
    assert _sdk.series_count(provider, instrument=GAUGE) == 2  # one per reader
    clock.advance(1)
    assert expired_by_now(lifecycle, before, 1) == 1
    assert _sdk.series_count(provider, instrument=GAUGE) == 0


def scoped_points(reader: InMemoryMetricReader, name: str) -> dict[tuple[str, tuple[tuple[str, Any], ...]], Any]:
    """{(scope name, sorted attributes): value} of one metric in a collection of ``reader``."""
    found = {}
    data = reader.get_metrics_data()
    for resource_metrics in getattr(data, "resource_metrics", None) or ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        found[(scope_metrics.scope.name, tuple(sorted(point.attributes.items())))] = point.value
    return found


@pytest.fixture
def expiring(clock: FakeClock) -> Iterator[tuple[Lifecycle, MeterProvider, InMemoryMetricReader]]:
    """A lifecycle on a hand-moved clock and a provider with an in-memory reader only."""
    lifecycle = Lifecycle(clock=clock)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
    try:
        yield lifecycle, provider, reader
    finally:
        provider.shutdown()
        lifecycle.shutdown()


@pytest.mark.seam_internals("sdk")
def test_same_named_transient_instruments_of_two_meters_expire_each_on_its_own(expiring, clock):
    lifecycle, provider, reader = expiring
    lifecycle.transient("job_gauge", 60.0)
    first = provider.get_meter("first").create_gauge("job_gauge")
    second = provider.get_meter("second").create_gauge("job_gauge")
    attributes = {"namespace": "ns", "name": "a"}
    key = tuple(sorted(attributes.items()))
    first.set(1.0, attributes)
    clock.advance(40.0)
    second.set(2.0, attributes)
    clock.advance(30.0)  # the first is past its TTL, the second is not
    hooks_of(lifecycle).before_collect()
    assert scoped_points(reader, "job_gauge") == {("second", key): 2.0}
    clock.advance(30.0)
    hooks_of(lifecycle).before_collect()
    assert scoped_points(reader, "job_gauge") == {}
    assert _sdk.series_count(provider, include_placeholders=True) == 0


@pytest.mark.seam_internals("sdk")
def test_a_transient_instrument_recorded_without_attributes_expires(expiring, clock):
    lifecycle, provider, reader = expiring
    lifecycle.transient("job_gauge", 60.0)
    gauge = provider.get_meter("hardening").create_gauge("job_gauge")
    gauge.set(5.0)
    hooks_of(lifecycle).before_collect()
    assert scoped_points(reader, "job_gauge") == {("hardening", ()): 5.0}
    clock.advance(60.0)
    hooks_of(lifecycle).before_collect()
    assert scoped_points(reader, "job_gauge") == {}
    assert _sdk.series_count(provider, include_placeholders=True) == 0


def test_a_collection_filtered_after_one_transient_expired_keeps_another_with_the_same_attributes(expiring, clock):
    lifecycle, provider, reader = expiring
    lifecycle.transient("short_gauge", 30.0)
    lifecycle.transient("long_gauge", 120.0)
    meter = provider.get_meter("pair")
    attributes = {"namespace": "ns", "name": "a"}
    meter.create_gauge("short_gauge").set(1.0, attributes)
    meter.create_gauge("long_gauge").set(2.0, attributes)
    collected = reader.get_metrics_data()
    clock.advance(30.0)  # the short one is past its TTL, whether the sweeper caught up or not
    assert metric_names(hooks_of(lifecycle).filter(collected)) == {"long_gauge"}
