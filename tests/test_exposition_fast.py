"""The fast ``/metrics`` renderer produces exactly today's bytes (reader → exporter's collector → prometheus_client).

Each scrape is one collection rendered twice: by the old path (the exporter's
``_CustomCollector`` translating it into prometheus_client families, then
prometheus_client's ``generate_latest``) and by :class:`FastExposition`, which
keeps its label-string cache from scrape to scrape while series appear, are
forgotten, expire and come back.
"""

from __future__ import annotations

import gc
import gzip
import sys
import tracemalloc
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest
from support import FakeClock

from otel_gitjob import ConfigurationError, GitJobMetrics, Lifecycle, LifecyclePrometheusReader
from otel_gitjob._internal.prometheus import _seam
from otel_gitjob._internal.prometheus.endpoint import MetricsEndpoint, start_http_server
from otel_gitjob._internal.prometheus.renderer import EXPORTER_SUPPORTED, FastExposition, Format
from otel_gitjob._internal.prometheus.sanitize import MAX_LABEL_VALUE

FORMATS = [
    Format(openmetrics=False),  # Prometheus text 0.0.4, what prometheus_client serves by default
    Format(openmetrics=True),  # OpenMetrics 1.0.0
]
if _seam.CLIENT_SHAPE == "escaping":  # prometheus-client 0.23 and later negotiate name escaping
    FORMATS += [
        Format(openmetrics=False, escaping=_seam.ALLOWUTF8),  # text 1.0.0
        Format(openmetrics=True, escaping=_seam.ALLOWUTF8),  # what Prometheus 3 asks for first
        Format(openmetrics=True, escaping=_seam.DOTS),  # label names rewritten: rendered by prometheus_client
    ]

# Label values with what the formats must escape (backslash, quote, newline) and non-ASCII text; no lone
# surrogates, which neither path can encode.
LABEL_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(["\\", '"', "\n", "é", "名", "🙂", ",", "=", "{", "}", " ", "l", "a"]),
        st.characters(blacklist_categories=("Cs",)),
    ),
    min_size=1,
    max_size=12,
)


