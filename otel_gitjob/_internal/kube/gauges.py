"""A kind's status gauges, served from the watch cache.

A label set an object no longer has is retired from SDK storage at the next collection, so an edit
leaves one series per gauge and object, as Go controllers that re-key on every collect do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, ObservableGauge, Observation

from otel_gitjob._internal.core.locks import ranked_lock
from otel_gitjob._internal.kube._types import ObjectKey, Sink
from otel_gitjob._internal.kube.cache import ObjectCache
from otel_gitjob._internal.kube.kind import GaugeSpec, KindSpec

__all__ = ["SeriesOwners", "register_status_gauges", "serve_kind"]

logger = logging.getLogger(__name__)

Retire = Callable[[str, Mapping[str, Any]], Any]
_LabelSet = frozenset[tuple[str, str]]


class SeriesOwners:
    """Which object each series of a kind's multi-series gauges belongs to (the lifecycle asks).

    Their series may carry no ``namespace``/``name`` (a kube-state-metrics family). Each collection
    publishes, per gauge, a table from label set to object, which the lifecycle's view hook reads when
    the SDK creates a series. Tables are replaced whole, never changed in place: a reader needs no lock.
    """

    def __init__(self) -> None:
        self._tables: dict[str, dict[_LabelSet, Mapping[str, str]]] = {}

    def owner(self, instrument_name: str, attributes: Mapping[str, Any]) -> Mapping[str, str] | None:
        """The identity (``{"namespace": ..., "name": ...}``) of the object a series belongs to, if known."""
        table = self._tables.get(instrument_name.lower())
        if table is None:
            return None
        try:
            return table.get(frozenset(attributes.items()))
        except TypeError:  # an unhashable attribute value: not one of ours
            return None

    def publish(self, instrument_name: str, table: dict[_LabelSet, Mapping[str, str]]) -> None:
        self._tables[instrument_name.lower()] = table


class _Callback:
    """One gauge's callback: its series of every cached object, label sets an object no longer has retired.

    ``owners`` is set for a multi-series gauge, whose series need not name their object.
    """

    def __init__(
        self, cache: ObjectCache, index: int, name: str, retire: Retire | None, owners: SeriesOwners | None
    ) -> None:
        self._cache, self._index, self._name, self._retire, self._owners = cache, index, name, retire, owners
        self._lock = ranked_lock("gauges.callback")  # two readers may collect at once
        # Per object: its labels (one series), or the frozenset of its series' label sets (multi-series).
        self._last: dict[ObjectKey, Any] = {}

    def __call__(self, options: CallbackOptions) -> Iterable[Observation]:
        observations = []
        table: dict[_LabelSet, Mapping[str, str]] = {}
        current: dict[ObjectKey, Any] = {}
        for state in self._cache.snapshot():  # a copy taken under the cache lock
            value = state.values[self._index]
            if self._owners is None:
                current[state.key] = state.attributes
                if isinstance(value, (int, float)):  # a dropped (bad) field has no point, rather than a made-up one
                    observations.append(Observation(value, state.attributes))
                continue
            if not isinstance(value, tuple):  # its samples function raised
                continue
            # Cluster-scoped objects have no namespace, which is no identity the lifecycle accepts:
            # their series still leave with the object (nothing observes them), unindexed.
            owner = {"namespace": state.ref.namespace, "name": state.ref.name} if state.ref.namespace else None
            label_sets = []
            for labels, sample in value:
                label_set = frozenset(labels.items())
                label_sets.append(label_set)
                if owner is not None:
                    table[label_set] = owner
                observations.append(Observation(sample, labels))
            current[state.key] = frozenset(label_sets)
        with self._lock:
            if self._retire is not None:
                # Retired while the old owner table still names their object. Objects gone from the
                # cache were forgotten (all their series) by the lifecycle.
                for object_key, now in current.items():
                    previous = self._last.get(object_key)
                    if previous is None or previous == now:
                        continue
                    for gone in (previous,) if self._owners is None else previous - now:
                        try:
                            self._retire(self._name, dict(gone))
                        except Exception:  # collection must go on
                            logger.exception("retiring an old label set of %s failed", self._name)
            if self._owners is not None:
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
    """Create one observable gauge per :class:`~.kind.GaugeSpec`, reading ``cache``.

    An object that leaves the cache simply stops being observed; dropping its series is the lifecycle's ``forget``.

    Args:
        meter: Where to create the instruments.
        cache: The watch cache the callbacks read.
        gauges: The kind's gauges; ``ObjectState.values`` follows their order.
        retire: ``retire(instrument_name, old_attributes)`` evicts a label set an object no longer has.
        owners: Where multi-series gauges publish the object of each series (declare it to the lifecycle).

    Returns:
        The gauges, in table order.
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
