"""The lifecycle registry: which series belong to which object, and forgetting them.

An *object* is a Kubernetes kind plus the identity values its series carry
(by default the ``namespace`` and ``name`` attributes). Every attribute set
that carries an identity is indexed under its object when the SDK creates
storage for it, so forgetting costs O(series of that object), never a scan.
Forgetting evicts those series from every reader's SDK storage (freeing the
memory and the cardinality slot) and leaves a *block* (a tombstone) that
drops late writes until the object is seen alive again.

Locks: ``_op_lock`` (``registry.op``) serialises the operations that evict or
lift, so that an eviction never races a later re-creation of the same series;
``_state_lock`` (``registry.state``) guards the index, the blocks and the retired
uids for a few dictionary operations. Their place in the package's lock order
is ``core/locks.RANKS``, explained in docs/design/locks.md.
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from otel_gitjob._internal.core import _sdk
from otel_gitjob._internal.core.drops import DropRecorder
from otel_gitjob._internal.core.errors import ConfigurationError
from otel_gitjob._internal.core.identity import REASON_BAD_OBJECT, valid_identity_value
from otel_gitjob._internal.core.locks import ranked_lock

__all__ = ["Identity", "Incarnation", "ObjectKey", "SeriesRegistry"]

_logger = logging.getLogger("otel_gitjob")

Identity = tuple[str, ...]
ObjectKey = tuple[str, Identity]  # (Kubernetes kind, identity values)
SeriesRef = tuple[Any, Hashable]  # (SDK instrument, series key)
# owner(instrument_name, attributes) -> a mapping of the identity keys, or None.
Owner = Callable[[str, Mapping[str, Any]], "Mapping[str, Any] | None"]
# (object, [(instrument, attributes), ...], final deltas of the evicted series (forget only)).
RemovalListener = Callable[[ObjectKey | None, list[tuple[Any, Mapping[str, Any]]], list[_sdk.FinalPoint]], None]

REASON_FORGOTTEN = "forgotten_repo"
REASON_RACED = "raced_eviction"
REASON_STALE_UID = "stale_uid"

# Label keys Prometheus reserves or that the exposition adds itself.
_RESERVED_KEYS = frozenset({"le", "quantile", "__name__"})
# How many retired uids are remembered, to drop late writes of an old incarnation.
_MAX_RETIRED_UIDS = 10_000


@dataclass(slots=True)
class _Block:
    """A forgotten object's tombstone."""

    uid: str | None
    expires_at: float
    placeholders: list[tuple[Any, Hashable, _sdk.Placeholder]] = field(default_factory=list)
    # Series that already have a counting placeholder: with several readers the SDK
    # creates one placeholder per reader, and a late write must be counted once.
    counted: set[SeriesRef] = field(default_factory=set)


class Incarnation:
    """One life of an object, as bound handles know it: ``dead`` once it is forgotten or superseded.

    A handle's write through the instrument holds ``guard`` (the registry's op
    lock), so that it lands wholly before a forget or is refused after it.
    """

    __slots__ = ("uid", "dead", "caches", "guard")

    def __init__(self, uid: str | None, guard: AbstractContextManager[Any] | None = None) -> None:
        self.uid = uid
        self.guard = guard if guard is not None else nullcontext()
        self.dead = False
        self.caches: tuple[Any, ...] = ()  # cache, key, cache, key, ...: entries to drop at its end

    def cached(self, cache: dict[Any, Any], key: Any) -> None:
        """``cache[key]`` holds a handle of this incarnation: drop it when the incarnation ends."""
        self.caches += (cache, key)

    def end(self) -> None:
        self.dead = True
        caches, self.caches = self.caches, ()
        for i in range(0, len(caches), 2):
            caches[i].pop(caches[i + 1], None)


