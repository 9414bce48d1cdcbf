"""kube-state-metrics Custom Resource State configs → KindSpecs: KSM's documented examples, exact series.

The real-KSM comparison is tests/kube/test_crs_vs_ksm.py; here the families are called directly
and served through a real MeterProvider + Lifecycle, to pin names, labels, values and forgetting.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from crs_examples import CONFIGS, EXPECTED, FOO, WIDGET, widget

from otel_gitjob import ConfigurationError
from otel_gitjob._internal.kube.gostrings import go_format_float, go_sprint, parse_quantity, parse_rfc3339
from otel_gitjob.listener import KindSpec, kinds_from_crs_config


def series_of(kind: KindSpec, obj: dict[str, Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    dropped: list[str] = []
    state = kind.project(obj, lambda reason, detail: dropped.append(detail))
    out = {}
    for gauge, samples in zip(kind.gauges, state.values, strict=True):
        assert isinstance(samples, tuple)
        for labels, value in samples:
            key = (gauge.name, tuple(sorted(labels.items())))
            assert key not in out, "duplicate series %s" % (key,)
            out[key] = value
    return out


@pytest.mark.parametrize("example", sorted(CONFIGS))
def test_documented_examples_give_the_documented_series(example: str) -> None:
    config, obj = CONFIGS[example]
    found: dict[Any, float] = {}
    for kind in kinds_from_crs_config(config):
        found.update(series_of(kind, obj))
    assert found == EXPECTED[example]


def test_kind_of_a_resource() -> None:
    (kind,) = kinds_from_crs_config(CONFIGS["stateset"][0])
    assert (kind.group, kind.version, kind.kind, kind.plural) == ("myteam.io", "v1", "Foo", "foos")
    assert [(gauge.name, gauge.description) for gauge in kind.gauges] == [
        ("kube_customresource_status_phase", "Foo status_phase")
    ]


def test_same_metric_twice_in_one_resource_is_one_family_with_the_first_help() -> None:
    config = """
spec:
  resources:
    - groupVersionKind: {group: autoscaling.k8s.io, kind: VerticalPodAutoscaler, version: v1}
      labelsFromPath: {verticalpodautoscaler: [metadata, name]}
      metrics:
        - name: lowerbound
          help: memory
          commonLabels: {resource: memory, unit: byte}
          each: {type: Gauge, gauge: {path: [status, recs], labelsFromPath: {container: [containerName]},
                 valueFrom: [lowerBound, memory]}}
        - name: lowerbound
          help: cpu
          commonLabels: {resource: cpu, unit: core}
          each: {type: Gauge, gauge: {path: [status, recs], labelsFromPath: {container: [containerName]},
                 valueFrom: [lowerBound, cpu]}}
