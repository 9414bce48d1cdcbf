"""A Custom Resource State config over 1,000 objects: ``otel-gitjob watch`` beside kube-state-metrics.

The script starts its own etcd and kube-apiserver on 127.0.0.1 (``tests/kube/real_apiserver.py``;
the binaries of ``scripts/kube-apiserver``) and kube-state-metrics (``scripts/kube-state-metrics``,
or ``KSM_BIN``), installs a ``Foo`` CRD, and runs both exporters as processes on one config of five
metrics per object (a Gauge, a Gauge over a map, a StateSet of three states, an Info, a Gauge over
a list of conditions), i.e. about 10 series per object. Everything is killed by PID in a ``finally``.

Measured, for each exporter, with the same method:

* **memory per object**: resident set size (``/proc/<pid>/status`` VmRSS) with N objects minus
  the same with none (both processes start before the objects exist), divided by N;
* **list**: seconds from the process start to its ``/metrics`` holding every series of the N
  objects that already exist (a fresh process lists them), median over rounds;
* **event → gone**: D objects deleted one at a time; seconds from the DELETE's response until a
  scrape of ``/metrics`` no longer holds the object, each exporter polled on its own thread (the
  scrape's own time is included, reported beside it: larger for a slower exposition), p50/p99.

Run (from the repository root, a few minutes on 2 shared cores)::

    nice -n 10 .venv/bin/python bench/bench_crs_vs_ksm.py [--objects N] [--deletes D] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "kube")]

from real_apiserver import KubeApiServer, find_binaries  # noqa: E402
from support import free_port, stop_process  # noqa: E402
from test_crs_vs_ksm import crd, ksm_binary  # noqa: E402

NAMESPACE = "bench"
PATH = "/apis/myteam.io/v1/namespaces/%s/foos" % NAMESPACE
CONFIG = """
kind: CustomResourceStateMetrics
spec:
  resources:
    - groupVersionKind: {group: myteam.io, kind: Foo, version: v1}
      labelsFromPath: {name: [metadata, name], namespace: [metadata, namespace]}
      metrics:
        - name: uptime
          help: Foo uptime
          each: {type: Gauge, gauge: {path: [status, uptime]}}
        - name: active
          help: Active by type
          each: {type: Gauge, gauge: {path: [status, active], labelFromKey: type}}
        - name: phase
          help: Foo phase
          each: {type: StateSet, stateSet: {path: [status, phase], labelName: phase, list: [Pending, Running, Failed]}}
        - name: version_info
          help: Foo version
          each: {type: Info, info: {labelsFromPath: {version: [spec, version]}}}
        - name: condition
          help: Foo conditions
          each: {type: Gauge, gauge: {path: [status, conditions], labelsFromPath: {type: [type]}, valueFrom: [status]}}
"""
SERIES_PER_OBJECT = 1 + 2 + 3 + 1 + 2


def foo(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "myteam.io/v1",
        "kind": "Foo",
        "metadata": {"name": name},
        "spec": {"version": "v1.2.3"},
        "status": {
            "uptime": 43.21,
            "phase": "Running",
            "active": {"type-a": 1, "type-b": 3},
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}],
        },
    }


def scrape(url: str) -> str | None:
    """The exposition, or None while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return str(response.read().decode())
    except OSError:
        return None


def rss_kib(pid: int) -> int:
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


def count_series(exposition: str | None) -> int:
    """Series of the config's families; -1 while nothing answers."""
    if exposition is None:
        return -1
    return sum(1 for line in exposition.splitlines() if line.startswith("kube_customresource_"))


