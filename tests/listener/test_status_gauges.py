"""The status gauges' values written straight into the SDK's aggregations, through a real Lifecycle.

Each object's series on the one-series gauges is bound once (``kube/gauges.py``'s ``_Series``) and written
without an ``Observation`` at every later collection; with the SDK seam forced degraded the gauges take the
SDK's API only. Either way every reader exports exactly what the cache says.
"""

from __future__ import annotations

import gc
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider, ObservableGauge
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from sdk_storage import sdk_matches
from support import points_of

import otel_gitjob
from otel_gitjob._internal.core import _sdk, degraded
from otel_gitjob._internal.kube import gauges
from otel_gitjob._internal.kube.cache import ObjectCache
from otel_gitjob._internal.kube.events import ADDED, DELETED, MODIFIED
from otel_gitjob.fleet import GITREPO

NAMES = [spec.name for spec in GITREPO.gauges]
READY = "fleet_gitrepo_ready_clusters"


def gitrepo(name: str, ready: Any = 1, branch: str = "main") -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": name, "uid": "uid-" + name},
        "spec": {"repo": "https://example.com/r", "branch": branch},
        "status": {"desiredReadyClusters": 3, "readyClusters": ready, "resourceCounts": {"ready": 4}},
    }


def labels(name: str, branch: str = "main") -> tuple[tuple[str, str], ...]:
    return (("branch", branch), ("name", name), ("namespace", "ns"), ("paths", ""), ("repo", "https://example.com/r"))


def expected(name: str, ready: Any = 1, branch: str = "main") -> dict[tuple[str, Any], Any]:
    """The ten points of one repo as ``gitrepo`` builds it (an absent count reads 0, a bad one has no point)."""
    values = dict.fromkeys(NAMES, 0)
    values.update({"fleet_gitrepo_desired_ready_clusters": 3, READY: ready, "fleet_gitrepo_resources_ready": 4})
    if not isinstance(ready, int) or ready < 0:
        del values[READY]
    return {(metric, labels(name, branch)): value for metric, value in values.items()}


def fleet(reader: InMemoryMetricReader) -> dict[tuple[str, Any], Any]:
    """The status gauges' points of the reader's next collection."""
    return {key: value for key, value in points_of(reader.get_metrics_data()).items() if key[0] in NAMES}


class Setup:
    """A Lifecycle, a MeterProvider with ``readers`` and its views, and GitRepo's gauges reading ``cache``."""

    def __init__(self, readers: int = 1, delta: bool = False) -> None:
        self.lifecycle = otel_gitjob.Lifecycle()
        self.readers = [InMemoryMetricReader() for _ in range(readers)]
        if delta:  # a push reader exporting deltas beside the pull reader
            self.readers[-1] = InMemoryMetricReader(
                preferred_temporality={ObservableGauge: AggregationTemporality.DELTA}
            )
        self.provider = MeterProvider(metric_readers=self.readers, views=self.lifecycle.views())
        self.cache = ObjectCache()
        self.gauges = gauges.serve_kind(
            self.lifecycle, GITREPO, self.cache, meter_provider=self.provider, status_gauges=True, user="t", scope="t"
        )

    def put(self, obj: dict[str, Any], event: str = MODIFIED) -> None:
        self.cache.apply_event(event, GITREPO.project(obj))
        if event == ADDED:
            self.lifecycle.observe(GITREPO.project(obj).ref, kind="GitRepo")

    def delete(self, name: str, forget: bool = True) -> None:
        state = GITREPO.project(gitrepo(name))
        self.cache.apply_event(DELETED, state)
        if forget:
            self.lifecycle.forget(state.ref, kind="GitRepo")

    def close(self) -> None:
        self.provider.shutdown()
        self.lifecycle.shutdown()


@pytest.fixture
def setup() -> Iterator[Setup]:
    made = Setup()
    yield made
    made.close()


