"""Forgetting a repo: every series of it, from every reader, memory freed, no resurrection."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from prometheus_client import CollectorRegistry, generate_latest
from support import sample_names_for, samples

from otel_gitjob import (
    ConfigurationError,
    GitJobMetrics,
    Lifecycle,
    LifecycleExporter,
    LifecyclePrometheusReader,
    ObjectRef,
)
from otel_gitjob._internal.core import _sdk
from otel_gitjob._internal.core.lifecycle import hooks_of

# The export-correctness tests run healthy and with each seam forced degraded (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("degraded_seam")

A = ObjectRef("team-a", "repo-a", uid="uid-1")
B = ObjectRef("team-b", "repo-b")
LABELS_A = (("name", "repo-a"), ("namespace", "team-a"))
LABELS_B = (("name", "repo-b"), ("namespace", "team-b"))


def record_everything(gitjob: GitJobMetrics, repo: object) -> None:
    gitjob.job_created(repo)
    gitjob.job_creation_failed(repo)
    gitjob.job_succeeded(repo, 7.0)
    gitjob.commit_fetched(repo, 0.4)
    gitjob.commit_fetch_failed(repo)


def points_for(reader: InMemoryMetricReader, name: str | None) -> list:
    """The points of one collection carrying ``name`` (all points when None)."""
    data = reader.get_metrics_data()
    found = []
    if data is None:
        return found
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                found += [p for p in metric.data.data_points if name is None or p.attributes.get("name") == name]
    return found


def test_forget_removes_all_seven_series_from_every_reader_and_leaves_others(
    gitjob, lifecycle, registry, memory_reader
):
    record_everything(gitjob, A)
    record_everything(gitjob, B)
    assert sample_names_for(registry, name="repo-a")

    assert lifecycle.forget(A) == 7

    assert sample_names_for(registry, name="repo-a") == set()
    got = samples(registry)
    assert got[("fleet_gitjobs_created_success_total", LABELS_B)] == 1
    assert got[("fleet_gitjob_duration_seconds_count", LABELS_B)] == 1
    # One collection: before opentelemetry-sdk 1.39 a synchronous gauge reports a value only in the first
    # collection after it was set.
    collected = points_for(memory_reader, None)
    assert [p for p in collected if p.attributes.get("name") == "repo-a"] == []
    assert len([p for p in collected if p.attributes.get("name") == "repo-b"]) == 7


def test_forget_covers_the_users_own_instruments_on_the_same_provider(gitjob, provider, lifecycle, registry):
    meter = provider.get_meter("my-controller")
    reconciles = meter.create_counter("my_reconciles")
    queue_age = meter.create_histogram("my_queue_age_seconds", unit="s")
    reconciles.add(1, {"namespace": "team-a", "name": "repo-a", "result": "ok"})
    reconciles.add(1, {"namespace": "team-a", "name": "repo-a", "result": "error"})
    queue_age.record(0.5, {"namespace": "team-a", "name": "repo-a"})
    reconciles.add(1, {"result": "ok"})  # no identity: not managed

    assert lifecycle.forget(("team-a", "repo-a")) == 3

    assert sample_names_for(registry, name="repo-a") == set()
    assert samples(registry)[("my_reconciles_total", (("result", "ok"),))] == 1


def test_forget_of_an_unknown_repo_returns_zero(lifecycle, gitjob):
    assert lifecycle.forget(("nowhere", "nothing")) == 0


@pytest.mark.seam_internals("sdk")
def test_forget_frees_the_sdk_storage_of_every_reader(gitjob, provider, lifecycle):
    baseline = _sdk.series_count(provider)
    record_everything(gitjob, A)
    assert _sdk.series_count(provider) == baseline + 2 * 7  # two readers

    lifecycle.forget(A)

    assert _sdk.series_count(provider, include_placeholders=True) == baseline
    assert hooks_of(lifecycle).registry.tracked_objects() == 0


@pytest.mark.seam_internals("sdk")
def test_five_thousand_repos_churned_never_overflow_and_the_last_keeps_its_labels(lifecycle, registry):
    provider = MeterProvider(metric_readers=[LifecyclePrometheusReader(lifecycle, registry)], views=lifecycle.views())
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle)
    try:
        for i in range(5000):
            repo = ("churn", "repo-%d" % i)
            gitjob.job_created(repo)
            gitjob.job_succeeded(repo, 1.0)
            if i % 500 == 0:
                assert "overflow" not in generate_latest(registry).decode()
            if i < 4999:
                lifecycle.forget(repo)
        text = generate_latest(registry).decode()
        assert "overflow" not in text
        assert (
            samples(registry)[("fleet_gitjobs_created_success_total", (("name", "repo-4999"), ("namespace", "churn")))]
            == 1
        )
        assert hooks_of(lifecycle).registry.tracked_objects() == 1
    finally:
        provider.shutdown()


def test_recreated_repo_starts_from_zero_with_a_new_start_time(gitjob, lifecycle, registry, memory_reader):
    for _ in range(3):
        gitjob.job_created(A)
    old_start = points_for(memory_reader, "repo-a")[0].start_time_unix_nano
    lifecycle.forget(A)

    lifecycle.observe(A)
    gitjob.job_created(A)

    assert samples(registry)[("fleet_gitjobs_created_success_total", LABELS_A)] == 1
    (point,) = points_for(memory_reader, "repo-a")
    assert point.value == 1
    assert point.start_time_unix_nano > old_start


def test_late_write_after_forget_is_dropped_and_counted(gitjob, lifecycle, registry):
    gitjob.job_created(A)
    lifecycle.forget(A)

    gitjob.job_created(A)  # a reconcile that was still running
    gitjob.job_succeeded(A, 3.0)

    assert sample_names_for(registry, name="repo-a") == set()
    assert lifecycle.drops.counts()["forgotten_repo"] == 3  # counter, histogram, gauge: once each


def test_write_with_a_new_uid_lifts_the_block(gitjob, lifecycle, registry):
    gitjob.job_created(A)
    lifecycle.forget(A)
    gitjob.job_created(A)  # same uid: late write, dropped

    gitjob.job_created(ObjectRef("team-a", "repo-a", uid="uid-2"))

    assert samples(registry)[("fleet_gitjobs_created_success_total", LABELS_A)] == 1


def test_write_without_uid_does_not_lift_the_block(gitjob, lifecycle, registry):
    gitjob.job_created(A)
    lifecycle.forget(A)
    gitjob.job_created(("team-a", "repo-a"))
    assert sample_names_for(registry, name="repo-a") == set()


@pytest.mark.seam_internals("sdk")
def test_placeholders_of_blocked_writes_are_evicted_at_the_next_collection(gitjob, provider, lifecycle, registry):
    def placeholders() -> int:
        return _sdk.series_count(provider, include_placeholders=True) - _sdk.series_count(provider)

    lifecycle.forget(A)
    gitjob.job_created(A)
    assert placeholders() == 2  # one per reader

    generate_latest(registry)

    assert placeholders() == 0
    gitjob.job_created(A)  # still blocked after the placeholder is gone
    assert sample_names_for(registry, name="repo-a") == set()


def test_blocks_are_bounded_in_number_oldest_first(clock, registry):
    lifecycle = Lifecycle(clock=clock, max_blocks=3)
    provider = MeterProvider(metric_readers=[LifecyclePrometheusReader(lifecycle, registry)], views=lifecycle.views())
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle)
    try:
        for i in range(5):
            lifecycle.forget(("ns", "r%d" % i))
        assert hooks_of(lifecycle).registry.blocked_objects() == 3
        gitjob.job_created(("ns", "r0"))  # its block was the oldest: gone
        gitjob.job_created(("ns", "r4"))  # still blocked
        assert sample_names_for(registry, name="r0") and not sample_names_for(registry, name="r4")
    finally:
        provider.shutdown()


def test_blocks_expire_after_block_seconds(clock, registry):
    lifecycle = Lifecycle(clock=clock, block_seconds=60)
    provider = MeterProvider(metric_readers=[LifecyclePrometheusReader(lifecycle, registry)], views=lifecycle.views())
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle)
    try:
        lifecycle.forget(A)
        clock.advance(61)
        generate_latest(registry)  # housekeeping runs with collections
        assert hooks_of(lifecycle).registry.blocked_objects() == 0
        gitjob.job_created(A)
        assert samples(registry)[("fleet_gitjobs_created_success_total", LABELS_A)] == 1
    finally:
        provider.shutdown()


@pytest.mark.seam_internals("sdk")
def test_forget_cost_is_an_index_lookup_not_a_scan(gitjob, lifecycle, monkeypatch):
    for i in range(200):
        gitjob.job_created(("ns", "r%d" % i))
    calls = []
    real_evict = _sdk.evict
    monkeypatch.setattr(_sdk, "evict", lambda *a, **k: calls.append(a) or real_evict(*a, **k))

    lifecycle.forget(("ns", "r7"))

    assert len(calls) == 1  # one series of that repo, whatever the number of others


def test_users_views_are_kept_and_managed_without_duplicate_streams(lifecycle, registry):
    custom = View(instrument_name="my_latency", aggregation=ExplicitBucketHistogramAggregation((0.5, 1.0)))
    provider = MeterProvider(
        metric_readers=[LifecyclePrometheusReader(lifecycle, registry)], views=lifecycle.views(custom)
    )
    try:
        latency = provider.get_meter("mine").create_histogram("my_latency")
        latency.record(0.7, {"namespace": "ns", "name": "r"})
        got = samples(registry)
        assert got[("my_latency_bucket", (("le", "1.0"), ("name", "r"), ("namespace", "ns")))] == 1
        assert sum(1 for name, _ in got if name == "my_latency_count") == 1
        assert lifecycle.forget(("ns", "r")) == 1
        assert sample_names_for(registry, name="r") == set()
    finally:
        provider.shutdown()


def test_custom_identity_keys_manage_other_crds(clock):
    lifecycle = Lifecycle(identity_keys=("k8s.namespace.name", "bundle"), clock=clock)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
    try:
        counter = provider.get_meter("x").create_counter("bundle_syncs")
        counter.add(1, {"k8s.namespace.name": "ns", "bundle": "b1"})
        counter.add(1, {"k8s.namespace.name": "ns", "bundle": "b2"})
        assert lifecycle.forget({"k8s.namespace.name": "ns", "bundle": "b1"}) == 1
        assert lifecycle.forget(("ns", "b2")) == 1
        data = reader.get_metrics_data()
        assert data is None or not any(
            m.data.data_points for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        )
    finally:
        provider.shutdown()
        lifecycle.shutdown()


def test_a_provider_without_the_lifecycle_views_is_refused_when_it_takes_the_reader(lifecycle):
    registry = CollectorRegistry()
    reader = LifecyclePrometheusReader(lifecycle, registry)
    with pytest.raises(ConfigurationError, match="views=lifecycle.views"):
        MeterProvider(metric_readers=[reader])
    reader.shutdown()
    assert list(registry.collect()) == []  # unregistered: nothing half-built is left serving


def test_a_provider_with_another_lifecycles_views_is_refused(lifecycle):
    other = Lifecycle()
    reader = LifecyclePrometheusReader(lifecycle, CollectorRegistry())
    try:
        with pytest.raises(ConfigurationError, match="without the lifecycle's views"):
            MeterProvider(metric_readers=[reader], views=other.views())
    finally:
        reader.shutdown()
        other.shutdown()


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("name", "not the string"),
        ((), "one or more"),
        (("name", "name"), "distinct"),
        (("name", 3), "distinct non-empty"),
    ],
)
def test_bad_identity_keys_raise_at_construction(keys, message):
    with pytest.raises(ConfigurationError, match=message):
        Lifecycle(identity_keys=keys)


def test_wrapped_exporter_never_exports_a_repo_forgotten_between_collection_and_export(lifecycle):
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )

    exported = []

    class Capture(ConsoleMetricExporter):
        def export(self, metrics_data, timeout_millis=10_000, **kwargs):
            exported.append(metrics_data)
            return MetricExportResult.SUCCESS

    wrapped = LifecycleExporter(lifecycle, Capture())
    reader = PeriodicExportingMetricReader(wrapped, export_interval_millis=float("inf"))
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
    try:
        gitjob = GitJobMetrics(provider, lifecycle=lifecycle)
        gitjob.job_created(A)
        gitjob.job_created(B)
        collected = reader._collect(reader, 10_000)  # collection taken before the forget...
        lifecycle.forget(A)
        wrapped.export(collected)  # ...exported after it

        def names(data):
            return {
                p.attributes.get("name")
                for rm in data.resource_metrics
                for sm in rm.scope_metrics
                for m in sm.metrics
                if not m.name.startswith("otel_gitjob_")  # the package's own metrics
                for p in m.data.data_points
            }

        assert names(collected) == {"repo-a", "repo-b"}
        assert names(exported[-1]) == {"repo-b"}
    finally:
        provider.shutdown()


@pytest.mark.parametrize("exemplars", [False, True])
def test_exemplars_are_off_by_default_and_come_back_on_request(exemplars):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    lifecycle = Lifecycle()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views(exemplars=exemplars))
    try:
        histogram = provider.get_meter("t").create_histogram("h")
        with TracerProvider().get_tracer("t").start_as_current_span("reconcile"):  # sampled: exemplars are due
            assert trace.get_current_span().get_span_context().trace_flags.sampled
            histogram.record(1.5, {"namespace": "ns", "name": "x"})
        (point,) = [
            p
            for rm in reader.get_metrics_data().resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            for p in m.data.data_points
        ]
        assert bool(point.exemplars) is exemplars
    finally:
        provider.shutdown()
        lifecycle.shutdown()


@pytest.mark.seam_internals("sdk")
def test_a_collection_during_a_forget_never_shows_the_series_it_has_not_reached_yet(
    gitjob, lifecycle, registry, monkeypatch
):
    gitjob.job_succeeded(A, 1.0)
    seen: list[bool] = []
    real = _sdk.evict

    def scrape_then_evict(*args, **kwargs):
        if not seen:  # the first series: the forget has begun, nothing is evicted yet
            seen.append(any(dict(labels) == dict(LABELS_A) for _name, labels in samples(registry)))
        return real(*args, **kwargs)

    monkeypatch.setattr(_sdk, "evict", scrape_then_evict)
    assert lifecycle.forget(A) > 1
    assert seen == [False]
