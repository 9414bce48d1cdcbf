"""A write racing its own expiry, or the observe() that lifts a block, is never lost.

Where a race needs an exact interleaving, the test provokes it by hand at the one point where it can
happen (the SDK seam's ``evict``, or the SDK's re-lookup), on the test's own thread, instead of hoping a
scheduler produces it. These are seam tests: they read and patch ``otel_gitjob._internal.core._sdk``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry
from sdk_storage import measurement, sdk_matches, stored
from support import FakeClock, samples

from otel_gitjob import Lifecycle, LifecyclePrometheusReader
from otel_gitjob._internal.core import _sdk
from otel_gitjob._internal.core.lifecycle import hooks_of

# The export-correctness tests run healthy and with each seam forced degraded (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("degraded_seam")

NS, NAME = "fleet-local", "repo-a"
REPO = (NS, NAME)
LABELS = (("name", NAME), ("namespace", NS))
CREATED = "fleet_gitjobs_created_success_total"
GAUGE = "fleet_gitjob_duration_seconds_gauge"


@pytest.mark.seam_internals("sdk")
def test_a_set_between_the_decision_to_expire_and_the_eviction_survives(
    gitjob, lifecycle, clock, registry, monkeypatch
):
    gitjob.job_succeeded(REPO, 1.0)
    clock.advance(120.0)  # due: the next collection decides to expire it
    real_evict = _sdk.evict
    raced = []

    def evict_after_a_racing_set(instrument: Any, *args: Any, **kwargs: Any) -> Any:
        if instrument.name == GAUGE and not raced:
            raced.append(True)
            gitjob.job_succeeded(REPO, 7.0)  # another thread's set, between the decision and the eviction
        return real_evict(instrument, *args, **kwargs)

    monkeypatch.setattr(_sdk, "evict", evict_after_a_racing_set)
    assert samples(registry).get((GAUGE, LABELS)) == 7.0
    assert raced
    monkeypatch.undo()
    clock.advance(119.0)
    samples(registry)
    assert stored(gitjob._duration_gauge) == 2  # one per reader: it lives a TTL from the racing set
    clock.advance(1.0)
    assert (GAUGE, LABELS) not in samples(registry)
    assert stored(gitjob._duration_gauge) == 0


@pytest.mark.seam_internals("sdk")
def test_a_set_through_an_aggregation_found_before_its_expiry_lands_in_a_new_series(
    gitjob, lifecycle, clock, registry, monkeypatch
):
    gitjob.job_succeeded(REPO, 1.0)
    clock.advance(120.0)
    real_evict = _sdk.evict
    gauge = gitjob._duration_gauge
    attributes = {"namespace": NS, "name": NAME}

    def evict_under_a_writer(instrument: Any, key: Any, *args: Any, **kwargs: Any) -> Any:
        if instrument is not gauge:
            return real_evict(instrument, key, *args, **kwargs)
        # A writer looked its aggregation up before the eviction (the SDK does so without a lock) ...
        held = [match._attributes_aggregation.get(key) for match in sdk_matches(instrument)]
        removed = real_evict(instrument, key, *args, **kwargs)
        for aggregation in held:  # ... and aggregates after it.
            aggregation.aggregate(measurement(instrument, 7.0, attributes))
        return removed

    monkeypatch.setattr(_sdk, "evict", evict_under_a_writer)
    assert samples(registry).get((GAUGE, LABELS)) == 7.0
    monkeypatch.undo()
    assert stored(gauge) == 2
    clock.advance(120.0)
    assert (GAUGE, LABELS) not in samples(registry)
    assert stored(gauge) == 0


@pytest.mark.seam_internals("sdk")
def test_a_write_through_a_placeholder_found_before_observe_lands_in_the_live_series(
    gitjob, lifecycle, registry, monkeypatch
):
    gitjob.job_created(REPO)
    lifecycle.forget(REPO)
    gitjob.job_created(REPO)  # a late write: a placeholder now stands in the storage
    counter = gitjob._created_success
    attributes = {"namespace": NS, "name": NAME}
    real_evict = _sdk.evict

    def evict_under_a_writer(instrument: Any, key: Any, *args: Any, **kwargs: Any) -> Any:
        placeholder = kwargs.get("only")
        removed = real_evict(instrument, key, *args, **kwargs)
        if instrument is counter and placeholder is not None:
            # A writer found the placeholder before observe() evicted it, and aggregates after.
            placeholder.aggregate(measurement(instrument, 1, attributes))
        return removed

    monkeypatch.setattr(_sdk, "evict", evict_under_a_writer)
    lifecycle.observe(REPO)  # the repo is recreated; a write found the placeholder just before
    monkeypatch.undo()
    assert samples(registry).get((CREATED, LABELS)) == 1
    gitjob.job_created(REPO)  # and a write just after observe() counts too
    assert samples(registry).get((CREATED, LABELS)) == 2


@pytest.mark.seam_internals("sdk")
@pytest.mark.skipif(
    _sdk.ADAPTER is None or not _sdk.ADAPTER.guard_relookup,
    reason="this opentelemetry-sdk release does not look a series up again after its lock",
)
def test_a_set_whose_series_expires_between_the_sdks_check_and_its_re_lookup_survives(
    gitjob, lifecycle, clock, registry
):
    gitjob.job_succeeded(REPO, 1.0)
    clock.advance(120.0)
    gauge = gitjob._duration_gauge
    (match, *others) = sdk_matches(gauge)
    table = match._attributes_aggregation
    expire_now = [hooks_of(lifecycle).before_collect]

    class ExpiresAfterTheCheck(type(table)):  # type: ignore[misc]
        def __contains__(self, key: object) -> bool:
            present = super().__contains__(key)
            if present and expire_now:
                expire_now.pop()()  # the sweeper, between the SDK's unlocked check and its re-lookup
            return present

    match._attributes_aggregation = ExpiresAfterTheCheck(table, table._raced)
    gauge.set(7.0, dict(LABELS))  # the SDK's own path (a typed call writes through its bound handle)
    assert not expire_now
    assert samples(registry).get((GAUGE, LABELS)) == 7.0
    assert lifecycle.drops.counts().get("raced_eviction", 0) == 0


# Seconds the expiry-race hammer runs.
RACE_SECONDS = 3.0


def test_sets_racing_the_sweeper_at_their_deadline_are_never_lost():
    """Each round makes every series due, wakes the sweeper and sets them all again at once.

    The clock only moves at the start of a round, so a set is never due at the
    collection that follows it: a missing point is a lost set.
    """
    clock = FakeClock()
    lifecycle = Lifecycle(clock=clock)
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[LifecyclePrometheusReader(lifecycle, registry)], views=lifecycle.views())
    lifecycle.transient("race_gauge", 1.0)
    gauge = provider.get_meter("hardening").create_gauge("race_gauge")
    repos = [{"namespace": "ns", "name": "r%d" % i} for i in range(20)]
    rounds = lost = 0
    try:
        for repo in repos:
            gauge.set(0.0, repo)
        expiry = hooks_of(lifecycle).expiry
        assert expiry is not None
        deadline = time.monotonic() + RACE_SECONDS
        while time.monotonic() < deadline:
            rounds += 1
            clock.advance(1.0)
            expiry.wake()
            for repo in repos:
                gauge.set(float(rounds), repo)
            got = samples(registry)
            lost += sum(got.get(("race_gauge", tuple(sorted(repo.items())))) != float(rounds) for repo in repos)
        print("sets racing the sweeper: %d lost of %d" % (lost, rounds * len(repos)))
        assert rounds > 10
        assert lost == 0
    finally:
        provider.shutdown()
        lifecycle.shutdown()