"""
    (kind,) = kinds_from_crs_config(config)
    assert [(g.name, g.description) for g in kind.gauges] == [("kube_customresource_lowerbound", "memory")]
    vpa = {
        "metadata": {"name": "vpa", "namespace": "ns"},
        "status": {"recs": [{"containerName": "consumer", "lowerBound": {"cpu": "100m", "memory": "262144k"}}]},
    }
    found = {dict(labels)["resource"]: value for (_name, labels), value in series_of(kind, vpa).items()}
    assert found == {"memory": 262144000.0, "cpu": 0.1}


def test_widget_conversions_arrays_and_maps() -> None:
    (kind,) = kinds_from_crs_config(WIDGET)
    found = series_of(kind, widget("w"))
    by_name: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for (name, labels), value in found.items():
        common = {"customresource_group", "customresource_kind", "customresource_version", "widget", "namespace"}
        by_name.setdefault(name, {})[tuple((k, v) for k, v in labels if k not in common)] = value
    assert by_name["widget_port"] == {
        (("port", "dns"), ("protocol", "UDP")): 53,
        (("port", "http"), ("protocol", "TCP")): 80,
    }  # "unnumbered" has no number: no series, no error (KSM's nil without nilIsZero)
    assert by_name["widget_capacity"] == {
        (("resource", "cpu"),): 0.25,
        (("resource", "memory"),): 512 * 2**20,
        (("resource", "disk"),): 1500,
        (("resource", "pods"),): 110,
        (("resource", "gpu"),): 2000,
    }
    assert by_name["widget_flag"] == {
        (("flag", "alpha"),): 1,
        (("flag", "beta"),): 0,
        (("flag", "gamma"),): 1,
        (("flag", "delta"),): 0,
    }
    assert by_name["widget_created"] == {(): 1714972089}  # 05:08:09Z, fraction dropped
    assert by_name["widget_missing"] == {(): 0}
    assert by_name["widget_ratio"] == {(): 0.45}
    assert by_name["widget_replicas_text"] == {(): 12.5}
    assert by_name["widget_mode"] == {
        (("member", "a"), ("mode", "leader")): 1,
        (("member", "a"), ("mode", "follower")): 0,
        (("member", "b"), ("mode", "leader")): 0,
        (("member", "b"), ("mode", "follower")): 1,
    }  # member c has no mode: no series for it (KSM: nil resolves to nothing)
    assert by_name["widget_owner_info"] == {(("label_tier", "one"), ("team", "core")): 1, (("team", "edge"),): 1}
    assert by_name["widget_tags_info"] == {
        (("level", "3"), ("tag_big", "1e+21"), ("tag_env", "prod"), ("tag_weight", "1.5"), ("tag_zone", "a-1")): 1
    }


def test_a_bad_value_drops_that_series_and_is_counted() -> None:
    (kind,) = kinds_from_crs_config(WIDGET)
    obj = widget("bad")
    obj["spec"]["ports"][0]["number"] = "eighty"
    obj["status"]["members"][0]["mode"] = 7
    dropped: list[tuple[str, str]] = []
    state = kind.project(obj, lambda reason, detail: dropped.append((reason, detail)))
    ports = state.values[[g.name for g in kind.gauges].index("widget_port")]
    assert isinstance(ports, tuple) and [dict(labels)["port"] for labels, _ in ports] == ["dns"]
    assert [reason for reason, _ in dropped] == ["bad_status_value", "bad_status_value"]
    assert "widget_port" in dropped[0][1] and "eighty" in dropped[0][1]
    assert "[status,members,mode]" in dropped[1][1]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            "spec: {resources: [{groupVersionKind: {group: g, version: v1, kind: K}, metrics: [{name: m, "
            "each: {type: Histogram}}]}]}",
            "spec.resources[0] (g_v1_K).metrics[0] (m).each.type: unknown metric type Histogram",
        ),
        (
            "spec: {resources: [{groupVersionKind: {group: g, version: v1, kind: K}}, "
            "{groupVersionKind: {group: g, version: v1, kind: K}}]}",
            "spec.resources[1] (g_v1_K): a second entry",
        ),
        (
            "spec: {resources: [{groupVersionKind: {group: g, version: v1, kind: K}, metrics: [{name: m, "
            "each: {type: Gauge}}]}]}",
            "expected each.gauge to not be nil",
        ),
        (
            "spec: {resources: [{groupVersionKind: {group: g, version: v1, kind: K}, metrics: [{name: m, "
            "each: {type: Gauge, gauge: {path: [a, '[b]']}}}]}]}",
            "each.gauge.path: invalid list lookup: [b]",
        ),
        (
            "spec: {resources: [{groupVersionKind: {group: g, version: v1, kind: K}, metrics: [{name: m, "
            "each: {type: Gauge, gauge: {path: [a], valuefrom: [b]}}}]}]}",
            "unknown field valuefrom",
        ),
        ("spec: {resources: [{groupVersionKind: {group: g, version: '*', kind: K}}]}", "wildcards are not supported"),
        (
            "spec: {resources: [{groupVersionKind: {group: g, version: v1, kind: K}, metrics: [{name: m-1, "
            "each: {type: Info, info: {}}}]}]}",
            "metric name 'kube_customresource_m-1'",
        ),
        (
            "spec: {resources: [{groupVersionKind: {group: g, version: v1, kind: K}, metrics: [{name: m, "
            "each: {type: StateSet, stateSet: {path: [a], list: [x]}}}]}]}",
            "stateSet.labelName: '' is not",
        ),
        (
            "spec: {resources: [{groupVersionKind: {group: g, version: v1, kind: K}, metrics: [{name: m, "
            "commonLabels: {bad-label: x}, each: {type: Info, info: {}}}]}]}",
            "'bad-label' is not a Prometheus",
        ),
        (
            "spec: {resources: [{groupVersionKind: {group: g, version: v1, kind: A}, metrics: [{name: m, "
            "each: {type: Info, info: {}}}]}, {groupVersionKind: {group: g, version: v1, kind: B}, metrics: [{name: m, "
            "each: {type: Info, info: {}}}]}]}",
            "metric kube_customresource_m is also a metric of spec.resources[0]",
        ),
        ("spec: {resources: {}}", "spec.resources: expected a list"),
        ("spec: [", "failed to parse Custom Resource State metrics"),
    ],
)
def test_config_errors_are_refused_with_the_resource_and_the_path(config: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=None) as raised:
        kinds_from_crs_config(config)
    assert message in str(raised.value)


def test_yaml_scalars_stay_text_as_in_go() -> None:
    config = """
