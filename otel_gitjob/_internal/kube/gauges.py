"""A kind's status gauges, served from the watch cache.

A label set an object no longer has is retired from SDK storage at the next collection, so an edit
leaves one series per gauge and object, as Go controllers that re-key on every collect do. While the
SDK seam is trusted, each object's one-series gauges are written straight into the SDK's aggregations
(one bound series per object), without an ``Observation`` per value and collection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from functools import lru_cache, partial
from itertools import chain
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, ObservableGauge, Observation

from otel_gitjob._internal.core import _sdk
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


class _Series(_sdk.BoundSeries):
    """One cached object's series on its kind's one-series gauges, written straight into the SDK's aggregations.

    ``state`` is the cached state last written (an unchanged object keeps its state object, so a collection
    compares identities); bit ``i`` of ``held`` is set while gauge ``i``'s last value went to every reader's
    aggregation (a bound write), which must be emptied when no value replaces it.
    """

    __slots__ = ("state", "held")

    def __init__(self, instruments: _sdk.Instruments, state: ObjectState) -> None:
        super().__init__(instruments, state.attributes)
        self.state = state
        self.held = 0

    def release(self) -> None:
        """Empty every value a bound write left in a reader that did not collect it."""
        for slot in range(self.held.bit_length()):
            if self.held >> slot & 1:
                self.clear(slot)
        self.held = 0


class _Objects:
    """What the one-series gauges of one :func:`register_status_gauges` share: one :class:`_Series` per object.

    ``fast`` writes through the SDK seam (False while it runs degraded: Observations only, the same output).
    """

    def __init__(self, retire: Retire | None, fast: bool) -> None:
        self.retire, self.fast = retire, fast
        self.names: tuple[str, ...] = ()
        self.instruments: _sdk.Instruments | None = None  # once every gauge exists
        self.lock = ranked_lock("gauges.callback")  # two readers may collect at once
        self.series: dict[ObjectKey, _Series] = {}

    def track(self, state: ObjectState, previous: _Series | None, instruments: _sdk.Instruments) -> _Series:
        """The series of ``state``, an object new or changed since the last collection (under ``lock``)."""
        if previous is not None and previous.state.attributes == state.attributes:
            previous.state = state
            return previous
        series = self.series[state.key] = _Series(instruments, state)
        if previous is not None:  # its labels changed: the old label set goes, from every gauge at once
            previous.release()
            if self.retire is None:
                return series
            for name in self.names:
                try:
                    self.retire(name, previous.state.attributes)
                except Exception:  # collection must go on
                    logger.exception("retiring an old label set of %s failed", name)
        return series

    def prune(self, states: list[ObjectState]) -> None:
        """Drop the series of objects gone from the cache (the lifecycle forgets their series)."""
        live = {state.key for state in states}
        for key in [key for key in self.series if key not in live]:
            self.series.pop(key).release()


class _Callback:
    """One one-series gauge's callback: every cached object's value (projected at its event)."""

    def __init__(self, cache: ObjectCache, objects: _Objects, index: int, slot: int) -> None:
        self._cache, self._objects, self._index, self._slot = cache, objects, index, slot

    def __call__(self, options: CallbackOptions) -> Iterable[Observation]:
        objects, index, slot = self._objects, self._index, self._slot
        bit = 1 << slot
        observations = []
        states = self._cache.snapshot()  # a copy taken under the cache lock
        with objects.lock:
            instruments = objects.instruments
            if instruments is None:  # the gauges are being created (the cache is still empty then)
                return []
            table, fast = objects.series, objects.fast
            for state in states:
                series = table.get(state.key)
                if series is None or series.state is not state:
                    series = objects.track(state, series, instruments)
                value = state.values[index]
                if not isinstance(value, (int, float)):  # a dropped (bad) field has no point, rather than a made-up one
                    if series.held & bit:
                        series.clear(slot)
                        series.held &= ~bit
                elif fast and (
                    series.write(slot, value)
                    or series.create(slot, value)
                    or (series.bind(slot) and series.write(slot, value))  # created by the last collection's Observation
                ):
                    series.held |= bit
                else:  # the SDK creates the series (an SDK without get-or-create); the next collection binds it
                    series.held &= ~bit
                    observations.append(Observation(value, state.attributes))
            if len(table) > len(states):
                objects.prune(states)
        return observations


class _SamplesCallback:
    """A multi-series gauge's callback: every cached object's samples, label sets gone retired.

    Its series need not name their object: each collection publishes their owners.
    """

    def __init__(self, cache: ObjectCache, index: int, name: str, retire: Retire | None, owners: SeriesOwners) -> None:
        self._cache, self._index, self._name, self._retire, self._owners = cache, index, name, retire, owners
        self._lock = ranked_lock("gauges.callback")  # two readers may collect at once
        self._last: dict[ObjectKey, tuple[Sample, ...]] = {}

    def __call__(self, options: CallbackOptions) -> Iterable[Observation]:
        observations = []
        current: dict[ObjectKey, tuple[Sample, ...]] = {}
        states = self._cache.snapshot()  # a copy taken under the cache lock
        for state in states:
            value = state.values[self._index]
            if isinstance(value, tuple):  # else its samples function raised
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
                    for gone in _gone(previous, now):
                        try:
                            self._retire(self._name, gone)
                        except Exception:  # collection must go on
                            logger.exception("retiring an old label set of %s failed", self._name)
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
    *,
    fast: bool = False,
) -> list[ObservableGauge]:
    """Create one observable gauge per :class:`~.kind.GaugeSpec` of ``gauges`` (returned in order), reading ``cache``.

    ``ObjectState.values`` follows the order of ``gauges``. ``retire(instrument_name, old_attributes)`` evicts a
    label set an object no longer has; multi-series gauges publish each series' object to ``owners`` (declare it
    to the lifecycle). An object that leaves the cache stops being observed: its series are the lifecycle's to forget.
    ``fast`` writes the one-series gauges' values straight into the SDK's aggregations: pass it only while the
    lifecycle's SDK seam is trusted (``not lifecycle.degraded``).
    """
    owners = owners if owners is not None else SeriesOwners()
    objects = _Objects(retire, fast)
    created: list[ObservableGauge] = []
    for i, spec in enumerate(gauges):
        callback: Callable[[CallbackOptions], Iterable[Observation]]
        if spec.samples is None:
            callback = _Callback(cache, objects, i, len(objects.names))
            objects.names += (spec.name,)
        else:
            callback = _SamplesCallback(cache, i, spec.name, retire, owners)
        created.append(meter.create_observable_gauge(spec.name, callbacks=[callback], description=spec.description))
    # The series write to the gauges only once they all exist.
    single = [gauge for gauge, spec in zip(created, gauges, strict=True) if spec.samples is None]
    objects.instruments = _sdk.Instruments(single)
    return created


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
    retire = partial(sink.forget_series, kind=kind.kind)
    return register_status_gauges(meter, cache, kind.gauges, retire, owners, fast=not sink.degraded)
