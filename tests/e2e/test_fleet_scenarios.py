"""Fleet's e2e scenarios, end to end: emulated API server → listener → otel-gitjob → a real Prometheus.

Prometheus scrapes every second and relabels like the Prometheus Operator, so
the metric's own ``namespace`` label is ``exported_namespace`` in every query.
"""

from __future__ import annotations

import time

from e2e_stack import GAUGE_TTL, Stack
from prometheus_server import SCRAPE_INTERVAL, values

GITJOB_METRICS = {
    "fleet_gitjobs_created_success_total",
    "fleet_gitjob_duration_seconds_count",
    "fleet_gitjob_duration_seconds_gauge",
    "fleet_gitrepo_fetch_latest_commit_success_total",
    "fleet_gitrepo_fetch_latest_commit_duration_seconds_count",
}
FAILURE_METRICS = {"fleet_gitjobs_created_failure_total", "fleet_gitrepo_fetch_latest_commit_failure_total"}
STATUS = {"desiredReadyClusters": 3, "readyClusters": 2, "resourceCounts": {"ready": 5, "notReady": 1}}


def metric_names(stack: Stack, name: str) -> set[str]:
    result = stack.prometheus.query('{exported_namespace="fleet-local", name="%s"}' % name)
    return {sample["metric"]["__name__"] for sample in result}


def run_healthy_job(stack: Stack, name: str) -> None:
    stack.gitjob.job_created(("fleet-local", name))
    stack.gitjob.job_succeeded(("fleet-local", name), 12.0)
    stack.gitjob.commit_fetched(("fleet-local", name), 0.3)


def test_healthy_gitrepo_has_its_gitjob_series_and_status_gauges_and_no_failure_series(stack):
    stack.emulator.create("healthy", status=STATUS)
    run_healthy_job(stack, "healthy")

    stack.prometheus.wait_for(
        '{exported_namespace="fleet-local", name="healthy"}',
        lambda result: (
            GITJOB_METRICS <= {s["metric"]["__name__"] for s in result}
            and "fleet_gitrepo_ready_clusters" in {s["metric"]["__name__"] for s in result}
        ),
    )
    names = metric_names(stack, "healthy")
    assert not names & FAILURE_METRICS
    ready = stack.prometheus.query('fleet_gitrepo_ready_clusters{name="healthy"}')
    (labels, value), *_ = values(ready).items()
    assert value == 2
    assert dict(labels)["repo"] == "https://github.com/rancher/fleet-examples"
    assert values(stack.prometheus.query('fleet_gitrepo_resources_not_ready{name="healthy"}')).popitem()[1] == 1


def test_failures_appear_with_the_right_counts_and_increase(stack):
    stack.emulator.create("flaky")
    repo = ("fleet-local", "flaky")
    stack.gitjob.job_creation_failed(repo)
    stack.gitjob.commit_fetch_failed(repo)
    stack.prometheus.wait_for('fleet_gitjobs_created_failure_total{name="flaky"}', bool)
    for _ in range(2):
        stack.gitjob.job_creation_failed(repo)
    stack.gitjob.commit_fetch_failed(repo)

    stack.prometheus.wait_for('fleet_gitjobs_created_failure_total{name="flaky"} == 3', bool)
    stack.prometheus.wait_for('fleet_gitrepo_fetch_latest_commit_failure_total{name="flaky"} == 2', bool)
    stack.prometheus.wait_scrapes(4)

    def increase(metric: str) -> float:
        # Evaluated at the last sample's timestamp, so that Prometheus does not extrapolate past it.
        selector = '%s{name="flaky"}' % metric
        ((_, last_sample_at),) = values(stack.prometheus.query("timestamp(%s)" % selector)).items()
        (value,) = values(stack.prometheus.query("increase(%s[1m])" % selector, at=last_sample_at)).values()
        return value

    # A failure series is born at 1 (Fleet's too: no series before the first failure), and Prometheus
    # cannot count a first increment it never saw a zero before; the increments after it are counted,
    # extrapolated by half a scrape interval (+10 % jitter) before the first sample of a range of >= 5 s.
    most = 1 + 0.55 * SCRAPE_INTERVAL / 5
    assert 2 <= increase("fleet_gitjobs_created_failure_total") <= 2 * most
    assert 1 <= increase("fleet_gitrepo_fetch_latest_commit_failure_total") <= most


def test_deleted_gitrepo_is_stale_within_two_scrapes_others_untouched_and_recreate_starts_from_zero(stack):
    for name in ("doomed", "bystander"):
        stack.emulator.create(name, status=STATUS)
        run_healthy_job(stack, name)
        stack.gitjob.job_created(("fleet-local", name))
    stack.prometheus.wait_for('fleet_gitjobs_created_success_total{name="doomed"} == 2', bool)
    stack.prometheus.wait_for('fleet_gitrepo_ready_clusters{name="doomed"}', bool)
    bystander_before = metric_names(stack, "bystander")

    deleted_at = time.monotonic()
    stack.emulator.delete("doomed")
    stack.prometheus.wait_for('{exported_namespace="fleet-local", name="doomed"}', lambda result: not result)
    elapsed = time.monotonic() - deleted_at

    # Two scrapes, plus the slack of polling the query API every 0.2 s.
    assert elapsed <= 2 * SCRAPE_INTERVAL + 1.0, elapsed
    assert metric_names(stack, "bystander") == bystander_before

    stack.emulator.create("doomed", status=STATUS)  # same name, new uid
    recreated = stack.emulator.api.get_namespaced_custom_object(
        "fleet.cattle.io", "v1alpha1", "fleet-local", "gitrepos", "doomed"
    )
    # The controller records with the object it reconciles: its new uid lifts the late-write block
    # even before the listener has seen the ADDED event.
    stack.gitjob.job_created(recreated)
    result = stack.prometheus.wait_for('fleet_gitjobs_created_success_total{name="doomed"}', bool)
    assert values(result).popitem()[1] == 1


def test_transient_gauge_is_visible_within_its_ttl_stale_after_and_a_reset_keeps_it(stack):
    stack.emulator.create("ttl")
    repo = ("fleet-local", "ttl")
    gauge = 'fleet_gitjob_duration_seconds_gauge{name="ttl"}'

    stack.gitjob.job_succeeded(repo, 30.0)
    set_at = time.monotonic()
    stack.prometheus.wait_for(gauge, bool)
    stack.prometheus.wait_for(gauge, lambda result: not result, timeout=GAUGE_TTL + 3 * SCRAPE_INTERVAL)
    assert time.monotonic() - set_at >= GAUGE_TTL

    stack.gitjob.job_succeeded(repo, 40.0)
    stack.prometheus.wait_for(gauge, bool)
    time.sleep(GAUGE_TTL - 1.5)
    stack.gitjob.job_succeeded(repo, 50.0)  # re-set within the TTL
    time.sleep(2.5)  # past the first set's TTL
    assert values(stack.prometheus.wait_for(gauge + " == 50", bool)).popitem()[1] == 50
    # The histogram is not transient.
    assert stack.prometheus.query('fleet_gitjob_duration_seconds_count{name="ttl"}')
