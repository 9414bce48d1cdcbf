"""Guards the one module that reaches into opentelemetry-sdk internals, on whatever release is installed.

CI runs this file (with the rest of the core suite) on several opentelemetry-sdk
releases across the supported range; each test checks the adapter chosen for
the installed release by behaviour: an evicted series is gone from every
reader, its memory is freed, a racing write never raises, and the cardinality
slot comes back where the SDK has a limit. The degraded mode (an SDK whose
internals moved) is forced, and must still keep forgotten series out of exports.
"""

from __future__ import annotations

import gc
import importlib.metadata
import logging
import re
import threading
import tomllib
import weakref
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry
from support import samples

from otel_gitjob import GitJobMetrics, Lifecycle, LifecyclePrometheusReader
from otel_gitjob._internal.core import _sdk, degraded

SDK = tuple(int(part) for part in importlib.metadata.version("opentelemetry-sdk").split(".")[:3])


def points(reader: InMemoryMetricReader, name: str) -> dict[str, float]:
    data = reader.get_metrics_data()
    found = {}
    for rm in getattr(data, "resource_metrics", None) or ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        found[point.attributes["name"]] = point.value
    return found


def test_the_adapter_matches_the_installed_release():
    expected = (
        "frozenset-relookup" if SDK < (1, 45, 0) else "hashed-relookup" if SDK < (1, 45, 2) else "hashed-get-or-create"
    )
    assert _sdk.ADAPTER is not None and _sdk.ADAPTER.name == expected


def test_the_self_check_passes_on_the_installed_release():
    check = _sdk.self_check(rerun=True)
    assert check.ok, check.problems
    assert Lifecycle().degraded is False


def test_pyproject_declares_the_supported_range():
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
    requirement = next(r for r in project["dependencies"] if r.startswith("opentelemetry-sdk"))
    assert re.search(r">=1\.33(\.0)?\b", requirement) and "<2" in requirement, requirement
    assert (1, 33, 0) <= SDK


def test_eviction_removes_the_series_from_every_reader_and_frees_its_memory():
    lifecycle = Lifecycle()
    first, second = InMemoryMetricReader(), InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[first, second], views=lifecycle.views())
    try:
        counter = provider.get_meter("t").create_counter("c")
        counter.add(3, {"namespace": "ns", "name": "gone"})
        counter.add(5, {"namespace": "ns", "name": "kept"})
        stored = [
            aggregation
            for storage in provider._measurement_consumer._reader_storages.values()
            for match in storage._instrument_view_instrument_matches[counter]
            for aggregation in match._attributes_aggregation.values()
        ]
        refs = [weakref.ref(aggregation) for aggregation in stored]
        del stored
        assert lifecycle.forget(("ns", "gone")) == 1  # one series (held by both readers)
        assert points(first, "c") == points(second, "c") == {"kept": 5}
        assert _sdk.series_count(provider) == 2
        gc.collect()
        assert sum(ref() is not None for ref in refs) == 2  # only the kept series' aggregations remain
    finally:
        provider.shutdown()
        lifecycle.shutdown()


@pytest.mark.skipif(not _sdk.supports_cardinality_limit(), reason="this SDK release has no cardinality limit")
def test_an_evicted_series_returns_its_cardinality_slot():
    lifecycle = Lifecycle()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views(cardinality_limit=3))
    try:
        counter = provider.get_meter("t").create_counter("c")
        for round_ in range(5):  # far more objects over time than the limit, never more than 2 live
            for i in range(2):
                counter.add(1, {"namespace": "ns", "name": "r%d-%d" % (round_, i)})
            assert set(points(reader, "c")) == {"r%d-0" % round_, "r%d-1" % round_}
            lifecycle.forget(("ns", "r%d-0" % round_))
            lifecycle.forget(("ns", "r%d-1" % round_))
    finally:
        provider.shutdown()
        lifecycle.shutdown()


