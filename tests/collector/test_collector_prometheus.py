"""otel-gitjob → the real Collector running ``collector/otelcol-prometheus.yaml`` → a real Prometheus scraping it.

The Collector runs the shipped file; only its ports (and, for the baseline,
``metric_expiration``) come in through the ``${env:...}`` variables the file
declares. Prometheus scrapes the Collector's ``prometheus`` exporter every
second with the Prometheus Operator's relabelling (the metric's ``namespace``
label becomes ``exported_namespace``) and a 30 s lookback, so a series that
disappears within a few seconds was ended by a stale marker, not by the lookback.
"""

from __future__ import annotations

import time

from collector_helpers import PROMETHEUS_CONFIG, bare_pipeline, lifecycle_pipeline, record_everything
from support import wait_until

REPO_A = ("fleet-local", "repo-a")
REPO_B = ("fleet-local", "repo-b")
# Fleet's seven series of a repo, as the exporter names them (histograms as their _bucket/_sum/_count).
GITJOB_SAMPLES = {
    "fleet_gitjobs_created_success_total",
    "fleet_gitjobs_created_failure_total",
    "fleet_gitjob_duration_seconds_bucket",
    "fleet_gitjob_duration_seconds_sum",
    "fleet_gitjob_duration_seconds_count",
    "fleet_gitjob_duration_seconds_gauge",
    "fleet_gitrepo_fetch_latest_commit_success_total",
    "fleet_gitrepo_fetch_latest_commit_failure_total",
    "fleet_gitrepo_fetch_latest_commit_duration_seconds_bucket",
    "fleet_gitrepo_fetch_latest_commit_duration_seconds_sum",
    "fleet_gitrepo_fetch_latest_commit_duration_seconds_count",
}
# The shipped batch timeout (1 s) is the longest a request waits in the Collector; a scrape every second.
FIRST_EXPORT = 5.0
LOOKBACK = 30.0


def query(name: str) -> str:
    return '{exported_namespace="fleet-local", name="%s"}' % name


def test_forgotten_repo_is_gone_from_the_collector_and_prometheus_after_the_first_export(
    start_collector, start_prometheus
) -> None:
    collector = start_collector(PROMETHEUS_CONFIG)
    prometheus = start_prometheus(["127.0.0.1:%d" % collector.prometheus_port])
    pipeline = lifecycle_pipeline(collector.otlp_http, "replica-0")
    try:
        for repo in (REPO_A, REPO_B):
            record_everything(pipeline.gitjob, repo)
        pipeline.flush()
        wait_until(
            lambda: collector.series_of("repo-a") == collector.series_of("repo-b") == GITJOB_SAMPLES,
            FIRST_EXPORT,
            what="both repos' series on the Collector's /metrics",
        )
        prometheus.wait_scraping()
        prometheus.wait_for(query("repo-a"), lambda r: len(r) > 0)
        before_b = len(prometheus.query(query("repo-b")))
        assert before_b == len(prometheus.query(query("repo-a"))) > len(GITJOB_SAMPLES)  # buckets are series too

        started = time.monotonic()
        assert pipeline.lifecycle.forget(REPO_A) > 0
        pipeline.flush()  # the one export after the forget; nothing else exports in this test
        wait_until(lambda: not collector.series_of("repo-a"), FIRST_EXPORT, what="repo-a gone from the Collector")
        on_collector = time.monotonic() - started
        prometheus.wait_for(query("repo-a"), lambda r: not r, timeout=FIRST_EXPORT)
        in_prometheus = time.monotonic() - started
        assert in_prometheus < LOOKBACK / 3  # a stale marker, not the end of the lookback

        # Nothing of the other repo moved, in the Collector or in Prometheus.
        assert collector.series_of("repo-b") == GITJOB_SAMPLES
        assert len(prometheus.query(query("repo-b"))) == before_b
        print("forget -> absent: Collector /metrics %.2f s, Prometheus %.2f s" % (on_collector, in_prometheus))
    finally:
        pipeline.shutdown()


