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

__all__ = ["register_status_gauges"]

logger = logging.getLogger(__name__)

Retire = Callable[[str, Mapping[str, Any]], Any]


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
            if value is not None:  # a dropped (bad) field has no point, rather than a made-up one
                observations.append(Observation(value, state.attributes))
        return observations


def register_status_gauges(
    meter: Meter, cache: ObjectCache, gauges: tuple[GaugeSpec, ...], retire: Retire | None = None
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

    Returns:
        The gauges, in table order.
    """
    return [
        meter.create_observable_gauge(
            spec.name, callbacks=[_Callback(cache, i, spec.name, retire)], description=spec.description
        )
        for i, spec in enumerate(gauges)
    ]
