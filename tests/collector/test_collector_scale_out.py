"""Scale-out: two controller replicas (two Fleet shards) → one Collector gateway → Prometheus.

Topology (the one ``collector/README.md`` draws)::

    Kubernetes API (kmock emulator)
       │ watch gitrepos, shard-ref=shard-a      │ watch gitrepos, shard-ref=shard-b
    replica shard-a (process)               replica shard-b (process)
       │ OTLP/HTTP, service.instance.id=shard-a │ OTLP/HTTP, service.instance.id=shard-b
       └──────────────► Collector (collector/otelcol-prometheus.yaml) ◄──────┘
                               │ /metrics
                          Prometheus (scrapes every second)

Each replica is its own Python process (``replica.py``) with its own
Lifecycle, MeterProvider and GitRepo ResourceListener. The test kills one with SIGKILL
and measures how long Prometheus keeps showing its series: nothing marks them
stale, so they stay until the Collector's ``metric_expiration`` (10 s here
through the file's variable; 5 min as shipped).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from collector_helpers import PROMETHEUS_CONFIG
from kube_emulator import Emulator
from support import stop_process, wait_until

SHARD_LABEL = "fleet.cattle.io/shard-ref"  # Fleet's own label, what a sharded controller selects on

REPLICA = Path(__file__).resolve().parent / "replica.py"
EXPIRATION = 10.0
REPOS = {"shard-a": ["a-1", "a-2"], "shard-b": ["b-1", "b-2"]}
COUNTER = "fleet_gitjobs_created_success_total"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator()
    try:
        yield emu
    finally:
        emu.close()


class Replicas:
    """The replica processes of one test, each started by us and stopped by its pid."""

    def __init__(self, kube: str, otlp: str, log_dir: Path) -> None:
        self.kube, self.otlp, self.log_dir = kube, otlp, log_dir
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, shard: str, instance: str) -> subprocess.Popen:
        log = open(self.log_dir / ("%s.log" % instance), "ab")
        process = subprocess.Popen(
            [sys.executable, str(REPLICA), "--kube", self.kube, "--shard", shard, "--otlp", self.otlp]
            + ["--instance", instance, "--interval-ms", "500"],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        log.close()
        self.processes[instance + "@%d" % process.pid] = process
        assert process.stdout is not None
        line = process.stdout.readline().strip()  # "ready" once its listener has listed the shard
        assert line == "ready", "replica %s: %r; log: %s" % (instance, line, self.log(instance))
        return process

    def log(self, instance: str) -> str:
        return (self.log_dir / ("%s.log" % instance)).read_text(errors="replace")[-3000:]

    def stop_all(self) -> None:
        for process in self.processes.values():
            stop_process(process)
            if process.stdout is not None:
                process.stdout.close()


def owners(prometheus, metric: str) -> dict[str, set[str]]:
    """{repo name: the replicas (exported_instance) that Prometheus has ``metric`` of it from}."""
    result: dict[str, set[str]] = {}
    for sample in prometheus.query(metric):
        labels = sample["metric"]
        result.setdefault(labels["name"], set()).add(labels["exported_instance"])
    return result


def test_two_shards_through_one_collector(emulator, start_collector, start_prometheus, tmp_path) -> None:
    for shard, names in REPOS.items():
        for name in names:
            emulator.create(name, labels={SHARD_LABEL: shard}, status={"readyClusters": 1, "desiredReadyClusters": 1})
    collector = start_collector(PROMETHEUS_CONFIG, OTELCOL_METRIC_EXPIRATION="%ds" % EXPIRATION)
    prometheus = start_prometheus(["127.0.0.1:%d" % collector.prometheus_port])
    replicas = Replicas("http://127.0.0.1:%d" % emulator.port, collector.otlp_http, tmp_path)
    try:
        replicas.start("shard-a", "shard-a")
        shard_b = replicas.start("shard-b", "shard-b")
        emulator.wait_watching(count=2)
        prometheus.wait_scraping()

        # Each repo's series come from exactly one replica: the one owning its shard.
        expected = {name: {shard} for shard, names in REPOS.items() for name in names}
        for metric in (COUNTER, "fleet_gitrepo_ready_clusters", "fleet_gitjob_duration_seconds_count"):
            prometheus.wait_for(metric, lambda r, m=metric: owners(prometheus, m) == expected, timeout=20)
        series_b = len(prometheus.query('{name=~"b-.*"}'))

        # Deleting a repo of shard a: its series go, shard b's stay exactly as they were (and keep moving).
        before_b1 = float(prometheus.query('%s{name="b-1"}' % COUNTER)[0]["value"][1])
        deleted = time.monotonic()
        emulator.delete("a-1")
        prometheus.wait_for('{name="a-1"}', lambda r: not r, timeout=10)
        deletion = time.monotonic() - deleted
        assert not collector.series_of("a-1")
        assert len(prometheus.query('{name=~"b-.*"}')) == series_b
        assert owners(prometheus, COUNTER) == {k: v for k, v in expected.items() if k != "a-1"}
        prometheus.wait_for('%s{name="b-1"}' % COUNTER, lambda r: r and float(r[0]["value"][1]) > before_b1)

        # kill -9 of shard b's replica: nothing marks its series stale. Prometheus keeps serving their
        # last values (frozen; `up` stays 1, the Collector is up) until the Collector's metric_expiration.
        shard_b.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        shard_b.wait(5)
        prometheus.wait_scrapes(2)  # the last export before the kill has reached Prometheus
        frozen_value = float(prometheus.query('%s{name="b-1"}' % COUNTER)[0]["value"][1])
        prometheus.wait_scrapes(2)  # two more scrapes: the ghost series is still there, its value frozen
        assert float(prometheus.query('%s{name="b-1"}' % COUNTER)[0]["value"][1]) == frozen_value
        assert prometheus.query('up{job="otel-gitjob"} == 1'), "the Collector is up: `up` cannot tell"
        wait_until(
            lambda: not prometheus.query('{name=~"b-.*", exported_instance="shard-b"}'),
            EXPIRATION + 10,
            interval=0.2,
            what="the killed replica's series gone from Prometheus",
        )
        stale_for = time.monotonic() - killed
        assert EXPIRATION - 1.0 <= stale_for <= EXPIRATION + 6.0, stale_for
        # Shard a's replica was untouched throughout.
        assert owners(prometheus, COUNTER) == {"a-2": {"shard-a"}}

        # What bounds it besides metric_expiration: a replacement with the same service.instance.id (a
        # stable id per shard, such as the StatefulSet pod name) takes over the very same series.
        replicas.start("shard-b", "shard-b")
        after = {"a-2": {"shard-a"}, "b-1": {"shard-b"}, "b-2": {"shard-b"}}
        prometheus.wait_for(COUNTER, lambda r: owners(prometheus, COUNTER) == after, timeout=20)
        assert len(prometheus.query('%s{name="b-1"}' % COUNTER)) == 1
        print(
            "scale-out: delete -> absent %.2f s; kill -9 -> series frozen at %s for %.1f s (metric_expiration %.0f s)"
            % (deletion, frozen_value, stale_for, EXPIRATION)
        )
    finally:
        replicas.stop_all()
    assert all(process.returncode is not None for process in replicas.processes.values())
