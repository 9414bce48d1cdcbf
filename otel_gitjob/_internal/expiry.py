"""The expiry processor: transient series disappear a TTL after their last write.

Fleet keeps ``fleet_gitjob_duration_seconds_gauge`` for 120 s after a job so
that Prometheus scrapes it at least once, then deletes it. Here any instrument
can be declared transient (:meth:`Lifecycle.transient`); each of its series
then lives until ``last write + TTL``.

Design:

* A min-heap of ``(deadline, seq, entry, generation)``. A write only moves the
  entry's deadline forward (no heap push, no lock): when the heap entry comes
  due the sweeper sees the later deadline and pushes it once more. The heap
  therefore holds at most one live entry per series however often it is set,
  and a series re-set within its TTL is never cut short (Fleet's goroutine
  per job deletes whatever value is there 120 s after *each* job).
* Lazy deletion: forgetting an object bumps its entries' generation; their heap
  entries are skipped when popped, and the heap is compacted when such stale
  entries make up most of it.
* One sweeper thread per processor, started on the first schedule, sleeping
  on a condition until the earliest deadline (no polling); stopped by
  ``Lifecycle.shutdown()`` or the reader's shutdown.
* Exact at collection: readers run :meth:`ExpiryProcessor.expire_due` before
  collecting and filter points past their deadline before exporting, so a
  lagging sweeper never lets an expired series out.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.metrics.export import MetricsData

from otel_gitjob._internal import _sdk

if TYPE_CHECKING:
    from otel_gitjob._internal.registry import Identity, Lifecycle

__all__ = ["ExpiryProcessor"]

_logger = logging.getLogger("otel_gitjob")

# Below this heap size compaction is not worth a rebuild.
_COMPACT_MIN = 1024
# Objects evicted per hold of the lifecycle's op lock during a sweep.
_EVICT_SLICE = 512


@dataclass(eq=False, slots=True)
class _Entry:
    """One transient series. Mutated only under the processor lock, except ``deadline``/``last``."""

    instrument: Any
    key: Hashable
    identity: Identity | None
    attributes: Mapping[str, Any] | None
    ttl: float
    generation: int = 0
    deadline: float | None = None
    scheduled: bool = False
    alive: bool = True
    last: Any = None  # the last measurement seen: the same set reaches each reader's storage


class ExpiryProcessor:
    """Schedules and performs the expiry of transient series; owned by a :class:`Lifecycle`.

    Args:
        lifecycle: The registry whose eviction this processor uses.
        clock: Monotonic clock in seconds, injectable for tests.
    """

    def __init__(self, lifecycle: Lifecycle, clock: Callable[[], float]) -> None:
        self._lifecycle = lifecycle
        self._clock = clock
        self.ttls: dict[str, float] = {}
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, _Entry, int]] = []
        self._seq = itertools.count()
        self._series: dict[tuple[str, Hashable], _Entry] = {}
        self._by_identity: dict[Identity, set[_Entry]] = {}
        self._stale = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.expired_total = 0
        # time.time_ns() of the latest expiry, compared with collection stamps (see filter_expired).
        self._last_expiry_ns = 0
        self.wakeups = 0  # sweeper loop turns, to show it does not poll

    # -- configuration --------------------------------------------------------------------------------------

    def declare(self, instrument_name: str, ttl_seconds: float) -> None:
        from otel_gitjob._internal.registry import ConfigurationError

        if not isinstance(instrument_name, str) or not instrument_name:
            raise ConfigurationError("transient() needs an instrument name, got %r" % (instrument_name,))
        if (
            isinstance(ttl_seconds, bool)
            or not isinstance(ttl_seconds, (int, float))
            or not math.isfinite(ttl_seconds)
            or ttl_seconds <= 0
        ):
            raise ConfigurationError(
                "the TTL of transient instrument %r must be a finite number of seconds > 0, got %r"
                % (instrument_name, ttl_seconds)
            )
        # The SDK stores instrument names lower-cased.
        self.ttls[instrument_name.lower()] = float(ttl_seconds)

    # -- the write path -------------------------------------------------------------------------------------

    def wrap(self, instrument: Any, attributes: Mapping[str, Any], aggregation: Any) -> Any:
        """Called by the view when the SDK creates a transient series (under the SDK's lock)."""
        key = (instrument.name, _sdk.series_key(attributes))
        with self._cond:
            entry = self._series.get(key)
            if entry is None:
                identity = self._lifecycle.identity_of(attributes)
                entry = _Entry(instrument, key[1], identity, dict(attributes), self.ttls[instrument.name])
                self._series[key] = entry
                if identity is not None:
                    self._by_identity.setdefault(identity, set()).add(entry)
        return _sdk.TouchingAggregation(aggregation, self._touch, entry)

    def _touch(self, entry: _Entry, measurement: Any) -> None:
        if entry.last is measurement:
            return
        entry.last = measurement
        entry.deadline = self._clock() + entry.ttl
        if not entry.scheduled:
            self._schedule(entry)

    def _schedule(self, entry: _Entry) -> None:
        with self._cond:
            if entry.scheduled or not entry.alive or self._stopping:
                return
            assert entry.deadline is not None
            entry.scheduled = True
            heapq.heappush(self._heap, (entry.deadline, next(self._seq), entry, entry.generation))
            if self._heap[0][2] is entry:
                self._cond.notify()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="otel-gitjob-expiry", daemon=True)
                self._thread.start()

    # -- expiry ---------------------------------------------------------------------------------------------

    def expire_due(self) -> int:
        """Expire every series whose deadline has passed; returns how many."""
        due = self._take_due(self._clock())
        if due:
            self._remove(due)
        return len(due)

    def _take_due(self, now: float) -> list[_Entry]:
        due = []
        with self._cond:
            heap = self._heap
            while heap and heap[0][0] <= now:
                _, _, entry, generation = heapq.heappop(heap)
                if generation != entry.generation:
                    self._stale -= 1
                    continue
                assert entry.deadline is not None
                if entry.deadline > now:
                    # Set again since it was scheduled: wait for the new deadline.
                    heapq.heappush(heap, (entry.deadline, next(self._seq), entry, generation))
                    continue
                self._retire_locked(entry)
                due.append(entry)
        return due

    def _retire_locked(self, entry: _Entry) -> None:
        entry.alive = False
        entry.scheduled = False
        entry.generation += 1
        self._series.pop((entry.instrument.name, entry.key), None)
        if entry.identity is not None:
            siblings = self._by_identity.get(entry.identity)
            if siblings is not None:
                siblings.discard(entry)
                if not siblings:
                    del self._by_identity[entry.identity]

    def _remove(self, entries: list[_Entry]) -> None:
        lifecycle = self._lifecycle
        self._last_expiry_ns = time.time_ns()
        # Evict in slices so that a forget arriving during a large sweep waits for one slice, not all.
        for start in range(0, len(entries), _EVICT_SLICE):
            chunk = entries[start : start + _EVICT_SLICE]
            with lifecycle._op_lock:
                for entry in chunk:
                    # A due entry is alive, so it still has its attributes (only forgotten ones drop them).
                    attributes = entry.attributes or {}
                    lifecycle._evict(entry.identity, (((entry.instrument, entry.key), attributes),))
                lifecycle._unindex_many([(entry.identity, (entry.instrument, entry.key)) for entry in chunk])
        self.expired_total += len(entries)

    def discard_identity(self, identity: Identity) -> None:
        """Forget pending expiries of a forgotten object; their heap entries go stale."""
        with self._cond:
            entries = self._by_identity.pop(identity, ())
            for entry in entries:
                was_scheduled = entry.scheduled
                entry.identity = None  # already unlinked from _by_identity
                self._retire_locked(entry)
                # Its heap entry stays until popped or compacted: keep it light.
                entry.last = entry.attributes = None
                if was_scheduled:
                    self._stale += 1
            if self._stale > len(self._heap) // 2 and len(self._heap) >= _COMPACT_MIN:
                self._compact_locked()

    def _compact_locked(self) -> None:
        self._heap = [item for item in self._heap if item[3] == item[2].generation]
        heapq.heapify(self._heap)
        self._stale = 0

    def filter_expired(self, metrics_data: MetricsData) -> MetricsData:
        """Drop points of transient series past their deadline (a collection the sweeper hasn't caught up with)."""
        if not self.ttls:
            return metrics_data
        from otel_gitjob._internal.registry import collection_stamp, filter_points

        now = self._clock()
        with self._cond:
            # A scheduled series' heap entry is never later than its deadline.
            something_due = bool(self._heap) and self._heap[0][0] <= now
        if not something_due:
            stamp = collection_stamp(metrics_data)
            if stamp is None or stamp > self._last_expiry_ns:
                # Nothing is past its deadline, and nothing expired since this collection was taken.
                return metrics_data
        series = self._series

        def keep(name: str, attributes: Mapping[str, Any]) -> bool:
            entry = series.get((name, _sdk.series_key(attributes)))
            return entry is not None and (entry.deadline is None or entry.deadline > now)

        return filter_points(metrics_data, keep, only_metrics=self.ttls)

    # -- the sweeper ----------------------------------------------------------------------------------------

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._stopping:
                    if not self._heap:
                        cond.wait()
                        self.wakeups += 1
                        continue
                    delay = self._heap[0][0] - self._clock()
                    if delay <= 0:
                        break
                    cond.wait(delay)
                    self.wakeups += 1
                if self._stopping:
                    return
            try:
                self.expire_due()
            except Exception:  # the sweeper must survive anything a removal listener does
                _logger.exception("otel-gitjob: expiry sweep failed")

    def wake(self) -> None:
        """Make the sweeper re-read the clock (tests with an injected clock)."""
        with self._cond:
            self._cond.notify()

    def heap_size(self) -> int:
        with self._cond:
            return len(self._heap)

    def live_series(self) -> int:
        with self._cond:
            return len(self._series)

    def sweeper_alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def shutdown(self) -> None:
        """Stop the sweeper for good; expiries still happen at each collection."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
