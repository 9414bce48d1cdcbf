"""When the SDK seam's self-check fails, the degraded mode is slower but never exports wrong data.

The self-check is made to fail three ways an SDK release could break it:
eviction has no effect, the series-key hash changed, the SDK's frames are not
recognised. Each time, with the public API only: an expired transient gauge
leaves every scrape, an old label set removed by ``forget_series`` is never
exported again, and writes made while an object was forgotten stay dropped
after ``observe()``. The rest of the core suite's export-correctness tests run
degraded too, through the ``degraded_seam`` fixture (tests/conftest.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry
from support import FakeClock, samples

from otel_gitjob import GitJobMetrics, Lifecycle, LifecyclePrometheusReader
from otel_gitjob._internal.core import _sdk, degraded
from otel_gitjob._internal.core.lifecycle import hooks_of

GAUGE = "fleet_gitjob_duration_seconds_gauge"
CREATED = "fleet_gitjobs_created_success_total"


def _eviction_has_no_effect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sdk, "evict", lambda *args, **kwargs: 0)


def _series_key_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sdk, "series_key", lambda attributes: ("another hash", frozenset(attributes.items())))


def _frames_not_recognised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sdk, "_MATCH_CODES", frozenset())


BREAKAGES: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "eviction has no effect": _eviction_has_no_effect,
    "series key hash changed": _series_key_changed,
    "SDK frames not recognised": _frames_not_recognised,
}


@pytest.fixture(params=sorted(BREAKAGES))
def broken_sdk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An SDK seam whose self-check fails one way; the cached outcome and the seam record are restored after."""
    monkeypatch.setattr(_sdk, "_check_result", None)
    monkeypatch.setattr(degraded, "_checked", {})
    monkeypatch.delenv(degraded.FORCE_ENV, raising=False)
    BREAKAGES[request.param](monkeypatch)
    check = _sdk.self_check(rerun=True)
    assert not check.ok, "the self-check did not notice: %s" % request.param
    yield request.param


@pytest.fixture
def setup(broken_sdk: str, clock: FakeClock) -> Iterator[tuple[Lifecycle, MeterProvider, CollectorRegistry]]:
    lifecycle = Lifecycle(clock=clock)
    assert lifecycle.degraded
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[LifecyclePrometheusReader(lifecycle, registry)], views=lifecycle.views())
    yield lifecycle, provider, registry
    provider.shutdown()
    lifecycle.shutdown()


def test_expired_transient_gauges_leave_every_scrape(setup, clock):
    lifecycle, provider, registry = setup
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle, gauge_ttl=1.0)
    for i in range(26):
        gitjob.job_succeeded(("ns", "repo-%d" % i), 1.0)
    assert sum(name == GAUGE for name, _ in samples(registry)) == 26

    clock.advance(1.0)
    assert [sum(name == GAUGE for name, _ in samples(registry)) for _ in range(3)] == [0, 0, 0]

    gitjob.job_succeeded(("ns", "repo-0"), 2.0)  # set again: back, with the new value, until its own TTL
    assert [value for (name, _), value in samples(registry).items() if name == GAUGE] == [2.0]
    clock.advance(1.0)
    assert sum(name == GAUGE for name, _ in samples(registry)) == 0


def test_forget_series_hides_the_old_label_set_for_good(setup):
    lifecycle, provider, registry = setup
    info = provider.get_meter("mine").create_counter("gitrepo_branch")
    for i in range(25):
        info.add(1, {"namespace": "ns", "name": "repo-%d" % i, "branch": "old"})
    for i in range(25):
        assert lifecycle.forget_series("gitrepo_branch", {"namespace": "ns", "name": "repo-%d" % i, "branch": "old"})
        info.add(1, {"namespace": "ns", "name": "repo-%d" % i, "branch": "new"})

    for _ in range(2):
        branches = [dict(labels)["branch"] for name, labels in samples(registry) if name == "gitrepo_branch_total"]
        assert sorted(set(branches)) == ["new"] and len(branches) == 25

    # The old label set written again is a new series, from zero.
    info.add(5, {"namespace": "ns", "name": "repo-0", "branch": "old"})
    assert (
        samples(registry)[("gitrepo_branch_total", (("branch", "old"), ("name", "repo-0"), ("namespace", "ns")))] == 5
    )


def test_writes_made_while_forgotten_stay_dropped_after_observe(setup, caplog):
    lifecycle, provider, registry = setup
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle)
    repo = ("ns", "recreated")
    labels = (("name", "recreated"), ("namespace", "ns"))
    gitjob.job_created(repo)
    assert lifecycle.forget(repo) == 1
    with caplog.at_level(logging.WARNING, logger="otel_gitjob"):
        gitjob.job_created(repo)  # late writes of the deleted repo: dropped and counted
        gitjob.job_created(repo)
    assert (CREATED, labels) not in samples(registry)
    assert lifecycle.drops.counts().get("forgotten_repo") == 2

    lifecycle.observe(repo)
    gitjob.job_created(repo)
    assert samples(registry)[(CREATED, labels)] == 1.0  # as a healthy install reads: the new repo's one job


def test_the_degraded_seam_is_reported_once_and_on_the_self_metric(broken_sdk, caplog):
    with caplog.at_level(logging.WARNING, logger="otel_gitjob"):
        first, second = Lifecycle(), Lifecycle()
    try:
        warnings = [r.getMessage() for r in caplog.records if "seam runs degraded" in r.getMessage()]
        assert len(warnings) == 1
        assert "1.33.0 through 1.45.2" in warnings[0]
        assert first.self_metrics.observe("otel_gitjob_degraded") == [(1.0, {"seam": "sdk"})]
        assert degraded.degraded_seams() == {"sdk"}
    finally:
        first.shutdown()
        second.shutdown()


def test_a_set_between_the_decision_to_expire_and_the_emptying_survives(setup, clock):
    lifecycle, provider, registry = setup
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle, gauge_ttl=120.0)
    labels = (("name", "raced"), ("namespace", "ns"))
    gitjob.job_succeeded(("ns", "raced"), 1.0)
    clock.advance(120.0)  # due: the next collection decides to expire it
    real = hooks_of(lifecycle).registry._empty_gates
    raced: list[bool] = []

    def set_then_empty(*args, **kwargs):
        if not raced:
            raced.append(True)
            gitjob.job_succeeded(("ns", "raced"), 7.0)  # another thread's set, between the decision and the emptying
        return real(*args, **kwargs)

    hooks_of(lifecycle).registry._empty_gates = set_then_empty  # type: ignore[method-assign]
    assert samples(registry).get((GAUGE, labels)) == 7.0
    assert raced
    clock.advance(119.0)
    assert samples(registry).get((GAUGE, labels)) == 7.0  # it lives a TTL from the racing set
    clock.advance(1.0)
    assert (GAUGE, labels) not in samples(registry)
