"""The hardening issue's concurrency hammer: everything at once, then exact accounting.

Threads record on repos that are never forgotten, churn repos through
create → write → forget → late writes → recreate under a new uid, forget repos
other threads are still writing to, set transient gauges near their TTL, scrape
and export. Afterwards: zero exceptions, exact counts for the never-forgotten
repos and the live incarnations, zero series of forgotten repos, zero overflow,
and the SDK storage holds exactly the live series.
"""

from __future__ import annotations

import importlib.metadata
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from prometheus_client import CollectorRegistry, generate_latest
from support import hammer, points_of, samples

from otel_gitjob import GitJobMetrics, Lifecycle, LifecycleExporter, LifecyclePrometheusReader
from otel_gitjob._internal.core import _sdk

# Seconds the hammer runs; the issue asks for 60 (CI runs the default).
GAUGE_KEEPS_ITS_VALUE = tuple(int(p) for p in importlib.metadata.version("opentelemetry-sdk").split(".")[:2]) >= (1, 45)
HAMMER_SECONDS = float(os.environ.get("OTEL_GITJOB_HARDENING_HAMMER_SECONDS", "60"))
TTL = 1.0  # the transient gauge's TTL: short, so sets land near it all the time
STABLE = 40
CHURN_PER_THREAD = 15
CREATED = "fleet_gitjobs_created_success_total"
FETCHED = "fleet_gitrepo_fetch_latest_commit_success_total"
JOB_COUNT = "fleet_gitjob_duration_seconds_count"
GAUGE = "fleet_gitjob_duration_seconds_gauge"
USER = "user_repo_events_total"


class LastExport(MetricExporter):
    """A real MetricExporter that keeps the latest export."""

    def __init__(self) -> None:
        super().__init__()
        self.last: MetricsData | None = None

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        self.last = metrics_data
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def body(namespace: str, name: str, uid: str) -> dict[str, Any]:
    return {"kind": "GitRepo", "metadata": {"namespace": namespace, "name": name, "uid": uid}}


def labels(namespace: str, name: str) -> tuple[tuple[str, str], ...]:
    return (("name", name), ("namespace", namespace))