def test_first_writes_racing_forgets_never_raise():
    """The window the SDK leaves before 1.45.2 (re-lookup after its lock), hammered briefly; the full hammer is
    tests/test_concurrency.py."""
    lifecycle = Lifecycle()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
    counter = provider.get_meter("t").create_counter("c")
    errors: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        i = 0
        try:
            while not stop.is_set():
                i += 1
                counter.add(1, {"namespace": "ns", "name": "r%d" % (i % 64)})
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    def forget() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            lifecycle.forget(("ns", "r%d" % (i % 64)))
            lifecycle.observe(("ns", "r%d" % (i % 64)))

    threads = [threading.Thread(target=write) for _ in range(3)] + [threading.Thread(target=forget)]
    for thread in threads:
        thread.start()
    stop.wait(1.0)
    stop.set()
    for thread in threads:
        thread.join()
    provider.shutdown()
    lifecycle.shutdown()
    assert errors == []


def test_a_write_that_loses_the_race_is_dropped_and_counted_not_raised():
    lifecycle = Lifecycle()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
    try:
        counter = provider.get_meter("t").create_counter("c")
        counter.add(1, {"namespace": "ns", "name": "x"})
        (match,) = next(
            iter(provider._measurement_consumer._reader_storages.values())
        )._instrument_view_instrument_matches[counter]
        held = next(iter(match._attributes_aggregation.values()))  # what a writer holds between lookup and use
        lifecycle.forget(("ns", "x"))
        held.aggregate(None)  # the write lands after the eviction...
        if _sdk.ADAPTER is not None and _sdk.ADAPTER.guard_relookup:
            match._attributes_aggregation[("absent",)].aggregate(None)  # ...or its re-lookup misses
        assert lifecycle.drops.counts().get("raced_eviction", 0) >= 1
        assert points(reader, "c") == {}
    finally:
        provider.shutdown()
        lifecycle.shutdown()


def test_an_sdk_whose_internals_moved_runs_degraded_with_one_warning_and_still_hides_forgotten_series(
    monkeypatch, caplog
):
    monkeypatch.setattr(_sdk, "_check_result", _sdk.SelfCheck(False, None, ("_ViewInstrumentMatch is gone",)))
    monkeypatch.setattr(degraded, "_checked", {})
    with caplog.at_level(logging.WARNING, logger="otel_gitjob"):
        lifecycle = Lifecycle()
        Lifecycle().shutdown()  # a second lifecycle warns no more
    warnings = [r for r in caplog.records if "seam runs degraded" in r.getMessage()]
    assert len(warnings) == 1
    assert "1.33.0 through 1.45.2" in warnings[0].getMessage()
    assert lifecycle.degraded
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[LifecyclePrometheusReader(lifecycle, registry)], views=lifecycle.views())
    try:
        gitjob = GitJobMetrics(provider, lifecycle=lifecycle, gauge_ttl=1.0)
        gitjob.job_created(("ns", "gone"))
        gitjob.job_created(("ns", "kept"))
        assert lifecycle.forget(("ns", "gone")) == 1
        got = samples(registry)
        created = {dict(labels)["name"] for (name, labels) in got if name == "fleet_gitjobs_created_success_total"}
        assert created == {"kept"}
        assert got[("otel_gitjob_degraded", (("seam", "sdk"),))] == 1.0
        stored = [
            match._attributes_aggregation
            for storage in provider._measurement_consumer._reader_storages.values()
            for instrument, matches in storage._instrument_view_instrument_matches.items()
            if instrument.name == gitjob.names["created_success"]
            for match in matches
        ]
        assert [len(table) for table in stored] == [2]  # nothing was evicted: the SDK was not touched
        lifecycle.observe(("ns", "gone"))  # alive again: its old count is gone, a new write starts afresh
        assert "gone" not in {
            dict(labels)["name"]
            for (name, labels) in samples(registry)
            if name == "fleet_gitjobs_created_success_total"
        }
        gitjob.job_created(("ns", "gone"))
        assert samples(registry)[("fleet_gitjobs_created_success_total", (("name", "gone"), ("namespace", "ns")))] == 1
    finally:
        provider.shutdown()
        lifecycle.shutdown()


