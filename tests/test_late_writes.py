"""Late writes of a deleted object: blocked, never in a cardinality slot, never under the new incarnation."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest
from support import gitrepo, points_of, samples

from otel_gitjob import GitJobMetrics, Lifecycle, LifecyclePrometheusReader
from otel_gitjob._internal.core import _sdk
from otel_gitjob._internal.core.lifecycle import hooks_of

# The export-correctness tests run healthy and with each seam forced degraded (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("degraded_seam")

NS, NAME = "fleet-local", "repo-a"
REPO = (NS, NAME)
LABELS = (("name", NAME), ("namespace", NS))
CREATED = "fleet_gitjobs_created_success_total"


@pytest.mark.seam_internals("sdk")
@pytest.mark.skipif(
    not _sdk.supports_cardinality_limit(), reason="this opentelemetry-sdk release has no cardinality limit"
)
def test_late_writes_of_1900_deleted_repos_never_push_200_new_ones_into_overflow(clock):
    lifecycle = Lifecycle(clock=clock)
    registry = CollectorRegistry()
    memory = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[LifecyclePrometheusReader(lifecycle, registry), memory],
        views=lifecycle.views(cardinality_limit=2_000),
    )
    try:
        gitjob = GitJobMetrics(provider, lifecycle=lifecycle)
        deleted = [("old", "r%d" % i) for i in range(1_900)]
        new = [("new", "r%d" % i) for i in range(200)]
        for repo in deleted:
            gitjob.job_created(repo)
        for repo in deleted:
            lifecycle.forget(repo)
        for round_ in range(3):  # late writes keep coming, each round before a collection
            for repo in deleted:
                gitjob.job_created(repo)
            for repo in new:
                gitjob.job_created(repo)
            text = generate_latest(registry).decode()
            points = points_of(memory.get_metrics_data())
            assert "overflow" not in text
            assert not [labels for _, labels in points if "otel.metric.overflow" in dict(labels)]
            exported = {
                dict(labels)["name"]
                for name, labels in points
                if name == CREATED and dict(labels).get("namespace") == "new"
            }
            assert exported == {name for _, name in new}, "round %d" % round_
            assert not any(dict(labels).get("namespace") == "old" for _, labels in points)
    finally:
        provider.shutdown()
        lifecycle.shutdown()


def test_a_block_without_a_uid_is_lifted_by_the_first_write_that_carries_one(gitjob, lifecycle, registry):
    gitjob.job_created(gitrepo(NAME, "uid-1"))
    lifecycle.forget(REPO)  # the package docstring's own example: no uid
    gitjob.job_created(REPO)  # a late write without a uid: dropped
    assert (CREATED, LABELS) not in samples(registry)
    gitjob.job_created(gitrepo(NAME, "uid-2"))  # the recreated repo's first write
    assert samples(registry).get((CREATED, LABELS)) == 1
    assert hooks_of(lifecycle).registry.blocked_objects() == 0


@pytest.mark.parametrize("recreated_by", ["observe", "a write with the new uid"])
def test_a_late_write_with_the_old_uid_is_not_counted_under_the_new_incarnation(
    gitjob, lifecycle, registry, recreated_by
):
    gitjob.job_created(gitrepo(NAME, "uid-1"))
    lifecycle.forget(gitrepo(NAME, "uid-1"))
    if recreated_by == "observe":
        lifecycle.observe(gitrepo(NAME, "uid-2"))
    else:
        gitjob.job_created(gitrepo(NAME, "uid-2"))
    for _ in range(3):
        gitjob.job_created(gitrepo(NAME, "uid-1"))  # a reconcile of the deleted incarnation, still in flight
    gitjob.job_created(gitrepo(NAME, "uid-2"))
    assert samples(registry).get((CREATED, LABELS)) == (1 if recreated_by == "observe" else 2)
    assert lifecycle.drops.counts().get("stale_uid") == 3