def bound_series(setup: Setup) -> list[Any]:
    """Every live per-object series record (``_Series``) of the setup's gauges, wherever it is held."""
    gc.collect()
    (instruments,) = {
        id(callback._objects): callback._objects.instruments
        for callback in gc.get_objects()
        if type(callback) is gauges._Callback and callback._cache is setup.cache
    }.values()
    return [
        record for record in gc.get_objects() if type(record) is gauges._Series and record._instruments is instruments
    ]


def scenario(setup: Setup) -> list[dict[tuple[str, Any], Any]]:
    """Adds, value edits, a bad value, a label edit, a deletion: each reader's collections after each step."""
    steps = [
        lambda: [setup.put(gitrepo(name), ADDED) for name in ("a", "b", "c")],
        lambda: None,  # bound now
        lambda: setup.put(gitrepo("a", ready=2)),
        lambda: setup.put(gitrepo("b", ready="many")),  # a bad value: no point
        lambda: setup.put(gitrepo("b", ready=3)),
        lambda: setup.put(gitrepo("c", branch="next")),  # the old label set goes
        lambda: setup.delete("a"),
        lambda: setup.put(gitrepo("a", ready=5), ADDED),
    ]
    collections = []
    for step in steps:
        step()
        collections.extend(fleet(reader) for reader in setup.readers)
    return collections


@pytest.mark.parametrize(("readers", "delta"), [(1, False), (2, False), (2, True)])
def test_a_healthy_and_a_degraded_seam_export_the_same_status_gauges(
    monkeypatch: pytest.MonkeyPatch, readers: int, delta: bool
) -> None:
    runs = {}
    for seam in ("healthy", "degraded"):
        monkeypatch.setattr(degraded, "_checked", {})
        if seam == "degraded":
            monkeypatch.setenv(degraded.FORCE_ENV, "sdk")
        made = Setup(readers, delta)
        try:
            assert made.lifecycle.degraded == (seam == "degraded")
            runs[seam] = scenario(made)
            # Bound writes (every gauge's bit held) only while the seam is trusted.
            held = {record.state.ref.name: record.held for record in bound_series(made)}
            # "a" was created again in the last step: by the bound series itself where the SDK allows.
            created = 1023 if _sdk.ADAPTER is not None and _sdk.ADAPTER.get_or_create else 0
            assert held == ({"a": 0, "b": 0, "c": 0} if seam == "degraded" else {"a": created, "b": 1023, "c": 1023})
        finally:
            made.close()
    assert runs["healthy"] == runs["degraded"]
    last = runs["healthy"][-readers:]
    assert last == [{**expected("a", ready=5), **expected("b", ready=3), **expected("c", branch="next")}] * readers
    assert runs["healthy"][3 * readers] == {**expected("a", ready=2), **expected("b", ready="many"), **expected("c")}


def test_steady_collections_write_bound_series_and_yield_no_observations(setup: Setup) -> None:
    setup.put(gitrepo("a"), ADDED)
    (reader,) = setup.readers
    assert fleet(reader) == expected("a")  # creates the series (older SDKs: through Observations)
    assert fleet(reader) == expected("a")  # bound (older SDKs: binds)
    setup.put(gitrepo("a", ready=7))
    (record,) = bound_series(setup)
    assert record.held == 2 ** len(NAMES) - 1
    callbacks = [c for c in gc.get_objects() if type(c) is gauges._Callback and c._cache is setup.cache]
    assert len(callbacks) == len(NAMES)
    assert [list(callback(None)) for callback in callbacks] == [[]] * len(NAMES)
    assert fleet(reader) == expected("a", ready=7)


def test_a_label_edit_retires_the_old_series_of_every_gauge(setup: Setup) -> None:
    setup.put(gitrepo("a"), ADDED)
    (reader,) = setup.readers
    fleet(reader)
    fleet(reader)
    setup.put(gitrepo("a", branch="next"))
    assert fleet(reader) == expected("a", branch="next")
    assert [_sdk.series_count(setup.provider, instrument=name) for name in NAMES] == [1] * len(NAMES)
    setup.put(gitrepo("a"))  # and back
    assert fleet(reader) == expected("a")
    assert [_sdk.series_count(setup.provider, instrument=name) for name in NAMES] == [1] * len(NAMES)


