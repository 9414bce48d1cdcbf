"""The Helm chart ``charts/otel-gitjob``: ``helm lint`` and ``helm template`` under several values.

These need only the ``helm`` binary (the ``helm`` tier, tests/tiers.py); ``test_chart_on_server.py``
applies the rendered manifests to a real kube-apiserver.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml
from helm_chart import (
    CHART,
    MONITORING_KINDS,
    by_kind,
    container,
    helm,
    render,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DEPLOYMENT = REPO / "examples" / "k8s" / "deployment.yaml"
SELF_METRICS = REPO / "docs" / "self-metrics.md"

EVERYTHING = {
    "prometheus": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}},
    "otlp": {"enabled": True, "endpoint": "http://otel-collector.monitoring:4318/v1/metrics"},
    "networkPolicy": {"enabled": True, "apiServerCidrs": ["10.0.0.1/32"]},
    "prometheusRule": {"enabled": True},
}
VALUE_SETS = {
    "defaults": {},
    "everything": EVERYTHING,
    "one-namespace-one-shard": {"watch": {"namespace": "fleet-local", "shardId": "shard-b", "kinds": ["gitrepos"]}},
    "beside-fleet-metrics": {"fleetControllerMetrics": True, **EVERYTHING},
    "large": {"sizing": {"expectedObjects": 30000}, "otlp": {"enabled": True, "endpoint": "http://c:4317"}},
    "custom-resource-state": {
        "customResourceState": {
            "enabled": True,
            "config": {"spec": {"resources": [{"groupVersionKind": {"group": "a", "version": "v1", "kind": "B"}}]}},
        }
    },
}


# ------------------------------------------------------------------------------------------ lint and template


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_lint_is_clean(name, tmp_path):
    done = helm("lint", "--strict", str(CHART), values=VALUE_SETS[name], tmp_path=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout, done.stdout


def test_defaults_render_the_sidecar_with_the_example_manifests_security(tmp_path):
    documents = render({}, tmp_path)
    kinds = by_kind(documents)
    assert set(kinds) == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment"}
    deployment = kinds["Deployment"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # never two watchers of one shard
    pod = deployment["spec"]["template"]["spec"]
    example = yaml.safe_load(EXAMPLE_DEPLOYMENT.read_text())["spec"]["template"]["spec"]
    assert pod["securityContext"] == example["securityContext"]
    assert container(documents)["securityContext"] == example["containers"][0]["securityContext"]
    assert pod["serviceAccountName"] == kinds["ServiceAccount"]["metadata"]["name"]

    sidecar = container(documents)
    assert sidecar["args"] == ["watch", "--kinds=gitrepos,helmops"]
    assert sidecar["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert sidecar["startupProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    env = {var["name"]: var for var in sidecar["env"]}
    assert env["OTEL_METRICS_EXPORTER"]["value"] == "prometheus"
    assert "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT" not in env
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "service.instance.id=$(POD_NAME)" in env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"

    (rule,) = kinds["ClusterRole"]["rules"]
    assert rule == {"apiGroups": ["fleet.cattle.io"], "resources": ["gitrepos", "helmops"], "verbs": ["list", "watch"]}


def mebibytes(quantity: str) -> int:
    assert quantity.endswith("Mi"), quantity
    return int(quantity[:-2])


@pytest.mark.parametrize("objects", [0, 1000, 10000, 30000])
def test_memory_follows_the_sizing_formula(objects, tmp_path):
    values = yaml.safe_load((CHART / "values.yaml").read_text())["sizing"]
    documents = render({"sizing": {"expectedObjects": objects}}, tmp_path)
    resources = container(documents)["resources"]
    expected = values["baseMi"] + math.ceil(values["perObjectKi"] * objects / 1024)
    assert mebibytes(resources["limits"]["memory"]) == expected
    assert mebibytes(resources["requests"]["memory"]) == expected
    # resources overrides the formula entirely.
    override = {"limits": {"memory": "1Gi"}, "requests": {"cpu": "10m", "memory": "1Gi"}}
    assert container(render({"resources": override}, tmp_path))["resources"] == override


@pytest.mark.parametrize(
    ("values", "limit"),
    [
        ({}, 10000),
        ({"sizing": {"expectedObjects": 30000}}, 37500),
        ({"sizing": {"expectedObjects": 30000}, "cardinalityLimit": 50000}, 50000),
    ],
)
def test_the_cardinality_limit_follows_the_expected_objects(values, limit, tmp_path):
    """Every watched object is one series per instrument: the SDK's limit must fit them all."""
    documents = render({**values, "prometheusRule": {"enabled": True}}, tmp_path)
    env = {var["name"]: var.get("value") for var in container(documents)["env"]}
    assert env["OTEL_GITJOB_CARDINALITY_LIMIT"] == str(limit)
    (rule,) = [doc for doc in documents if doc["kind"] == "PrometheusRule"]
    (near,) = [a for g in rule["spec"]["groups"] for a in g["rules"] if a["alert"] == "OtelGitjobNearCardinalityLimit"]
    assert near["expr"].endswith("> %d" % (limit * 4 // 5))


def test_one_namespace_and_one_shard_get_a_role_there(tmp_path):
    documents = render(VALUE_SETS["one-namespace-one-shard"], tmp_path)
    kinds = by_kind(documents)
    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds
    assert kinds["Role"]["metadata"]["namespace"] == "fleet-local"
    assert kinds["Role"]["rules"][0]["resources"] == ["gitrepos"]
    assert kinds["RoleBinding"]["subjects"][0]["namespace"] == "cattle-fleet-system"
    args = ["watch", "--kinds=gitrepos", "--namespace=fleet-local", "--shard-id=shard-b"]
    assert container(documents)["args"] == args


def test_everything_on(tmp_path):
    documents = render(EVERYTHING, tmp_path)
    kinds = by_kind(documents)
    assert set(MONITORING_KINDS) | {"NetworkPolicy"} <= set(kinds)
    env = {var["name"]: var.get("value") for var in container(documents)["env"]}
    assert env["OTEL_METRICS_EXPORTER"] == "prometheus,otlp"
    assert env["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] == "http://otel-collector.monitoring:4318/v1/metrics"
    assert env["OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"] == "http/protobuf"
    policy = kinds["NetworkPolicy"]["spec"]
    egress_ports = {port["port"] for rule in policy["egress"] for port in rule["ports"]}
    assert {443, 6443, 53, 4318} <= egress_ports
    assert policy["ingress"][0]["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    for kind in ("ServiceMonitor", "PodMonitor"):
        assert "metricRelabelings" not in yaml.safe_dump(kinds[kind])


def alerting_metrics() -> set[str]:
    """The metrics whose "alert when" column in docs/self-metrics.md says when to alert."""
    found = set()
    for line in SELF_METRICS.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`otel_gitjob_") and cells[4] not in ("–", "-", ""):
            found.add(cells[0].strip("`"))
    return found


def test_the_prometheus_rule_alerts_on_what_self_metrics_recommends(tmp_path):
    (rule,) = [doc for doc in render(EVERYTHING, tmp_path) if doc["kind"] == "PrometheusRule"]
    expressions = " ".join(alert["expr"] for group in rule["spec"]["groups"] for alert in group["rules"])
    wanted = alerting_metrics() | {"otel_gitjob_dropped_measurements_total"}
    assert len(wanted) >= 8, wanted
    # The SDK's cardinality limit is per instrument, where an object is one series: the alert for
    # "otel_gitjob_series approaching the limit" compares the objects per kind with it.
    wanted = (wanted - {"otel_gitjob_series"}) | {"otel_gitjob_objects"}
    missing = {metric for metric in wanted if not re.search(r"\b%s\b" % metric, expressions)}
    assert not missing, "no alert on %s" % sorted(missing)
    for group in rule["spec"]["groups"]:
        for alert in group["rules"]:
            assert alert["alert"].startswith("OtelGitjob") and alert["annotations"]["summary"], alert


CRS_CONFIG = {
    "spec": {
        "resources": [
            {
                "groupVersionKind": {"group": "example.com", "version": "v1", "kind": "Policy"},
                "metrics": [{"name": "replicas", "help": "h", "each": {"type": "Gauge", "gauge": {"path": ["x"]}}}],
            },
            {"groupVersionKind": {"group": "apps.example", "version": "v1", "kind": "Day"}},
            {"groupVersionKind": {"group": "g.example", "version": "v1", "kind": "Box"}, "resourcePlural": "boxen"},
        ]
    }
}


def test_a_custom_resource_state_config_renders_a_configmap_the_flag_and_its_rbac(tmp_path):
    values = {"watch": {"kinds": []}, "customResourceState": {"enabled": True, "config": CRS_CONFIG}}
    documents = render(values, tmp_path)
    kinds = by_kind(documents)
    assert yaml.safe_load(kinds["ConfigMap"]["data"]["custom-resource-state.yaml"]) == CRS_CONFIG
    sidecar = container(documents)
    assert sidecar["args"] == [
        "watch",
        "--custom-resource-state-config-file=/etc/otel-gitjob/custom-resource-state.yaml",
    ]
    assert sidecar["volumeMounts"] == [
        {"name": "custom-resource-state", "mountPath": "/etc/otel-gitjob", "readOnly": True}
    ]
    (volume,) = kinds["Deployment"]["spec"]["template"]["spec"]["volumes"]
    assert volume["configMap"]["name"] == kinds["ConfigMap"]["metadata"]["name"]
    # list/watch on each kind, plural as kube-state-metrics assumes it (kubebuilder's default) unless given.
    assert kinds["ClusterRole"]["rules"] == [
        {"apiGroups": [group], "resources": [plural], "verbs": ["list", "watch"]}
        for group, plural in (("example.com", "policies"), ("apps.example", "days"), ("g.example", "boxen"))
    ]
    # With the Fleet kinds as well, both sets of rules; a changed config rolls the pod.
    both = render({"customResourceState": {"enabled": True, "config": CRS_CONFIG}}, tmp_path)
    assert container(both)["args"][1] == "--kinds=gitrepos,helmops"
    assert len(by_kind(both)["ClusterRole"]["rules"]) == 4
    checksum = "checksum/custom-resource-state"
    changed = {"enabled": True, "config": {"spec": {"resources": CRS_CONFIG["spec"]["resources"][:1]}}}
    assert (
        by_kind(both)["Deployment"]["spec"]["template"]["metadata"]["annotations"][checksum]
        != by_kind(render({"customResourceState": changed}, tmp_path))["Deployment"]["spec"]["template"]["metadata"][
            "annotations"
        ][checksum]
    )


def test_beside_fleet_metrics_prometheus_keeps_only_the_sidecars_own(tmp_path):
    documents = render(VALUE_SETS["beside-fleet-metrics"], tmp_path)
    kinds = by_kind(documents)
    drop = {"sourceLabels": ["__name__"], "regex": "fleet_(gitrepo|helmop)_.*", "action": "drop"}
    assert kinds["ServiceMonitor"]["spec"]["endpoints"][0]["metricRelabelings"] == [drop]
    assert kinds["PodMonitor"]["spec"]["podMetricsEndpoints"][0]["metricRelabelings"] == [drop]
    annotations = kinds["Deployment"]["spec"]["template"]["metadata"].get("annotations") or {}
    assert "prometheus.io/scrape" not in annotations


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"watch": {"kinds": ["secrets"]}}, "kinds"),
        ({"watch": {"kinds": []}}, "watch.kinds is empty"),
        ({"customResourceState": {"enabled": True}}, "needs customResourceState.config.spec.resources"),
        (
            {"customResourceState": {"enabled": True, "config": {"spec": {"resources": [{"metrics": []}]}}}},
            "every resource needs groupVersionKind.kind",
        ),
        ({"otlp": {"enabled": True}}, "otlp.endpoint is required"),
        ({"otlp": {"protocol": "http/json"}}, "protocol"),
        ({"sizing": {"expectedObjects": -1}}, "expectedObjects"),
        ({"resourceAttributes": {"service.instance.id": "x"}}, "service.instance.id"),  # always the pod's name
        ({"replicas": 2}, "replicas"),
    ],
)
def test_junk_values_are_refused(values, says, tmp_path):
    done = helm("template", "x", str(CHART), values=values, tmp_path=tmp_path)
    assert done.returncode != 0, done.stdout
    assert says in done.stderr, done.stderr


def test_the_example_manifest_is_sized_by_the_chart_formula(tmp_path):
    """examples/k8s/deployment.yaml says it is sized for 5,000 objects: the chart's formula for 5,000."""
    example = yaml.safe_load(EXAMPLE_DEPLOYMENT.read_text())["spec"]["template"]["spec"]["containers"][0]
    assert "5,000" in EXAMPLE_DEPLOYMENT.read_text()
    rendered = container(render({"sizing": {"expectedObjects": 5000}}, tmp_path))["resources"]
    assert example["resources"]["limits"]["memory"] == rendered["limits"]["memory"]
    assert example["resources"]["requests"]["memory"] == rendered["requests"]["memory"]


def test_the_charts_app_version_is_the_packages():
    """The default image tag is the appVersion: it must name the release the chart ships with."""
    from otel_gitjob.version import __version__

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__
    assert chart["apiVersion"] == "v2" and chart["name"] == "otel-gitjob"
