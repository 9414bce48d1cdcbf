"""What the tests share: a hand-moved clock, waiting with a deadline, ports, processes and reading metrics back.

Every helper a second test file needs lives here, once; a tier's own fixtures (a Prometheus, a Collector,
a kube-apiserver) stay beside that tier.
"""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- waiting -------------------------------------------------------------------------------------------------------


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy and return that; fail the test after ``timeout`` s.

    The deadline only bounds a failing test: a passing one returns as soon as the condition holds, so the
    timeout can be generous without slowing the suite.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("not within %.1f s: %s" % (timeout, what or condition))
        time.sleep(interval)


# -- ports and processes -------------------------------------------------------------------------------------------


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out as a connection's source port (Linux; 32768 elsewhere)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
            return int(ranges.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Ports below the ephemeral range: a port the kernel picked with bind(0) is free only until the kernel
# gives it to some outgoing connection's source port (an exporter's, a scrape's), which it may do before
# the process we pass it to has bound it. No outgoing connection takes a port below the range.
_PORTS_LOW = 20000
_PORTS_HIGH = max(_PORTS_LOW + 1000, _ephemeral_low())
_given: set[int] = set()
_given_lock = threading.Lock()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, never the source port of an outgoing connection.

    Chosen at random below the kernel's ephemeral range, so another test process is unlikely to pick it too,
    and never handed out twice by this process.
    """
    rng = random.Random()
    with _given_lock:
        for _ in range(1000):
            port = rng.randrange(_PORTS_LOW, _PORTS_HIGH)
            if port in _given:
                continue
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _given.add(port)
            return port
    raise RuntimeError("no free port in %d-%d" % (_PORTS_LOW, _PORTS_HIGH - 1))


def stop_process(process: subprocess.Popen[Any] | None, timeout: float = 10.0) -> None:
    """SIGTERM a process we started (by its PID), SIGKILL it if it does not exit within ``timeout`` s."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


# -- reading metrics back ------------------------------------------------------------------------------------------


def scrape(url: str, missing_ok: bool = False) -> str:
    """The body of ``url`` (a /metrics endpoint); with ``missing_ok``, "" while nothing answers there yet."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())
    except OSError:
        if missing_ok:
            return ""
        raise


def metrics_url(port: int, host: str = "127.0.0.1") -> str:
    return "http://%s:%d/metrics" % (host, port)


def series(exposition: str, metric: str) -> dict[Labels, float]:
    """``{sorted labels: value}`` of every sample named ``metric`` in a Prometheus text exposition."""
    found: dict[Labels, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == metric:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def samples(registry: CollectorRegistry) -> dict[tuple[str, Labels], float]:
    """Scrape ``registry`` and return {(sample name, sorted labels): value}."""
    text = generate_latest(registry).decode()
    result = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            result[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return result


def sample_names_for(registry: CollectorRegistry, **labels: str) -> set[str]:
    """Names of the samples carrying all of ``labels``."""
    wanted = set(labels.items())
    return {name for (name, sample_labels) in samples(registry) if wanted <= set(sample_labels)}


def points_of(metrics_data: MetricsData | None) -> dict[tuple[str, tuple[tuple[str, Any], ...]], Any]:
    """{(metric name, sorted attributes): value, or count for a histogram} of every point of a collection."""
    found: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}
    for resource_metrics in getattr(metrics_data, "resource_metrics", None) or ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    found[(metric.name, tuple(sorted(point.attributes.items())))] = (
                        value if value is not None else point.count
                    )
    return found


def named_points(metrics_data: MetricsData | None, *keys: str) -> set[tuple[str, ...]]:
    """{(metric name, the value of each of ``keys``, "" when absent)} of the points that carry a ``name``."""
    found = set()
    for metric, attributes in points_of(metrics_data):
        values = dict(attributes)
        if "name" in values:
            found.add((metric, *(str(values.get(key, "")) for key in keys)))
    return found


# -- races ---------------------------------------------------------------------------------------------------------


def hammer(threads: list[threading.Thread], stop: threading.Event, seconds: float, switch_interval: float) -> None:
    """Run ``threads`` for ``seconds``, switching between them every ``switch_interval`` s, then stop and join them.

    Switching threads every few bytecodes instead of every 5 ms makes races happen that a loaded machine
    would produce.
    """
    interval = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval)
    try:
        for thread in threads:
            thread.start()
        stop.wait(seconds)
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)


# -- fakes of our own --------------------------------------------------------------------------------------------


class ListExporter(MetricExporter):
    """A real MetricExporter that keeps what it was given, for tests that need no Collector."""

    def __init__(self, **preferences: Any) -> None:
        super().__init__(**preferences)  # preferred_temporality, preferred_aggregation
        self.exports: list[MetricsData] = []

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        self.exports.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def gitrepo(name: str, uid: str, namespace: str = "fleet-local") -> dict[str, Any]:
    """A GitRepo object as the kubernetes client's watch hands it over (a dict)."""
    return {"kind": "GitRepo", "metadata": {"namespace": namespace, "name": name, "uid": uid}}
