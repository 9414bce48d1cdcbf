"""A kind's status gauges, served from the watch cache.

Fleet re-keys its status gauges on every collect (it deletes by partial match
on name and namespace, then sets the current label set). The callbacks here do
the same: when an object's labels changed since the last collection (a
GitRepo's ``branch``, ``paths`` or ``repo`` was edited), the old label set is
retired from SDK storage before the new one is observed, so an edit leaves
exactly one series per gauge and object instead of one per label set ever seen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, ObservableGauge, Observation

from otel_gitjob._internal.core.locks import ranked_lock
from otel_gitjob._internal.kube._types import ObjectKey
from otel_gitjob._internal.kube.cache import ObjectCache
from otel_gitjob._internal.kube.kind import GaugeSpec

__all__ = ["SeriesOwners", "register_status_gauges"]

logger = logging.getLogger(__name__)

Retire = Callable[[str, Mapping[str, Any]], Any]


class SeriesOwners:
    """Which object each series of a kind's multi-series gauges belongs to (the lifecycle asks).

    Multi-series gauges (``GaugeSpec.samples``) carry whatever labels their
    function gives, perhaps no ``namespace``/``name`` at all (a
    kube-state-metrics family), so the lifecycle cannot tell their object from
    the labels. Each collection publishes, per gauge, a table from label set to
    object; the lifecycle's view hook reads it when the SDK creates a series,
    so that ``forget`` finds the object's series as it finds any other.

    Tables are replaced whole, never changed in place: a reader needs no lock.
    """

    def __init__(self) -> None:
        self._tables: dict[str, dict[frozenset[tuple[str, str]], Mapping[str, str]]] = {}

    def owner(self, instrument_name: str, attributes: Mapping[str, Any]) -> Mapping[str, str] | None:
        """The identity (``{"namespace": ..., "name": ...}``) of the object a series belongs to, if known."""
        table = self._tables.get(instrument_name.lower())
        if table is None:
            return None
        try:
            return table.get(frozenset(attributes.items()))
        except TypeError:  # an unhashable attribute value: not one of ours
            return None

    def publish(self, instrument_name: str, table: dict[frozenset[tuple[str, str]], Mapping[str, str]]) -> None:
        self._tables[instrument_name.lower()] = table


class _Callback:
    """One gauge's callback: observations from the cache, with re-keying of changed label sets."""

    def __init__(self, cache: ObjectCache, index: int, name: str, retire: Retire | None) -> None:
        self._cache, self._index, self._name, self._retire = cache, index, name, retire
        self._lock = ranked_lock("gauges.callback")  # two readers may collect at once
        self._last: dict[ObjectKey, Mapping[str, str]] = {}

    def __call__(self, options: CallbackOptions) -> Iterable[Observation]:
        states = self._cache.snapshot()  # a copy taken under the cache lock
        with self._lock:
            last, current = self._last, {}
            for state in states:
                current[state.key] = state.attributes
                previous = last.get(state.key)
                if previous is not None and previous != state.attributes and self._retire is not None:
                    try:
                        self._retire(self._name, previous)
                    except Exception:  # collection must go on
                        logger.exception("retiring an old label set of %s failed", self._name)
            # Objects gone from the cache were forgotten (all their series) by the lifecycle.
            self._last = current
        observations = []
        for state in states:
            value = state.values[self._index]
            if isinstance(value, (int, float)):  # a dropped (bad) field has no point, rather than a made-up one
                observations.append(Observation(value, state.attributes))
        return observations


class _SamplesCallback:
    """A multi-series gauge's callback: every series of every cached object, with their owners published."""

    def __init__(self, cache: ObjectCache, index: int, name: str, retire: Retire | None, owners: SeriesOwners) -> None:
        self._cache, self._index, self._name, self._retire, self._owners = cache, index, name, retire, owners
        self._lock = ranked_lock("gauges.callback")  # two readers may collect at once
        self._last: dict[ObjectKey, frozenset[frozenset[tuple[str, str]]]] = {}

    def __call__(self, options: CallbackOptions) -> Iterable[Observation]:
        states = self._cache.snapshot()  # a copy taken under the cache lock
        observations = []
        table: dict[frozenset[tuple[str, str]], Mapping[str, str]] = {}
        current: dict[ObjectKey, frozenset[frozenset[tuple[str, str]]]] = {}
        for state in states:
            samples = state.values[self._index]
            if not isinstance(samples, tuple):
                continue
            # Cluster-scoped objects have no namespace, which is no identity the lifecycle accepts:
            # their series still leave with the object (nothing observes them), unindexed.
            owner = {"namespace": state.ref.namespace, "name": state.ref.name} if state.ref.namespace else None
            series = []
            for labels, value in samples:
                series_key = frozenset(labels.items())
                series.append(series_key)
                if owner is not None:
                    table[series_key] = owner
                observations.append(Observation(value, labels))
            current[state.key] = frozenset(series)
        with self._lock:
            if self._retire is not None:
                for object_key, now in current.items():
                    previous = self._last.get(object_key)
                    # Series an object no longer has (a label value changed): evicted while the old table
                    # still names their owner. Objects gone from the cache were forgotten by the lifecycle.
                    for gone in previous - now if previous else ():
                        try:
                            self._retire(self._name, dict(gone))
                        except Exception:  # collection must go on
                            logger.exception("retiring an old label set of %s failed", self._name)
            self._owners.publish(self._name, table)
            self._last = current
        return observations


def register_status_gauges(
    meter: Meter,
    cache: ObjectCache,
    gauges: tuple[GaugeSpec, ...],
    retire: Retire | None = None,
    owners: SeriesOwners | None = None,
) -> list[ObservableGauge]:
    """Create one observable gauge per :class:`~.kind.GaugeSpec`.

    An object that leaves the cache (deleted, or relabelled out of the shard)
    simply stops being observed; dropping its series' storage is the
    lifecycle's ``forget``.

    Args:
        meter: Where to create the instruments.
        cache: The watch cache the callbacks read.
        gauges: The kind's gauges; ``ObjectState.values`` follows their order.
        retire: ``retire(instrument_name, old_attributes)`` evicts a label set
            an object no longer has.
        owners: Where multi-series gauges publish the object of each series
            (declare it to the lifecycle with the kind's instruments).

    Returns:
        The gauges, in table order.
    """
    owners = owners if owners is not None else SeriesOwners()
    return [
        meter.create_observable_gauge(
            spec.name,
            callbacks=[
                _SamplesCallback(cache, i, spec.name, retire, owners)
                if spec.samples is not None
                else _Callback(cache, i, spec.name, retire)
            ],
            description=spec.description,
        )
        for i, spec in enumerate(gauges)
    ]
