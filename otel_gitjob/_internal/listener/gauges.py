"""The ``fleet_gitrepo_*`` status gauges, served from the watch cache."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Meter, ObservableGauge, Observation

from otel_gitjob._internal.listener.cache import RepoCache
from otel_gitjob._internal.listener.state import GAUGES

__all__ = ["register_status_gauges"]


def _callback(cache: RepoCache, index: int) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        # snapshot() copies under the cache lock; observations are built outside it.
        return [Observation(state.values[index], state.attributes) for state in cache.snapshot()]

    return observe


def register_status_gauges(meter: Meter, cache: RepoCache) -> list[ObservableGauge]:
    """Create one observable gauge per row of :data:`~.state.GAUGES`.

    A repo that leaves the cache (deleted, or relabelled out of the shard)
    simply stops being observed; dropping its series' storage is the sink's
    ``forget``.

    Args:
        meter: Where to create the instruments.
        cache: The watch cache the callbacks read.

    Returns:
        The gauges, in table order.
    """
    return [
        meter.create_observable_gauge(spec.name, callbacks=[_callback(cache, i)], description=spec.description)
        for i, spec in enumerate(GAUGES)
    ]
