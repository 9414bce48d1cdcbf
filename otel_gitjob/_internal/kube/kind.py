"""A declarative description of a Kubernetes kind the listener watches (:class:`KindSpec`).

Only an object's projection is cached (its identity, a few label strings and numbers), never the object.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from otel_gitjob._internal.core.errors import ConfigurationError
from otel_gitjob._internal.kube._types import ObjectKey, ObjectRef

__all__ = [
    "REASON_BAD_OBJECT",
    "REASON_BAD_STATUS_VALUE",
    "GaugeSpec",
    "KindSpec",
    "ObjectState",
    "Sample",
    "check_kind",
    "metadata_labels",
    "metadata_ref",
]

REASON_BAD_STATUS_VALUE = "bad_status_value"
"""Drop reason: a status field that is not a finite, non-negative number (``1e400``, NaN, ``"3"``, -1)."""
REASON_BAD_OBJECT = "bad_object"
"""Drop reason: an object without a usable identity, or whose projection raised."""

Sample = tuple[Mapping[str, str], float]
"""One series of a multi-series gauge: its labels and its value."""

SampleFunction = Callable[[Mapping[str, Any], Callable[[str], None]], Sequence[Sample]]
"""``samples(obj, dropped)``: an object's series of one gauge; ``dropped(detail)`` reports each value skipped."""

_MAX_VALUE = 2**53
"""Larger integers lose precision as floats and overflow int64 exporters: no object count comes near it."""


@dataclass(frozen=True, slots=True)
class GaugeSpec:
    """One status gauge of a kind.

    Attributes:
        name: Instrument name (``deployment_ready_replicas``).
        description: Instrument description.
        path: Keys leading from the object to the number (``("status", "readyReplicas")``).
            A missing field reads as 0 (Go's zero value, as a Go controller exports it);
            a present field that is not a finite, non-negative number is dropped.
        samples: Instead of ``path``: ``samples(obj, dropped)`` gives an object's series of this gauge,
            each with its own labels (not the kind's ``labels``), and counts each value it skips with
            ``dropped(detail)``; a kube-state-metrics family is one. If it raises, the object has no series
            of this gauge (counted). The series are forgotten with their object, whatever their labels.
    """

    name: str
    description: str
    path: tuple[str, ...] = ()
    samples: SampleFunction | None = None

    def __post_init__(self) -> None:
        if (self.samples is None) == (not self.path):
            raise ValueError("GaugeSpec %s needs either a path or samples (one of them)" % self.name)


@dataclass(frozen=True, slots=True)
class ObjectState:
    """The cached projection of one object.

    Attributes:
        ref: Identity (namespace, name, uid).
        attributes: The status gauges' labels.
        values: One value per gauge of the kind, in order; ``None`` where the
            field was dropped as bad (the gauge then has no point for it); for
            a gauge with ``samples``, the tuple of its series.
    """

    ref: ObjectRef
    attributes: Mapping[str, str]
    values: tuple[int | float | tuple[Sample, ...] | None, ...]

    @property
    def key(self) -> ObjectKey:
        """``(namespace, name)``."""
        return (self.ref.namespace, self.ref.name)


def metadata_ref(obj: Mapping[str, Any]) -> ObjectRef:
    """The identity of an API object: ``metadata.namespace``, ``name`` and ``uid``.

    Cluster-scoped objects have the namespace ``""``.

    Raises:
        ValueError: The object has no string name (or a non-string namespace).
    """
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        raise ValueError("object without metadata")
    namespace, name, uid = meta.get("namespace", ""), meta.get("name"), meta.get("uid")
    if namespace is None:
        namespace = ""
    if not isinstance(name, str) or not name or not isinstance(namespace, str):
        raise ValueError("object without a string namespace/name: %r" % ({"namespace": namespace, "name": name},))
    return ObjectRef(namespace, name, uid if isinstance(uid, str) and uid else None)


def metadata_labels(obj: Mapping[str, Any]) -> dict[str, str]:
    """The minimal gauge labels: ``name`` and ``namespace`` (the lifecycle's identity keys)."""
    ref = metadata_ref(obj)
    return {"name": ref.name, "namespace": ref.namespace}


def _value_at(obj: Mapping[str, Any], path: tuple[str, ...]) -> tuple[int | float | None, bool]:
    """``(value, ok)``: the number at ``path``; 0 when absent; ``(None, False)`` when present but bad."""
    value: Any = obj
    for key in path:
        if value is None:
            return 0, True
        if not isinstance(value, Mapping):
            return None, False
        value = value.get(key)
    if value is None:
        return 0, True
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, False
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0 or value > _MAX_VALUE:
            return None, False
        return (int(value) if value.is_integer() else value), True
    if value < 0 or value > _MAX_VALUE:
        return None, False
    return value, True


