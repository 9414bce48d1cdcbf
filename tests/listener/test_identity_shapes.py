"""Every object shape a Python controller holds works for recording and for ``forget``.

The objects are the real libraries' own (kopf, the ``kubernetes`` client, kr8s,
lightkube), built offline. kr8s objects come from ``kr8s.asyncio.objects``:
the synchronous classes are the same ``APIObject`` but contact the API server
(``/version``) in their constructor, which the kmock emulator does not serve.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import kopf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes import client as k8s
from kubernetes import watch
from lightkube import codecs
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap as LightkubeConfigMap
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from support import points_of

import otel_gitjob
from otel_gitjob._internal.core.identity import ObjectRef, coerce_object, fast_identity, kind_of

RAW = {
    "apiVersion": "fleet.cattle.io/v1alpha1",
    "kind": "GitRepo",
    "metadata": {"name": "r", "namespace": "ns", "uid": "u1"},
    "spec": {"repo": "https://example.com/x"},
}


def _typed_event() -> dict[str, Any]:
    data = {"type": "ADDED", "object": {**RAW, "apiVersion": "v1", "kind": "ConfigMap"}}
    return watch.Watch().unmarshal_event(json.dumps(data), "V1ConfigMap")


def _kr8s_gitrepo() -> Any:
    from kr8s.asyncio.objects import new_class

    return new_class("GitRepo", "fleet.cattle.io/v1alpha1", namespaced=True, asyncio=True)(RAW)


def _kr8s_configmap() -> Any:
    from kr8s.asyncio.objects import ConfigMap

    return ConfigMap({**RAW, "apiVersion": "v1", "kind": "ConfigMap"})


LightkubeGitRepo = create_namespaced_resource("fleet.cattle.io", "v1alpha1", "GitRepo", "gitrepos")

SHAPES: dict[str, tuple[Any, str | None]] = {
    # name: (factory, the kind it carries)
    "dict": (lambda: dict(RAW), "GitRepo"),
    "watch event dict": (lambda: {"type": "ADDED", "object": dict(RAW)}, "GitRepo"),
    "kopf body": (lambda: kopf.Body(dict(RAW)), "GitRepo"),
    "kopf meta": (lambda: kopf.Body(dict(RAW)).meta, None),
    "typed watch event": (_typed_event, "ConfigMap"),
    "kubernetes model": (
        lambda: k8s.V1ConfigMap(kind="ConfigMap", metadata=k8s.V1ObjectMeta(name="r", namespace="ns", uid="u1")),
        "ConfigMap",
    ),
    "kubernetes metadata model": (lambda: k8s.V1ObjectMeta(name="r", namespace="ns", uid="u1"), None),
    "kr8s APIObject (CRD class)": (_kr8s_gitrepo, "GitRepo"),
    "kr8s APIObject (built-in)": (_kr8s_configmap, "ConfigMap"),
    "lightkube model": (
        lambda: LightkubeConfigMap(metadata=ObjectMeta(name="r", namespace="ns", uid="u1")),
        "ConfigMap",
    ),
    "lightkube Generic": (
        lambda: LightkubeGitRepo(metadata=ObjectMeta(name="r", namespace="ns", uid="u1"), spec={"repo": "x"}),
        "GitRepo",
    ),
    "lightkube Generic from_dict": (lambda: codecs.from_dict(dict(RAW)), "GitRepo"),
    "ObjectRef": (lambda: ObjectRef("ns", "r", "u1"), None),
    "tuple": (lambda: ("ns", "r"), None),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_shape_names_its_object(shape: str) -> None:
    factory, kind = SHAPES[shape]
    obj = factory()
    ref, reason = coerce_object(obj)
    assert reason is None and ref is not None
    assert (ref.namespace, ref.name) == ("ns", "r")
    assert ref.uid == (None if shape == "tuple" else "u1")
    assert kind_of(obj) == kind


# The shapes whose type gets a fast reader: the typed calls read them without coerce_object().
FAST_SHAPES = {
    "dict",
    "kopf body",
    "kopf meta",
    "kubernetes model",
    "kubernetes metadata model",
    "kr8s APIObject (CRD class)",
    "kr8s APIObject (built-in)",
    "lightkube model",
    "lightkube Generic",
    "lightkube Generic from_dict",
    "ObjectRef",
    "tuple",
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_fast_read_of_every_shape_is_the_full_read(shape: str) -> None:
    factory, _ = SHAPES[shape]
    ref, _reason = coerce_object(factory())
    assert ref is not None
    fast_identity(factory())  # the first object of a type teaches it its reader
    found = fast_identity(factory())
    if shape in FAST_SHAPES:
        assert found == (ref.namespace, ref.name, ref.uid)
    else:
        assert found is None


@settings(deadline=None)  # a loaded CI machine can stall one example past the default 200 ms
@given(
    st.dictionaries(
        st.sampled_from(["namespace", "name", "uid", "other"]),
        st.one_of(st.none(), st.text(max_size=5), st.integers(), st.lists(st.integers(), max_size=2)),
    )
)
def test_the_fast_read_answers_what_the_full_read_answers_or_nothing(metadata: dict[str, Any]) -> None:
    for obj in ({"metadata": metadata}, kopf.Body({"metadata": metadata}), kopf.Body({"metadata": metadata}).meta):
        ref, _reason = coerce_object(obj)
        found = fast_identity(obj)
        assert found is None or (ref is not None and found == (ref.namespace, ref.name, ref.uid))


@pytest.fixture()
def stack() -> Iterator[tuple[Any, Any, InMemoryMetricReader]]:
    lifecycle = otel_gitjob.Lifecycle()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
    yield lifecycle, otel_gitjob.GitJobMetrics(provider, lifecycle=lifecycle), reader
    provider.shutdown()
    lifecycle.shutdown()


def names(reader: InMemoryMetricReader) -> set[tuple[str, str]]:
    points = [dict(attributes) for _name, attributes in points_of(reader.get_metrics_data())]
    return {(a["namespace"], a["name"]) for a in points if "name" in a}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_shape_records_and_is_forgotten(shape: str, stack: Any) -> None:
    lifecycle, gitjob, reader = stack
    factory, _ = SHAPES[shape]
    gitjob.job_created(factory())
    gitjob.job_succeeded(factory(), 2.0)
    assert names(reader) == {("ns", "r")}
    # Typed models need a real kind, so several shapes are ConfigMaps or Pods standing in for a GitRepo: their
    # own kind would name another object (tests/test_kinds.py), so say which kind this one is.
    assert lifecycle.forget(factory(), kind=lifecycle.default_kind) >= 3
    assert names(reader) == set()
    assert lifecycle.drops.counts() == {}


# ---------------------------------------------------------------- never raises


class ExplodingProperty:
    @property
    def metadata(self) -> Any:
        raise RuntimeError("getter failed")

    @property
    def kind(self) -> Any:
        raise RuntimeError("getter failed")


class ExplodingMetadata:
    class _Meta:
        @property
        def name(self) -> Any:
            raise RuntimeError("getter failed")

        namespace = "ns"

    metadata = _Meta()


class ExplodingMapping(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("getitem failed")

    def get(self, key: str, default: Any = None) -> Any:
        raise RuntimeError("get failed")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("iter failed")

    def __len__(self) -> int:
        return 1


class MetadataMappingExplodes(Mapping[str, Any]):
    """An object whose metadata is a Mapping whose ``get`` raises."""

    def __getitem__(self, key: str) -> Any:
        if key == "metadata":
            return ExplodingMapping()
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(["metadata"])

    def __len__(self) -> int:
        return 1


BROKEN = {
    "property raises": ExplodingProperty,
    "metadata property raises": ExplodingMetadata,
    "Mapping.get raises": ExplodingMapping,
    "metadata Mapping.get raises": MetadataMappingExplodes,
    "None": lambda: None,
    "int": lambda: 7,
    "empty dict": dict,
    "name not a string": lambda: {"metadata": {"name": 5, "namespace": "ns"}},
    "event of junk": lambda: {"type": "ADDED", "object": "junk", "raw_object": 3},
}


@pytest.mark.parametrize("shape", list(BROKEN))
def test_identity_never_raises_and_recording_drops_and_counts(shape: str, stack: Any) -> None:
    lifecycle, gitjob, reader = stack
    obj = BROKEN[shape]()
    ref, reason = coerce_object(obj)
    assert ref is None and reason in ("bad_repo", "bad_identity_value")
    assert kind_of(obj) is None
    assert fast_identity(obj) is None
    gitjob.job_created(obj)  # never raises into the controller
    assert sum(lifecycle.drops.counts().values()) == 1
    assert names(reader) == set()