def test_bare_sdk_series_stay_until_metric_expiration_and_forever_when_cumulative(
    start_collector, start_prometheus
) -> None:
    """The baseline: without markers a repo that stops recording lingers.

    The shipped default is ``metric_expiration: 5m``; the test sets 15 s through
    the file's variable to show the mechanism in a short time.
    """
    expiration = 15.0
    collector = start_collector(PROMETHEUS_CONFIG, OTELCOL_METRIC_EXPIRATION="%ds" % expiration)
    prometheus = start_prometheus(["127.0.0.1:%d" % collector.prometheus_port])
    delta = bare_pipeline(collector.otlp_http, "bare-delta", temporality="delta")
    cumulative = bare_pipeline(collector.otlp_http, "bare-cumulative", temporality="cumulative")
    ours = lifecycle_pipeline(collector.otlp_http, "lifecycle")
    pipelines = (delta, cumulative, ours)
    try:
        delta.record(("fleet-local", "bare-delta"))
        cumulative.record(("fleet-local", "bare-cumulative"))
        record_everything(ours.gitjob, ("fleet-local", "ours"))
        for pipeline in pipelines:
            pipeline.flush()
        delta_sent = time.monotonic()  # the delta repo's last point: the Collector expires it from here on
        names = ("bare-delta", "bare-cumulative", "ours")
        wait_until(lambda: all(collector.series_of(n) for n in names), FIRST_EXPORT, what="all three repos")
        prometheus.wait_scraping()
        for name in names:
            prometheus.wait_for(query(name), lambda r: len(r) > 0)

        # "Deleted": the bare providers can only stop recording; ours forgets. All keep exporting every second.
        deleted = time.monotonic()
        ours.lifecycle.forget(("fleet-local", "ours"))
        gone: dict[str, float] = {}
        while time.monotonic() - deleted < expiration + 6:
            for pipeline in pipelines:
                pipeline.flush()
            for name in names:
                if name not in gone and not collector.series_of(name):
                    gone[name] = time.monotonic() - (delta_sent if name == "bare-delta" else deleted)
            time.sleep(1.0)

        assert gone["ours"] < FIRST_EXPORT
        # Delta: nothing new is exported after the last point, and the exporter drops the series
        # metric_expiration after that point arrived (checked when it is scraped, or by its sweeper).
        assert expiration <= gone["bare-delta"] <= expiration + 5, gone
        # Cumulative: the SDK exports the stopped repo at every export, so it never expires.
        assert "bare-cumulative" not in gone, gone
        assert prometheus.query(query("bare-cumulative"))
        prometheus.wait_for(query("bare-delta"), lambda r: not r, timeout=FIRST_EXPORT)
        assert not prometheus.query(query("ours"))
        print("gone from the Collector after the 'deletion' (s): %s" % {k: round(v, 1) for k, v in gone.items()})
    finally:
        for pipeline in pipelines:
            pipeline.shutdown()


def test_expired_transient_gauge_is_gone_from_the_collector_and_prometheus_at_the_next_export(
    start_collector, start_prometheus
) -> None:
    ttl = 2.0
    collector = start_collector(PROMETHEUS_CONFIG)
    prometheus = start_prometheus(["127.0.0.1:%d" % collector.prometheus_port])
    pipeline = lifecycle_pipeline(collector.otlp_http, "replica-0", gauge_ttl=ttl)
    gauge = "fleet_gitjob_duration_seconds_gauge"
    try:
        record_everything(pipeline.gitjob, REPO_A)
        set_at = time.monotonic()
        pipeline.flush()
        wait_until(lambda: gauge in collector.series_of("repo-a"), FIRST_EXPORT, what="the gauge on /metrics")
        prometheus.wait_scraping()
        prometheus.wait_for(gauge + query("repo-a"), lambda r: len(r) == 1)

        time.sleep(max(0.0, set_at + ttl + 0.1 - time.monotonic()))
        started = time.monotonic()
        pipeline.flush()
        wait_until(lambda: gauge not in collector.series_of("repo-a"), FIRST_EXPORT, what="the gauge gone")
        on_collector = time.monotonic() - started
        prometheus.wait_for(gauge + query("repo-a"), lambda r: not r, timeout=FIRST_EXPORT)
        in_prometheus = time.monotonic() - started
        # Only the gauge expired: the repo's counters and histograms are still served and queried.
        assert collector.series_of("repo-a") == GITJOB_SAMPLES - {gauge}
        assert prometheus.query("fleet_gitjobs_created_success_total" + query("repo-a"))
        print("expiry -> absent: Collector /metrics %.2f s, Prometheus %.2f s" % (on_collector, in_prometheus))
    finally:
        pipeline.shutdown()
