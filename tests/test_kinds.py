"""An object is its kind plus its identity: forgetting a GitRepo never touches a HelmOp of the same name."""

from __future__ import annotations

import pytest
from support import samples

from otel_gitjob import ConfigurationError, Lifecycle

# The export-correctness tests run healthy and with each seam forced degraded (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("degraded_seam")

# A HelmOp-scoped instrument of the user's. A counter, not a gauge: before opentelemetry-sdk 1.39 a
# synchronous gauge reports a value only in the first collection after it was set, and these tests scrape
# more than once.
HELMOP_METRIC = "helmop_reconciles"


def gitrepo_body(namespace: str, name: str, uid: str = "u1") -> dict:
    return {
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "GitRepo",
        "metadata": {"namespace": namespace, "name": name, "uid": uid},
    }


def helmop_body(namespace: str, name: str, uid: str = "h1") -> dict:
    return {
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "HelmOp",
        "metadata": {"namespace": namespace, "name": name, "uid": uid},
    }


@pytest.fixture
def helmop_counter(provider, lifecycle):
    lifecycle.declare_kind("HelmOp", HELMOP_METRIC)
    return provider.get_meter("fleet").create_counter(HELMOP_METRIC)


def names_of(registry, metric: str) -> set[str]:
    return {dict(labels)["name"] for (name, labels) in samples(registry) if name == metric}


def test_forgetting_a_gitrepo_leaves_the_helmop_of_the_same_name(gitjob, helmop_counter, lifecycle, registry):
    gitjob.job_created(gitrepo_body("fleet-local", "app"))
    helmop_counter.add(3, {"namespace": "fleet-local", "name": "app"})

    assert lifecycle.forget(gitrepo_body("fleet-local", "app")) == 1

    assert names_of(registry, "fleet_gitjobs_created_success_total") == set()
    assert names_of(registry, HELMOP_METRIC + "_total") == {"app"}
    # ... and the HelmOp is not blocked: it keeps recording.
    helmop_counter.add(4, {"namespace": "fleet-local", "name": "app"})
    assert samples(registry)[(HELMOP_METRIC + "_total", (("name", "app"), ("namespace", "fleet-local")))] == 7


def test_forgetting_a_helmop_leaves_the_gitrepo_and_the_kind_comes_from_the_body(
    gitjob, helmop_counter, lifecycle, registry
):
    gitjob.job_created(("fleet-local", "app"))
    helmop_counter.add(3, {"namespace": "fleet-local", "name": "app"})

    assert lifecycle.forget(helmop_body("fleet-local", "app")) == 1

    assert names_of(registry, HELMOP_METRIC + "_total") == set()
    assert names_of(registry, "fleet_gitjobs_created_success_total") == {"app"}


def test_an_explicit_kind_overrides_and_a_reference_without_kind_means_the_default(
    gitjob, helmop_counter, lifecycle, registry
):
    gitjob.job_created(("ns", "x"))
    helmop_counter.add(1, {"namespace": "ns", "name": "x"})
    assert lifecycle.forget(("ns", "x"), kind="HelmOp") == 1
    assert names_of(registry, "fleet_gitjobs_created_success_total") == {"x"}
    assert lifecycle.forget(("ns", "x")) == 1  # no kind: the lifecycle's default, GitRepo
    assert names_of(registry, "fleet_gitjobs_created_success_total") == set()


def test_the_exposition_carries_no_kind_label(gitjob, helmop_counter, registry):
    gitjob.job_created(("ns", "x"))
    helmop_counter.add(1, {"namespace": "ns", "name": "x"})
    for name, labels in samples(registry):
        if name.startswith("fleet_"):
            assert {key for key, _ in labels} == {"namespace", "name"}


def test_a_lifecycle_can_default_to_another_kind(provider):
    lifecycle = Lifecycle(default_kind="Widget")
    try:
        assert lifecycle.default_kind == "Widget"
        with pytest.raises(ConfigurationError, match="Kubernetes kind"):
            Lifecycle(default_kind="")
        with pytest.raises(ConfigurationError, match="Kubernetes kind"):
            lifecycle.declare_kind("9bad", "x")
    finally:
        lifecycle.shutdown()


def test_observe_lifts_only_that_kinds_block(gitjob, helmop_counter, lifecycle, registry):
    lifecycle.forget(("ns", "x"))  # GitRepo ns/x blocked
    lifecycle.forget(("ns", "x"), kind="HelmOp")  # HelmOp ns/x blocked
    lifecycle.observe(helmop_body("ns", "x"))
    helmop_counter.add(2, {"namespace": "ns", "name": "x"})
    gitjob.job_created(("ns", "x"))  # still blocked: a late write of the deleted GitRepo
    assert names_of(registry, HELMOP_METRIC + "_total") == {"x"}
    assert names_of(registry, "fleet_gitjobs_created_success_total") == set()


def test_retain_forgets_the_objects_of_that_kind_missing_from_the_live_list(
    gitjob, helmop_counter, lifecycle, registry
):
    for name in ("a", "b", "c"):
        gitjob.job_created(("ns", name))
        helmop_counter.add(1, {"namespace": "ns", "name": name})

    assert lifecycle.retain([gitrepo_body("ns", "a"), ("ns", "c")], kind="GitRepo") == 1

    assert names_of(registry, "fleet_gitjobs_created_success_total") == {"a", "c"}
    assert names_of(registry, HELMOP_METRIC + "_total") == {"a", "b", "c"}  # another kind: untouched
    gitjob.job_created(("ns", "b"))  # b was deleted: its late write stays out
    assert names_of(registry, "fleet_gitjobs_created_success_total") == {"a", "c"}


def test_forget_series_removes_one_label_set_and_keeps_the_object_alive(provider, lifecycle, registry):
    lifecycle.declare_kind("HelmOp", "helmop_syncs")
    counter = provider.get_meter("fleet").create_counter("helmop_syncs")
    old = {"namespace": "ns", "name": "x", "version": "1.0"}
    new = {"namespace": "ns", "name": "x", "version": "1.1"}
    counter.add(3, old)
    counter.add(4, new)

    assert lifecycle.forget_series("helmop_syncs", old, kind="HelmOp") == 1

    def versions() -> dict[str, float]:
        return {
            dict(labels)["version"]: value
            for (name, labels), value in samples(registry).items()
            if name == "helmop_syncs_total"
        }

    assert versions() == {"1.1": 4}
    counter.add(5, old)  # not blocked: the object is alive, and its old label set starts afresh
    assert versions() == {"1.0": 5, "1.1": 4}
