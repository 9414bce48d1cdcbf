"""A real Prometheus server for end-to-end tests: started on 127.0.0.1, queried over its HTTP API only."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from support import free_port

SCRAPE_INTERVAL = 1.0

# How Prometheus relabels what it scrapes, as in the two setups the Grafana dashboard must serve.
OPERATOR = "operator"
PLAIN = "plain"
SCRAPE_MODES = (OPERATOR, PLAIN)

CONFIG = """
global:
  scrape_interval: {interval}ms
  scrape_timeout: {timeout}ms
  evaluation_interval: 1s
scrape_configs:
  - job_name: otel-gitjob
    honor_labels: false
    static_configs:
      - targets: [{targets}]
{relabel}"""

RELABEL = {
    # Like the Prometheus Operator's ServiceMonitor: the target gets a `namespace` label (the pod's),
    # so the metric's own `namespace` label is renamed `exported_namespace` (honor_labels: false).
    OPERATOR: """    relabel_configs:
      - target_label: namespace
        replacement: cattle-fleet-system
      - target_label: service
        replacement: gitjob
""",
    # A plain static scrape: only job and instance are added, the metric keeps its `namespace`.
    PLAIN: "",
}


def find_prometheus() -> str:
    """The prometheus binary: $PROMETHEUS_BIN or PATH. In CI a missing binary is a failure, never a skip."""
    binary = os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus")
    if binary is None:
        raise RuntimeError(
            "the end-to-end tests need Debian's prometheus: apt-get install prometheus, or set PROMETHEUS_BIN"
        )
    return binary


class PrometheusServer:
    """One Prometheus process with a temporary TSDB, scraping ``targets`` every second.

    Args:
        targets: ``host:port`` of each /metrics endpoint.
        scrape_interval: Seconds between scrapes.
        mode: ``OPERATOR`` relabels like the Prometheus Operator (``exported_namespace``), ``PLAIN`` does not.
        extra_args: More command-line flags (``--web.enable-remote-write-receiver`` for tests/collector).
    """

    def __init__(
        self,
        targets: list[str],
        scrape_interval: float = SCRAPE_INTERVAL,
        mode: str = OPERATOR,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.mode = mode
        self.port = free_port()
        self._dir = tempfile.mkdtemp(prefix="otel-gitjob-prometheus-")
        config = os.path.join(self._dir, "prometheus.yml")
        with open(config, "w") as handle:
            handle.write(
                CONFIG.format(
                    targets=", ".join("'%s'" % t for t in targets),
                    interval=int(scrape_interval * 1000),
                    timeout=int(scrape_interval * 900),
                    relabel=RELABEL[mode],
                )
            )
        self._log = open(os.path.join(self._dir, "prometheus.log"), "w")
        self.process = subprocess.Popen(
            [
                find_prometheus(),
                "--config.file=" + config,
                "--storage.tsdb.path=" + os.path.join(self._dir, "data"),
                "--web.listen-address=127.0.0.1:%d" % self.port,
                "--web.enable-lifecycle",
                # Instant queries look back 5 minutes by default; stale markers end a series at once anyway,
                # this only keeps a never-marked series from lingering in a short test.
                "--query.lookback-delta=30s",
                *extra_args,  # e.g. --web.enable-remote-write-receiver (tests/collector)
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("prometheus exited: %s" % self.log())
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.port, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("prometheus not ready in 30 s: %s" % self.log())

    def log(self) -> str:
        with open(os.path.join(self._dir, "prometheus.log")) as handle:
            return handle.read()[-4000:]

    def api(self, path: str, **params: str) -> Any:
        url = "http://127.0.0.1:%d/api/v1/%s?%s" % (self.port, path, urllib.parse.urlencode(params))
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            body = json.load(error)
        if body.get("status") != "success":
            raise AssertionError("query failed: %s -> %s" % (params, body))
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query (now, or at the Unix time ``at``); returns the vector's samples."""
        params = {"query": expr} if at is None else {"query": expr, "time": repr(at)}
        return self.api("query", **params)["result"]

    def wait_for(self, expr: str, condition: Callable[[list[dict[str, Any]]], bool], timeout: float = 15.0) -> list:
        """Poll ``expr`` until ``condition(result)`` holds; fail with the last result otherwise."""
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if condition(result):
                return result
            time.sleep(0.2)
        raise AssertionError("%s: condition not met in %.0fs; last result %s" % (expr, timeout, result))

    def wait_scraping(self, timeout: float = 30.0) -> None:
        """Wait for the first successful scrape (Prometheus applies new targets up to 5 s late)."""
        self.wait_for('up{job="otel-gitjob"} == 1', bool, timeout=timeout)

    def scrapes(self) -> float:
        """How many scrapes of its targets Prometheus has stored (the samples of ``up``)."""
        result = self.query('sum(count_over_time(up{job="otel-gitjob"}[1d]))')
        return float(result[0]["value"][1]) if result else 0.0

    def wait_scrapes(self, count: int, timeout: float = 30.0) -> None:
        """Wait until Prometheus has stored ``count`` more scrapes: what it shows now has been scraped since."""
        wanted = self.scrapes() + count
        deadline = time.monotonic() + timeout
        while self.scrapes() < wanted:
            if time.monotonic() > deadline:
                raise AssertionError("Prometheus did not scrape %d times in %.0f s" % (count, timeout))
            time.sleep(0.2)

    def scrape_health(self) -> list[dict[str, Any]]:
        return self.api("targets")["activeTargets"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def values(result: list[dict[str, Any]]) -> dict[tuple[tuple[str, str], ...], float]:
    """{sorted labels without __name__: value} of an instant-query vector."""
    return {
        tuple(sorted((k, v) for k, v in sample["metric"].items() if k != "__name__")): float(sample["value"][1])
        for sample in result
    }
