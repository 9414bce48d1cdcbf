"""The expiry processor: transient series disappear a TTL after their last write.

Fleet keeps ``fleet_gitjob_duration_seconds_gauge`` for 120 s after a job, then deletes it. Here any
instrument can be declared transient (:meth:`Lifecycle.transient`); each of its series lives until
``last write + TTL``.

* A min-heap of ``(deadline, seq, entry, generation)``, one live entry per series. A write only moves the
  entry's deadline (no push, no lock); the sweeper pushes a due entry whose deadline moved again.
* Lazy deletion: forgetting an object bumps its entries' generation; stale heap entries are skipped, and
  compacted away when they make up most of the heap.
* One sweeper thread, started on the first schedule, waits for the earliest deadline (no polling); a
  shutdown stops it between two eviction slices at the latest.
* Series are keyed by the SDK instrument object and the series key: two meters' same-named instruments
  never share an entry.
* A write racing its own expiry survives: eviction re-checks the deadline under the SDK's lock, and a
  writer holding the evicted aggregation is sent back to the SDK (``_sdk.TouchingAggregation``). An
  eviction removes only its own entry's aggregation, never a later incarnation's.
* Exact at collection: readers run :meth:`ExpiryProcessor.expire_due` before collecting and filter points
  past their deadline, so neither a lagging sweeper nor a sweep under way lets an expired series out.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.metrics.export import MetricsData

from otel_gitjob._internal.core import _sdk
from otel_gitjob._internal.core.errors import ConfigurationError
from otel_gitjob._internal.core.locks import join, ranked_condition
from otel_gitjob._internal.core.points import collection_stamp, filter_points
from otel_gitjob._internal.core.registry import positive_seconds

if TYPE_CHECKING:
    from otel_gitjob._internal.core.registry import ObjectKey, SeriesRegistry

__all__ = ["ExpiryProcessor"]

_logger = logging.getLogger("otel_gitjob")

# Below this heap size compaction is not worth a rebuild.
_COMPACT_MIN = 1024
# Objects evicted per hold of the lifecycle's op lock during a sweep.
_EVICT_SLICE = 512


@dataclass(eq=False, slots=True)
class _Entry:  # one transient series: mutated under the processor lock, but for ``deadline`` and ``last``
    instrument: Any
    key: Hashable
    obj: ObjectKey | None
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
        registry: The registry whose eviction this processor uses.
        clock: Monotonic clock in seconds, injectable for tests.
    """

    def __init__(self, registry: SeriesRegistry, clock: Callable[[], float]) -> None:
        self._registry = registry
        self._clock = clock
        self.ttls: dict[str, float] = {}
        self._cond = ranked_condition("expiry")
        self._heap: list[tuple[float, int, _Entry, int]] = []
        self._seq = itertools.count()
        # By the SDK's series key, a few entries each: the live one of each transient instrument, and those a
        # sweep under way retired (the export filter still judges their points).
        self._by_key: dict[Hashable, tuple[_Entry, ...]] = {}
        self._by_object: dict[ObjectKey, _Entry | set[_Entry]] = {}  # a set only for several series
        self._on_write = self._touch  # one bound method shared by every series' aggregation
        self._stale = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.expired_total = 0
        # time.time_ns() at which the latest sweep finished, and how many sweeps are between their decision
        # and the end of their evictions: compared with collection stamps (see filter_expired).
        self._last_expiry_ns = 0
        self._sweeps_in_flight = 0
        self.wakeups = 0  # sweeper loop turns, to show it does not poll

    # -- configuration --------------------------------------------------------------------------------------

    def declare(self, instrument_name: str, ttl_seconds: float) -> None:
        if not isinstance(instrument_name, str) or not instrument_name:
            raise ConfigurationError("transient() needs an instrument name, got %r" % (instrument_name,))
        ttl = positive_seconds("the TTL of transient instrument %r" % (instrument_name,), ttl_seconds)
        self.ttls[instrument_name.lower()] = ttl  # the SDK stores instrument names lower-cased

    # -- the write path -------------------------------------------------------------------------------------

    def wrap(self, instrument: Any, attributes: Any, aggregation: Any, key: Hashable | None) -> Any:
        """Called by the view when the SDK creates a transient series (under the SDK's lock)."""
        attributes = attributes or {}
        if key is None:
            key = _sdk.series_key(attributes)
        with self._cond:
            entry = self._live_locked(instrument, key)
            if entry is None:
                obj = self._registry.object_of(instrument.name, attributes)
                # The SDK's own attribute set, as the registry's index holds it: never mutated after creation.
                entry = _Entry(instrument, key, obj, attributes, self.ttls[instrument.name])
                self._by_key[key] = self._by_key.get(key, ()) + (entry,)
                self._link_locked(entry)
        return _sdk.TouchingAggregation(aggregation, self._on_write, entry, attributes)

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

    def expire_due(self, *, sweeper: bool = False) -> int:
        """Expire every series whose deadline has passed; returns how many.

        Args:
            sweeper: Called by the sweeper thread, which stops between two slices once shut down.
        """
        now = self._clock()
        due = self._take_due(now)
        return self._remove(due, now, sweeper) if due else 0

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
                # It stays in _by_key until evicted, so that the export filter still judges its points by
                # their deadline while the sweep is under way (see _settle).
                self._retire_locked(entry, named=False)
                due.append(entry)
            if due:
                self._sweeps_in_flight += 1
                self._last_expiry_ns = time.time_ns()
        return due

    def _retire_locked(self, entry: _Entry, *, named: bool = True) -> None:
        entry.alive = False
        entry.scheduled = False
        entry.generation += 1
        if named:
            self._unname_locked(entry)
        siblings = self._by_object.get(entry.obj) if entry.obj is not None else None
        if siblings is entry:
            del self._by_object[entry.obj]  # type: ignore[arg-type]
        elif isinstance(siblings, set):
            siblings.discard(entry)
            if not siblings:
                del self._by_object[entry.obj]  # type: ignore[arg-type]

    def _live_locked(self, instrument: Any, key: Hashable) -> _Entry | None:
        for entry in self._by_key.get(key, ()):
            if entry.alive and entry.instrument is instrument:
                return entry
        return None

    def _link_locked(self, entry: _Entry) -> None:
        if entry.obj is not None:
            siblings = self._by_object.setdefault(entry.obj, entry)
            if isinstance(siblings, set):
                siblings.add(entry)
            elif siblings is not entry:
                self._by_object[entry.obj] = {siblings, entry}

    def _unname_locked(self, entry: _Entry) -> None:
        named = self._by_key.get(entry.key, ())
        if entry in named:
            rest = tuple(other for other in named if other is not entry)
            if rest:
                self._by_key[entry.key] = rest
            else:
                del self._by_key[entry.key]

    def _settle(self, evicted: list[_Entry], revived: list[_Entry], dropped: list[_Entry]) -> None:
        """After a slice's evictions: what went leaves the filter's view, what was set again lives on."""
        schedule = []
        with self._cond:
            for entry in evicted + dropped:
                self._unname_locked(entry)
            for entry in revived:
                if self._live_locked(entry.instrument, entry.key) is not None or self._stopping:
                    self._unname_locked(entry)  # a newer entry for the same series exists already
                    continue
                entry.alive = True
                self._link_locked(entry)
                schedule.append(entry)
        for entry in schedule:
            self._schedule(entry)

    def _remove(self, entries: list[_Entry], decided_at: float, sweeper: bool) -> int:
        """Evict the series ``_take_due`` decided to expire, slice by slice; returns how many went."""
        registry = self._registry
        expired = 0
        done = 0
        try:
            # Evict in slices so that a forget arriving during a large sweep waits for one slice, not all,
            # and a shutdown stops the sweep between two slices.
            for done in range(0, len(entries), _EVICT_SLICE):
                if sweeper and self._stopping:
                    break
                chunk = entries[done : done + _EVICT_SLICE]
                foreign: set[int] = set()

                def unless(i: int, found: Any, chunk: list[_Entry] = chunk, foreign: set[int] = foreign) -> bool:
                    if getattr(found, "entry", None) is not chunk[i]:
                        # Another incarnation's series (the object was forgotten and written again since
                        # the decision): it has its own entry and deadline. Not ours to evict.
                        foreign.add(i)
                        return True
                    # Set again after the decision (its deadline moved): keep it.
                    return (chunk[i].deadline or 0.0) > decided_at

                evicted = set(
                    registry.evict_series(
                        [(entry.obj, entry.instrument, entry.key, entry.attributes or {}) for entry in chunk],
                        unless=unless,
                    )
                )
                expired += len(evicted)
                self._settle(
                    [chunk[i] for i in evicted],
                    [chunk[i] for i in range(len(chunk)) if i not in evicted and i not in foreign],
                    [chunk[i] for i in foreign],
                )
            else:
                done = len(entries)
        finally:
            with self._cond:
                # A sweep stopped by shutdown leaves the rest out of the filter's view like any retired entry.
                for entry in entries[done:]:
                    self._unname_locked(entry)
                self._sweeps_in_flight -= 1
                self._last_expiry_ns = time.time_ns()
            self.expired_total += expired
        return expired

    def discard_object(self, obj: ObjectKey) -> None:
        """Forget pending expiries of a forgotten object; their heap entries go stale."""
        with self._cond:
            linked = self._by_object.pop(obj, ())
            for entry in linked if isinstance(linked, (set, tuple)) else (linked,):
                was_scheduled = entry.scheduled
                entry.obj = None  # already unlinked from _by_object
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
        now = self._clock()
        with self._cond:
            # A scheduled series' heap entry is never later than its deadline; a sweep under way has taken
            # its entries off the heap but may not have evicted them before this collection read them.
            something_due = (bool(self._heap) and self._heap[0][0] <= now) or self._sweeps_in_flight > 0
        if not something_due:
            stamp = collection_stamp(metrics_data)
            if stamp is None or stamp > self._last_expiry_ns:
                # Nothing is past its deadline, and nothing expired since this collection was taken.
                return metrics_data
        by_key = self._by_key

        def keep(name: str, attributes: Mapping[str, Any]) -> bool:
            entries = by_key.get(_sdk.series_key(attributes), ())
            return any(
                entry.instrument.name == name and (entry.deadline is None or entry.deadline > now) for entry in entries
            )

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
                self.expire_due(sweeper=True)
            except Exception:  # the sweeper must survive anything a removal listener does
                _logger.exception("otel-gitjob: expiry sweep failed")

    def wake(self) -> None:
        """Make the sweeper re-read the clock (tests with an injected clock)."""
        with self._cond:
            self._cond.notify()

    def overdue_seconds(self) -> float:
        """How far past its deadline the earliest live entry is; 0 when nothing is due (the sweeper's lag)."""
        now = self._clock()
        with self._cond:
            for deadline, _seq, entry, generation in self._heap[:1]:
                if generation == entry.generation and entry.deadline is not None and entry.deadline <= now:
                    return now - deadline
        return 0.0

    def heap_size(self) -> int:
        with self._cond:
            return len(self._heap)

    def live_series(self) -> int:
        with self._cond:
            return sum(entry.alive for entries in self._by_key.values() for entry in entries)

    def sweeper_alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def sweeper_died(self) -> bool:
        """Whether the sweeper thread was started and has ended without a shutdown (liveness probes)."""
        thread = self._thread
        return thread is not None and not thread.is_alive() and not self._stopping

    def shutdown(self, timeout: float = 1.0) -> None:
        """Stop the sweeper for good (the lifecycle's shutdown): nothing is scheduled after it.

        Never called with a lock held: the sweeper may need the registry's lock to finish its slice.
        """
        with self._cond:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            join(thread, timeout)
