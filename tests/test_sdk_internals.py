"""Guards the one module that reaches into opentelemetry-sdk internals.

If an SDK release moves what ``otel_gitjob._internal._sdk`` relies on, these
tests fail with a message naming the internal, instead of the library silently
keeping deleted series.
"""

from __future__ import annotations

import importlib.metadata

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal._view_instrument_match import _ViewInstrumentMatch
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_gitjob import Lifecycle
from otel_gitjob._internal import _sdk


def test_installed_sdk_is_inside_the_tested_range_pinned_in_pyproject():
    version = tuple(int(x) for x in importlib.metadata.version("opentelemetry-sdk").split(".")[:2])
    low, high = _sdk.TESTED_SDK_RANGE
    assert low <= version < high
    requirement = next(r for r in importlib.metadata.requires("otel-gitjob") if r.startswith("opentelemetry-sdk"))
    assert ">=%d.%d" % low in requirement and "<%d.%d" % high in requirement


def test_check_passes_on_the_installed_sdk():
    _sdk._checked.clear()
    _sdk.check_sdk_internals()
    assert _sdk._checked.is_set()


def test_check_fails_loudly_when_an_internal_moves(monkeypatch):
    _sdk._checked.clear()
    monkeypatch.delattr(_ViewInstrumentMatch, "_get_or_create_aggregation")
    with pytest.raises(ImportError, match="_ViewInstrumentMatch._get_or_create_aggregation is gone"):
        _sdk.check_sdk_internals()
    _sdk._checked.clear()


def test_check_fails_loudly_outside_the_tested_range(monkeypatch):
    _sdk._checked.clear()
    monkeypatch.setattr(_sdk, "SDK_VERSION", "1.99.0")
    with pytest.raises(ImportError, match="outside the tested range"):
        _sdk.check_sdk_internals()
    _sdk._checked.clear()


def test_storage_layout_matches_what_eviction_relies_on():
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    counter = provider.get_meter("probe").create_counter("probe")
    attributes = {"namespace": "ns", "name": "n"}
    counter.add(1, attributes)

    storage = counter._measurement_consumer._reader_storages[reader]
    (match,) = storage._instrument_view_instrument_matches[counter]
    assert _sdk.series_key(attributes) in match._attributes_aggregation
    assert hasattr(match._lock, "acquire")

    assert _sdk.evict(counter, _sdk.series_key(attributes)) == 1
    assert match._attributes_aggregation == {}
    assert _sdk.series_count(provider) == 0
    provider.shutdown()


def test_series_creation_reaches_the_view_aggregation_with_the_stored_attributes():
    lifecycle = Lifecycle()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
    counter = provider.get_meter("probe").create_counter("probe")
    counter.add(1, {"namespace": "ns", "name": "n"})
    assert lifecycle.tracked_objects() == 1
    assert lifecycle.forget(("ns", "n")) == 1
    assert _sdk.series_count(provider) == 0
    provider.shutdown()
