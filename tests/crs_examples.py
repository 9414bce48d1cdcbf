"""kube-state-metrics' Custom Resource State documentation examples, shared by the unit and KSM tiers.

The ``Foo`` object and the configs are those of KSM's
``docs/metrics/extend/customresourcestate-metrics.md`` (v2.20.0); ``expected``
is what that page says KSM produces, as ``{(name, sorted label items): value}``.
Where the page's own output is wrong or partial, the expectation follows what
KSM's code (``pkg/customresourcestate/registry_factory.go``) does, and says why.
``WIDGET`` is a config of our own over a CRD with arrays and maps.
"""

from __future__ import annotations

from typing import Any

GVK = {"customresource_group": "myteam.io", "customresource_kind": "Foo", "customresource_version": "v1"}

FOO: dict[str, Any] = {
    "kind": "Foo",
    "apiVersion": "myteam.io/v1",
    "metadata": {
        "annotations": {"bar": "baz", "qux": "quxx"},
        "labels": {"foo": "bar"},
        "name": "foo",
        "namespace": "crs",
    },
    "spec": {
        "version": "v1.2.3",
        "order": [{"id": 1, "value": True}, {"id": 3, "value": False}],
        "replicas": 1,
        "refs": ["my_other_foo", "foo_2", "foo_with_extensions"],
    },
    "status": {
        "phase": "Pending",
        "active": {"type-a": 1, "type-b": 3},
        "conditions": [{"name": "a", "value": 45}, {"name": "b", "value": 66}],
        "sub": {"type-a": {"active": 1, "ready": 2}, "type-b": {"active": 3, "ready": 4}},
        "uptime": 43.21,
    },
}

SINGLE_VALUE = """
kind: CustomResourceStateMetrics
spec:
  resources:
    - groupVersionKind:
        group: myteam.io
        kind: "Foo"
        version: "v1"
      metrics:
        - name: "uptime"
          help: "Foo uptime"
          each:
            type: Gauge
            gauge:
              path: [status, uptime]
"""

KITCHEN_SINK = """
kind: CustomResourceStateMetrics
spec:
  resources:
    - groupVersionKind:
        group: myteam.io
        kind: "Foo"
        version: "v1"
      commonLabels:
        crd_type: "foo"
      labelsFromPath:
        name: [metadata, name]
      metrics:
        - name: "ready_count"
          help: "Number Foo Bars ready"
          each:
            type: Gauge
            gauge:
              path: [status, sub]
              labelFromKey: type
              labelsFromPath:
                active: [active]
              valueFrom: [ready]
          commonLabels:
            custom_metric: "yes"
          labelsFromPath:
            "*": [metadata, labels]
            "lorem_*": [metadata, annotations]
            "**": [metadata, annotations]
            name: [metadata, name]
            foo: [metadata, labels, foo]
"""

NON_MAP_ARRAYS = """
kind: CustomResourceStateMetrics
spec:
  resources:
    - groupVersionKind:
        group: myteam.io
        kind: "Foo"
        version: "v1"
      labelsFromPath:
        name: [metadata, name]
      metrics:
        - name: "ref_info"
          help: "Reference to other Foo"
          each:
            type: Info
            info:
              path: [spec, refs]
              labelsFromPath:
                ref: []
"""

STATUS_CONDITIONS = """
kind: CustomResourceStateMetrics
spec:
  resources:
  - groupVersionKind:
      group: myteam.io
      kind: "Foo"
      version: "v1"
    labelsFromPath:
      name:
      - metadata
      - name
      namespace:
      - metadata
      - namespace
    metrics:
    - name: "foo_status"
      help: "status condition "
      each:
        type: Gauge
        gauge:
          path: [status, conditions]
          labelsFromPath:
            type: ["type"]
          valueFrom: ["status"]
"""

STATESET = """
kind: CustomResourceStateMetrics
spec:
  resources:
    - groupVersionKind:
        group: myteam.io
        kind: "Foo"
        version: "v1"
      metrics:
        - name: "status_phase"
          help: "Foo status_phase"
          each:
            type: StateSet
            stateSet:
              labelName: phase
              path: [status, phase]
              list: [Pending, Bar, Baz]
"""

INFO = """
kind: CustomResourceStateMetrics
spec:
  resources:
    - groupVersionKind:
        group: myteam.io
        kind: "Foo"
        version: "v1"
      metrics:
        - name: "version"
          help: "Foo version"
          each:
            type: Info
            info:
              labelsFromPath:
                version: [spec, version]
"""

