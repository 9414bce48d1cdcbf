"""Many threads record, forget, observe and scrape at once."""

from __future__ import annotations

import threading

from _helpers import samples
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry

from otel_gitjob import GitJobMetrics, Lifecycle

ROUNDS = 300


def test_forget_record_and_collect_from_many_threads_gives_exact_counts():
    lifecycle = Lifecycle()
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[lifecycle.prometheus_reader(registry)], views=lifecycle.views())
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle)
    kept = [("kept", "k%d" % i) for i in range(20)]
    doomed = [("doomed", "d%d" % i) for i in range(20)]
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def run(work):
        def target():
            try:
                start.wait()
                work()
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        return threading.Thread(target=target)

    def record_kept():
        for _ in range(ROUNDS):
            for repo in kept:
                gitjob.job_created(repo)

    def record_doomed():
        for _ in range(ROUNDS):
            for repo in doomed:
                gitjob.job_created(repo)
                gitjob.job_succeeded(repo, 1.0)

    def forget_doomed():
        for _ in range(ROUNDS // 10):
            for repo in doomed:
                lifecycle.forget(repo)

    def scrape():
        for _ in range(ROUNDS // 10):
            samples(registry)

    threads = [
        run(record_kept),
        run(record_kept),
        run(record_doomed),
        run(record_doomed),
        run(forget_doomed),
        run(forget_doomed),
        run(scrape),
        run(scrape),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        for repo in doomed:  # the recorders are done: a last forget leaves nothing of them
            lifecycle.forget(repo)
        got = samples(registry)
        for namespace, name in kept:
            assert (
                got[("fleet_gitjobs_created_success_total", (("name", name), ("namespace", namespace)))] == 2 * ROUNDS
            )
        assert not [key for key in got if ("namespace", "doomed") in key[1]]
        assert lifecycle.tracked_objects() == len(kept)
    finally:
        provider.shutdown()
        lifecycle.shutdown()