def test_everything_at_once_loses_nothing_keeps_nothing_forgotten_and_storage_matches_the_live_series():
    lifecycle = Lifecycle()
    registry = CollectorRegistry()
    exporter = LastExport()
    periodic = PeriodicExportingMetricReader(LifecycleExporter(lifecycle, exporter), 3_600_000)
    provider = MeterProvider(
        metric_readers=[LifecyclePrometheusReader(lifecycle, registry), periodic],
        views=lifecycle.views(cardinality_limit=1_000),  # far above the live repos, far below all repos seen
    )
    readers = 2
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle, gauge_ttl=TTL)
    user_counter = provider.get_meter("user").create_counter("user_repo_events")
    errors: list[BaseException] = []
    stop = threading.Event()

    # Never forgotten: exact counts. Each writer owns its repos.
    stable = [("stable", "s%d" % i) for i in range(STABLE)]
    created = dict.fromkeys(stable, 0)
    fetched = dict.fromkeys(stable, 0)
    jobs = dict.fromkeys(stable, 0)

    # Churned by one owner each: (namespace, name) -> (uid, created count of the live incarnation) or None.
    churn_state: dict[tuple[str, str], tuple[str, int] | None] = {}
    # Forgotten by another thread while being written: must end with no series at all.
    doomed: list[tuple[str, str]] = []
    doomed_lock = threading.Lock()
    counters = {"forgets": 0, "recreates": 0, "late_writes": 0, "scrapes": 0, "exports": 0, "gauge_checks": 0}
    lost_sets: list[tuple[str, float]] = []
    overflow_seen: list[str] = []

    def guarded(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)
                stop.set()

        return run

    def stable_writer(mine: list[tuple[str, str]]) -> Callable[[], None]:
        def work() -> None:
            while not stop.is_set():
                for repo in mine:
                    ref = body(repo[0], repo[1], "uid-" + repo[1])
                    gitjob.job_created(ref)
                    created[repo] += 1
                    gitjob.commit_fetched(ref, 0.3)
                    fetched[repo] += 1
                    user_counter.add(1, {"namespace": repo[0], "name": repo[1]})

        return work

    def gauge_setter() -> None:
        """Sets the transient gauge of stable repos just around its TTL, and checks each set is visible."""
        rng = random.Random(1)
        while not stop.is_set():
            batch = {stable[rng.randrange(STABLE)]: float(rng.randrange(1, 3600)) for _ in range(5)}
            before = time.monotonic()
            for repo, value in batch.items():
                gitjob.job_succeeded(repo, value)
                jobs[repo] += 1
            got = samples(registry)
            # Before opentelemetry-sdk 1.45.0 a synchronous gauge's value is cleared by every collection (even
            # cumulative), so a concurrent scrape takes it: visibility is only checkable from 1.45.0 on. The
            # race itself is checked on every release by tests/test_expiry_races.py's hand-interleaved tests.
            if GAUGE_KEEPS_ITS_VALUE and time.monotonic() < before + TTL:  # no collection past a deadline
                for repo, value in batch.items():
                    counters["gauge_checks"] += 1
                    if got.get((GAUGE, labels(*repo))) != value:
                        lost_sets.append((repo[1], value))
            time.sleep(TTL * rng.uniform(0.9, 1.1))  # the next set lands around the deadline of this one

    def churner(c: int) -> Callable[[], None]:
        repos = [("churn", "c%d-%d" % (c, j)) for j in range(CHURN_PER_THREAD)]

        def work() -> None:
            rng = random.Random(c)
            generation = dict.fromkeys(repos, 0)
            for repo in repos:
                churn_state[repo] = None
            while not stop.is_set():
                repo = repos[rng.randrange(len(repos))]
                state = churn_state[repo]
                if state is None:  # (re)create under a new uid, by observe() or by a write carrying it
                    generation[repo] += 1
                    uid = "u%d" % generation[repo]
                    if rng.random() < 0.5:
                        lifecycle.observe(body(*repo, uid))
                    gitjob.job_created(body(*repo, uid))
                    gitjob.job_succeeded(body(*repo, uid), 2.0)
                    churn_state[repo] = (uid, 1)
                    if generation[repo] > 1:
                        counters["recreates"] += 1
                        for _ in range(2):  # the old incarnation's reconciles, still in flight
                            gitjob.job_created(body(*repo, "u%d" % (generation[repo] - 1)))
                            counters["late_writes"] += 1
                elif rng.random() < 0.7:
                    gitjob.job_created(body(*repo, state[0]))
                    churn_state[repo] = (state[0], state[1] + 1)
                else:
                    lifecycle.forget(body(*repo, state[0]))
                    counters["forgets"] += 1
                    churn_state[repo] = None
                    for _ in range(2):  # late writes of the forgotten incarnation
                        gitjob.job_created(body(*repo, state[0]))
                        gitjob.job_succeeded(body(*repo, state[0]), 1.0)
                        counters["late_writes"] += 1

        return work

    def doomed_writer(w: int) -> Callable[[], None]:
        def work() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                repo = ("doomed", "d%d-%d" % (w, i))
                ref = body(*repo, "uid")
                with doomed_lock:
                    doomed.append(repo)  # before the first write, so that the forgetter races it
                for _ in range(5):
                    gitjob.job_created(ref)
                    gitjob.job_succeeded(ref, 1.0)
                    user_counter.add(1, {"namespace": repo[0], "name": repo[1]})

        return work

    forgotten_doomed = [0]

    def forgetter() -> None:
        while not stop.is_set():
            with doomed_lock:
                batch = doomed[forgotten_doomed[0] :]
            for repo in batch:
                lifecycle.forget(body(*repo, "uid"))
                forgotten_doomed[0] += 1
                counters["forgets"] += 1
            time.sleep(0.001)

    def scraper() -> None:
        while not stop.is_set():
            text = generate_latest(registry).decode()
            counters["scrapes"] += 1
            if "overflow" in text:
                overflow_seen.append(text)

    def flusher() -> None:
        while not stop.is_set():
            periodic.force_flush()
            counters["exports"] += 1
            if "otel.metric.overflow" in str(points_of(exporter.last)):
                overflow_seen.append("export")
            time.sleep(0.01)

    for repo in stable:  # every stable repo has all its series from the start
        gitjob.job_succeeded(repo, 1.0)
        jobs[repo] += 1
    half = STABLE // 2
    work = [stable_writer(stable[:half]), stable_writer(stable[half:]), gauge_setter, churner(0), churner(1)]
    work += [doomed_writer(0), doomed_writer(1), forgetter, scraper, flusher]
    threads = [threading.Thread(target=guarded(w)) for w in work]
    hammer(threads, stop, HAMMER_SECONDS, switch_interval=1e-5)  # switch threads often, so that the races happen
    for repo in doomed[forgotten_doomed[0] :]:  # the last ones, created after the forgetter's last pass
        lifecycle.forget(body(*repo, "uid"))

    try:
        # Quiesce: every gauge past its TTL, then a collection by each reader (placeholders go at collection).
        time.sleep(TTL * 2)
        got = samples(registry)
        periodic.force_flush()
        exported = points_of(exporter.last)

        wrong_counts = []
        for repo in stable:
            for key, want in [
                ((CREATED, labels(*repo)), created[repo]),
                ((FETCHED, labels(*repo)), fetched[repo]),
                ((JOB_COUNT, labels(*repo)), jobs[repo]),
                ((USER, labels(*repo)), created[repo]),
            ]:
                if got.get(key) != want:
                    wrong_counts.append((key, got.get(key), want))
            if exported.get((CREATED, labels(*repo))) != created[repo]:
                wrong_counts.append(("export", repo, exported.get((CREATED, labels(*repo))), created[repo]))
        live_churn = {repo: state for repo, state in churn_state.items() if state is not None}
        for repo, state in live_churn.items():
            if got.get((CREATED, labels(*repo))) != state[1]:
                wrong_counts.append(((CREATED, labels(*repo)), got.get((CREATED, labels(*repo))), state[1]))
        forgotten_names = {repo[1] for repo, state in churn_state.items() if state is None}

        def of_forgotten(key: tuple[str, tuple[tuple[str, Any], ...]]) -> bool:
            attributes = dict(key[1])
            return attributes.get("namespace") == "doomed" or attributes.get("name") in forgotten_names

        # Storage: per reader, 5 series per stable repo (created, fetch success, fetch duration, job duration,
        # user counter) and 2 per live churned repo (created, job duration); nothing else but self-metrics.
        live = STABLE * 5 + len(live_churn) * 2
        self_series = sum(1 for name, _ in exported if name.startswith("otel_gitjob_"))
        in_storage = _sdk.series_count(provider, include_placeholders=True) - readers * self_series
        problems = {
            "exceptions": len(errors),
            "lost gauge sets": len(lost_sets),
            "wrong counts": len(wrong_counts),
            "series of forgotten repos": sum(map(of_forgotten, got)) + sum(map(of_forgotten, exported)),
            "gauges past their TTL": sum(key[0] == GAUGE for key in got),
            "overflow": len(overflow_seen) + sum("overflow" in str(key) for key in [*got, *exported]),
            "storage minus live series": in_storage - readers * live,
        }
        print("hammer %.0f s: %s" % (HAMMER_SECONDS, counters))
        print("live series %d per reader, %d readers; problems: %s" % (live, readers, problems))
        assert errors == []
        assert counters["forgets"] > 100 and counters["recreates"] > 10  # it raced
        assert counters["gauge_checks"] > 0 or not GAUGE_KEEPS_ITS_VALUE
        assert wrong_counts[:5] == []
        assert lost_sets[:5] == []
        assert problems == dict.fromkeys(problems, 0)
    finally:
        provider.shutdown()
        lifecycle.shutdown()