class Exporter:
    """One exporter process serving /metrics on a free loopback port."""

    def __init__(self, name: str, argv: Callable[[int], list[str]], log: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = "http://127.0.0.1:%d/metrics" % self.port
        env = dict(os.environ, OTEL_EXPORTER_PROMETHEUS_PORT=str(self.port), OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1")
        self.started = time.monotonic()
        self.process = subprocess.Popen(argv(self.port), stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)

    def wait_series(self, wanted: int, timeout: float = 300) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("%s exited %s" % (self.name, self.process.returncode))
            if count_series(scrape(self.url)) >= wanted:
                return time.monotonic() - self.started
            time.sleep(0.05)
        raise RuntimeError("%s never served %d series" % (self.name, wanted))

    def stop(self) -> None:
        stop_process(self.process)


def start(name: str, ksm: str, config: Path, kubeconfig: str, directory: Path) -> Exporter:
    if name == "kube-state-metrics":
        return Exporter(
            name,
            lambda port: [
                ksm, "--custom-resource-state-only", "--custom-resource-state-config-file=%s" % config,
                "--kubeconfig=%s" % kubeconfig, "--host=127.0.0.1", "--port=%d" % port,
                "--telemetry-host=127.0.0.1", "--telemetry-port=%d" % free_port(),
            ],
            directory / "ksm.log",
        )  # fmt: skip
    return Exporter(
        name,
        lambda port: [
            sys.executable, "-m", "otel_gitjob", "watch", "--kubeconfig", kubeconfig,
            "--custom-resource-state-config-file", str(config),
        ],
        directory / "otel-gitjob.log",
    )  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--deletes", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ksm = ksm_binary()
    names = ("kube-state-metrics", "otel-gitjob")
    server = KubeApiServer(*find_binaries())
    exporters: list[Exporter] = []
    try:
        server.start()
        status, body = server.request(
            "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd("myteam.io", "v1", "Foo", "foos")
        )
        assert status in (201, 409), body
        while server.request("GET", "/apis/myteam.io/v1/foos")[0] != 200:
            time.sleep(0.1)
        server.ensure_namespace(NAMESPACE)
        directory = Path(tempfile.mkdtemp(prefix="bench-crs-"))
        config = directory / "crs.yaml"
        config.write_text(CONFIG)

        # Memory: both start with no object, then N objects arrive over the watch.
        exporters = [start(name, ksm, config, server.kubeconfig, directory) for name in names]
        for exporter in exporters:
            exporter.wait_series(0)
        time.sleep(3)
        empty = {e.name: rss_kib(e.process.pid) for e in exporters}
        for i in range(args.objects):
            code, answer = server.request("POST", PATH, foo("foo-%05d" % i))
            assert code == 201, answer
        wanted = args.objects * SERIES_PER_OBJECT
        for exporter in exporters:
            exporter.wait_series(wanted)
        time.sleep(3)
        full = {e.name: rss_kib(e.process.pid) for e in exporters}
        for exporter in exporters:
            exporter.stop()
        exporters = []

        # List: a fresh process over N existing objects, rounds interleaved.
        listed: dict[str, list[float]] = {name: [] for name in names}
        for round_ in range(args.rounds):
            for name in names if round_ % 2 == 0 else reversed(names):
                exporter = start(name, ksm, config, server.kubeconfig, directory)
                exporters = [exporter]
                listed[name].append(exporter.wait_series(wanted))
                exporter.stop()
                exporters = []

        # Event → gone: both running, D deletes one at a time.
        exporters = [start(name, ksm, config, server.kubeconfig, directory) for name in names]
        for exporter in exporters:
            exporter.wait_series(wanted)
        gone: dict[str, list[float]] = {name: [] for name in names}
        for i in range(args.deletes):
            name = "foo-%05d" % i
            code, answer = server.request("DELETE", "%s/%s" % (PATH, name))
            assert code == 200, answer
            deleted = time.monotonic()
            marker = 'name="%s"' % name

            def poll(exporter: Exporter, deleted: float = deleted, marker: str = marker) -> None:
                # Each exporter polled on its own thread: one's scrape time never delays the other's.
                while True:
                    exposition = scrape(exporter.url)
                    if exposition is not None and marker not in exposition:
                        gone[exporter.name].append(time.monotonic() - deleted)
                        return

            pollers = [threading.Thread(target=poll, args=(exporter,)) for exporter in exporters]
            for poller in pollers:
                poller.start()
            for poller in pollers:
                poller.join()
        # The scrape's own time, which every "gone" figure includes.
        scraped: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(10):
            for exporter in exporters:
                began = time.monotonic()
                scrape(exporter.url)
                scraped[exporter.name].append(time.monotonic() - began)
        print(
            "%d objects x %d series; %d deletes; %d list rounds"
            % (args.objects, SERIES_PER_OBJECT, args.deletes, args.rounds)
        )
        print(
            "%-20s %14s %12s %12s %12s %14s" % ("", "RSS/object", "list (med)", "gone p50", "gone p99", "scrape (med)")
        )
        for name in names:
            print(
                "%-20s %11.1f KiB %10.2f s %10.3f s %10.3f s %12.3f s"
                % (
                    name,
                    (full[name] - empty[name]) / args.objects,
                    statistics.median(listed[name]),
                    percentile(gone[name], 0.5),
                    percentile(gone[name], 0.99),
                    statistics.median(scraped[name]),
                )
            )
        ratio = statistics.median(listed["otel-gitjob"]) / statistics.median(listed["kube-state-metrics"])
        print("list time ratio otel-gitjob / kube-state-metrics: %.2f" % ratio)
        return 0
    finally:
        for exporter in exporters:
            exporter.stop()
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