PREFIX = """
kind: CustomResourceStateMetrics
spec:
  resources:
    - groupVersionKind: {group: myteam.io, kind: Foo, version: v1}
      metricNamePrefix: myteam_foos
      metrics:
        - name: uptime
          help: Foo uptime
          each: {type: Gauge, gauge: {path: [status, uptime]}}
    - groupVersionKind: {group: myteam.io, kind: Foo, version: v2}
      metricNamePrefix: ""
      metrics:
        - name: uptime
          help: Foo uptime
          each: {type: Gauge, gauge: {path: [status, uptime]}}
"""

# The page's path-syntax examples, one family each.
PATHS = """
kind: CustomResourceStateMetrics
spec:
  resources:
    - groupVersionKind: {group: myteam.io, kind: Foo, version: v1}
      labelsFromPath:
        name: [metadata, name]
      metrics:
        - name: replicas
          help: spec.replicas
          each: {type: Gauge, gauge: {path: [spec, replicas]}}
        - name: first_order
          help: spec.order[0].value
          each: {type: Gauge, gauge: {path: [spec, order, "0", value]}}
        - name: condition_a
          help: the value of condition a
          each: {type: Gauge, gauge: {path: [status, conditions, "[name=a]", value]}}
        - name: condition_66
          help: the name of the condition whose value is 66
          each: {type: Info, info: {labelsFromPath: {condition: [status, conditions, "[value=66]", name]}}}
        - name: active
          help: status.active by key
          each: {type: Gauge, gauge: {path: [status, active], labelFromKey: type}}
        - name: last_order
          help: spec.order[-1].id
          each: {type: Gauge, gauge: {path: [spec, order, "-1", id]}}
"""


def _labels(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({**GVK, **labels}.items()))


EXPECTED: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {
    "single_value": {("kube_customresource_uptime", _labels()): 43.21},
    # The page lists label values only roughly; these follow the code: "*" copies metadata.labels,
    # "lorem_*" the annotations with a prefix, "**" the annotations with the key as is ("**" ends with
    # "*", so the prefix is "*", sanitised to "_": _bar, _qux), and plain keys win over copies.
    "kitchen_sink": {
        (
            "kube_customresource_ready_count",
            _labels(
                active="1",
                crd_type="foo",
                custom_metric="yes",
                foo="bar",
                name="foo",
                _bar="baz",
                _qux="quxx",
                type="type-a",
                lorem_bar="baz",
                lorem_qux="quxx",
            ),
        ): 2,
        (
            "kube_customresource_ready_count",
            _labels(
                active="3",
                crd_type="foo",
                custom_metric="yes",
                foo="bar",
                name="foo",
                _bar="baz",
                _qux="quxx",
                type="type-b",
                lorem_bar="baz",
                lorem_qux="quxx",
            ),
        ): 4,
    },
    "non_map_arrays": {
        ("kube_customresource_ref_info", _labels(name="foo", ref=ref)): 1
        for ref in ("my_other_foo", "foo_2", "foo_with_extensions")
    },
    # The page's Foo has name/value conditions, not type/status: that example's series come from FOO_CONDITIONS.
    "status_conditions": {
        ("kube_customresource_foo_status", _labels(name="conditions", namespace="crs", type="Ready")): 1,
        ("kube_customresource_foo_status", _labels(name="conditions", namespace="crs", type="Synced")): 0,
    },
    "stateset": {
        ("kube_customresource_status_phase", _labels(phase="Pending")): 1,
        ("kube_customresource_status_phase", _labels(phase="Bar")): 0,
        ("kube_customresource_status_phase", _labels(phase="Baz")): 0,
    },
    "info": {("kube_customresource_version", _labels(version="v1.2.3")): 1},
    "prefix": {
        ("myteam_foos_uptime", _labels()): 43.21,
        ("uptime", _labels(customresource_version="v2")): 43.21,
    },
    "paths": {
        ("kube_customresource_replicas", _labels(name="foo")): 1,
        ("kube_customresource_first_order", _labels(name="foo")): 1,
        ("kube_customresource_condition_a", _labels(name="foo")): 45,
        ("kube_customresource_condition_66", _labels(name="foo", condition="b")): 1,
        ("kube_customresource_active", _labels(name="foo", type="type-a")): 1,
        ("kube_customresource_active", _labels(name="foo", type="type-b")): 3,
        ("kube_customresource_last_order", _labels(name="foo")): 3,
    },
}