class SeriesRegistry:
    """The index from objects to their series, tombstones, and eviction.

    Takes the arguments of :class:`~otel_gitjob.Lifecycle`, plus:

    Args:
        drops: Where dropped writes are counted.
        evicts: False when the SDK seam runs degraded: nothing is evicted from SDK
            storage; each managed or transient series stands there behind a
            :class:`_sdk.Gate`, which removal empties, and the export filters hide
            what a collection took while a removal was under way.
    """

    def __init__(
        self,
        identity_keys: Sequence[str],
        *,
        default_kind: str,
        max_blocks: int,
        block_seconds: float,
        clock: Callable[[], float],
        drops: DropRecorder,
        evicts: bool = True,
    ) -> None:
        self.identity_keys = validate_identity_keys(identity_keys)
        self.default_kind = validate_kind(default_kind)
        self.evicts = evicts
        self._max_blocks = max_blocks
        self._block_seconds = block_seconds
        self._clock = clock
        self.drops = drops
        self._op_lock = ranked_lock("registry.op", reentrant=True)
        self._state_lock = ranked_lock("registry.state")
        self._kinds: dict[str, str] = {}  # instrument name (lower-case) -> kind
        self._owners: dict[str, Owner] = {}  # instrument name (lower-case) -> owner lookup
        self._index: dict[ObjectKey, dict[SeriesRef, Mapping[str, Any]]] = {}
        self._blocks: OrderedDict[ObjectKey, _Block] = OrderedDict()
        self._retired_uids: OrderedDict[tuple[ObjectKey, str], None] = OrderedDict()
        self._pending_placeholders: set[ObjectKey] = set()
        self._incarnations: dict[ObjectKey, Incarnation] = {}  # objects that bound handles write to
        # Series refused for an identity that cannot be a label value (a lone surrogate took every scrape down).
        self._rejected: list[tuple[Any, Hashable, _sdk.Placeholder]] = []
        # time.time_ns() at which the latest removal finished, and how many removals are under way: a
        # collection stamped after the former, while none is under way, cannot contain a removed series, so
        # the export filter can skip its scan.
        self._last_removal_ns = 0
        self._removals_in_flight = 0
        self._listeners: list[RemovalListener] = []
        self._on_raced = partial(drops.drop, REASON_RACED, None)
        self._count_bad_identity = partial(
            drops.drop, REASON_BAD_OBJECT, "an identity that is not a valid Kubernetes name"
        )
        # Degraded mode only: the gates standing in the SDK's storages (one per reader), by series. Weak: the SDK
        # drops a delta reader's table at each collection (1.45.2 and later), and its gates with it.
        self._gates: dict[SeriesRef, weakref.WeakSet[_sdk.Gate]] = {}

    # -- configuration --------------------------------------------------------------------------------------

    def declare_kind(self, kind: str, instrument_names: Iterable[str], owner: Owner | None = None) -> None:
        """Series of these instruments belong to objects of ``kind``; see :meth:`Lifecycle.declare_kind`."""
        kind = validate_kind(kind)
        for name in instrument_names:
            if not isinstance(name, str) or not name:
                raise ConfigurationError("declare_kind() needs instrument names, got %r" % (name,))
            # The SDK stores instrument names lower-cased.
            self._kinds[name.lower()] = kind
            if owner is not None:
                self._owners[name.lower()] = owner

    def add_removal_listener(self, listener: RemovalListener) -> None:
        """Hear of each removed series as ``(object, [(instrument, attributes), ...], final_points)``.

        Called under ``_op_lock``. ``final_points`` holds, for a forget, what the evicted
        series recorded since their last delta collection (see :class:`_sdk.FinalPoint`).
        """
        with self._state_lock:
            self._listeners.append(listener)

    def remove_removal_listener(self, listener: RemovalListener) -> None:
        with self._state_lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def removal_listeners(self) -> int:
        with self._state_lock:
            return len(self._listeners)

    # -- identities -----------------------------------------------------------------------------------------

    def identity_of(self, attributes: Mapping[str, Any] | None) -> Identity | None:
        """The identity an attribute set carries, or None when the series is not managed."""
        if not attributes:
            return None
        values = []
        for key in self.identity_keys:
            value = attributes.get(key)
            if type(value) is not str:
                return None
            values.append(value)
        return tuple(values)

    def identity_for(self, instrument_name: str, attributes: Mapping[str, Any] | None) -> Identity | None:
        """The identity of a series of ``instrument_name``: its declared owner's, else its attributes'."""
        owner = self._owners.get(instrument_name) if self._owners else None
        if owner is None or not attributes:
            return self.identity_of(attributes)
        try:
            return self.identity_of(owner(instrument_name, attributes))
        except Exception:  # an owner lookup must not break series creation or an export
            return None

    def object_of(self, instrument_name: str, attributes: Mapping[str, Any] | None) -> ObjectKey | None:
        identity = self.identity_for(instrument_name, attributes)
        if identity is None:
            return None
        return (self._kinds.get(instrument_name, self.default_kind), identity)

    # -- the view hook --------------------------------------------------------------------------------------

    def on_new_series(
        self, instrument: Any, attributes: Mapping[str, Any], key: Hashable | None, match: Any
    ) -> _sdk.Placeholder | None:
        """Index a series the SDK is creating, or return a placeholder when its object is blocked.

        Runs under the SDK's view-match lock, once per reader storage. ``key`` and
        ``match`` are the SDK's own series key object (shared, not copied) and view
        match, when the seam found them.
        """
        obj = self.object_of(instrument.name, attributes)
        if obj is None:
            return None
        if key is None:
            key = _sdk.series_key(attributes)
        if not all(valid_identity_value(value) for value in obj[1]):
            if not self.evicts:
                return None  # degraded: gate() gives it a gate that drops every write
            placeholder = _sdk.Placeholder(attributes, self._count_bad_identity, match)
            with self._state_lock:
                self._rejected.append((instrument, key, placeholder))
            return placeholder
        with self._state_lock:
            block = self._blocks.get(obj)
            if block is None or not self.evicts:
                self._index.setdefault(obj, {})[(instrument, key)] = attributes
                return None
            ref = (instrument, key)
            counts = ref not in block.counted
            if counts:
                block.counted.add(ref)
            placeholder = _sdk.Placeholder(
                attributes, partial(self.drops.drop, REASON_FORGOTTEN, _describe(obj)) if counts else None, match
            )
            block.placeholders.append((instrument, key, placeholder))
            self._pending_placeholders.add(obj)
        return placeholder

    def gate(
        self,
        instrument: Any,
        attributes: Mapping[str, Any],
        key: Hashable | None,
        build: Callable[[int], Any],
        start_time_unix_nano: int,
        transient: bool,
    ) -> Any:
        """Degraded mode: what the SDK stores for a new series; a gate when the lifecycle manages it.

        Runs under the SDK's view-match lock, after :meth:`on_new_series`, with its
        arguments plus ``build`` (the real aggregation, given its start time) and
        ``transient`` (expiry empties the instrument's gates).
        """
        obj = self.object_of(instrument.name, attributes)
        if obj is None and not transient:
            return build(start_time_unix_nano)  # nothing will ever remove it: the SDK's own
        if obj is not None and not all(valid_identity_value(value) for value in obj[1]):
            return _sdk.Gate(build, start_time_unix_nano, _always, self._count_bad_identity)
        ref = (instrument, key if key is not None else _sdk.series_key(attributes))
        with self._state_lock:
            gates = self._gates.get(ref)
            if gates is None:
                gates = self._gates[ref] = weakref.WeakSet()
            # One gate per series counts the writes its block drops, however many readers there are.
            counts = obj is not None and not gates
            blocks = self._blocks

            def blocked() -> bool:
                return obj in blocks

            def rebuild(start: int) -> Any:
                if obj is not None:
                    with self._state_lock:
                        self._index.setdefault(obj, {}).setdefault(ref, attributes)
                return build(start)

            gate = _sdk.Gate(
                rebuild,
                start_time_unix_nano,
                blocked if obj is not None else None,
                partial(self.drops.drop, REASON_FORGOTTEN, _describe(obj)) if counts and obj is not None else None,
            )
            gates.add(gate)
        return gate

    def _empty_gates(self, ref: SeriesRef, unless: Callable[[Any], bool] | None = None) -> bool:
        """Degraded mode: empty every gate of a series (all readers); returns whether one held data."""
        with self._state_lock:
            gates = list(self._gates.get(ref, ()))
        emptied = False
        for gate in gates:
            emptied = gate.empty(unless) or emptied
        return emptied

    # -- the operations -------------------------------------------------------------------------------------

    def forget(self, obj: ObjectKey, uid: str | None) -> int:
        """Evict every series of ``obj`` and block its late writes. Returns how many series were removed."""
        with self._op_lock, self._removing():
            now = self._clock()
            with self._state_lock:
                block = self._blocks.pop(obj, None)
                if block is None:
                    block = _Block(uid, now + self._block_seconds)
                else:
                    block.uid, block.expires_at = uid or block.uid, now + self._block_seconds
                self._blocks[obj] = block
                evicted_blocks = self._trim_blocks_locked(now)
                series = self._index.pop(obj, {})
                incarnation = self._incarnations.pop(obj, None)
            if incarnation is not None:
                incarnation.end()
            removed = self._evict(obj, series.items())
            for old in evicted_blocks:
                self._evict_placeholders(old)
        return removed

    def lift(self, obj: ObjectKey, uid: str | None = None) -> None:
        """The object is alive (again): drop its block and its placeholders.

        Args:
            obj: The object.
            uid: Its current ``metadata.uid`` when known: writes carrying the uid
                it was forgotten under are dropped from now on (a late write of
                the old incarnation must not count under the new one).
        """
        with self._op_lock:
            with self._state_lock:
                block = self._blocks.pop(obj, None)
                if block is not None and block.uid is not None and block.uid != uid:
                    self._retire_uid_locked(obj, block.uid)
            if block is not None:
                self._evict_placeholders(block)

    def admit(self, obj: ObjectKey, uid: str | None) -> bool:
        """Whether a write to ``obj`` carrying ``uid`` may be recorded; lifts the block of a recreated object.

        A write carrying a uid lifts the block when the object was forgotten
        under another uid, or under none (``forget(("ns", "name"))``): the
        object was recreated. A write carrying a uid the object was forgotten
        under, after it was recreated, is refused (and counted by the caller).
        """
        if uid is None:
            return True
        if self._retired_uids and (obj, uid) in self._retired_uids:
            return False
        block = self._blocks.get(obj)
        if block is not None and block.uid != uid:
            self.lift(obj, uid)
        return True

    def incarnation(self, obj: ObjectKey, uid: str | None) -> Incarnation | None:
        """The incarnation of ``obj`` that a handle binds to; None when writes to it are refused.

        Refused: the object is forgotten and not seen alive again, or ``uid`` is
        one it was forgotten under. A ``uid`` other than the current
        incarnation's starts a new one (the object was recreated); the old one ends.
        """
        if not self.admit(obj, uid) or (uid is None and obj in self._blocks):
            return None
        with self._state_lock:
            if obj in self._blocks:
                return None  # forgotten again meanwhile
            current = self._incarnations.get(obj)
            if current is not None and (uid is None or current.uid in (None, uid)):
                if current.uid is None:
                    current.uid = uid
                return current
            fresh = self._incarnations[obj] = Incarnation(uid, self._op_lock)
        if current is not None:
            current.end()
        return fresh

    def is_blocked(self, obj: ObjectKey) -> bool:
        """Whether ``obj`` is forgotten and not seen alive again (its series are kept out of exports)."""
        return obj in self._blocks

    def blocked(self) -> frozenset[ObjectKey]:
        """A snapshot of the blocked objects."""
        with self._state_lock:
            return frozenset(self._blocks)

    def removed_since(self, stamp_ns: int | None) -> bool:
        """Whether a collection stamped ``stamp_ns`` may hold a series removed since (then it is filtered)."""
        if not self.evicts or self._removals_in_flight:
            return True
        return stamp_ns is None or stamp_ns <= self._last_removal_ns

    @contextmanager
    def _removing(self) -> Iterator[None]:
        """Brackets a removal: collections stamped before its end, or filtered during it, are filtered."""
        with self._state_lock:
            self._removals_in_flight += 1
            self._last_removal_ns = time.time_ns()
        try:
            yield
        finally:
            with self._state_lock:
                self._removals_in_flight -= 1
                self._last_removal_ns = time.time_ns()

    @property
    def last_removal_ns(self) -> int:
        """Changes at every removal (the OTLP markers compare it to see whether anything was forgotten)."""
        return self._last_removal_ns

    def evict_series(
        self,
        series: Sequence[tuple[ObjectKey | None, Any, Hashable, Mapping[str, Any]]],
        unless: Callable[[int, Any], bool] | None = None,
    ) -> list[int]:
        """Evict individual series (expiry) and drop them from the index.

        Args:
            series: ``(object, instrument, key, attributes)`` of each series.
            unless: ``unless(i, aggregation)`` is checked under the SDK lock for
                the i-th series; True keeps it (it was written again meanwhile).

        Returns:
            The indexes of the series that were evicted.
        """
        evicted: list[int] = []
        with self._op_lock, self._removing():
            # Unindex first, as forget does: a writer that creates one of these series again meanwhile
            # indexes it again, after us. Unindexing after the eviction could drop the new series' entry,
            # and a later forget would leave that series in storage for good.
            with self._state_lock:
                unindexed = [self._unindex_locked(obj, (instrument, key)) for obj, instrument, key, _ in series]
            for i, (_obj, instrument, key, _attributes) in enumerate(series):
                kept = False
                check = None
                if unless is not None:

                    def check(found: Any, i: int = i) -> bool:
                        nonlocal kept
                        keep = unless(i, found)
                        kept = kept or keep  # kept by any reader: still indexed
                        return keep

                if self.evicts:
                    _sdk.evict(instrument, key, on_raced=self._on_raced, unless=check)
                else:
                    self._empty_gates((instrument, key), check)
                if not kept:
                    evicted.append(i)
            if len(evicted) != len(series):
                with self._state_lock:
                    for i in set(range(len(series))) - set(evicted):
                        obj, instrument, key, _attributes = series[i]
                        attributes = unindexed[i]
                        if obj is not None and attributes is not None:
                            self._index.setdefault(obj, {}).setdefault((instrument, key), attributes)
            self._notify(None, [(series[i][1], series[i][3]) for i in evicted])
        return evicted

    def _unindex_locked(self, obj: ObjectKey | None, ref: SeriesRef) -> Mapping[str, Any] | None:
        """Drop one series from the index; returns its attributes if it was there. Needs ``_state_lock``."""
        indexed = self._index.get(obj) if obj is not None else None
        if indexed is None:
            return None
        attributes = indexed.pop(ref, None)
        if not indexed:
            del self._index[obj]  # type: ignore[arg-type]
        return attributes

    def objects_of_kind(self, kind: str) -> list[ObjectKey]:
        """The objects of ``kind`` that have series now (a snapshot)."""
        with self._state_lock:
            return [obj for obj in self._index if obj[0] == kind]

    def forget_series(self, obj: ObjectKey, instrument_name: str, attributes: Mapping[str, Any]) -> int:
        """Evict one series of a live object without blocking it (a label of it changed).

        Returns how many series were removed (0 or 1; more only if several
        instruments share the name). Removal listeners hear of it, so an OTLP
        backend gets its staleness marker.
        """
        wanted = dict(attributes)
        with self._op_lock, self._removing():
            with self._state_lock:
                series = self._index.get(obj)
                if not series:
                    return 0
                gone = [
                    (ref, attrs)
                    for ref, attrs in series.items()
                    if ref[0].name == instrument_name and dict(attrs) == wanted
                ]
                for ref, _attrs in gone:
                    del series[ref]
                if not series:
                    del self._index[obj]
            return self._evict(obj, gone) if gone else 0

    def housekeeping(self) -> None:
        """Evict pending placeholders and expired blocks (before each collection)."""
        if not (self._pending_placeholders or self._rejected or (self._blocks and self._oldest_block_expired())):
            return
        with self._op_lock:
            now = self._clock()
            with self._state_lock:
                objects = list(self._pending_placeholders)
                self._pending_placeholders.clear()
                stale = [self._blocks[obj] for obj in objects if obj in self._blocks]
                expired = self._trim_blocks_locked(now)
                rejected, self._rejected = self._rejected, []
            for block in stale + expired:
                self._evict_placeholders(block)
            if self.evicts:
                for instrument, key, placeholder in rejected:
                    _sdk.evict(instrument, key, only=placeholder)

    def clear(self) -> None:
        """Drop all state (the owner's shutdown)."""
        with self._op_lock, self._state_lock:
            self._index.clear()
            self._blocks.clear()
            self._retired_uids.clear()
            self._pending_placeholders.clear()
            self._gates.clear()
            ended, self._incarnations = list(self._incarnations.values()), {}
        for incarnation in ended:
            incarnation.end()

    # -- introspection ---------------------------------------------------------------------------------------

    def tracked_objects(self) -> int:
        with self._state_lock:
            return len(self._index)

    def objects_by_kind(self) -> dict[str, int]:
        with self._state_lock:
            return dict(Counter(kind for kind, _identity in self._index))

    def series_by_kind(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        with self._state_lock:
            for (kind, _identity), series in self._index.items():
                counts[kind] += len(series)
        return dict(counts)

    def blocked_objects(self) -> int:
        with self._state_lock:
            return len(self._blocks)

    def placeholders(self) -> int:
        with self._state_lock:
            return sum(len(block.placeholders) for block in self._blocks.values())

    # -- internals ------------------------------------------------------------------------------------------

    def _evict(self, obj: ObjectKey | None, series: Iterable[tuple[SeriesRef, Mapping[str, Any]]]) -> int:
        """Evict series from SDK storage; must hold ``_op_lock``. Returns how many were present."""
        removed = 0
        gone = []
        finals: list[_sdk.FinalPoint] = []
        on_final = finals.append if self._listeners else None
        for (instrument, key), attributes in series:
            if not self.evicts:
                self._empty_gates((instrument, key))
                removed += 1
                gone.append((instrument, attributes))
            elif _sdk.evict(instrument, key, on_raced=self._on_raced, on_final=on_final):
                removed += 1
                gone.append((instrument, attributes))
        self._notify(obj, gone, finals)
        return removed

    def _notify(
        self,
        obj: ObjectKey | None,
        gone: list[tuple[Any, Mapping[str, Any]]],
        finals: list[_sdk.FinalPoint] | None = None,
    ) -> None:
        if not gone or not self._listeners:
            return
        for listener in list(self._listeners):
            try:
                listener(obj, gone, finals or [])
            except Exception:  # a listener must not break forget
                _logger.exception("otel-gitjob: removal listener %r failed", listener)

    def _retire_uid_locked(self, obj: ObjectKey, uid: str) -> None:
        self._retired_uids[(obj, uid)] = None
        while len(self._retired_uids) > _MAX_RETIRED_UIDS:
            self._retired_uids.popitem(last=False)

    def _evict_placeholders(self, block: _Block) -> None:
        placeholders, block.placeholders = block.placeholders, []
        block.counted.clear()
        if not self.evicts:
            return
        for instrument, key, placeholder in placeholders:
            _sdk.evict(instrument, key, only=placeholder)

    def _oldest_block_expired(self) -> bool:
        try:
            oldest = next(iter(self._blocks.values()))
        except (StopIteration, RuntimeError):  # RuntimeError: changed during the unlocked peek
            return False
        return oldest.expires_at <= self._clock()

    def _trim_blocks_locked(self, now: float) -> list[_Block]:
        """Drop expired blocks and those over the limit, oldest first; needs ``_state_lock``."""
        trimmed = []
        blocks = self._blocks
        while blocks:
            obj, oldest = next(iter(blocks.items()))
            if len(blocks) <= self._max_blocks and oldest.expires_at > now:
                break
            del blocks[obj]
            if oldest.placeholders:
                trimmed.append(oldest)
        return trimmed


def _always() -> bool:
    return True


def _describe(obj: ObjectKey) -> str:
    """A short, safe description of an object for logs: kind and truncated identity, never a body."""
    kind, identity = obj
    return "%s %s" % (kind, "/".join(value[:80] for value in identity))


def validate_kind(kind: Any) -> str:
    if not isinstance(kind, str) or not kind or not kind[0].isalpha():
        raise ConfigurationError("a kind is a Kubernetes kind name such as 'GitRepo', got %r" % (kind,))
    return kind


def validate_identity_keys(identity_keys: Any) -> tuple[str, ...]:
    """Check identity keys; they become Prometheus label names, so they must be usable as such."""
    if isinstance(identity_keys, str) or identity_keys is None:
        raise ConfigurationError(
            "identity_keys must be a sequence of attribute keys such as ('namespace', 'name'), not the %s %r"
            % ("string" if identity_keys is not None else "value", identity_keys)
        )
    try:
        keys = tuple(identity_keys)
    except TypeError:
        raise ConfigurationError(
            "identity_keys must be a sequence of attribute keys such as ('namespace', 'name'), got %r"
            % (identity_keys,)
        ) from None
    if not keys or not all(isinstance(key, str) and key for key in keys) or len(set(keys)) != len(keys):
        raise ConfigurationError(
            "identity_keys must be one or more distinct non-empty attribute keys, e.g. ('namespace', 'name'); got %r"
            % (identity_keys,)
        )
    sanitised: dict[str, str] = {}
    for key in keys:
        label = _sanitise_label(key)
        if label in _RESERVED_KEYS or label.startswith("__"):
            raise ConfigurationError(
                "identity key %r becomes the label %r, which Prometheus reserves; choose another key" % (key, label)
            )
        if label in sanitised:
            raise ConfigurationError(
                "identity keys %r and %r both become the label %r on /metrics; choose keys that differ after "
                "non-alphanumeric characters are replaced by '_'" % (sanitised[label], key, label)
            )
        sanitised[label] = key
    return keys


def _sanitise_label(key: str) -> str:
    label = "".join(char if char.isascii() and (char.isalnum() or char == "_") else "_" for char in key)
    return "_" + label if label[:1].isdigit() else label


def positive_seconds(what: str, value: Any) -> float:
    try:
        valid = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value > 0
    except OverflowError:
        valid = False
    if not valid:
        raise ConfigurationError("%s must be a finite number of seconds > 0, got %r" % (what, value))
    return float(value)
