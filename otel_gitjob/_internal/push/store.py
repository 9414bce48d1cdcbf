"""The pending-marker store: what is waiting to be sent, bounded, ordered, settled only on success.

An *item* is a staleness marker (a removed series) or a final delta (what a
forgotten delta series recorded since its last export, sent before its marker).
Items keep removal order; a newer marker of a series replaces the older one and
moves to the back, while final deltas never replace each other. Bounded by count
and age, oldest first; every drop is counted, and logged at most once per
``warn_interval``. The store also indexes exported delta series by object
(:meth:`MarkerStore.track_delta`).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from otel_gitjob._internal.core.locks import ranked_lock

if TYPE_CHECKING:
    from otel_gitjob._internal.core._sdk import FinalPoint
    from otel_gitjob._internal.core.registry import ObjectKey

__all__ = ["Item", "MarkerStore", "SeriesKey"]

_logger = logging.getLogger("otel_gitjob")

SeriesKey = tuple[str, str, Hashable]  # (scope name, stream name, attribute key)

# 50,000 items is the deletion of ~7,000 GitRepos (7 series each) in one export interval. A pending
# marker, encoded, holds about 590 bytes (Fleet's attributes; checked by
# test_memory_of_pending_markers_matches_the_documented_bound), so 50,000 hold at most 29 MiB.
DEFAULT_MAX_PENDING = 50_000
BYTES_PER_PENDING_MARKER = 600
# Past 5 minutes a marker is pointless: the Collector's prometheus exporter
# (metric_expiration) and Prometheus (lookback delta) have dropped the series by then.
DEFAULT_MAX_AGE_SECONDS = 300.0
# Delta series tracked to mark idle ones on forget: far more than the SDK's default
# cardinality limit (2,000 per instrument) times Fleet's 7 instruments.
DEFAULT_MAX_TRACKED_DELTA = 200_000


@dataclass(slots=True, eq=False)
class Item:
    """One pending marker or final delta (``is_final``); ``attributes`` and ``final`` are released once encoded."""

    key: SeriesKey
    identity: ObjectKey | None
    attributes: Mapping[str, Any] | None
    enqueued_at: float
    seq: int
    time_unix_nano: int
    is_final: bool = False
    final: FinalPoint | None = None  # released once encoded
    encoded: bytes | None = None  # a serialized OTLP ScopeMetrics holding the item's one Metric
    group: Any = None  # the (resource, scope) group the encoding belongs to

    @property
    def slot(self) -> Hashable:
        """Its key in the store: a marker's replaces an older one of its series, a final delta's is its own."""
        return ("final", self.seq) if self.is_final else self.key


class _Throttled:
    """A WARNING at most once per interval; what happened in between is summed into the next one."""

    def __init__(self, clock: Callable[[], float], interval: float) -> None:
        self._clock = clock
        self.interval = interval
        self._last: float | None = None
        self._held = 0

    def warn(self, count: int, message: str, *args: Any) -> None:
        """Log ``message % (count + held, *args)`` unless one was logged within the interval."""
        now = self._clock()
        self._held += count
        if self._last is not None and now - self._last < self.interval:
            return
        self._last = now
        held, self._held = self._held, 0
        _logger.warning(message, held, *args)


class MarkerStore:
    """Pending items and the delta index; thread-safe (one lock, never held during I/O).

    The bounds are attributes, settable: ``max_pending`` items are kept while they
    cannot be sent (the oldest dropped beyond it), an item unsent after
    ``max_age_seconds`` is dropped, and ``max_tracked_delta`` bounds the delta index.

    Args:
        clock: Monotonic clock in seconds.
        warn_interval: At most one WARNING per kind of drop in this many seconds.
    """

    def __init__(self, clock: Callable[[], float], warn_interval: float = 60.0) -> None:
        self.max_pending = DEFAULT_MAX_PENDING
        self.max_age_seconds = DEFAULT_MAX_AGE_SECONDS
        self.max_tracked_delta = DEFAULT_MAX_TRACKED_DELTA
        self._clock = clock
        # Taken by the removal listener (under the registry's op lock) and by senders; a leaf but for logging.
        self._lock = ranked_lock("markers.store")
        # A plain dict keeps insertion order at half an OrderedDict's bytes per entry.
        self._pending: dict[Hashable, Item] = {}
        self._seq = 0
        self._delta: dict[ObjectKey, dict[SeriesKey, Mapping[str, Any]]] = {}
        self._delta_count = 0
        self._delta_full_logged = False
        self._full = _Throttled(clock, warn_interval)
        self._aged = _Throttled(clock, warn_interval)
        self.dropped_total = 0
        self.sent_total = 0

    # -- enqueueing (the removal listener) ----------------------------------------------------------------------

    def removed(
        self,
        identity: ObjectKey | None,
        keys: Iterable[tuple[SeriesKey, Mapping[str, Any]]],
        finals: Iterable[tuple[SeriesKey, FinalPoint]],
        forgotten: bool,
        time_unix_nano: int,
    ) -> None:
        """Enqueue the final deltas, then a marker for each removed series (and, on a forget, idle delta ones)."""
        now = self._clock()
        with self._lock:
            for key, final in finals:
                # Final deltas go first: the receiver must count them before the marker ends the series.
                self._enqueue_locked(key, identity, None, now, final.point.time_unix_nano, final)
            if forgotten and identity is not None:
                self._mark_tracked_locked(identity, now, time_unix_nano)
            for key, attributes in keys:
                self._enqueue_locked(key, identity, attributes, now, time_unix_nano)
            self._trim_locked()

    def forgotten(self, identities: Iterable[ObjectKey], time_unix_nano: int) -> None:
        """Mark the tracked delta series of objects forgotten without a removal (idle)."""
        now = self._clock()
        with self._lock:
            for identity in identities:
                self._mark_tracked_locked(identity, now, time_unix_nano)
            self._trim_locked()

    def _mark_tracked_locked(self, identity: ObjectKey, now: float, stamp: int) -> None:
        tracked = self._delta.pop(identity, None)
        if tracked is not None:
            self._delta_count -= len(tracked)
            for key, attributes in tracked.items():
                self._enqueue_locked(key, identity, attributes, now, stamp)

    def _enqueue_locked(
        self,
        key: SeriesKey,
        identity: ObjectKey | None,
        attributes: Mapping[str, Any] | None,
        now: float,
        stamp: int,
        final: FinalPoint | None = None,
    ) -> None:
        self._seq += 1
        item = Item(key, identity, attributes, now, self._seq, stamp, final is not None, final)
        if final is None:
            # A newer removal of the same series replaces the older marker and moves to the back.
            self._pending.pop(key, None)
        self._pending[item.slot] = item

    def _trim_locked(self) -> None:
        excess = len(self._pending) - self.max_pending
        if excess <= 0:
            return
        pending = self._pending
        for slot in list(itertools.islice(pending, excess)):
            del pending[slot]
        self.dropped_total += excess
        self._full.warn(
            excess,
            "otel-gitjob: %d staleness markers dropped, oldest first (more than %d pending: is the Collector "
            "down?); the Collector drops those series at its own expiry instead",
            self.max_pending,
        )

    # -- taking and settling (the sender) -----------------------------------------------------------------------

    def take(self) -> list[Item]:
        """The pending items in order, after dropping (and settling) those too old to matter."""
        now = self._clock()
        with self._lock:
            items = list(self._pending.values())
            aged = [item for item in items if now - item.enqueued_at > self.max_age_seconds]
            if not aged:
                return items
            self._settle_locked(aged)
            self.dropped_total += len(aged)
            self._aged.warn(
                len(aged),
                "otel-gitjob: %d staleness markers dropped after %.0f s unsent (exports failing?); the "
                "Collector drops those series at its own expiry instead",
                self.max_age_seconds,
            )
        return [item for item in items if now - item.enqueued_at <= self.max_age_seconds]

    def settle(self, items: Iterable[Item], sent: int = 0) -> None:
        """Remove items that were delivered (``sent`` of them) or need no sending."""
        with self._lock:
            self._settle_locked(items)
            self.sent_total += sent

    def drop(self, items: list[Item]) -> None:
        """Remove items that cannot be sent at all (counted as dropped)."""
        with self._lock:
            self._settle_locked(items)
            self.dropped_total += len(items)

    def _settle_locked(self, items: Iterable[Item]) -> None:
        pending = self._pending
        for item in items:
            # Only if not replaced meanwhile by a newer removal of the same series.
            slot = item.slot
            if pending.get(slot) is item:
                del pending[slot]

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def last_seq(self) -> int:
        """The sequence number of the latest enqueued item."""
        return self._seq

    def oldest_seq(self) -> int | None:
        with self._lock:
            oldest = next(iter(self._pending.values()), None)
            return None if oldest is None else oldest.seq

    # -- the delta index ----------------------------------------------------------------------------------------

    def track_delta(self, series: Iterable[tuple[ObjectKey, SeriesKey, Mapping[str, Any]]]) -> None:
        """Remember exported delta series by object, so that a forget marks them even when they were idle.

        The SDK drops a delta series from its storage at each collection, so a
        repo idle before its ``forget`` has nothing to evict and the registry
        reports no removal. Bounded by ``max_tracked_delta``.
        """
        with self._lock:
            delta = self._delta
            for identity, key, attributes in series:
                tracked = delta.get(identity)
                if tracked is not None and key in tracked:
                    continue
                if self._delta_count >= self.max_tracked_delta:
                    if not self._delta_full_logged:
                        self._delta_full_logged = True
                        _logger.warning(
                            "otel-gitjob: more than %d delta series tracked; series first exported after this "
                            "get no staleness marker when forgotten while idle",
                            self.max_tracked_delta,
                        )
                    continue
                if tracked is None:
                    tracked = delta[identity] = {}
                tracked[key] = attributes
                self._delta_count += 1

    def tracked_delta(self) -> int:
        """How many delta series are remembered (never negative, never above ``max_tracked_delta``)."""
        with self._lock:
            return self._delta_count

    def tracked_identities(self) -> list[ObjectKey]:
        with self._lock:
            return list(self._delta)

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
            self._delta.clear()
            self._delta_count = 0