FOO_CONDITIONS: dict[str, Any] = {
    "kind": "Foo",
    "apiVersion": "myteam.io/v1",
    "metadata": {"name": "conditions", "namespace": "crs"},
    "status": {
        "conditions": [
            {"lastTransitionTime": "2019-10-22T16:29:31Z", "status": "True", "type": "Ready"},
            {"lastTransitionTime": "2019-10-22T16:29:31Z", "status": "False", "type": "Synced"},
        ]
    },
}

CONFIGS = {
    "single_value": (SINGLE_VALUE, FOO),
    "kitchen_sink": (KITCHEN_SINK, FOO),
    "non_map_arrays": (NON_MAP_ARRAYS, FOO),
    "status_conditions": (STATUS_CONDITIONS, FOO_CONDITIONS),
    "stateset": (STATESET, FOO),
    "info": (INFO, FOO),
    "prefix": (PREFIX, FOO),
    "paths": (PATHS, FOO),
}

# A config of our own, over a Widget CRD with arrays and maps, and every value conversion.
WIDGET = """
kind: CustomResourceStateMetrics
spec:
  resources:
    - groupVersionKind: {group: example.com, kind: Widget, version: v1alpha1}
      metricNamePrefix: widget
      labelsFromPath:
        widget: [metadata, name]
        namespace: [metadata, namespace]
      metrics:
        - name: port
          help: Ports by name
          each:
            type: Gauge
            gauge:
              path: [spec, ports]
              labelsFromPath: {port: [name], protocol: [protocol]}
              valueFrom: [number]
        - name: capacity
          help: Capacity per resource, quantities converted
          each:
            type: Gauge
            gauge:
              path: [status, capacity]
              labelFromKey: resource
        - name: flag
          help: Feature flags, strings and booleans
          each:
            type: Gauge
            gauge:
              path: [spec, flags]
              labelFromKey: flag
        - name: created
          help: Creation time
          each: {type: Gauge, gauge: {path: [status, createdAt]}}
        - name: missing
          help: A field that is absent, as zero
          each: {type: Gauge, gauge: {path: [status, missing], nilIsZero: true}}
        - name: ratio
          help: A percentage
          each: {type: Gauge, gauge: {path: [status, ratio]}}
        - name: replicas_text
          help: A number in a string
          each: {type: Gauge, gauge: {path: [status, replicasText]}}
        - name: mode
          help: Mode of each member
          each:
            type: StateSet
            stateSet:
              path: [status, members]
              labelName: mode
              valueFrom: [mode]
              list: [leader, follower]
              labelsFromPath: {member: [name]}
        - name: owner_info
          help: Owners
          each:
            type: Info
            info:
              path: [spec, owners]
              labelFromKey: team
              labelsFromPath: {"label_*": [labels]}
        - name: tags_info
          help: Tags, a label per map entry
          each:
            type: Info
            info:
              labelsFromPath: {"tag_*": [spec, tags], level: [spec, level]}
"""


def widget(name: str, namespace: str = "crs") -> dict[str, Any]:
    """A Widget with arrays of maps, maps of numbers and of strings, and each conversion."""
    return {
        "apiVersion": "example.com/v1alpha1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "ports": [
                {"name": "http", "number": 80, "protocol": "TCP"},
                {"name": "dns", "number": 53, "protocol": "UDP"},
                {"name": "unnumbered"},
            ],
            "flags": {"alpha": True, "beta": "no", "gamma": "Yes", "delta": "unknown"},
            "owners": {"core": {"labels": {"tier": "one"}}, "edge": {"labels": {}}},
            "tags": {"env": "prod", "zone": "a-1", "weight": 1.5, "big": 1e21},
            "level": 3,
        },
        "status": {
            "capacity": {"cpu": "250m", "memory": "512Mi", "disk": "1.5e3", "pods": 110, "gpu": "2k"},
            "createdAt": "2024-05-06T07:08:09.5+02:00",
            "ratio": "45%",
            "replicasText": "12.5",
            "members": [{"name": "a", "mode": "leader"}, {"name": "b", "mode": "follower"}, {"name": "c"}],
        },
    }
