"""The Helm chart's manifests server-side applied to the real kube-apiserver, and the sidecar run from them.

There is no kubelet here: each test runs the rendered container's own command line and environment
(the downward API's fields filled in as the kubelet would) as a local process, under the token of the
ServiceAccount the chart created and bound.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_chart import container, container_environment, install_monitoring_crds, render, server_side_apply
from kube_helpers import names_of
from real_apiserver import KubeApiServer
from support import free_port, series, stop_process, wait_until
from test_chart import EVERYTHING

REPO = Path(__file__).resolve().parents[2]
READY = "fleet_gitrepo_ready_clusters"

RELEASE, NAMESPACE = "chart-test", "otel-gitjob-chart"
WATCHED = "fleet-chart"


@contextlib.contextmanager
def sidecar_from(documents: list[dict[str, Any]], kubeconfig: str, pod: dict[str, str]) -> Iterator[dict[str, Any]]:
    """Run the rendered container's command line and environment as a local process; SIGTERM it by PID."""
    spec = container(documents)
    env = container_environment(spec["env"], pod)
    port = free_port()
    # Loopback instead of the pod's 0.0.0.0, a free port instead of the pod's own: the rest as rendered.
    env.update(OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1", OTEL_EXPORTER_PROMETHEUS_PORT=str(port))
    environment = dict(os.environ, **env, KUBECONFIG=kubeconfig, PYTHONUNBUFFERED="1")
    # The image's entry point is otel-gitjob; here the same module from this checkout.
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_gitjob", *spec["args"]],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=environment,
    )
    lines: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()
    running = {"base": "http://127.0.0.1:%d" % port, "lines": lines, "spec": spec}
    try:
        wait_until(lambda: "serving /metrics" in "".join(lines), timeout=30, what="the sidecar to serve: %s" % lines)
        yield running
    finally:
        stop_process(process, timeout=30)
        reader.join(5)
    output = "".join(lines)
    assert process.returncode == 0, output
    # (The API server's 403 says Forbidden; a bare "403" would match timestamps and ports.)
    assert "Traceback" not in output and "Forbidden" not in output, output


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


@pytest.fixture
def gitrepos(kube_apiserver: KubeApiServer) -> Iterator[Any]:
    """``create(namespace, name, spec, status)``; whatever the test left is deleted after it (the server is shared)."""
    created: list[tuple[str, str]] = []

    def create(namespace: str, name: str, spec: dict[str, Any], status: dict[str, Any]) -> None:
        created.append((namespace, name))
        kube_apiserver.create("gitrepos", namespace, name, spec, status=status)

    yield create
    for namespace, name in created:  # 404 for those the test deleted itself
        kube_apiserver.request("DELETE", kube_apiserver._path("gitrepos", namespace, name))


@pytest.fixture
def otlp_sink() -> Iterator[Any]:
    sys.path.insert(0, str(REPO / "tests" / "otlp"))
    try:
        from otlp_helpers import HttpSink
    finally:
        sys.path.remove(str(REPO / "tests" / "otlp"))
    sink = HttpSink()
    yield sink
    sink.close()