@dataclass(frozen=True)
class KindSpec:
    """Everything the listener needs to know about one kind.

    Attributes:
        group: API group (``apps``; ``""`` for the core group).
        version: API version (``v1``).
        plural: Resource plural (``deployments``).
        kind: Kind name (``Deployment``): what the lifecycle scopes identities by, and what the logs say.
        namespaced: Whether objects live in namespaces. A cluster-scoped kind is listed cluster-wide.
        label_selector: A label selector of the kind's own, and-ed with the shard selector.
        shard_label: The label the kind's sharded controllers select on (the listener's ``shard_id`` and
            ``all_shards`` settings select on it); ``None``: not sharded.
        gauges: The status gauges, one per number read off an object.
        labels: Projection of an object onto its gauge labels, with the lifecycle's identity keys
            (``name``, ``namespace``) so that ``forget`` finds the series. If it raises, the object
            is dropped and counted.
        identity: Projection of an object onto its identity; the default reads ``metadata``.
        instruments: Your own instruments whose series (labelled with the object's ``namespace`` and
            ``name``) belong to this kind: forgetting an object of this kind removes them, never another kind's.
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    label_selector: str | None = None
    shard_label: str | None = None
    gauges: tuple[GaugeSpec, ...] = ()
    labels: Callable[[Mapping[str, Any]], Mapping[str, str]] = field(default=metadata_labels)
    identity: Callable[[Mapping[str, Any]], ObjectRef] = field(default=metadata_ref)
    instruments: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for what, value in (("version", self.version), ("plural", self.plural), ("kind", self.kind)):
            if not isinstance(value, str) or not value:
                raise ConfigurationError("KindSpec.%s must be a non-empty string, got %r" % (what, value))
        if not self.kind[0].isalpha():
            raise ConfigurationError("KindSpec.kind must be a kind name such as 'Deployment', got %r" % self.kind)
        if not isinstance(self.group, str):
            raise ConfigurationError("KindSpec.group must be a string ('' for the core group), got %r" % (self.group,))
        names = [gauge.name for gauge in self.gauges]
        if len(set(names)) != len(names):
            raise ConfigurationError("KindSpec %s declares a gauge name twice: %s; rename one" % (self.kind, names))

    @property
    def api_version(self) -> str:
        """``group/version`` (``version`` alone for the core group)."""
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    @property
    def resource(self) -> str:
        """``plural.group``, as ``kubectl`` and CRD names spell it."""
        return "%s.%s" % (self.plural, self.group) if self.group else self.plural

    @property
    def gauge_names(self) -> tuple[str, ...]:
        """The status gauges' instrument names."""
        return tuple(gauge.name for gauge in self.gauges)

    @property
    def sample_gauge_names(self) -> tuple[str, ...]:
        """The multi-series gauges' instrument names (``GaugeSpec.samples``)."""
        return tuple(gauge.name for gauge in self.gauges if gauge.samples is not None)

    @property
    def instrument_names(self) -> tuple[str, ...]:
        """Every instrument scoped to this kind: the status gauges and :attr:`instruments`."""
        return self.gauge_names + tuple(name for name in self.instruments if name not in self.gauge_names)

    def project(self, obj: Mapping[str, Any], bad_value: Callable[[str, str], None] | None = None) -> ObjectState:
        """Project one object onto what the cache keeps.

        Args:
            obj: The object, a dict from the API.
            bad_value: Called as ``bad_value(reason, detail)`` once per dropped
                field; the rest of the object is still used.

        Raises:
            ValueError: The object has no usable identity, or a projection
                raised (wrapped, with the original as its cause).
        """
        ref = self.identity(obj)
        if self.namespaced and not ref.namespace:
            raise ValueError("%s %r without a namespace" % (self.kind, ref.name))
        try:
            attributes = {str(key): str(value) for key, value in dict(self.labels(obj)).items()}
        except Exception as exc:  # a user's projection must not stop the watch
            raise ValueError(
                "%s %s/%s: labels projection failed: %r" % (self.kind, ref.namespace, ref.name, exc)
            ) from exc

        def dropped(detail: str) -> None:
            if bad_value is not None:
                bad_value(REASON_BAD_STATUS_VALUE, "%s %s/%s %s" % (self.kind, ref.namespace, ref.name, detail))

        values: list[int | float | tuple[Sample, ...] | None] = []
        for gauge in self.gauges:
            if gauge.samples is None:
                value, ok = _value_at(obj, gauge.path)
                if not ok:
                    dropped(".".join(gauge.path))
                values.append(value)
                continue
            try:
                values.append(tuple((dict(labels), float(value)) for labels, value in gauge.samples(obj, dropped)))
            except Exception as exc:  # one bad object never stops the kind: it has no series of this gauge
                dropped("%s: %r" % (gauge.name, exc))
                values.append(None)
        return ObjectState(ref, attributes, tuple(values))

    def project_or_drop(
        self, obj: Mapping[str, Any], drop: Callable[[str, str], None], *, deleted: bool = False
    ) -> ObjectState | None:
        """:meth:`project`, or ``None`` (dropped and counted) when the object cannot be projected.

        A ``deleted`` object that cannot be projected falls back to its identity: its deletion is still forgotten.
        """
        try:
            return self.project(obj, drop)
        except Exception as exc:  # ValueError from the projection, or anything a user's projection raised
            drop(REASON_BAD_OBJECT, "%s: %s" % (self.kind, exc))
        if not deleted:
            return None
        try:
            return ObjectState(self.identity(obj), {}, (None,) * len(self.gauges))
        except Exception:
            return None


def check_kind(kind: Any) -> None:
    """Refuse anything but a :class:`KindSpec` at once, with the fix."""
    if not isinstance(kind, KindSpec):
        raise ConfigurationError(
            "kind must be a KindSpec (otel_gitjob.listener.KindSpec describes a kind), got %r" % (kind,)
        )
