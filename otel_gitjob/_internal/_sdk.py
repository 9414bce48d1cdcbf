"""The one module that touches opentelemetry-sdk internals.

The OTel metrics API has no way to delete an attribute set
(opentelemetry-specification #2232, #3062), so freeing a forgotten repo's
storage means reaching into the SDK. Everything that does so lives here, is
checked against a tested SDK range at import, and is exercised by
``tests/test_sdk_internals.py`` so that an SDK release moving these internals
fails loudly instead of silently leaking.

What we rely on (opentelemetry-sdk 1.45):

* ``_ViewInstrumentMatch._attributes_aggregation``: a dict from
  ``_hash_attributes(attributes)`` to the aggregation of that attribute set,
  guarded by ``_ViewInstrumentMatch._lock``;
* ``MetricReaderStorage._instrument_view_instrument_matches``: instrument to its
  view matches, one storage per reader;
* ``SynchronousMeasurementConsumer._reader_storages``, reachable from every SDK
  instrument as ``instrument._measurement_consumer``;
* ``View._match``, ``View._aggregation`` and ``_DropAggregation``.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal._view_instrument_match import (
    _hash_attributes,
    _ViewInstrumentMatch,
)
from opentelemetry.sdk.metrics._internal.aggregation import _Aggregation, _DropAggregation
from opentelemetry.sdk.metrics._internal.measurement_consumer import SynchronousMeasurementConsumer
from opentelemetry.sdk.metrics._internal.metric_reader_storage import MetricReaderStorage
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.metrics.view import Aggregation, View
from opentelemetry.sdk.version import __version__ as SDK_VERSION

__all__ = [
    "SDK_VERSION",
    "TESTED_SDK_RANGE",
    "Placeholder",
    "TouchingAggregation",
    "SelectiveView",
    "check_sdk_internals",
    "evict",
    "exporter_preferences",
    "series_count",
    "series_key",
    "view_aggregation",
    "view_with_aggregation",
    "views_of_reader",
]

TESTED_SDK_RANGE = ((1, 45), (1, 46))  # [low, high) on (major, minor); pyproject pins the same range.

SeriesKey = Hashable


def series_key(attributes: Mapping[str, Any]) -> SeriesKey:
    """The key under which the SDK stores this attribute set's aggregation."""
    return _hash_attributes(attributes)


class Placeholder(_DropAggregation):
    """Stands in the SDK storage for a late write to a forgotten repo.

    The SDK creates an aggregation for an unseen attribute set and stores it
    whatever we return, so a blocked write leaves this inert object behind.
    It aggregates and exports nothing and is evicted on the next collection or
    when the block lifts, so it occupies a cardinality slot only briefly.
    """

    def __init__(self, attributes: Mapping[str, Any], on_drop: Callable[[], None] | None) -> None:
        super().__init__(attributes, reservoir_builder=_no_reservoir)
        self._on_drop = on_drop

    def aggregate(self, measurement: Any, should_sample_exemplar: bool = True) -> None:
        if self._on_drop is not None:
            self._on_drop()


def _no_reservoir(*args: Any, **kwargs: Any) -> Any:
    return None


def evict(instrument: Any, key: SeriesKey, only: _Aggregation | None = None) -> int:
    """Remove one attribute set of ``instrument`` from every reader's storage.

    Args:
        instrument: The SDK instrument whose storage holds the series.
        key: The series key (see :func:`series_key`).
        only: When given, remove the entry only if it is this very object, so
            that evicting a placeholder never removes a real series created
            after it.

    Returns:
        The number of real (non-placeholder) aggregations removed.
    """
    consumer = getattr(instrument, "_measurement_consumer", None)
    storages = getattr(consumer, "_reader_storages", None)
    if not storages:
        return 0
    removed = 0
    for storage in list(storages.values()):
        for match in storage._instrument_view_instrument_matches.get(instrument, ()):
            with match._lock:
                table = match._attributes_aggregation
                found = table.get(key)
                if found is None or (only is not None and found is not only):
                    continue
                del table[key]
            if not isinstance(found, Placeholder):
                removed += 1
    return removed


def series_count(provider: MeterProvider, include_placeholders: bool = False) -> int:
    """Attribute sets held in all reader storages of ``provider`` (tests and benchmarks)."""
    total = 0
    for storage in provider._measurement_consumer._reader_storages.values():
        for matches in list(storage._instrument_view_instrument_matches.values()):
            for match in matches:
                with match._lock:
                    for aggregation in match._attributes_aggregation.values():
                        if include_placeholders or not isinstance(aggregation, Placeholder):
                            total += 1
    return total


