"""otel-gitjob → the real Collector running ``collector/otelcol-prometheusremotewrite.yaml`` → a real Prometheus.

Prometheus receives remote write (``--web.enable-remote-write-receiver``, in
Debian's 2.42 and every later release) and scrapes nothing. The staleness
marker becomes a ``StaleNaN`` sample: an instant query stops returning the
series at once, where without it the series would be returned until the
query lookback (30 s in these tests, 5 minutes by default) has passed.
"""

from __future__ import annotations

import time

from collector_helpers import REMOTE_WRITE_CONFIG, bare_pipeline, lifecycle_pipeline, record_everything

REPO_A = ("fleet-local", "repo-a")
REPO_B = ("fleet-local", "repo-b")
LOOKBACK = 30.0
ARRIVAL = 10.0  # batch timeout (1 s) + the remote-write queue's flush, with room for a loaded CI machine
RECEIVER = ["--web.enable-remote-write-receiver"]


def query(name: str) -> str:
    return '{namespace="fleet-local", name="%s"}' % name


def names_of(result: list[dict]) -> set[str]:
    return {sample["metric"]["__name__"] for sample in result}


def start(start_collector, start_prometheus):
    prometheus = start_prometheus([], extra_args=RECEIVER)
    collector = start_collector(
        REMOTE_WRITE_CONFIG, OTELCOL_REMOTE_WRITE_ENDPOINT="http://127.0.0.1:%d/api/v1/write" % prometheus.port
    )
    return collector, prometheus


def forget_one_of_two(start_collector, start_prometheus, ended: str) -> float:
    """Write two repos, forget repo-a, and wait until the series ``ended`` selects are gone; returns the seconds."""
    collector, prometheus = start(start_collector, start_prometheus)
    pipeline = lifecycle_pipeline(collector.otlp_http, "replica-0")
    try:
        for repo in (REPO_A, REPO_B):
            record_everything(pipeline.gitjob, repo)
        pipeline.flush()
        written = prometheus.wait_for(
            query("repo-a"), lambda r: "fleet_gitjob_duration_seconds_bucket" in names_of(r), timeout=ARRIVAL
        )
        prometheus.wait_for(query("repo-b"), lambda r: len(r) == len(written), timeout=ARRIVAL)
        assert "fleet_gitjobs_created_success_total" in names_of(written)
        # Resource attributes are labels (resource_to_telemetry_conversion): the replica is identifiable.
        assert {s["metric"].get("service_instance_id") for s in written} == {"replica-0"}

        started = time.monotonic()
        assert pipeline.lifecycle.forget(REPO_A) > 0
        pipeline.flush()
        prometheus.wait_for(ended, lambda r: not r, timeout=ARRIVAL)
        elapsed = time.monotonic() - started
        assert elapsed < LOOKBACK / 3  # the StaleNaN samples ended them, not the lookback
        assert len(prometheus.query(query("repo-b"))) == len(written)
        # The series keep their samples from before the deletion: history stays, only "now" is empty.
        assert prometheus.query("count_over_time(fleet_gitjobs_created_success_total%s[1m])" % query("repo-a"))
        return elapsed
    finally:
        pipeline.shutdown()


def test_forgotten_repo_ends_in_prometheus_with_stale_markers(start_collector, start_prometheus) -> None:
    # Counters, gauges, and each histogram's _count and le="+Inf" bucket: the series the Collector
    # writes a StaleNaN for whatever the marker point holds.
    ended = '{namespace="fleet-local", name="repo-a", __name__!~".*_(bucket|sum)"} or %s' % (
        '{namespace="fleet-local", name="repo-a", le="+Inf"}'
    )
    elapsed = forget_one_of_two(start_collector, start_prometheus, ended)
    print("forget -> absent in Prometheus over remote write: %.2f s" % elapsed)


def test_forgotten_repo_ends_every_histogram_series_in_prometheus(start_collector, start_prometheus) -> None:
    forget_one_of_two(start_collector, start_prometheus, query("repo-a"))


def test_expired_transient_gauge_ends_in_prometheus_with_a_stale_marker(start_collector, start_prometheus) -> None:
    ttl = 2.0
    collector, prometheus = start(start_collector, start_prometheus)
    pipeline = lifecycle_pipeline(collector.otlp_http, "replica-0", gauge_ttl=ttl)
    gauge = "fleet_gitjob_duration_seconds_gauge"
    try:
        record_everything(pipeline.gitjob, REPO_A)
        set_at = time.monotonic()
        pipeline.flush()
        prometheus.wait_for(gauge + query("repo-a"), lambda r: len(r) == 1, timeout=ARRIVAL)
        time.sleep(max(0.0, set_at + ttl + 0.1 - time.monotonic()))
        started = time.monotonic()
        pipeline.flush()
        prometheus.wait_for(gauge + query("repo-a"), lambda r: not r, timeout=ARRIVAL)
        elapsed = time.monotonic() - started
        assert elapsed < LOOKBACK / 3
        assert prometheus.query("fleet_gitjobs_created_success_total" + query("repo-a"))
        print("expiry -> absent in Prometheus over remote write: %.2f s" % elapsed)
    finally:
        pipeline.shutdown()


def test_without_markers_a_deleted_repo_is_written_forever_and_a_dead_process_lingers_for_the_lookback(
    start_collector, start_prometheus
) -> None:
    """The baseline: a bare SDK provider (cumulative; the remote-write exporter drops delta sums) has no way to
    end a series. It writes the deleted repo at every export, and when its process stops the series stays
    queryable until Prometheus' lookback ends it (30 s here, 5 minutes by default)."""
    collector, prometheus = start(start_collector, start_prometheus)
    bare = bare_pipeline(collector.otlp_http, "bare")
    ours = lifecycle_pipeline(collector.otlp_http, "lifecycle")
    try:
        bare.record(("fleet-local", "bare"))
        record_everything(ours.gitjob, ("fleet-local", "ours"))
        bare.flush()
        ours.flush()
        prometheus.wait_for(query("bare"), lambda r: len(r) == 1, timeout=ARRIVAL)
        prometheus.wait_for(query("ours"), lambda r: len(r) > 0, timeout=ARRIVAL)

        ours.lifecycle.forget(("fleet-local", "ours"))  # the bare provider has nothing to call
        for _ in range(5):
            bare.flush()
            ours.flush()
            time.sleep(1.0)
        # Every series of the repo, the histograms' _sum and finite buckets included.
        assert not prometheus.query(query("ours"))
        assert prometheus.query(query("bare")), "the bare SDK keeps writing the deleted repo"

        bare.shutdown()  # the process is gone: nothing is written any more, and nothing ends the series
        stopped = time.monotonic()
        time.sleep(LOOKBACK / 2)
        assert prometheus.query(query("bare")), "a series nobody ended stays for the lookback"
        prometheus.wait_for(query("bare"), lambda r: not r, timeout=LOOKBACK)
        lingered = time.monotonic() - stopped
        assert LOOKBACK - 6 <= lingered <= LOOKBACK + 3
        print(
            "bare SDK over remote write: series lingered %.1f s after its last write (lookback %.0f s)"
            % (lingered, LOOKBACK)
        )
    finally:
        bare.shutdown()
        ours.shutdown()
