"""A kind's status gauges, served from the watch cache.

A label set an object no longer has is retired from SDK storage at the next collection, so an edit
leaves one series per gauge and object, as Go controllers that re-key on every collect do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from functools import lru_cache, partial
from itertools import chain
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, ObservableGauge, Observation

from otel_gitjob._internal.core.locks import ranked_lock
from otel_gitjob._internal.kube._types import ObjectKey, Sink
from otel_gitjob._internal.kube.cache import ObjectCache
from otel_gitjob._internal.kube.kind import GaugeSpec, KindSpec, ObjectState, Sample

__all__ = ["SeriesOwners", "register_status_gauges", "serve_kind"]

logger = logging.getLogger(__name__)

Retire = Callable[[str, Mapping[str, Any]], Any]


class SeriesOwners:
    """Which object each series of a kind's multi-series gauges belongs to (the lifecycle asks).

    Their series may carry no ``namespace``/``name`` (a kube-state-metrics family). Each collection publishes,
    per gauge, the states it observed, whole (a reader needs no lock); their index by label set is built at the
    first question (a series created or retired), so a collection that creates no series builds none.
    """

    def __init__(self) -> None:
        self._tables: dict[str, Callable[[], dict[tuple[str, ...], Mapping[str, str]]]] = {}

    def owner(self, instrument_name: str, attributes: Mapping[str, Any]) -> Mapping[str, str] | None:
        """The identity (``{"namespace": ..., "name": ...}``) of the object a series belongs to, if known."""
        table = self._tables.get(instrument_name.lower())
        try:
            return None if table is None else table().get(_key(attributes))
        except TypeError:  # an unhashable attribute value: not one of ours
            return None

    def publish(self, instrument_name: str, gauge: int, states: list[ObjectState]) -> None:
        self._tables[instrument_name.lower()] = lru_cache(maxsize=None)(partial(_index, gauge, states))


def _index(gauge: int, states: list[ObjectState]) -> dict[tuple[str, ...], Mapping[str, str]]:
    index: dict[tuple[str, ...], Mapping[str, str]] = {}
    for state in states:
        samples = state.values[gauge]
        # Cluster-scoped objects have no namespace, which is no identity the lifecycle accepts:
        # their series still leave with the object (nothing observes them), unindexed.
        if state.ref.namespace and isinstance(samples, tuple):
            owner = {"namespace": state.ref.namespace, "name": state.ref.name}
            with suppress(TypeError):  # labels no SDK series carries as they are (unhashable, mixed key types)
                index.update((_key(labels), owner) for labels, _value in samples)
    return index


def _key(labels: Mapping[str, Any]) -> tuple[str, ...]:
    """A label set as one flat tuple: a sixth of a frozenset of its pairs."""
    return tuple(chain.from_iterable(sorted(labels.items())))


class _Callback:
    """One gauge's callback: every cached object's series (projected at its event), label sets gone retired.

    ``owners`` is set for a multi-series gauge, whose series need not name their object.
    """

    def __init__(
        self, cache: ObjectCache, index: int, name: str, retire: Retire | None, owners: SeriesOwners | None
    ) -> None:
        self._cache, self._index, self._name, self._retire, self._owners = cache, index, name, retire, owners
        self._lock = ranked_lock("gauges.callback")  # two readers may collect at once
        # Per object: its labels (one series), or the tuple of its samples (multi-series).
        self._last: dict[ObjectKey, Any] = {}

    def __call__(self, options: CallbackOptions) -> Iterable[Observation]:
        observations = []
        current: dict[ObjectKey, Any] = {}
        states = self._cache.snapshot()  # a copy taken under the cache lock
        for state in states:
            value = state.values[self._index]
            if self._owners is None:
                current[state.key] = state.attributes
                if isinstance(value, (int, float)):  # a dropped (bad) field has no point, rather than a made-up one
                    observations.append(Observation(value, state.attributes))
            elif isinstance(value, tuple):  # else its samples function raised
                current[state.key] = value
                observations.extend([Observation(sample, labels) for labels, sample in value])
        with self._lock:
            if self._retire is not None:
                # Retired while the old owner table still names their object. Objects gone from the cache
                # were forgotten (all their series) by the lifecycle.
                for object_key, now in current.items():
                    previous = self._last.get(object_key)
                    if previous is None or previous is now or previous == now:
                        continue
                    for gone in (previous,) if self._owners is None else _gone(previous, now):
                        try:
                            self._retire(self._name, gone)
                        except Exception:  # collection must go on
                            logger.exception("retiring an old label set of %s failed", self._name)
            if self._owners is not None:
                self._owners.publish(self._name, self._index, states)
            self._last = current
        return observations


def _gone(previous: tuple[Sample, ...], now: tuple[Sample, ...]) -> list[Mapping[str, str]]:
    kept = {frozenset(labels.items()) for labels, _value in now}
    return [labels for labels, _value in previous if frozenset(labels.items()) not in kept]


def register_status_gauges(
    meter: Meter,
    cache: ObjectCache,
    gauges: tuple[GaugeSpec, ...],
    retire: Retire | None = None,
    owners: SeriesOwners | None = None,
) -> list[ObservableGauge]:
    """Create one observable gauge per :class:`~.kind.GaugeSpec` of ``gauges`` (returned in order), reading ``cache``.

    ``ObjectState.values`` follows the order of ``gauges``. ``retire(instrument_name, old_attributes)`` evicts a
    label set an object no longer has; multi-series gauges publish each series' object to ``owners`` (declare it
    to the lifecycle). An object that leaves the cache stops being observed: its series are the lifecycle's to forget.
    """
    owners = owners if owners is not None else SeriesOwners()
    return [
        meter.create_observable_gauge(
            spec.name,
            callbacks=[_Callback(cache, i, spec.name, retire, owners if spec.samples is not None else None)],
            description=spec.description,
        )
        for i, spec in enumerate(gauges)
    ]


def serve_kind(
    sink: Sink,
    kind: KindSpec,
    cache: ObjectCache,
    *,
    meter_provider: MeterProvider | None,
    status_gauges: bool,
    user: str,
    scope: str,
) -> list[ObservableGauge]:
    """Declare ``kind``'s instruments to the sink and create its status gauges reading ``cache``.

    ``meter_provider`` is checked by ``sink.provider_for`` for ``user`` (who asks, named in the error);
    ``scope`` names the gauges' meter. Returns the gauges (none with ``status_gauges=False``).
    """
    names = kind.instrument_names if status_gauges else kind.instruments
    if names:
        sink.declare_kind(kind.kind, *names)
    if not status_gauges or not kind.gauges:
        return []
    owners = SeriesOwners()
    if kind.sample_gauge_names:  # the series of multi-series gauges name their object through the owners
        sink.declare_kind(kind.kind, *kind.sample_gauge_names, owner=owners.owner)
    meter = sink.provider_for(meter_provider, user).get_meter(scope)
    return register_status_gauges(meter, cache, kind.gauges, partial(sink.forget_series, kind=kind.kind), owners)
