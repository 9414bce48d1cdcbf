"""An object is its kind plus its identity: forgetting a GitRepo never touches a HelmOp of the same name."""

from __future__ import annotations

import pytest
from _helpers import samples

from otel_gitjob import ConfigurationError, Lifecycle

HELMOP_GAUGE = "fleet_helmop_ready_clusters"


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
def helmop_gauge(provider, lifecycle):
    lifecycle.declare_kind("HelmOp", HELMOP_GAUGE)
    return provider.get_meter("fleet").create_gauge(HELMOP_GAUGE)


def names_of(registry, metric: str) -> set[str]:
    return {dict(labels)["name"] for (name, labels) in samples(registry) if name == metric}


def test_forgetting_a_gitrepo_leaves_the_helmop_of_the_same_name(gitjob, helmop_gauge, lifecycle, registry):
    gitjob.job_created(gitrepo_body("fleet-local", "app"))
    helmop_gauge.set(3, {"namespace": "fleet-local", "name": "app"})

    assert lifecycle.forget(gitrepo_body("fleet-local", "app")) == 1

    assert names_of(registry, "fleet_gitjobs_created_success_total") == set()
    assert names_of(registry, HELMOP_GAUGE) == {"app"}
    # ... and the HelmOp is not blocked: it keeps recording.
    helmop_gauge.set(4, {"namespace": "fleet-local", "name": "app"})
    assert samples(registry)[(HELMOP_GAUGE, (("name", "app"), ("namespace", "fleet-local")))] == 4


def test_forgetting_a_helmop_leaves_the_gitrepo_and_the_kind_comes_from_the_body(
    gitjob, helmop_gauge, lifecycle, registry
):
    gitjob.job_created(("fleet-local", "app"))
    helmop_gauge.set(3, {"namespace": "fleet-local", "name": "app"})

    assert lifecycle.forget(helmop_body("fleet-local", "app")) == 1

    assert names_of(registry, HELMOP_GAUGE) == set()
    assert names_of(registry, "fleet_gitjobs_created_success_total") == {"app"}


def test_an_explicit_kind_overrides_and_a_reference_without_kind_means_the_default(
    gitjob, helmop_gauge, lifecycle, registry
):
    gitjob.job_created(("ns", "x"))
    helmop_gauge.set(1, {"namespace": "ns", "name": "x"})
    assert lifecycle.forget(("ns", "x"), kind="HelmOp") == 1
    assert names_of(registry, "fleet_gitjobs_created_success_total") == {"x"}
    assert lifecycle.forget(("ns", "x")) == 1  # no kind: the lifecycle's default, GitRepo
    assert names_of(registry, "fleet_gitjobs_created_success_total") == set()


def test_the_exposition_carries_no_kind_label(gitjob, helmop_gauge, registry):
    gitjob.job_created(("ns", "x"))
    helmop_gauge.set(1, {"namespace": "ns", "name": "x"})
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


def test_observe_lifts_only_that_kinds_block(gitjob, helmop_gauge, lifecycle, registry):
    lifecycle.forget(("ns", "x"))  # GitRepo ns/x blocked
    lifecycle.forget(("ns", "x"), kind="HelmOp")  # HelmOp ns/x blocked
    lifecycle.observe(helmop_body("ns", "x"))
    helmop_gauge.set(2, {"namespace": "ns", "name": "x"})
    gitjob.job_created(("ns", "x"))  # still blocked: a late write of the deleted GitRepo
    assert names_of(registry, HELMOP_GAUGE) == {"x"}
    assert names_of(registry, "fleet_gitjobs_created_success_total") == set()


def test_retain_forgets_the_objects_of_that_kind_missing_from_the_live_list(gitjob, helmop_gauge, lifecycle, registry):
    for name in ("a", "b", "c"):
        gitjob.job_created(("ns", name))
        helmop_gauge.set(1, {"namespace": "ns", "name": name})

    assert lifecycle.retain([gitrepo_body("ns", "a"), ("ns", "c")], kind="GitRepo") == 1

    assert names_of(registry, "fleet_gitjobs_created_success_total") == {"a", "c"}
    assert names_of(registry, HELMOP_GAUGE) == {"a", "b", "c"}  # another kind: untouched
    gitjob.job_created(("ns", "b"))  # b was deleted: its late write stays out
    assert names_of(registry, "fleet_gitjobs_created_success_total") == {"a", "c"}


def test_forget_series_removes_one_label_set_and_keeps_the_object_alive(provider, lifecycle, registry):
    lifecycle.declare_kind("HelmOp", "fleet_helmop_resources_ready")
    gauge = provider.get_meter("fleet").create_gauge("fleet_helmop_resources_ready")
    old = {"namespace": "ns", "name": "x", "version": "1.0"}
    new = {"namespace": "ns", "name": "x", "version": "1.1"}
    gauge.set(3, old)
    gauge.set(4, new)

    assert lifecycle.forget_series(("ns", "x"), "fleet_helmop_resources_ready", old, kind="HelmOp") == 1

    got = {dict(labels)["version"] for (name, labels) in samples(registry) if name == "fleet_helmop_resources_ready"}
    assert got == {"1.1"}
    gauge.set(5, old)  # not blocked: the object is alive
    got = {dict(labels)["version"] for (name, labels) in samples(registry) if name == "fleet_helmop_resources_ready"}
    assert got == {"1.0", "1.1"}