def views_of_reader(reader: MetricReader) -> tuple[View, ...] | None:
    """The views of the MeterProvider ``reader`` is registered with, or None if unregistered."""
    collect = getattr(reader, "_collect", None)
    consumer = getattr(collect, "__self__", None)
    config = getattr(consumer, "_sdk_config", None)
    if config is None:
        return None
    return tuple(config.views)


def view_aggregation(view: View) -> Aggregation:
    return view._aggregation


def view_with_aggregation(view: View, aggregation: Aggregation) -> View:
    """A copy of a user's view whose aggregation is replaced (the View has no public setter)."""
    clone = copy.copy(view)
    clone._aggregation = aggregation
    return clone


class SelectiveView(View):
    """A catch-all view that stands aside for instruments matched by other views.

    The SDK applies every matching view, so a plain ``instrument_name="*"`` view
    next to a user's view would export those instruments twice.
    """

    def __init__(
        self, aggregation: Aggregation, excluded: Iterable[View], cardinality_limit: int | None = None
    ) -> None:
        super().__init__(instrument_name="*", aggregation=aggregation, aggregation_cardinality_limit=cardinality_limit)
        self._excluded = tuple(excluded)

    def _match(self, instrument: Any) -> bool:
        return super()._match(instrument) and not any(view._match(instrument) for view in self._excluded)


_checked = threading.Event()


def check_sdk_internals() -> None:
    """Raise ImportError when the installed SDK is outside the tested range or its internals moved."""
    if _checked.is_set():
        return
    version = tuple(int(part) for part in SDK_VERSION.split(".")[:2])
    low, high = TESTED_SDK_RANGE
    problems = []
    if not low <= version < high:
        problems.append("opentelemetry-sdk %s is outside the tested range >=%d.%d,<%d.%d" % (SDK_VERSION, *low, *high))
    expectations = [
        (_ViewInstrumentMatch, "_get_or_create_aggregation"),
        (MetricReaderStorage, "_get_or_init_view_instrument_match"),
        (SynchronousMeasurementConsumer, "consume_measurement"),
        (View, "_match"),
        (_DropAggregation, "aggregate"),
    ]
    for owner, attribute in expectations:
        if not hasattr(owner, attribute):
            problems.append("%s.%s is gone" % (owner.__name__, attribute))
    init_names = _ViewInstrumentMatch.__init__.__code__.co_names
    for attribute in ("_attributes_aggregation", "_lock"):
        if attribute not in init_names:
            problems.append("_ViewInstrumentMatch no longer sets %s" % attribute)
    for owner, attribute in (
        (MetricReaderStorage, "_instrument_view_instrument_matches"),
        (SynchronousMeasurementConsumer, "_reader_storages"),
    ):
        if attribute not in owner.__init__.__code__.co_names:
            problems.append("%s no longer sets %s" % (owner.__name__, attribute))
    if problems:
        raise ImportError(
            "otel-gitjob cannot free SDK storage with this opentelemetry-sdk: "
            + "; ".join(problems)
            + ". Install an opentelemetry-sdk in the tested range, or upgrade otel-gitjob."
        )
    _checked.set()


def exporter_preferences(exporter: Any) -> tuple[dict[type, Any], dict[type, Aggregation]]:
    """The temporality and aggregation a MetricExporter asks its reader for (no public getter)."""
    return dict(exporter._preferred_temporality or {}), dict(exporter._preferred_aggregation or {})


class TouchingAggregation(_Aggregation):
    """Delegates to a real aggregation and reports each measurement it aggregates.

    Used for transient instruments only, so the extra call costs nothing elsewhere.
    """

    __slots__ = ("_inner", "_touch", "_entry")

    def __init__(self, inner: _Aggregation, touch: Callable[[Any, Any], None], entry: Any) -> None:
        # Not calling super().__init__: this object holds no data of its own.
        self._inner = inner
        self._touch = touch
        self._entry = entry

    def aggregate(self, measurement: Any, should_sample_exemplar: bool = True) -> None:
        self._inner.aggregate(measurement, should_sample_exemplar)
        self._touch(self._entry, measurement)

    def collect(self, collection_aggregation_temporality: Any, collection_start_nano: int) -> Any:
        return self._inner.collect(collection_aggregation_temporality, collection_start_nano)