class World:
    """A lifecycle-managed provider with Fleet's instruments and a few odd ones, and both renderers."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.lifecycle = Lifecycle(clock=self.clock)
        self.registry = CollectorRegistry()
        self.reader: Any = LifecyclePrometheusReader(self.lifecycle, self.registry)
        self.provider = MeterProvider(
            metric_readers=[self.reader],
            views=self.lifecycle.views(),
        )
        self.gitjob = GitJobMetrics(self.provider, lifecycle=self.lifecycle, gauge_ttl=120.0)
        meter = self.provider.get_meter("test")
        self.updown = meter.create_up_down_counter("odd.updown", unit="By", description='quote " back \\ nl \n')
        # A negative first bound: prometheus_client leaves out _sum and _count.
        self.signed = meter.create_histogram(
            "odd_signed_hist", unit="ms", explicit_bucket_boundaries_advisory=(-1.5, 0, 0.25, 2)
        )
        self.float_counter = meter.create_counter("odd_float_total", unit="{repos}")
        # "le" goes between the label keys (app < le < name), or last, or alone.
        self.mixed = meter.create_histogram("odd_mixed_hist", unit="s")
        self.early = meter.create_histogram("odd_early_hist", unit="s")
        self.observed: dict[tuple[str, str], dict[str, Any]] = {}
        meter.create_observable_gauge("odd_status", callbacks=[self._observe], unit="1", description="status")
        self.fast = FastExposition(self.reader._collector)

    def _observe(self, options: CallbackOptions) -> list[Observation]:
        return [Observation(len(key[1]), attributes) for key, attributes in self.observed.items()]

    def close(self) -> None:
        self.provider.shutdown()
        self.lifecycle.shutdown()

    def collect(self) -> Any:
        self.reader.collect()
        datas = self.reader._collector._metrics_datas
        assert len(datas) <= 1
        return datas.popleft() if datas else None  # the SDK hands over nothing when nothing was ever recorded

    def old(self, data: Any, fmt: Format) -> bytes:
        """Today's path on the same collection: the registry's collector translates, prometheus_client formats."""
        collector = self.reader._collector
        callback, collector._callback = collector._callback, None
        try:
            if data is not None:
                collector.add_metrics_data(data)
            return fmt.encode(self.registry)
        finally:
            collector._callback = callback

    def assert_identical(self) -> bytes:
        data = self.collect()
        text = b""
        for fmt in FORMATS:
            old = self.old(data, fmt)
            new = self.fast.render(data, fmt)
            assert new == old, fmt
            text = text or old
        # The cache holds series of this collection only (families that prometheus_client renders hold none).
        live = set()
        if data is not None:
            for rm in data.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        live.update(id(point.attributes) for point in metric.data.data_points)
        for family in self.fast._families.values():
            assert len(family.attributes) == len(family.labels) == len(family.point_keys)
            assert all(id(attributes) in live for attributes in family.attributes)
        return text


# The fast renderer runs with opentelemetry-exporter-prometheus 0.66b0 and later (the newest SDK, where the
# full suite runs); with older exporters (the SDK matrix) /metrics is served the exporter's own way, which
# test_older_exporters_serve_the_exporters_own_way checks.
needs_fast_path = pytest.mark.skipif(
    not EXPORTER_SUPPORTED, reason="this opentelemetry-exporter-prometheus is served the old way"
)


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    yield w
    w.close()


# One step of a scrape interval: what happens to which repo.
OPS = st.lists(
    st.tuples(
        st.sampled_from(["created", "failed", "succeeded", "fetched", "fetch_failed", "odd", "observe", "forget"]),
        st.integers(0, 5),  # which repo of the pool
        st.floats(0, 5000, allow_nan=False),
    ),
    max_size=25,
)


@needs_fast_path
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    names=st.lists(st.tuples(LABEL_TEXT, LABEL_TEXT), min_size=6, max_size=6),
    extra=LABEL_TEXT,
    steps=st.lists(st.tuples(OPS, st.sampled_from([0.0, 60.0, 121.0])), min_size=1, max_size=4),
)
def test_fast_path_is_byte_identical_to_the_old_path_across_scrapes(
    names: list[tuple[str, str]], extra: str, steps: list[tuple[list[tuple[str, int, float]], float]]
) -> None:
    w = World()
    try:
        for ops, advance in steps:
            for op, which, value in ops:
                namespace, name = names[which]
                repo = (namespace, name)
                attrs = {"namespace": namespace, "name": name}
                if op == "created":
                    w.gitjob.job_created(repo)
                elif op == "failed":
                    w.gitjob.job_creation_failed(repo)
                elif op == "succeeded":  # histogram + the transient gauge
                    w.gitjob.job_succeeded(repo, value)
                elif op == "fetched":
                    w.gitjob.commit_fetched(repo, value / 100)
                elif op == "fetch_failed":
                    w.gitjob.commit_fetch_failed(repo)
                elif op == "odd":
                    # Sanitised keys (dots, a leading digit), a key only some points have, non-string values.
                    odd = {**attrs, "repo.url": extra, "1st": which % 2 == 0}
                    if which % 3 == 0:
                        odd["only_some"] = value
                    w.updown.add(which - 2, odd)
                    w.signed.record(value / 1000, attrs)
                    w.float_counter.add(value / 7, {**attrs, "n": which})
                    w.mixed.record(value, {**attrs, "app": extra})
                    w.early.record(value, {"app": extra} if which % 2 else {})
                elif op == "observe":
                    w.observed[repo] = {**attrs, "branch": extra, "paths": "a;b"}
                else:
                    w.observed.pop(repo, None)
                    w.lifecycle.forget(attrs)
            # Transient gauges expire after 120 s (the sweeper runs before each collection).
            w.clock.advance(advance)
            w.assert_identical()
        # Every repo gone: the cache lets go of all their series (only the package's own
        # dropped-measurements counter, which has no repo labels, may remain).
        for namespace, name in names:
            w.lifecycle.forget({"namespace": namespace, "name": name})
        w.observed.clear()
        w.clock.advance(121)
        w.assert_identical()
        for family in w.fast._families.values():
            for attributes in family.attributes:
                assert "namespace" not in attributes, attributes
    finally:
        w.close()


@needs_fast_path
def test_forgotten_and_expired_series_leave_the_cache(world: World) -> None:
    gitjob = world.gitjob
    for i in range(20):
        gitjob.job_created(("ns", "repo-%d" % i))
        gitjob.job_succeeded(("ns", "repo-%d" % i), 3.0)  # histogram + transient gauge
    world.assert_identical()
    assert world.fast.cached_series(own=False) == 20 * 3

    for i in range(10):
        world.lifecycle.forget(("ns", "repo-%d" % i))
    text = world.assert_identical()
    assert world.fast.cached_series(own=False) == 10 * 3
    assert b'name="repo-3"' not in text

    world.clock.advance(121)  # the transient gauges of the other ten expire
    text = world.assert_identical()
    assert world.fast.cached_series(own=False) == 10 * 2
    assert b"fleet_gitjob_duration_seconds_gauge{" not in text

    gitjob.job_succeeded(("ns", "repo-15"), 7.0)  # an expired transient gauge comes back
    gitjob.job_created(("ns", "repo-new"))  # a new repo appears
    text = world.assert_identical()
    assert b'fleet_gitjob_duration_seconds_gauge{name="repo-15",namespace="ns"} 7.0' in text
    assert world.fast.cached_series(own=False) == 10 * 2 + 1 + 1


@needs_fast_path
def test_the_label_cache_holds_one_string_per_repo_and_a_few_pointers_per_series(world: World) -> None:
    repos = 500
    for i in range(repos):
        world.gitjob.job_created(("ns", "repo-%03d" % i))
        world.gitjob.job_succeeded(("ns", "repo-%03d" % i), 3.0)  # histogram + transient gauge
    data = world.collect()
    fast = FastExposition(world.reader._collector)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        assert fast.render(data, Format())
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    held = sum(stat.size_diff for stat in after.compare_to(before, "filename") if "renderer" in str(stat.traceback))
    # A repo's three series share one label string; beyond it each series costs list slots and the shared
    # string's intern entry, not an object of its own (a tuple and a dict entry each cost 130 bytes or more).
    label = sys.getsizeof('{name="repo-000",namespace="ns"}')
    assert fast.cached_series(own=False) == 3 * repos
    assert held / repos <= label + 3 * 64, held / repos


@needs_fast_path
def test_a_cut_label_value_is_counted_once_for_each_series_that_carries_it(world: World) -> None:
    meter = world.provider.get_meter("test")
    attributes = {"namespace": "ns", "name": "big", "paths": "p" * (MAX_LABEL_VALUE + 10)}
    for name in ("big_a", "big_b", "big_c"):  # three families, one label set: its string is made once
        meter.create_counter(name).add(1, attributes)
    for _ in range(2):  # the second scrape renders from the cache
        text = world.fast.render(world.collect(), Format())
    assert text.count(b'paths="' + b"p" * MAX_LABEL_VALUE + b'"} 1.0') == 3
    assert world.fast._counts.truncated_count() == 3


@needs_fast_path
def test_label_strings_are_shared_between_families(world: World) -> None:
    for i in range(5):
        world.gitjob.job_created(("ns", "r%d" % i))
        world.gitjob.commit_fetch_failed(("ns", "r%d" % i))
    world.assert_identical()
    strings = {}
    for family in world.fast._families.values():
        for label in family.labels:
            strings.setdefault(label, set()).add(id(label))
    assert strings and all(len(ids) == 1 for ids in strings.values())


@needs_fast_path
def test_endpoint_serves_the_same_bytes_as_prometheus_client_over_http(world: World, degraded_seam: str | None) -> None:
    from prometheus_client import start_http_server as old_server

    notes = world.provider.get_meter("user").create_counter("user_notes")
    for i in range(30):
        # A quote and a backslash in a repo name; a newline, which no Kubernetes name has, in a user's own label.
        world.gitjob.job_created(("ns-%d" % (i % 3), 'we"ird\\name-%d' % i))
        world.gitjob.job_succeeded(("ns", "r%d" % i), i * 10.0)
        notes.add(1, {"namespace": "ns", "name": "r%d" % i, "note": "line\nbreak"})
    fast, fast_thread = start_http_server(0, "127.0.0.1", world.registry, reader=world.reader, gzip_level=6)
    old, old_thread = old_server(0, "127.0.0.1", world.registry)
    try:
        # Degraded, the endpoint serves prometheus_client's own rendering: the same bytes, more slowly.
        assert fast.endpoint.fast_path() is (degraded_seam != "prometheus" and EXPORTER_SUPPORTED)
        accepts = [
            None,
            "text/plain;version=1.0.0;escaping=allow-utf-8",
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,text/plain;q=0.1",
            "application/openmetrics-text; version=1.0.0",
        ]
        for accept in accepts:
            for encoding in (None, "gzip"):
                got = {}
                for label, server in (("fast", fast), ("old", old)):
                    request = urllib.request.Request("http://127.0.0.1:%d/metrics" % server.server_address[1])
                    if accept:
                        request.add_header("Accept", accept)
                    if encoding:
                        request.add_header("Accept-Encoding", encoding)
                    with urllib.request.urlopen(request, timeout=30) as response:
                        body = response.read()
                        if response.headers.get("Content-Encoding") == "gzip":
                            body = gzip.decompress(body)
                        got[label] = (response.status, response.headers["Content-Type"], body)
                assert got["fast"] == got["old"], (accept, encoding)
                assert b"fleet_gitjobs_created_success_total" in got["fast"][2]
                assert b"line\\nbreak" in got["fast"][2]  # escaped as the old path escapes it
    finally:
        for server, thread in ((fast, fast_thread), (old, old_thread)):
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


@needs_fast_path
def test_a_registry_with_other_collectors_is_served_the_old_way(world: World) -> None:
    from prometheus_client import Counter

    world.gitjob.job_created(("ns", "a"))
    endpoint = MetricsEndpoint(world.registry, world.reader)
    assert endpoint.fast_path()
    Counter("user_own_total", "a user's own metric", registry=world.registry).inc()
    assert not endpoint.fast_path()
    body = b"".join(endpoint.bake(None, None, {})[2])
    assert b"user_own_total 1.0" in body and b"fleet_gitjobs_created_success_total" in body
    assert endpoint.cached_series() == 0


def test_collect_deadline_is_the_readers_and_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    lifecycle = Lifecycle()
    try:
        assert LifecyclePrometheusReader(lifecycle, CollectorRegistry()).collect_timeout_millis == 300_000
        assert (
            LifecyclePrometheusReader(lifecycle, CollectorRegistry(), collect_timeout=2.5).collect_timeout_millis
            == 2500
        )
        monkeypatch.setenv("OTEL_GITJOB_COLLECT_TIMEOUT", "45")
        assert LifecyclePrometheusReader(lifecycle, CollectorRegistry()).collect_timeout_millis == 45_000
        for junk in ("soon", "1e-9", "0", "-5", "nan"):
            monkeypatch.setenv("OTEL_GITJOB_COLLECT_TIMEOUT", junk)
            with pytest.raises(ConfigurationError, match="OTEL_GITJOB_COLLECT_TIMEOUT must be a number"):
                LifecyclePrometheusReader(lifecycle, CollectorRegistry())
        monkeypatch.delenv("OTEL_GITJOB_COLLECT_TIMEOUT")
        with pytest.raises(ConfigurationError, match="at least 0.5"):
            LifecyclePrometheusReader(lifecycle, CollectorRegistry(), collect_timeout=1e-9)
    finally:
        lifecycle.shutdown()


@needs_fast_path
def test_setup_serves_metrics_through_the_fast_path() -> None:
    from prometheus_client import generate_latest

    import otel_gitjob

    instrumentation = otel_gitjob.setup(port=0, collect_timeout=30)
    try:
        instrumentation.gitjob.job_created(("fleet-local", "simple"))
        instrumentation.gitjob.job_succeeded(("fleet-local", "simple"), 4.0)
        endpoint = instrumentation._server.endpoint
        assert endpoint.fast_path()
        host, port = instrumentation.address
        request = urllib.request.Request("http://%s:%d/metrics" % (host, port), headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            body = gzip.decompress(response.read())
        assert endpoint.cached_series(own=False) == 3  # counter, histogram, transient gauge of one repo
        assert body == generate_latest(instrumentation.registry)
        assert b'fleet_gitjob_duration_seconds_bucket{le="5",name="simple",namespace="fleet-local"} 1.0' in body
        reader = endpoint.reader
        assert reader.collect_timeout_millis == 30_000
    finally:
        instrumentation.shutdown()


@needs_fast_path
def test_scrapes_during_a_slow_collection_share_it() -> None:
    import threading
    import time

    from opentelemetry.sdk.metrics._internal.exceptions import MetricsTimeoutError

    lifecycle = Lifecycle()
    registry = CollectorRegistry()
    reader: Any = LifecyclePrometheusReader(lifecycle, registry, collect_timeout=0.5)
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
    calls = []
    delay = [0.8]
    collecting = threading.Event()

    def slow(options: CallbackOptions) -> list[Observation]:
        calls.append(time.monotonic())
        collecting.set()
        time.sleep(delay[0])
        return [Observation(len(calls), {"namespace": "ns", "name": "a"})]

    # Two instruments: the SDK checks its deadline between observable instruments, not inside one.
    provider.get_meter("test").create_observable_gauge("slow_gauge", callbacks=[slow])
    provider.get_meter("test").create_observable_gauge("second_gauge", callbacks=[lambda options: []])
    endpoint = MetricsEndpoint(registry, reader)
    results: list[Any] = []

    def scrape(fmt: Format) -> None:
        try:
            results.append(endpoint.render(fmt))
        except Exception as error:
            results.append(error)

    try:
        # Longer than the deadline: the collection fails, and the scrape that waited for it fails alike.
        threads = [threading.Thread(target=scrape, args=(Format(),)) for _ in range(2)]
        threads[0].start()
        assert collecting.wait(10)  # the second scrape comes while the first one's collection runs
        threads[1].start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(calls) == 1
        assert len(results) == 2 and all(isinstance(r, MetricsTimeoutError) for r in results)

        # Within the deadline: three scrapes, one collection, each rendered in its own format.
        delay[0] = 0.3
        results.clear()
        calls.clear()
        collecting.clear()
        reader.collect_timeout_millis = 30_000
        formats = [Format(), Format(openmetrics=True), Format()]
        threads = [threading.Thread(target=scrape, args=(fmt,)) for fmt in formats]
        threads[0].start()
        assert collecting.wait(10)
        for thread in threads[1:]:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(calls) == 1
        texts = sorted(results, key=len)
        assert texts[0] == texts[1] and texts[2] == texts[0] + b"# EOF\n"
        assert b'slow_gauge{name="a",namespace="ns"} 1.0' in texts[0]
        assert endpoint._result is None  # nothing held once every waiter has its copy
    finally:
        provider.shutdown()
        lifecycle.shutdown()


def test_older_exporters_serve_the_exporters_own_way(degraded_seam: str | None) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    import otel_gitjob

    instrumentation = otel_gitjob.setup(port=0)
    try:
        instrumentation.gitjob.job_created(("fleet-local", "simple"))
        instrumentation.gitjob.job_succeeded(("fleet-local", "simple"), 3.0)
        endpoint = instrumentation._server.endpoint
        assert endpoint.fast_path() is (EXPORTER_SUPPORTED and degraded_seam != "prometheus")
        url = "http://%s:%d/metrics" % instrumentation.address
        with urllib.request.urlopen(url, timeout=30) as response:
            body = response.read().decode()
        # One collection only: before opentelemetry-sdk 1.45 a synchronous gauge reports a value only in the
        # first collection after it was set, so a second collection to compare with would differ.
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body)
            for sample in family.samples
        }
        labels = (("name", "simple"), ("namespace", "fleet-local"))
        assert samples[("fleet_gitjobs_created_success_total", labels)] == 1.0
        assert samples[("fleet_gitjob_duration_seconds_gauge", labels)] == 3.0
        assert samples[("fleet_gitjob_duration_seconds_bucket", (("le", "5"), *labels))] == 1.0
    finally:
        instrumentation.shutdown()


@needs_fast_path
def test_a_scrape_is_answered_in_one_part_per_family_gzipped_as_one_stream(world: World) -> None:
    for i in range(3):
        world.gitjob.job_succeeded(("ns", "r%d" % i), 1.5)
    endpoint = MetricsEndpoint(world.registry, world.reader)
    status, headers, parts = endpoint.bake(None, None, {})
    _, gzip_headers, gzip_parts = endpoint.bake(None, "gzip", {})
    body = b"".join(parts)
    assert status == "200 OK" and len(parts) > 1  # the exposition is never joined into one buffer
    assert body == generate_latest(world.registry)
    assert dict(headers)["Content-Length"] == str(len(body))
    assert dict(gzip_headers)["Content-Encoding"] == "gzip"
    assert gzip.decompress(b"".join(gzip_parts)) == body
    assert dict(gzip_headers)["Content-Length"] == str(sum(map(len, gzip_parts)))
