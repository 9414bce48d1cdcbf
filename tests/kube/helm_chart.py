"""The chart under test (``charts/otel-gitjob``): the ``helm`` binary, rendering, server-side apply, its container.

``helm`` is what ``scripts/helm`` builds from Helm's official Go module (``HELM_BIN`` overrides).
Without it the chart tests fail under ``CI=true`` and skip elsewhere, saying how to build it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from real_apiserver import crd

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "otel-gitjob"

# kind -> (apiVersion, plural, namespaced) of everything the chart renders.
RESOURCES = {
    "ServiceAccount": ("v1", "serviceaccounts", True),
    "Service": ("v1", "services", True),
    "ConfigMap": ("v1", "configmaps", True),
    "Deployment": ("apps/v1", "deployments", True),
    "ClusterRole": ("rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("rbac.authorization.k8s.io/v1", "rolebindings", True),
    "NetworkPolicy": ("networking.k8s.io/v1", "networkpolicies", True),
    "ServiceMonitor": ("monitoring.coreos.com/v1", "servicemonitors", True),
    "PodMonitor": ("monitoring.coreos.com/v1", "podmonitors", True),
    "PrometheusRule": ("monitoring.coreos.com/v1", "prometheusrules", True),
}
VARIABLE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
MONITORING_KINDS = ("ServiceMonitor", "PodMonitor", "PrometheusRule")


def helm_version() -> str:
    """The Helm release ``scripts/helm`` pins."""
    match = re.search(r"^VERSION=(\S+)$", (REPO / "scripts" / "helm").read_text(), re.MULTILINE)
    assert match, "no VERSION= in scripts/helm"
    return match.group(1)


def helm_binary() -> str:
    """``HELM_BIN``, else the binary ``scripts/helm`` caches; skip (fail in CI) when neither exists."""
    candidate = os.environ.get("HELM_BIN") or str(
        Path(os.environ.get("OTEL_GITJOB_CACHE", Path.home() / ".cache" / "otel-gitjob"))
        / ("helm-%s" % helm_version())
        / "helm"
    )
    if os.access(candidate, os.X_OK):
        return candidate
    message = "no helm at %s: run ./scripts/helm (builds it from helm.sh/helm/v4 with Go) or set HELM_BIN" % candidate
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def helm(*args: str, values: dict[str, Any] | None = None, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``helm ARGS`` (with ``values`` as a values file); never raises on a non-zero exit."""
    command = [helm_binary(), *args]
    if values is not None:
        values_file = tmp_path / ("values-%d.json" % len(list(tmp_path.glob("values-*.json"))))
        values_file.write_text(json.dumps(values))
        command += ["--values", str(values_file)]
    # No user's Helm configuration or repositories: the chart has no dependencies to fetch.
    env = dict(os.environ, HELM_CONFIG_HOME=str(tmp_path / "helm-config"), HELM_CACHE_HOME=str(tmp_path / "helm-cache"))
    env["HELM_DATA_HOME"] = str(tmp_path / "helm-data")
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def render(
    values: dict[str, Any], tmp_path: Path, release: str = "otel-gitjob", namespace: str = "cattle-fleet-system"
) -> list[dict[str, Any]]:
    """``helm template`` → the rendered documents (fails the test with helm's stderr if it refuses)."""
    done = helm("template", release, str(CHART), "--namespace", namespace, values=values, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{kind: document}``; asserts that no kind appears twice."""
    kinds = [doc["kind"] for doc in documents]
    assert len(kinds) == len(set(kinds)), kinds
    return {doc["kind"]: doc for doc in documents}


def container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (only,) = by_kind(documents)["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(only)


# ---------------------------------------------------------------------------------------------- on a server


def server_side_apply(server: Any, document: dict[str, Any], manager: str = "otel-gitjob-chart-test") -> dict[str, Any]:
    """Server-side apply one rendered document to ``server`` (a KubeApiServer) as the admin; returns the result."""
    api_version, plural, namespaced = RESOURCES[document["kind"]]
    assert document["apiVersion"] == api_version, document["apiVersion"]
    prefix = "/api/v1" if api_version == "v1" else "/apis/" + api_version
    path = prefix
    if namespaced:
        path += "/namespaces/%s" % document["metadata"]["namespace"]
    path += "/%s/%s?fieldManager=%s&force=true" % (plural, document["metadata"]["name"], manager)
    request = urllib.request.Request(
        server.base_url + path,
        method="PATCH",
        data=json.dumps(document).encode(),  # JSON is YAML: what kubectl apply --server-side sends
        headers={"Authorization": "Bearer %s" % server.ADMIN_TOKEN, "Content-Type": "application/apply-patch+yaml"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30, context=server._ssl) as response:
            return dict(json.load(response))
    except urllib.error.HTTPError as error:
        raise AssertionError(
            "server-side apply of %s %s answered %s: %s"
            % (document["kind"], document["metadata"]["name"], error.code, error.read().decode(errors="replace"))
        ) from None


def install_monitoring_crds(server: Any) -> None:
    """The Prometheus Operator's three CRDs the chart can render, as minimal structural CRDs (schema not checked)."""
    for kind in MONITORING_KINDS:
        api_version, plural, _ = RESOURCES[kind]
        group, version = api_version.split("/")
        status, body = server.request(
            "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd(group, version, kind, plural)
        )
        assert status in (201, 409), body


def container_environment(env: list[dict[str, Any]], pod: dict[str, str]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: ``fieldRef`` from ``pod``, ``$(VAR)`` expanded.

    ``pod`` maps the field paths the chart uses (``metadata.name``, ``metadata.uid``,
    ``metadata.namespace``) to the values of a pod that the test pretends to be.
    """
    resolved: dict[str, str] = {}
    for var in env:
        if "value" in var:
            # The kubelet expands $(NAME) of variables defined earlier in the list; others stay as written.
            value = VARIABLE.sub(lambda m: resolved.get(m.group(1), m.group(0)), var["value"])
        else:
            value = pod[var["valueFrom"]["fieldRef"]["fieldPath"]]
        resolved[var["name"]] = value
    return resolved