def test_the_rendered_manifests_apply_and_the_sidecar_from_them_serves_and_forgets(
    kube_apiserver: KubeApiServer, otlp_sink: Any, gitrepos: Any, tmp_path: Path
) -> None:
    values = {
        **EVERYTHING,
        "otlp": {"enabled": True, "endpoint": otlp_sink.endpoint, "exportInterval": 500},
        "resourceAttributes": {"deployment.environment": "test"},
    }
    documents = render(values, tmp_path, release=RELEASE, namespace=NAMESPACE)
    install_monitoring_crds(kube_apiserver)
    kube_apiserver.ensure_namespace(NAMESPACE)
    applied = {}
    for document in documents:
        applied[document["kind"]] = server_side_apply(kube_apiserver, document)
    assert set(applied) == {doc["kind"] for doc in documents}
    # Applied as rendered: the server kept the container's command line and the probes' paths.
    on_server = applied["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert on_server["args"] == container(documents)["args"]
    assert on_server["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # Applying again changes nothing (what helm upgrade with the same values does).
    again = server_side_apply(kube_apiserver, documents[-1])
    assert again["metadata"]["resourceVersion"] == applied[documents[-1]["kind"]]["metadata"]["resourceVersion"]

    account = applied["ServiceAccount"]["metadata"]["name"]
    token = kube_apiserver.service_account_token(NAMESPACE, account)
    kubeconfig = kube_apiserver.write_kubeconfig(tmp_path / "sidecar.kubeconfig", token)
    # The chart's RBAC and nothing more: no get, no writes, no Secrets.
    assert kube_apiserver.request("GET", "/api/v1/secrets", token=token)[0] == 403
    assert kube_apiserver.request("GET", kube_apiserver._path("gitrepos", "fleet-local", "x"), token=token)[0] == 403

    spec = {"repo": "https://github.com/rancher/fleet-examples", "branch": "main", "paths": ["simple"]}
    gitrepos(WATCHED, "chart-kept", spec, {"readyClusters": 2})
    gitrepos(WATCHED, "chart-deleted", spec, {"readyClusters": 1})
    pod = {
        "metadata.name": "%s-otel-gitjob-6b7c9d-x2x4q" % RELEASE,
        "metadata.uid": str(uuid.uuid4()),
        "metadata.namespace": NAMESPACE,
    }
    with sidecar_from(documents, kubeconfig, pod) as sidecar:
        base = sidecar["base"]
        metrics = base + "/metrics"
        both = {(WATCHED, "chart-kept"), (WATCHED, "chart-deleted")}
        wait_until(lambda: both <= names_of(get(metrics)[1], READY), timeout=30, what="both repos' series")
        # The probes' own paths, from the rendered Deployment: answered, and without a collection
        # (a health answer carries no series).
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            path = sidecar["spec"][probe]["httpGet"]["path"]
            status, body = wait_until(
                lambda p=path: (lambda r: r if r[0] == 200 else None)(get(base + p)), timeout=30, what=path
            )
            assert "fleet_gitrepo" not in body and "otel_gitjob_" not in body, (probe, path, body[:300])

        # OTLP: under the pod's name as service.instance.id, with the pod's uid.
        otlp_sink.wait_for(lambda points: any(p.metric == READY for p in points), timeout=20)
        resources = [
            {kv.key: kv.value.string_value for kv in rm.resource.attributes}
            for request in list(otlp_sink.requests)
            for rm in request.resource_metrics
        ]
        assert {r.get("service.instance.id") for r in resources} == {pod["metadata.name"]}
        assert {r.get("k8s.pod.uid") for r in resources} == {pod["metadata.uid"]}
        assert {r.get("deployment.environment") for r in resources} == {"test"}
        assert {r.get("service.name") for r in resources} == {"otel-gitjob"}

        kube_apiserver.delete("gitrepos", WATCHED, "chart-deleted")
        wait_until(lambda: "chart-deleted" not in get(metrics)[1], timeout=30, what="the deleted repo's series to go")
        assert names_of(get(metrics)[1], READY) >= {(WATCHED, "chart-kept")}
        assert series(get(metrics)[1], READY)
        # ... and a staleness marker for it over OTLP.
        otlp_sink.wait_for(
            lambda points: any(p.stale and p.metric == READY and p.attrs()["name"] == "chart-deleted" for p in points),
            timeout=20,
        )
    # A clean stop (SIGTERM, as the kubelet sends it) marks the series of the objects still alive stale
    # in its last export: the next pod exports under another service.instance.id.
    stale = [p for p in otlp_sink.points() if p.stale and p.metric == READY and p.attrs()["name"] == "chart-kept"]
    assert stale and {p.attrs()["namespace"] for p in stale} == {WATCHED}
    kube_apiserver.delete("gitrepos", WATCHED, "chart-kept")


CRS_OVER_GITREPOS = {
    "spec": {
        "resources": [
            {
                "groupVersionKind": {"group": "fleet.cattle.io", "version": "v1alpha1", "kind": "GitRepo"},
                "labelsFromPath": {"name": ["metadata", "name"], "namespace": ["metadata", "namespace"]},
                "metrics": [
                    {
                        "name": "ready_clusters",
                        "help": "Ready clusters of a GitRepo, from the custom-resource-state config",
                        "each": {"type": "Gauge", "gauge": {"path": ["status", "readyClusters"]}},
                    }
                ],
            }
        ]
    }
}
CRS_METRIC = "kube_customresource_ready_clusters"


def test_the_charts_custom_resource_state_config_is_served_and_forgotten(
    kube_apiserver: KubeApiServer, gitrepos: Any, tmp_path: Path
):
    """The ConfigMap, the flag and the RBAC the chart renders for a custom-resource-state config, end to end."""
    namespace, watched = "otel-gitjob-chart-crs", "fleet-chart-crs"
    values = {"watch": {"kinds": []}, "customResourceState": {"enabled": True, "config": CRS_OVER_GITREPOS}}
    documents = render(values, tmp_path, release="chart-crs", namespace=namespace)
    kube_apiserver.ensure_namespace(namespace)
    applied = {document["kind"]: server_side_apply(kube_apiserver, document) for document in documents}
    # The pod would mount the ConfigMap: here its key goes to the path the flag names, as the kubelet would.
    config_dir = tmp_path / "etc-otel-gitjob"
    config_dir.mkdir()
    for key, text in applied["ConfigMap"]["data"].items():
        (config_dir / key).write_text(text)
    (mount,) = container(documents)["volumeMounts"]
    documents = yaml.safe_load(yaml.safe_dump(documents).replace(mount["mountPath"], str(config_dir)))
    token = kube_apiserver.service_account_token(namespace, applied["ServiceAccount"]["metadata"]["name"])
    kubeconfig = kube_apiserver.write_kubeconfig(tmp_path / "crs.kubeconfig", token)
    gitrepos(watched, "crs-repo", {"repo": "https://example.test/x"}, {"readyClusters": 4})
    pod = {
        "metadata.name": "chart-crs-otel-gitjob-1-a",
        "metadata.uid": str(uuid.uuid4()),
        "metadata.namespace": namespace,
    }
    with sidecar_from(documents, kubeconfig, pod) as sidecar:
        metrics = sidecar["base"] + "/metrics"

        def ours() -> dict[str, float]:  # the server is shared: other tests' GitRepos are watched too
            found = series(get(metrics)[1], CRS_METRIC)
            return {
                dict(labels)["name"]: value for labels, value in found.items() if dict(labels)["namespace"] == watched
            }

        assert wait_until(ours, timeout=30, what="the custom-resource-state series") == {"crs-repo": 4.0}
        kube_apiserver.delete("gitrepos", watched, "crs-repo")
        wait_until(lambda: not ours(), timeout=30, what="the deleted object's series to go")
