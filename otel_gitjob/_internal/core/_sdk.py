"""The one module that touches opentelemetry-sdk internals.

The OTel metrics API has no way to delete an attribute set
(opentelemetry-specification #2232, #3062), so freeing a forgotten object's
storage means reaching into the SDK. Everything that does so lives here. One
small adapter per shape of the internals is chosen once, at import, by what
the installed SDK has; :func:`self_check` then proves on a private provider
that eviction really works before any :class:`Lifecycle` relies on it. When
it does not (an SDK release we have never seen moved things), the package runs
*degraded*: nothing here touches the SDK, and the export filters alone keep
forgotten and expired series out of every export (docs/compatibility.md).

What every adapter relies on (opentelemetry-sdk 1.33.0 through 1.45.2):

* ``_ViewInstrumentMatch._attributes_aggregation``: a dict from the series key
  to the aggregation of one attribute set, guarded by ``_ViewInstrumentMatch._lock``;
  both set in ``__init__`` before the view's aggregation is asked for its
  type template (``_create_aggregation(instrument, None, ...)``);
* ``MetricReaderStorage._instrument_view_instrument_matches`` (instrument →
  its view matches, one storage per reader), filled by its
  ``_get_or_init_view_instrument_match(instrument)``, and
  ``SynchronousMeasurementConsumer._reader_storages``, reachable from every SDK
  instrument as ``instrument._measurement_consumer``;
* ``Aggregation._create_aggregation(instrument, attributes, reservoir_factory,
  start_time)``, the hook our views implement, called under the match's lock;
* ``View._match`` and ``View._aggregation``; ``_DropAggregation`` and ``_Aggregation``;
* for bound writes (:class:`BoundSeries`): ``_Aggregation.aggregate(measurement,
  should_sample_exemplar)`` reads the measurement's ``value`` (its time, context and
  attributes only to offer an exemplar; a ``_LastValueAggregation`` given ``None``
  holds no value), ``_reservoir`` and ``_attributes``, the view's
  ``_attribute_keys``, the configuration's ``exemplar_filter``, and, where they exist,
  ``_Synchronous._is_enabled`` and ``_ViewInstrumentMatch._reset_on_collect`` (1.45.2: a
  delta reader's table is replaced at each collection, so such a series is never bound).

What differs, one adapter each:

=================  ==================  ==================================================================
releases           series key          how a first write reaches its aggregation
=================  ==================  ==================================================================
1.33.0 – 1.44.x    ``frozenset(items)`` creates it under the lock, then looks it up *again* without the lock
1.45.0 – 1.45.1    ``_hash_attributes`` same re-lookup
1.45.2 –           ``_hash_attributes`` ``_get_or_create_aggregation`` returns it; a per-view cardinality
                                       limit (``View(aggregation_cardinality_limit=)``) exists; a bound
                                       series' first write creates it through that method
=================  ==================  ==================================================================

The re-lookup races eviction (a forget between the SDK's lock release and its
``table[key]`` raised ``KeyError`` out of ``counter.add()``), so on those
releases each view match's table is a :class:`_GuardedTable`, which hands
such a write back to the match to decide afresh. On every release an evicted
aggregation that a writer still holds drops and counts the write; transient
series and placeholders send it back to the SDK instead
(:class:`TouchingAggregation`, :class:`Placeholder`), so a set racing its own
expiry, or a write racing the ``observe()`` that lifts a block, survives.
"""

from __future__ import annotations

import copy
import logging
import sys
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_logger = logging.getLogger("otel_gitjob")