def _tables(instrument: object) -> list[dict]:
    return [match._attributes_aggregation for match in _sdk._matches_of(instrument)]


def test_a_bound_series_creates_its_aggregations_sharing_one_key_and_one_attribute_set():
    readers = [InMemoryMetricReader(), InMemoryMetricReader()]
    provider = MeterProvider(metric_readers=readers)
    try:
        meter = provider.get_meter("t")
        counters = [meter.create_counter(name) for name in ("a", "b", "c")]
        for counter in counters:  # each reader meets each instrument
            counter.add(1, {"namespace": "ns", "name": "first"})
        attributes = {"namespace": "ns", "name": "bound"}
        series = _sdk.BoundSeries(_sdk.Instruments(counters), attributes)
        created = [series.create(i, 2) for i in range(3)]
        if not (_sdk.ADAPTER and _sdk.ADAPTER.get_or_create):
            assert created == [False] * 3  # the instrument's own path creates it on these releases
            return
        assert created == [True] * 3
        assert all(series.write(i, 3) for i in range(3))
        for reader in readers:
            assert [points(reader, name)["bound"] for name in ("a", "b", "c")] == [5, 5, 5]
        key = _sdk.series_key(attributes)
        stored = [
            (next(k for k in table if k == key), table[key]._attributes) for c in counters for table in _tables(c)
        ]
        assert len(stored) == 6
        assert {id(k) for k, _ in stored} == {id(stored[0][0])} and all(a is attributes for _, a in stored)
    finally:
        provider.shutdown()


def test_a_series_bound_after_one_reader_collected_still_reaches_the_other_reader():
    from opentelemetry.metrics import Observation

    readers = [InMemoryMetricReader(), InMemoryMetricReader()]
    provider = MeterProvider(metric_readers=readers)
    try:
        other = {"namespace": "ns", "name": "other"}
        gauge = provider.get_meter("t").create_observable_gauge("g", callbacks=[lambda _: [Observation(7, other)]])
        readers[0].collect()  # only this reader's storage has met the observable instrument
        series = _sdk.BoundSeries(_sdk.Instruments([gauge]), {"namespace": "ns", "name": "bound"})
        created = series.create(0, 8)
        if not (_sdk.ADAPTER and _sdk.ADAPTER.get_or_create):
            assert not created and not series.bind(0)  # the instrument's own path creates series on these releases
            return
        assert created and series.write(0, 9)
        assert [points(reader, "g") for reader in readers] == [{"other": 7, "bound": 9}] * 2
    finally:
        provider.shutdown()


@pytest.mark.skipif(
    not (_sdk.ADAPTER and _sdk.ADAPTER.get_or_create), reason="no _get_or_create_aggregation before SDK 1.45.2"
)
def test_the_self_check_refuses_a_get_or_create_that_loses_the_write(monkeypatch):
    original = _sdk._ViewInstrumentMatch._get_or_create_aggregation

    def detached(self, key, attributes):  # the bound writer's series gets an aggregation nobody collects
        if attributes and attributes.get("name") == "created":
            original(self, key, attributes)
            return original(self, ("elsewhere",), attributes)
        return original(self, key, attributes)

    monkeypatch.setattr(_sdk._ViewInstrumentMatch, "_get_or_create_aggregation", detached)
    try:
        check = _sdk.self_check(rerun=True)
        assert not check.ok and any("created is not collected" in problem for problem in check.problems)
    finally:
        monkeypatch.undo()
        assert _sdk.self_check(rerun=True).ok


def test_the_self_check_refuses_a_seam_whose_cleared_gauge_is_still_collected(monkeypatch):
    monkeypatch.setattr(_sdk.BoundSeries, "clear", lambda self, i: None)
    try:
        check = _sdk.self_check(rerun=True)
        assert not check.ok and check.problems == ("a cleared gauge's series is still collected",)
    finally:
        monkeypatch.undo()
        assert _sdk.self_check(rerun=True).ok