def test_an_object_gone_from_the_cache_leaves_no_series_record(setup: Setup) -> None:
    for name in ("a", "b", "c"):
        setup.put(gitrepo(name), ADDED)
    (reader,) = setup.readers
    fleet(reader)
    fleet(reader)
    setup.delete("b")
    assert fleet(reader) == {**expected("a"), **expected("c")}
    assert sorted(record.state.ref.name for record in bound_series(setup)) == ["a", "c"]
    assert _sdk.series_count(setup.provider) == 2 * len(NAMES)


def test_a_reader_that_did_not_collect_keeps_no_value_written_for_another() -> None:
    """A bound write reaches both readers; a value gone (bad, or the object left the cache) leaves both."""
    made = Setup(readers=2)
    first, second = made.readers
    try:
        for name in ("a", "b"):
            made.put(gitrepo(name), ADDED)
        for _ in range(2):
            assert fleet(first) == fleet(second) == {**expected("a"), **expected("b")}
        fleet(first)  # writes both readers' aggregations
        made.put(gitrepo("a", ready="bad"))
        made.delete("b", forget=False)  # its forget still in the work queue
        assert fleet(second) == expected("a", ready="bad")
        made.put(gitrepo("a", ready=2))
        assert fleet(second) == fleet(first) == expected("a", ready=2)
    finally:
        made.close()


def test_collections_on_two_readers_against_edits_and_forgets_end_with_exactly_the_cache() -> None:
    made = Setup(readers=2)
    names = ["r%d" % i for i in range(30)]
    for name in names:
        made.put(gitrepo(name), ADDED)
    stop = threading.Event()
    errors: list[BaseException] = []
    lock = threading.Lock()  # one writer of the cache at a time, as the listener's watch thread

    def loop(body: Any) -> None:
        rng = random.Random(threading.get_ident())
        try:
            while not stop.is_set():
                body(rng)
        except BaseException as error:  # reported below
            errors.append(error)

    def edit(rng: random.Random) -> None:
        with lock:
            name = rng.choice(names)
            if made.cache.get(("ns", name)) is not None:
                ready = rng.choice([0, 1, 2, "bad"])
                made.put(gitrepo(name, ready=ready, branch=rng.choice(["main", "next"])))

    def churn(rng: random.Random) -> None:
        with lock:
            name = rng.choice(names)
            if made.cache.get(("ns", name)) is not None:
                made.delete(name)
            else:
                made.put(gitrepo(name), ADDED)

    threads = [threading.Thread(target=loop, args=(lambda rng, r=r: fleet(r),)) for r in made.readers]
    threads += [threading.Thread(target=loop, args=(edit,)), threading.Thread(target=loop, args=(churn,))]
    try:
        for thread in threads:
            thread.start()
        stop.wait(2.0)
        stop.set()
        for thread in threads:
            thread.join(10)
        assert errors == []
        want: dict[tuple[str, Any], Any] = {}
        for state in made.cache.snapshot():
            want.update(expected(state.ref.name, state.values[1], state.attributes["branch"]))
        for _ in range(2):  # the first collection retires what changed since the last
            got = [fleet(reader) for reader in made.readers]
        assert got == [want, want]
        assert len(bound_series(made)) == len(made.cache)
        live = {frozenset(state.attributes.items()) for state in made.cache.snapshot()}
        stored = {
            frozenset(aggregation._attributes.items())
            for gauge in made.gauges
            for match in sdk_matches(gauge)
            for aggregation in list(match._attributes_aggregation.values())
            if not isinstance(aggregation, _sdk.Placeholder)  # a late write's, to a forgotten object
        }
        assert stored == live, "no series of a forgotten object or an old label set"
    finally:
        stop.set()
        made.close()