# Public SDK API: stable across every release we support.
from opentelemetry.context import get_current  # noqa: E402
from opentelemetry.metrics import Asynchronous  # noqa: E402
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, Counter, MeterProvider, ObservableCounter  # noqa: E402
from opentelemetry.sdk.metrics.export import (  # noqa: E402
    AggregationTemporality,
    InMemoryMetricReader,
    MetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.metrics.view import (  # noqa: E402
    Aggregation,
    DefaultAggregation,
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    View,
)
from opentelemetry.sdk.version import __version__ as SDK_VERSION  # noqa: E402

from otel_gitjob._internal.core.locks import ranked_lock  # noqa: E402

# Private SDK modules: an unknown release may move them, which must degrade, never break the controller.
_IMPORT_PROBLEMS: list[str] = []
try:
    from opentelemetry.sdk.metrics._internal import _view_instrument_match as _vim_module
    from opentelemetry.sdk.metrics._internal._view_instrument_match import _ViewInstrumentMatch
except Exception as error:  # pragma: no cover - only on an SDK that moved its internals
    _vim_module = None  # type: ignore[assignment]
    _ViewInstrumentMatch = None  # type: ignore[assignment,misc]
    _IMPORT_PROBLEMS.append("_ViewInstrumentMatch cannot be imported (%s)" % (error,))
try:
    from opentelemetry.sdk.metrics._internal.aggregation import _Aggregation, _DropAggregation
except Exception as error:  # pragma: no cover - only on an SDK that moved its internals

    class _Aggregation:  # type: ignore[no-redef]
        """Stand-in base class; never instantiated in degraded mode."""

    class _DropAggregation(_Aggregation):  # type: ignore[no-redef]
        """Stand-in base class; never instantiated in degraded mode."""

    _IMPORT_PROBLEMS.append("_Aggregation/_DropAggregation cannot be imported (%s)" % (error,))
try:
    from opentelemetry.sdk.metrics._internal.aggregation import (
        _ExplicitBucketHistogramAggregation,
        _ExponentialBucketHistogramAggregation,
        _LastValueAggregation,
        _SumAggregation,
    )

    # The aggregations whose delta is lost when evicted (a gauge's last value is not a delta).
    _DELTA_AGGREGATIONS: tuple[type, ...] = (
        _SumAggregation,
        _ExplicitBucketHistogramAggregation,
        _ExponentialBucketHistogramAggregation,
    )
except Exception:  # pragma: no cover - only on an SDK that moved its internals: no final deltas, no kept gauges
    _DELTA_AGGREGATIONS = ()
    _LastValueAggregation = None  # type: ignore[assignment,misc]

__all__ = [
    "ADAPTER",
    "AttachHook",
    "KNOWN_GOOD_RELEASES",
    "SDK_VERSION",
    "Adapter",
    "Placeholder",
    "SelectiveView",
    "SelfCheck",
    "BoundSeries",
    "Instruments",
    "TouchingAggregation",
    "calling_match",
    "evict",
    "FinalPoint",
    "Gate",
    "exporter_preferences",
    "is_noop_provider",
    "install_race_guard",
    "no_exemplars_factory",
    "reader_aggregation",
    "self_check",
    "series_count",
    "series_key",
    "supports_cardinality_limit",
    "view_aggregation",
    "view_with_aggregation",
    "views_of_provider",
    "views_of_reader",
]

KNOWN_GOOD_RELEASES = "1.33.0 through 1.45.2"

SeriesKey = Hashable


# -- the adapters ----------------------------------------------------------------------------------------------


def _frozenset_key(attributes: Mapping[str, Any]) -> SeriesKey:
    return frozenset(attributes.items())


_hash_attributes = getattr(_vim_module, "_hash_attributes", None)


def _hashed_key(attributes: Mapping[str, Any]) -> SeriesKey:
    assert _hash_attributes is not None
    return _hash_attributes(attributes)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Adapter:
    """How to work with one shape of the SDK's internals.

    Attributes:
        name: A short name, shown in logs and docs/compatibility.md.
        releases: The releases known to have this shape.
        series_key: The key under which the SDK stores an attribute set's aggregation.
        guard_relookup: The SDK looks a new aggregation up again after releasing
            its lock, so tables need the ``__missing__`` guard.
        cardinality_limit: ``View(aggregation_cardinality_limit=)`` exists.
        get_or_create: ``_ViewInstrumentMatch._get_or_create_aggregation(key, attributes)`` exists, so a
            bound series can create its aggregations itself (:meth:`BoundSeries.create`).
    """

    name: str
    releases: str
    series_key: Callable[[Mapping[str, Any]], SeriesKey]
    guard_relookup: bool
    cardinality_limit: bool
    get_or_create: bool


FROZENSET_RELOOKUP = Adapter("frozenset-relookup", "1.33.0 - 1.44.x", _frozenset_key, True, False, False)
HASHED_RELOOKUP = Adapter("hashed-relookup", "1.45.0 - 1.45.1", _hashed_key, True, False, False)
HASHED_GET_OR_CREATE = Adapter("hashed-get-or-create", "1.45.2 -", _hashed_key, False, True, True)


def _select_adapter() -> Adapter | None:
    if _ViewInstrumentMatch is None:
        return None
    if _hash_attributes is None:
        return FROZENSET_RELOOKUP
    if hasattr(_ViewInstrumentMatch, "_get_or_create_aggregation"):
        return HASHED_GET_OR_CREATE
    return HASHED_RELOOKUP


ADAPTER: Adapter | None = _select_adapter()

# The SDK functions whose frame holds ``self`` (a view match) and maybe ``aggr_key`` while it asks our
# view's aggregation for a new one. Matching code objects is exact and cheap.
_MATCH_CODES: frozenset[Any] = frozenset(
    getattr(_ViewInstrumentMatch, name).__code__
    for name in ("__init__", "consume_measurement", "_get_or_create_aggregation")
    if _ViewInstrumentMatch is not None and hasattr(_ViewInstrumentMatch, name)
)


def series_key(attributes: Mapping[str, Any]) -> SeriesKey:
    """The key under which the installed SDK stores this attribute set's aggregation."""
    if ADAPTER is None:
        return _frozenset_key(attributes)
    return ADAPTER.series_key(attributes)


def supports_cardinality_limit() -> bool:
    """Whether views can carry their own cardinality limit (opentelemetry-sdk 1.45.2 and later)."""
    return ADAPTER is not None and ADAPTER.cardinality_limit


def calling_match() -> tuple[Any, SeriesKey | None]:
    """``(match, key)`` of the SDK view match asking our aggregation for a new series; ``(None, None)`` if unknown.

    Called from ``_create_aggregation`` only: walks up a few frames to the SDK's
    own function. The match lets us guard its table and re-route a write that
    races an expiry; reusing the SDK's key object halves the memory the index costs.
    """
    frame: Any = sys._getframe(2)
    for _ in range(4):
        if frame is None:
            break
        if frame.f_code in _MATCH_CODES:
            local = frame.f_locals
            return local.get("self"), local.get("aggr_key")
        frame = frame.f_back
    return None, None


# -- race guards -----------------------------------------------------------------------------------------------


class _RacedWrite:
    """What a write gets when its aggregation was evicted between the SDK's lookup and its use.

    With the view match it came from (a re-lookup that missed), the write goes
    back to the match, which decides afresh (a forgotten object's write meets its
    block; a set racing its expiry creates the series again); else it is dropped and counted.
    """

    __slots__ = ("_on_drop", "_match")

    def __init__(self, on_drop: Callable[[], None] | None, match: Any = None) -> None:
        self._on_drop = on_drop
        self._match = match

    def aggregate(self, measurement: Any, should_sample_exemplar: bool = True) -> None:
        if self._match is not None and measurement is not None:
            self._match.consume_measurement(measurement, should_sample_exemplar)
        elif self._on_drop is not None:
            self._on_drop()


class _GuardedTable(dict):  # type: ignore[type-arg]
    """A view match's table that answers a missing key with a dropping aggregation instead of KeyError.

    Only a lookup that the SDK makes by subscript after releasing its lock can
    miss (SDK < 1.45.2); ``in``, ``get`` and iteration behave as a dict's.
    """

    __slots__ = ("_raced",)

    def __init__(self, items: Mapping[Any, Any], raced: _RacedWrite) -> None:
        super().__init__(items)
        self._raced = raced

    def __missing__(self, key: Any) -> _RacedWrite:
        return self._raced


def install_race_guard(match: Any, on_raced: Callable[[], None] | None) -> None:
    """Swap a new view match's table for a guarded one (only on releases that re-look-up).

    Called while the SDK builds the match (the type template), before any other
    thread can see it, so no lock is needed.
    """
    if ADAPTER is None or not ADAPTER.guard_relookup or match is None:
        return
    table = getattr(match, "_attributes_aggregation", None)
    if type(table) is dict:
        match._attributes_aggregation = _GuardedTable(table, _RacedWrite(on_raced, match))


# -- eviction ----------------------------------------------------------------------------------------------------


def _matches_of(instrument: Any) -> list[Any]:
    return [match for _reader, _storage, match in _reader_matches_of(instrument)]


def _reader_matches_of(instrument: Any) -> list[tuple[Any, Any, Any]]:
    """``(reader, reader storage, view match)`` of every view match of ``instrument``."""
    consumer = getattr(instrument, "_measurement_consumer", None)
    storages = getattr(consumer, "_reader_storages", None)
    if not storages:
        return []
    found: list[tuple[Any, Any, Any]] = []
    for reader, storage in list(storages.items()):
        for match in storage._instrument_view_instrument_matches.get(instrument, ()):
            found.append((reader, storage, match))
    return found


def _bindable_matches_of(instrument: Any) -> list[Any] | None:
    """Every reader's view matches of ``instrument``; None if a delta reader's (or nobody's).

    A reader's storage meets an observable instrument only at its own first
    collection; a series bound or created before that would miss that reader, so
    each storage is asked for its matches as the SDK asks at a measurement.
    A delta reader's table is dropped at each collection: such a series is never bound.
    """
    storages = getattr(getattr(instrument, "_measurement_consumer", None), "_reader_storages", None)
    if not storages:
        return None
    found: list[Any] = []
    for storage in list(storages.values()):
        for match in storage._get_or_init_view_instrument_match(instrument):
            if getattr(match, "_reset_on_collect", False):
                return None
            found.append(match)
    return found or None


@dataclass(frozen=True)
class FinalPoint:
    """The last delta of an evicted series, collected as the SDK would have at the next export.

    Attributes:
        exporter: The exporter of the reader whose storage held it (``reader._exporter``), or None.
        name: The stream name (a View may rename the instrument); ``description`` is the stream's too.
        monotonic: Whether a Sum is monotonic (a Counter).
        point: The SDK data point (``NumberDataPoint``, ``HistogramDataPoint``, ...), delta temporality.
    """

    exporter: Any
    resource: Any
    scope: Any
    name: str
    description: str
    unit: str
    monotonic: bool
    point: Any


def stream_names(instrument: Any) -> tuple[str, ...]:
    """The names ``instrument`` is exported under, one per view match (a View may rename it)."""
    names = {name for match in _matches_of(instrument) if isinstance(name := getattr(match, "_name", None), str)}
    return tuple(names) if names else (instrument.name,)


def _final_point(reader: Any, storage: Any, match: Any, instrument: Any, aggregation: Any) -> FinalPoint | None:
    """Collect what an evicted aggregation holds, when its reader exports deltas (else the last export has it)."""
    try:
        temporality = storage._instrument_class_temporality.get(instrument.__class__)
        inner = aggregation._inner if isinstance(aggregation, TouchingAggregation) else aggregation
        if temporality is not AggregationTemporality.DELTA or not isinstance(inner, _DELTA_AGGREGATIONS):
            return None  # cumulative: the last export has it; a gauge has no delta to lose
        point = aggregation.collect(AggregationTemporality.DELTA, time.time_ns())
        if point is None:
            return None  # nothing recorded since the last export
        config = getattr(getattr(instrument, "_measurement_consumer", None), "_sdk_config", None)
        return FinalPoint(
            exporter=getattr(reader, "_exporter", None),
            resource=getattr(config, "resource", None),
            scope=instrument.instrumentation_scope,
            name=match._name,
            description=match._description or "",
            unit=instrument.unit or "",
            monotonic=isinstance(instrument, (Counter, ObservableCounter)),
            point=point,
        )
    except Exception:  # an SDK that moved things: the final delta is lost, as it always was
        _logger.debug("otel-gitjob: collecting the final delta of an evicted series failed", exc_info=True)
        return None


def evict(
    instrument: Any,
    key: SeriesKey,
    only: Any = None,
    on_raced: Callable[[], None] | None = None,
    unless: Callable[[Any], bool] | None = None,
    on_final: Callable[[FinalPoint], None] | None = None,
) -> int:
    """Remove one attribute set of ``instrument`` from every reader's storage.

    Args:
        instrument: The SDK instrument whose storage holds the series.
        key: The series key (see :func:`series_key`).
        only: When given, remove the entry only if it is this very object, so
            that evicting a placeholder never removes a real series created after it.
        on_raced: Called for each write that reaches an evicted aggregation
            through a reference taken before the eviction (the write is dropped).
        unless: Checked under the match's lock with the aggregation found; when
            it returns True the entry stays (an expiry whose series was set again).
        on_final: Called with the final delta of each removed aggregation whose reader
            exports deltas (collected after writers were cut off, so nothing is lost).

    Returns:
        The number of real (non-placeholder) aggregations removed.
    """
    removed = 0
    dropped = None
    for reader, storage, match in _reader_matches_of(instrument):
        with match._lock:
            table = match._attributes_aggregation
            found = table.get(key)
            if found is None or (only is not None and found is not only):
                continue
            if isinstance(found, TouchingAggregation):
                # Decide and retire under its write lock: a set either lands before the decision (and
                # moved the deadline it checks) or after, and is then sent back to the SDK.
                with found._lock:
                    if unless is not None and unless(found):
                        continue
                    del table[key]
                    found.retire(match)
            else:
                if unless is not None and unless(found):
                    continue
                del table[key]
                if isinstance(found, Placeholder):
                    found.evicted(match)
                    continue
        removed += 1
        if not isinstance(found, TouchingAggregation):
            # A writer may still hold it (SDK >= 1.45.2 aggregates outside the lock): drop and count that write.
            if dropped is None:
                dropped = _RacedWrite(on_raced).aggregate
            found.aggregate = dropped
        if on_final is not None:
            final = _final_point(reader, storage, match, instrument, found)
            if final is not None:
                on_final(final)
    return removed


def series_count(provider: MeterProvider, include_placeholders: bool = False, instrument: str | None = None) -> int:
    """Attribute sets held in all reader storages of ``provider`` (tests and benchmarks).

    Args:
        include_placeholders: Count the placeholders of forgotten objects too.
        instrument: Count only the series of the instrument of this (lower-case) name.
    """
    total = 0
    for storage in provider._measurement_consumer._reader_storages.values():  # type: ignore[attr-defined]
        for matches in list(storage._instrument_view_instrument_matches.values()):
            for match in matches:
                if instrument is not None and match._instrument.name != instrument:
                    continue
                with match._lock:
                    for aggregation in match._attributes_aggregation.values():
                        if include_placeholders or not isinstance(aggregation, Placeholder):
                            total += 1
    return total


# -- aggregations that stand in the SDK's storage ----------------------------------------------------------------


def _no_reservoir(*args: Any, **kwargs: Any) -> Any:
    return None


def _has_limit(match: Any) -> bool:
    return match is not None and type(getattr(match, "_cardinality_limit", None)) is int


class Placeholder(_DropAggregation):  # type: ignore[misc]
    """Stands in the SDK storage for a late write to a forgotten object; exports nothing.

    Evicted at the next collection or when the block lifts.
    """

    def __init__(self, attributes: Mapping[str, Any], on_drop: Callable[[], None] | None, match: Any = None) -> None:
        super().__init__(attributes, reservoir_builder=_no_reservoir)
        self._on_drop = on_drop
        self._evicted_from: Any = None
        # Where the SDK has a cardinality limit, a placeholder must not take a live object's slot:
        # the match's limit is raised while it stands (we run under the match's lock here).
        self._match = match if _has_limit(match) else None
        if self._match is not None:
            self._match._cardinality_limit += 1

    def release(self) -> None:
        """Give the reserved slot back; called under the match's lock once the placeholder is evicted."""
        match, self._match = self._match, None
        if match is not None:
            match._cardinality_limit -= 1

    def aggregate(self, measurement: Any, should_sample_exemplar: bool = True) -> None:
        evicted_from = self._evicted_from
        if evicted_from is not None:
            # Evicted (the block lifted, or the next collection came) after the writer found it:
            # the SDK decides afresh, so a write just after observe() creates the live series.
            evicted_from.consume_measurement(measurement, should_sample_exemplar)
        elif self._on_drop is not None:
            self._on_drop()

    def evicted(self, match: Any) -> None:
        """Called under ``match``'s lock once removed from it."""
        self.release()
        self._evicted_from = match


class TouchingAggregation(_Aggregation):  # type: ignore[misc]
    """A transient series' aggregation: delegates to the real one and reports each measurement to expiry.

    When expiry evicts it while a writer still holds it, the write goes back to
    the view match, which creates the series again: a set that arrives after the
    decision to expire survives. A gauge's last value is kept and reported to a
    cumulative reader when the SDK's aggregation has none (releases before 1.45.0
    clear it at each collection), so it stays in every scrape until it expires.
    """

    __slots__ = ("_inner", "_touch", "_entry", "_match", "_lock", "_last", "_attributes")

    def __init__(self, inner: Any, touch: Callable[[Any, Any], None], entry: Any, attributes: Any = None) -> None:
        # Not calling super().__init__: this object holds no data of its own but the last gauge value.
        self._inner = inner
        self._touch = touch
        self._entry = entry
        self._match: Any = None
        # Makes "not evicted yet, so aggregate here" atomic against evict()'s decide-and-retire.
        self._lock = ranked_lock("sdk.touching")
        self._last: Any = None
        # Only a last-value (gauge) series needs its value kept across collections.
        self._attributes = (
            attributes if _LastValueAggregation is not None and isinstance(inner, _LastValueAggregation) else None
        )

    def aggregate(self, measurement: Any, should_sample_exemplar: bool = True) -> None:
        # Move the deadline first: an expiry that decides after this sees it and keeps the series.
        self._touch(self._entry, measurement)
        with self._lock:
            match = self._match
            if match is None:
                self._inner.aggregate(measurement, should_sample_exemplar)
                if self._attributes is not None:
                    self._last = measurement.value
                return
        # Evicted after the writer found us: record into the match afresh (a new series).
        match.consume_measurement(measurement, should_sample_exemplar)

    @property
    def entry(self) -> Any:
        """The expiry entry this series reports to (an eviction checks that it is its own)."""
        return self._entry

    def retire(self, match: Any) -> None:
        """Called under ``_lock`` once evicted from ``match``: later writes go back to it."""
        self._match = match

    def collect(self, collection_aggregation_temporality: Any, collection_start_nano: int) -> Any:
        point = self._inner.collect(collection_aggregation_temporality, collection_start_nano)
        if point is not None or self._attributes is None:
            return point
        if collection_aggregation_temporality is not AggregationTemporality.CUMULATIVE:
            return None  # a delta reader sees a gauge when it was set since the last export, as the SDK says
        with self._lock:
            value = self._last
        if value is None:
            return None
        return NumberDataPoint(
            attributes=self._attributes,
            exemplars=[],
            start_time_unix_nano=None,  # type: ignore[arg-type]  # a gauge point has none, as the SDK's
            time_unix_nano=collection_start_nano,
            value=value,
        )


class Gate(_Aggregation):  # type: ignore[misc]
    """Degraded mode's stand-in for eviction: an aggregation of ours in the SDK's storage that we can empty.

    Without trusted eviction a series' aggregation stays in the SDK's table for
    good, so the view gives the SDK a gate, which builds the real aggregation on
    the first admitted write. Emptying it (a forget, a label edit, an expiry)
    throws the data away until the series is written again. While its object is
    blocked a write is dropped (counted by one gate per series). Writes,
    collections and emptying take the gate's lock. Uses no SDK internals.
    """

    __slots__ = ("_build", "_inner", "_lock", "_blocked", "_on_drop", "_start")

    def __init__(
        self,
        build: Callable[[int], Any],
        start_time_unix_nano: int,
        blocked: Callable[[], bool] | None,
        on_drop: Callable[[], None] | None,
    ) -> None:
        # Not calling super().__init__: the aggregation it builds holds the data.
        self._build = build
        self._inner: Any = None
        self._lock = ranked_lock("sdk.gate")
        self._blocked = blocked
        self._on_drop = on_drop
        self._start: int | None = start_time_unix_nano

    def aggregate(self, measurement: Any, should_sample_exemplar: bool = True) -> None:
        with self._lock:
            if self._blocked is not None and self._blocked():
                if self._on_drop is not None:
                    self._on_drop()
                return
            inner = self._inner
            if inner is None:
                start, self._start = self._start, None
                inner = self._inner = self._build(start if start is not None else time.time_ns())
            inner.aggregate(measurement, should_sample_exemplar)

    def collect(self, collection_aggregation_temporality: Any, collection_start_nano: int) -> Any:
        with self._lock:
            inner = self._inner
            if inner is None:
                return None
            return inner.collect(collection_aggregation_temporality, collection_start_nano)

    def empty(self, unless: Callable[[Any], bool] | None = None) -> bool:
        """Throw the series' data away; returns whether there was any.

        Args:
            unless: Checked under the gate's lock with the aggregation it holds;
                True keeps it (an expiry whose series was set again meanwhile).
        """
        with self._lock:
            inner = self._inner
            if inner is None or (unless is not None and unless(inner)):
                return False
            self._inner = None
            self._start = None
            return True


# -- views and readers ---------------------------------------------------------------------------------------------


def view_aggregation(view: View) -> Aggregation:
    return view._aggregation  # type: ignore[no-any-return]


def view_with_aggregation(view: View, aggregation: Aggregation) -> View:
    """A copy of a user's view whose aggregation is replaced (the View has no public setter).

    The SDK refuses a histogram view for an asynchronous instrument (with a
    warning) by the type of the view's aggregation, which the copy no longer
    shows; the copy refuses it itself, so the instrument still gets the default.
    """
    clone = copy.copy(view)
    clone._aggregation = aggregation
    if isinstance(view._aggregation, _HISTOGRAM_VIEWS):
        clone._match = _RefusingMatch(clone, view)  # type: ignore[method-assign]
    return clone


_HISTOGRAM_VIEWS = (ExplicitBucketHistogramAggregation, ExponentialBucketHistogramAggregation)


class _RefusingMatch:
    """A copied histogram view's ``_match``: never for an asynchronous instrument, as in the SDK."""

    __slots__ = ("_clone", "_view", "_warned")

    def __init__(self, clone: View, view: View) -> None:
        self._clone = clone
        self._view = view
        self._warned: set[str] = set()

    def __call__(self, instrument: Any) -> bool:
        if not View._match(self._clone, instrument):
            return False
        if not isinstance(instrument, Asynchronous):
            return True
        name = getattr(instrument, "name", "")
        if name not in self._warned:
            self._warned.add(name)
            _logger.warning(
                "View %s and instrument %s will produce semantic errors when matched, the view has not been applied.",
                self._view,
                instrument,
            )
        return False


def reader_aggregation(match: Any, instrument: Any) -> Aggregation | None:
    """The aggregation a view match's reader asks for, by instrument class (its exporter's preference).

    The SDK uses it for a view without an aggregation of its own; None when the
    match is unknown.
    """
    table = getattr(match, "_instrument_class_aggregation", None)
    if not isinstance(table, Mapping):
        return None
    return table.get(type(instrument))


class _NoExemplars:
    """One exemplar reservoir shared by every series: offers nothing, collects nothing.

    The SDK builds a reservoir per series by default (a list of cells and its
    lock, per histogram bucket); a Prometheus text exposition never shows
    exemplars, so at 10,000 objects that is memory and collect time for nothing.
    """

    __slots__ = ()

    def offer(self, *args: Any, **kwargs: Any) -> None:
        return None

    def collect(self, point_attributes: Any) -> tuple[()]:
        return ()  # not a list per point: the GC need not track (and rescan) one per series and collection


_NO_EXEMPLARS = _NoExemplars()


def _no_exemplars_builder(*args: Any, **kwargs: Any) -> _NoExemplars:
    return _NO_EXEMPLARS


def no_exemplars_factory(aggregation_type: Any) -> Callable[..., _NoExemplars]:
    """A view's ``exemplar_reservoir_factory`` that gives every series the shared no-op reservoir."""
    return _no_exemplars_builder


class SelectiveView(View):
    """A catch-all view that stands aside for instruments matched by other views.

    The SDK applies every matching view, so a plain ``instrument_name="*"`` view
    next to a user's view would export those instruments twice.
    """

    def __init__(
        self,
        aggregation: Aggregation,
        excluded: Iterable[View],
        cardinality_limit: int | None = None,
    ) -> None:
        options: dict[str, Any] = {}
        if cardinality_limit is not None and supports_cardinality_limit():
            options["aggregation_cardinality_limit"] = cardinality_limit
        super().__init__(instrument_name="*", aggregation=aggregation, **options)
        self._excluded = tuple(excluded)

    def _match(self, instrument: Any) -> bool:
        return super()._match(instrument) and not any(view._match(instrument) for view in self._excluded)


def views_of_reader(reader: MetricReader) -> tuple[View, ...] | None:
    """The views of the MeterProvider ``reader`` is registered with, or None if unregistered."""
    collect = getattr(reader, "_collect", None)
    consumer = getattr(collect, "__self__", None)
    config = getattr(consumer, "_sdk_config", None)
    if config is None:
        return None
    return tuple(config.views)


def views_of_provider(provider: Any) -> tuple[View, ...] | None:
    """The views an SDK MeterProvider was built with; None when ``provider`` is not one whose views can be read."""
    if not isinstance(provider, MeterProvider):
        return None
    views = getattr(getattr(provider, "_sdk_config", None), "views", None)
    return tuple(views) if views is not None else None


def is_noop_provider(provider: Any) -> bool:
    """Whether ``provider`` records nothing: the API's no-op provider, or the proxy the API hands out while no
    MeterProvider is set (``opentelemetry.metrics.get_meter_provider()`` before ``set_meter_provider``)."""
    from opentelemetry.metrics import NoOpMeterProvider

    try:
        from opentelemetry.metrics._internal import _ProxyMeterProvider
    except Exception:  # pragma: no cover - an API release that moved it: such a provider is then "not inspectable"
        return isinstance(provider, NoOpMeterProvider)
    return isinstance(provider, (NoOpMeterProvider, _ProxyMeterProvider))


class AttachHook:
    """Mixin for a MetricReader: ``_on_attach()`` runs when a MeterProvider takes the reader.

    The SDK hands a reader its collect callback when a MeterProvider is built
    with it (or adds it later): the first moment its views can be checked.
    """

    def _set_collect_callback(self, func: Any) -> None:
        super()._set_collect_callback(func)  # type: ignore[misc]
        if func is not None:
            self._on_attach()

    def _on_attach(self) -> None:
        """Called once the reader belongs to a MeterProvider; may raise ConfigurationError."""


class AggregationHook(Aggregation):
    """Base for a view aggregation that sees each new series: its :meth:`create` is the SDK's private hook.

    Aliased, not called through, so that the SDK frame :func:`calling_match` looks for stays where it is.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._create_aggregation = cls.create  # type: ignore[method-assign]

    def create(self, instrument: Any, attributes: Any, reservoir_factory: Any, start_time_unix_nano: int) -> Any:
        """The aggregation of one new series (``attributes`` None: the SDK's per-match type template)."""
        raise NotImplementedError

    def _create_aggregation(
        self, instrument: Any, attributes: Any, reservoir_factory: Any, start_time_unix_nano: int
    ) -> Any:  # replaced by each subclass's create (see __init_subclass__)
        return self.create(instrument, attributes, reservoir_factory, start_time_unix_nano)


def create_aggregation(
    aggregation: Aggregation, instrument: Any, attributes: Any, reservoir_factory: Any, start_time_unix_nano: int
) -> Any:
    """What ``aggregation`` (a view's own, or the SDK default) makes for one new series."""
    return aggregation._create_aggregation(instrument, attributes, reservoir_factory, start_time_unix_nano)


def exporter_preferences(exporter: Any) -> tuple[dict[type, Any], dict[type, Aggregation]]:
    """The temporality and aggregation a MetricExporter asks its reader for (no public getter)."""
    return dict(getattr(exporter, "_preferred_temporality", None) or {}), dict(
        getattr(exporter, "_preferred_aggregation", None) or {}
    )


# -- bound writes -------------------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Write:
    """A measurement as the SDK's aggregations read it, without the SDK's per-call attribute cleaning.

    The attributes were checked once, when the writer was bound; the self-check
    proves that aggregations accept it as they accept the SDK's own.
    """

    value: Any
    time_unix_nano: int
    instrument: Any
    context: Any
    attributes: Any


def _offers_exemplars(aggregation: Any) -> bool:
    inner = aggregation._inner if isinstance(aggregation, TouchingAggregation) else aggregation
    return getattr(inner, "_reservoir", None) is not _NO_EXEMPLARS


def _evicted(aggregation: Any) -> bool:
    """Whether :func:`evict` took ``aggregation`` out of its table (it marks each aggregation it evicts)."""
    if type(aggregation) is TouchingAggregation:
        return aggregation._match is not None
    return aggregation.aggregate.__self__ is not aggregation


class Instruments:
    """The instruments that bound series write to, by index, and what the SDK asks of each write.

    Shared by every :class:`BoundSeries` of the same instruments.
    """

    __slots__ = ("instruments", "enabled")

    def __init__(self, instruments: Iterable[Any]) -> None:
        self.instruments = tuple(instruments)
        # An SDK instrument whose meter is disabled records nothing (opentelemetry-sdk 1.44 and later).
        self.enabled = tuple(getattr(instrument, "_is_enabled", None) for instrument in self.instruments)


class BoundSeries:
    """One attribute set on each of several instruments, written straight into the SDK's aggregations.

    ``write(i, value)`` refuses (returns False) unless instrument ``i``'s series
    is bound and :func:`evict` took none of its aggregations since; the caller
    then tries ``create(i, value)``, else takes the instrument's path and calls
    ``bind(i)``. A series is bound in every reader's view matches at once, and
    never on a delta reader (which drops its table at each collection). The
    exemplar filter is consulted as the SDK does, unless no aggregation of the
    series offers exemplars (the shared no-op reservoir) or the filter is always
    off. A series with one reader holds its aggregation itself, else a tuple of them.
    """

    __slots__ = ("_instruments", "_attributes", "_key", "_targets", "_sampling")

    def __init__(self, instruments: Instruments, attributes: Mapping[str, Any]) -> None:
        self._instruments = instruments
        self._attributes = attributes
        self._key: SeriesKey | None = None  # the SDK's key of the attribute set, shared by the series it creates
        self._targets: list[Any] = [None] * len(instruments.instruments)
        self._sampling: Any = None  # the exemplar filter, once a bound series offers exemplars

    def _series_of(self, match: Any) -> tuple[Mapping[str, Any], SeriesKey]:
        """The attribute set and key of this series in ``match`` (a view may keep some attributes only)."""
        keys = match._view._attribute_keys
        if keys is not None:
            attributes = {key: value for key, value in self._attributes.items() if key in keys}
            return attributes, series_key(attributes)
        if self._key is None:
            self._key = series_key(self._attributes)
        return self._attributes, self._key

    def bind(self, i: int) -> bool:
        """Find instrument ``i``'s aggregations for the attribute set (after a write through it)."""
        self._targets[i] = None
        matches = _bindable_matches_of(self._instruments.instruments[i])
        if matches is None:
            return False
        return self._adopt(i, [match._attributes_aggregation.get(self._series_of(match)[1]) for match in matches])

    def _adopt(self, i: int, aggregations: list[Any]) -> bool:
        """Bind instrument ``i`` to the aggregations its view matches store for the attribute set, if all are live."""
        offers = False
        for aggregation in aggregations:
            if (
                not isinstance(aggregation, (_Aggregation, TouchingAggregation))
                or isinstance(aggregation, (Placeholder, Gate))
                or _evicted(aggregation)
            ):
                self._targets[i] = None
                return False
            offers = offers or _offers_exemplars(aggregation)
        # Share the attribute set the SDK keeps with the aggregation rather than hold an equal one.
        first = aggregations[0]._inner if isinstance(aggregations[0], TouchingAggregation) else aggregations[0]
        kept = getattr(first, "_attributes", None)
        if kept is not self._attributes and type(kept) is dict and kept == self._attributes:
            self._attributes = kept
        if offers and self._sampling is None:
            exemplar_filter = self._exemplar_filter(i)
            if exemplar_filter is not None and not isinstance(exemplar_filter, AlwaysOffExemplarFilter):
                self._sampling = exemplar_filter
        self._targets[i] = aggregations[0] if len(aggregations) == 1 else tuple(aggregations)
        return True

    def _exemplar_filter(self, i: int) -> Any:
        config = getattr(self._instruments.instruments[i]._measurement_consumer, "_sdk_config", None)
        return getattr(config, "exemplar_filter", None)

    def write(self, i: int, value: Any) -> bool:
        """Record ``value`` (valid for the instrument); False when the caller must take the instrument's path."""
        target = self._targets[i]
        if target is None:
            return False
        enabled = self._instruments.enabled[i]
        if enabled is not None and not enabled():
            return False
        targets = target if type(target) is tuple else (target,)
        for aggregation in targets:
            if _evicted(aggregation):
                self._targets[i] = None
                return False
        exemplar_filter = self._sampling
        now = time.time_ns()
        if exemplar_filter is None:
            measurement = _Write(value, now, self._instruments.instruments[i], None, self._attributes)
            for aggregation in targets:
                aggregation.aggregate(measurement, False)
            return True
        context = get_current()
        sample = exemplar_filter.should_sample(value, now, self._attributes, context)
        measurement = _Write(value, now, self._instruments.instruments[i], context, self._attributes)
        for aggregation in targets:
            aggregation.aggregate(measurement, sample)
        return True

    def create(self, i: int, value: Any) -> bool:
        """Record ``value`` through the SDK's own get-or-create of instrument ``i``'s series, then bind it.

        What the instrument's own call does, less its per-call copies: the series' aggregations, one
        per instrument, share this attribute set and one key, where the SDK's path makes a copy of
        each for every instrument. False when the caller must take the instrument's path: an SDK
        without ``_get_or_create_aggregation``, a delta reader, a disabled meter.
        """
        if ADAPTER is None or not ADAPTER.get_or_create:
            return False
        instrument = self._instruments.instruments[i]
        enabled = self._instruments.enabled[i]
        if enabled is not None and not enabled():
            return False
        matches = _bindable_matches_of(instrument)
        if matches is None:
            return False
        now = time.time_ns()
        context = get_current()
        exemplar_filter = self._exemplar_filter(i)
        sample = exemplar_filter is None or exemplar_filter.should_sample(value, now, self._attributes, context)
        measurement = _Write(value, now, instrument, context, self._attributes)
        stored = []
        for match in matches:
            attributes, key = self._series_of(match)
            with match._lock:  # the SDK's own rule for this method
                aggregation = match._get_or_create_aggregation(key, attributes)
            aggregation.aggregate(measurement, sample)
            stored.append(match._attributes_aggregation.get(key))  # not the overflow series it may have got
        self._adopt(i, stored)
        return True

    def clear(self, i: int) -> None:
        """Empty instrument ``i``'s last-value series (a gauge that has no value now) in every reader, and unbind it.

        A bound write reaches every reader's aggregation, also of the readers that did not ask (an observable
        gauge's callback runs for the collecting reader): one whose next callback writes nothing must not
        export the value written for another. Only last-value aggregations are emptied.
        """
        target, self._targets[i] = self._targets[i], None
        for aggregation in () if target is None else target if type(target) is tuple else (target,):
            if type(aggregation) is _LastValueAggregation and not _evicted(aggregation):
                empty = _Write(None, time.time_ns(), self._instruments.instruments[i], None, None)
                aggregation.aggregate(empty, False)  # type: ignore[arg-type]


# -- the behavioural self-check -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SelfCheck:
    """The outcome of :func:`self_check`.

    Attributes:
        ok: Eviction works on the installed SDK; when False the package runs degraded.
        adapter: The adapter's name, or None when no shape matched.
        problems: What failed, for the warning.
    """

    ok: bool
    adapter: str | None
    problems: tuple[str, ...]


class _ProbeAggregation(Aggregation):
    """A view aggregation that records what our real hook would see."""

    def __init__(self) -> None:
        self.created: list[tuple[Any, Any, Any]] = []
        self.raced = 0

    def _create_aggregation(self, instrument: Any, attributes: Any, reservoir_factory: Any, start: int) -> Any:
        match, sdk_key = calling_match()
        if attributes is None:
            install_race_guard(match, self._count)
        else:
            self.created.append((match, sdk_key, dict(attributes)))
        return DefaultAggregation()._create_aggregation(instrument, attributes, reservoir_factory, start)

    def _count(self) -> None:
        self.raced += 1


def _points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    points: list[Any] = []
    for resource_metrics in getattr(data, "resource_metrics", None) or ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    points.extend(metric.data.data_points)
    return points


def _run_self_check() -> list[str]:
    if ADAPTER is None:
        return list(_IMPORT_PROBLEMS) or ["no adapter fits this SDK's internals"]
    problems: list[str] = list(_IMPORT_PROBLEMS)
    probe = _ProbeAggregation()
    views = [View(instrument_name="*", aggregation=probe)]
    if ADAPTER.cardinality_limit:
        views = [View(instrument_name="*", aggregation=probe, aggregation_cardinality_limit=2)]
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=views)
    try:
        counter = provider.get_meter("otel_gitjob.self_check").create_counter("probe")
        first = {"namespace": "ns", "name": "a"}
        counter.add(1, first)
        if len(probe.created) != 1:
            return problems + ["the view hook saw %d new series, expected 1" % len(probe.created)]
        match, sdk_key, _ = probe.created[0]
        if match is None:
            problems.append("the view match that creates a series cannot be found")
        key = series_key(first)
        if sdk_key is not None and sdk_key != key:
            problems.append("the SDK's series key differs from the adapter's")
        if match is not None and key not in match._attributes_aggregation:
            problems.append("the series is not stored under the adapter's key")
        if evict(counter, key) != 1 or series_count(provider) != 0:
            problems.append("evicting the series did not remove it from the SDK storage")
        if _points(reader, "probe"):
            problems.append("an evicted series is still collected")
        counter.add(2, first)
        points = _points(reader, "probe")
        if [point.value for point in points] != [2]:
            problems.append("a series written again after eviction did not start afresh (got %r)" % (points,))
        problems.extend(_check_writer(provider, reader, counter))
        if ADAPTER.guard_relookup and match is not None:
            table = match._attributes_aggregation
            if not isinstance(table, _GuardedTable):
                problems.append("the race guard is not installed")
            else:
                table[("missing",)].aggregate(None)
                if probe.raced != 1:
                    problems.append("a write racing an eviction is not dropped and counted")
        if ADAPTER.cardinality_limit:
            # Limit 2: one live series; evict it, then two new ones must both get real slots.
            evict(counter, key)
            counter.add(1, {"namespace": "ns", "name": "b"})
            counter.add(1, {"namespace": "ns", "name": "c"})
            names = sorted(str(point.attributes.get("name")) for point in _points(reader, "probe"))
            if names != ["b", "c"]:
                problems.append("an evicted series does not return its cardinality slot (got %s)" % names)
    except Exception as error:  # any surprise means: do not trust eviction
        problems.append("the self-check raised %r" % (error,))
    finally:
        try:
            provider.shutdown()
        except Exception:  # pragma: no cover - a broken SDK's shutdown
            pass
    return problems


def _check_writer(provider: MeterProvider, reader: InMemoryMetricReader, counter: Any) -> list[str]:
    """A bound writer records what the instrument would, and refuses once its series was evicted."""
    attributes = {"namespace": "ns", "name": "bound"}
    writer = BoundSeries(Instruments([counter]), attributes)
    counter.add(1, attributes)
    if not writer.bind(0) or not writer.write(0, 2):
        return ["a bound writer does not write"]
    values = [p.value for p in _points(reader, "probe") if p.attributes.get("name") == "bound"]
    if values != [3]:
        return ["a bound writer's write is not collected as the SDK's (got %r)" % (values,)]
    evict(counter, series_key(attributes))
    if writer.write(0, 1):
        return ["a bound writer writes into an evicted series"]
    if ADAPTER is not None and ADAPTER.get_or_create:
        attributes = {"namespace": "ns", "name": "created"}
        creator = BoundSeries(Instruments([counter]), attributes)
        if not creator.create(0, 4) or not creator.write(0, 1):
            return ["a bound writer does not create its series"]
        values = [p.value for p in _points(reader, "probe") if p.attributes.get("name") == "created"]
        if values != [5]:
            return ["a series a bound writer created is not collected as the SDK's (got %r)" % (values,)]
        evict(counter, series_key(attributes))  # its cardinality slot is the next check's
    gauge = provider.get_meter("otel_gitjob.self_check").create_gauge("probe_gauge")
    attributes = {"namespace": "ns", "name": "cleared"}
    gauge.set(3, attributes)
    cleared = BoundSeries(Instruments([gauge]), attributes)
    if not cleared.bind(0):
        return ["a bound writer does not bind a gauge's series"]
    cleared.clear(0)
    if _points(reader, "probe_gauge"):
        return ["a cleared gauge's series is still collected"]
    return []


_check_lock = ranked_lock("sdk.self_check")
_check_result: SelfCheck | None = None


def self_check(*, rerun: bool = False) -> SelfCheck:
    """Prove, once per process, on a private MeterProvider, that eviction works on the installed SDK. Never raises.

    Args:
        rerun: Run it again instead of returning the cached outcome (tests).
    """
    global _check_result
    with _check_lock:
        if _check_result is None or rerun:
            problems = _run_self_check()
            _check_result = SelfCheck(not problems, ADAPTER.name if ADAPTER else None, tuple(problems))
        return _check_result
