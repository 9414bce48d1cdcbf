"""The ``otel-gitjob watch`` sidecar under ``examples/k8s/rbac.yaml`` exactly as shipped, on a real API server."""

from __future__ import annotations

import copy

import pytest
import yaml
from kube_helpers import RBAC_YAML, names_of, watch_sidecar
from kubernetes import utils as k8s_utils
from prometheus_client import generate_latest
from real_apiserver import GROUP, KINDS, VERSION, KubeApiServer
from support import series, wait_until

import otel_gitjob
from otel_gitjob.fleet import GITREPO
from otel_gitjob.listener import ListenerSettings, ResourceListener, load_configuration

SA_NAMESPACE, SA_NAME = "cattle-fleet-system", "otel-gitjob"
READY = "fleet_gitrepo_ready_clusters"


def apply_rbac(server: KubeApiServer, documents: list[dict]) -> None:
    """Create ``documents`` with the kubernetes client; ones that already exist are fine (shared server)."""
    server.ensure_namespace(SA_NAMESPACE)
    with server.api_client() as api:
        try:
            k8s_utils.create_from_yaml(api, yaml_objects=documents)
        except k8s_utils.FailToCreateError as failure:
            # (Its apply=True sends namespace "default" with a namespaced object: a 400 in 37.x.)
            if any(error.status != 409 for error in failure.api_exceptions):
                raise


def shipped_rbac() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(RBAC_YAML.read_text()) if doc]


@pytest.fixture
def sidecar_token(kube_apiserver: KubeApiServer) -> str:
    """A TokenRequest token for the ServiceAccount that the shipped rbac.yaml creates and binds."""
    apply_rbac(kube_apiserver, shipped_rbac())
    return kube_apiserver.service_account_token(SA_NAMESPACE, SA_NAME)


def granted_fleet_resources() -> set[str]:
    """The fleet.cattle.io resources the shipped ClusterRole lets the sidecar read."""
    (role,) = [doc for doc in shipped_rbac() if doc["kind"] == "ClusterRole"]
    return {
        resource
        for rule in role["rules"]
        if GROUP in rule["apiGroups"] and {"list", "watch"} <= set(rule["verbs"])
        for resource in rule["resources"]
    }


def test_shipped_rbac_grants_fleet_reads_and_nothing_else(kube_apiserver, sidecar_token):
    granted = granted_fleet_resources()
    assert "gitrepos" in granted
    kube_apiserver.ensure_namespace("fleet-local")
    for plural in granted:
        listed = "/apis/%s/%s/%s" % (GROUP, VERSION, plural)
        assert kube_apiserver.request("GET", listed, token=sidecar_token)[0] == 200, plural
        assert kube_apiserver.request("GET", listed + "?watch=1&timeoutSeconds=1", token=sidecar_token)[0] == 200

    # The server enforces the role: writes, other Fleet kinds and core resources are refused.
    denied = {
        "list %s" % plural: ("GET", "/apis/%s/%s/%s" % (GROUP, VERSION, plural), None)
        for plural in set(KINDS) - granted
    }
    denied.update(
        {
            "create a %s" % KINDS[plural]: (
                "POST",
                "/apis/%s/%s/namespaces/fleet-local/%s" % (GROUP, VERSION, plural),
                {"apiVersion": "%s/%s" % (GROUP, VERSION), "kind": KINDS[plural], "metadata": {"name": "x"}},
            )
            for plural in granted & set(KINDS)
        }
    )
    denied["list Secrets"] = ("GET", "/api/v1/secrets", None)
    denied["list Namespaces"] = ("GET", "/api/v1/namespaces", None)
    for what, (method, path, body) in denied.items():
        status, answer = kube_apiserver.request(method, path, body, token=sidecar_token)
        assert status == 403, "the sidecar's ServiceAccount may %s: %s" % (what, answer)