spec:
  resources:
    - groupVersionKind: {group: g, version: v1, kind: K}
      commonLabels: {enabled: yes, count: 010}
      metrics: [{name: m, help: h, each: {type: Gauge, gauge: {path: [spec, "0"], nilIsZero: true}}}]
"""
    (kind,) = kinds_from_crs_config(config)
    ((labels, value),) = kind.gauges[0].samples({"spec": {}}, print)  # type: ignore[misc]
    assert (labels["enabled"], labels["count"], value) == ("yes", "010", 0.0)


def test_a_mapping_config_is_accepted() -> None:
    import yaml

    (kind,) = kinds_from_crs_config(yaml.safe_load(CONFIGS["info"][0]))
    assert kind.gauges[0].name == "kube_customresource_version"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (43.21, "43.21"),
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (1.5e-7, "1.5e-07"),
        (0.0001, "0.0001"),
        (-2.5, "-2.5"),
        (1e21, "1e+21"),
        (math.inf, "+Inf"),
        (float("nan"), "NaN"),
    ],
)
def test_go_format_float(value: float, text: str) -> None:
    assert go_format_float(value) == text


def test_go_sprint_of_json_values() -> None:
    assert go_sprint({"b": [1, True], "a": None}) == "map[a:<nil> b:[1 true]]"
    assert go_sprint(12) == "12" and go_sprint(False) == "false"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("25m", 0.025),
        ("5Gi", 5 * 2**30),
        ("1e3", 1000.0),
        ("262144k", 262144000.0),
        ("100m", 0.1),
        ("-3", -3.0),
        ("1.5Gi", 1610612736.0),
        ("0.5", 0.5),
        ("+.5", 0.5),
        ("1n", 1e-9),
    ],
)
def test_parse_quantity(text: str, value: float) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "1.2.3", "1 Gi", "1Qi", "0x10"])
def test_parse_quantity_refuses_what_go_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_parse_rfc3339() -> None:
    assert parse_rfc3339("1970-01-01T00:00:00Z") == 0
    assert parse_rfc3339("1969-12-31T23:59:59.5Z") == -1  # Unix() rounds toward the past
    assert parse_rfc3339("2019-10-22T16:29:31+02:00") == 1571754571
    assert parse_rfc3339("2019-10-22 16:29:31Z") is None


def test_foo_fixture_is_unchanged() -> None:
    # The expectations above are for this object: a change to it must be deliberate.
    assert FOO["status"]["uptime"] == 43.21 and FOO["spec"]["refs"][0] == "my_other_foo"


def test_gvk_labels_override_the_resources_common_labels_and_the_metrics_override_them() -> None:
    config = """
spec:
  resources:
    - groupVersionKind: {group: g, version: v1, kind: K}
      commonLabels: {customresource_group: mine, customresource_kind: mine}
      metrics:
        - name: m
          help: h
          commonLabels: {customresource_kind: metric}
          each: {type: Gauge, gauge: {path: [v]}}
"""
    (kind,) = kinds_from_crs_config(config)
    ((labels, _value),) = kind.gauges[0].samples({"v": 1}, print)  # type: ignore[misc]
    assert labels == {"customresource_group": "g", "customresource_version": "v1", "customresource_kind": "metric"}


def test_only_the_first_yaml_document_is_read_as_by_ksm() -> None:
    (kind,) = kinds_from_crs_config(CONFIGS["info"][0] + "\n---\nnot: [a config\n")
    assert kind.kind == "Foo"