def test_watch_cli_under_the_shipped_rbac_serves_and_forgets_series(kube_apiserver, sidecar_token, tmp_path):
    kubeconfig = kube_apiserver.write_kubeconfig(tmp_path / "sidecar.kubeconfig", sidecar_token)
    spec = {"repo": "https://github.com/rancher/fleet-examples", "branch": "main", "paths": ["simple"]}
    kube_apiserver.create("gitrepos", "fleet-local", "rbac-listed", spec, status={"readyClusters": 3})

    with watch_sidecar("--kubeconfig", kubeconfig) as sidecar:
        # Listed at startup.
        listed = wait_until(
            lambda: series(sidecar.metrics(), READY) or None, what="the listed repo's series: %s" % sidecar.output
        )
        assert listed == {
            (
                ("branch", "main"),
                ("name", "rbac-listed"),
                ("namespace", "fleet-local"),
                ("paths", "simple"),
                ("repo", "https://github.com/rancher/fleet-examples"),
            ): 3.0
        }
        # Seen on the watch.
        kube_apiserver.create("gitrepos", "fleet-local", "rbac-watched", spec, status={"readyClusters": 5})
        wait_until(
            lambda: (
                names_of(sidecar.metrics(), READY) == {("fleet-local", "rbac-listed"), ("fleet-local", "rbac-watched")}
            ),
            what="the watched repo's series",
        )
        # Deleted: every series of that repo goes, the other stays.
        kube_apiserver.delete("gitrepos", "fleet-local", "rbac-listed")
        wait_until(lambda: "rbac-listed" not in sidecar.metrics(), what="the deleted repo's series to go")
        assert names_of(sidecar.metrics(), READY) == {("fleet-local", "rbac-watched")}
        kube_apiserver.delete("gitrepos", "fleet-local", "rbac-watched")
        wait_until(lambda: not series(sidecar.metrics(), READY), what="the last repo's series to go")

    assert "403" not in sidecar.output and "Forbidden" not in sidecar.output, sidecar.output
    assert "failed" not in sidecar.output, sidecar.output


def test_the_listener_needs_no_get_permission(kube_apiserver, tmp_path):
    """The listener works with list and watch alone (rbac.yaml grants exactly those)."""
    documents = copy.deepcopy(shipped_rbac())
    for doc in documents:
        doc["metadata"]["name"] = "otel-gitjob-noget"
        if doc["kind"] == "ClusterRole":
            doc["rules"][0]["verbs"] = ["list", "watch"]
        if doc["kind"] == "ClusterRoleBinding":
            doc["roleRef"]["name"] = "otel-gitjob-noget"
            doc["subjects"][0]["name"] = "otel-gitjob-noget"
    apply_rbac(kube_apiserver, documents)
    token = kube_apiserver.service_account_token(SA_NAMESPACE, "otel-gitjob-noget")
    kube_apiserver.ensure_namespace("fleet-noget")
    assert kube_apiserver.request("GET", kube_apiserver._path("gitrepos", "fleet-noget", "x"), token=token)[0] == 403

    instrumentation = otel_gitjob.setup(serve=False)
    listener = ResourceListener(
        instrumentation.lifecycle,
        GITREPO,
        configuration=load_configuration(kube_apiserver.write_kubeconfig(tmp_path / "noget.kubeconfig", token)),
        meter_provider=instrumentation.meter_provider,
        settings=ListenerSettings(namespace="fleet-noget"),
    )
    listener.start()
    try:
        kube_apiserver.create("gitrepos", "fleet-noget", "noget", {"repo": "https://example.test/x"})
        repo = {"metadata": {"namespace": "fleet-noget", "name": "noget"}}
        wait_until(
            lambda: names_of(generate_latest(instrumentation.registry).decode(), READY) == {("fleet-noget", "noget")},
            what="the repo's status gauges",
        )
        instrumentation.gitjob.job_created(repo)  # a GitJob series for the same repo, forgotten with it
        assert "fleet_gitjobs_created_success_total" in generate_latest(instrumentation.registry).decode()

        kube_apiserver.delete("gitrepos", "fleet-noget", "noget")
        wait_until(lambda: "noget" not in generate_latest(instrumentation.registry).decode(), what="every series to go")
        assert listener.failures == 0
    finally:
        assert listener.stop()
        instrumentation.shutdown()
