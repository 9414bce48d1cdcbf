"""The real OpenTelemetry Collector for the tests: found or built, started with collector/*.yaml as shipped.

The Collector is the one ``collector/builder-config.yaml`` describes, built by
``scripts/otelcol`` (or named by ``$OTELCOL_BIN``). In CI (``CI=true``) a
missing binary fails the tests: ``scripts/test`` builds it and exports
``OTELCOL_BIN`` before pytest runs. Outside CI the tests build it on first use.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import Counter, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client.parser import text_string_to_metric_families
from support import free_port, stop_process

from otel_gitjob import GitJobMetrics, Lifecycle, LifecycleExporter

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR_DIR = ROOT / "collector"
PROMETHEUS_CONFIG = COLLECTOR_DIR / "otelcol-prometheus.yaml"
REMOTE_WRITE_CONFIG = COLLECTOR_DIR / "otelcol-prometheusremotewrite.yaml"

Labels = tuple[tuple[str, str], ...]


def otelcol_binary() -> str:
    """The Collector binary: ``$OTELCOL_BIN``, else ``scripts/otelcol`` (which builds it once).

    Raises:
        RuntimeError: In CI when ``OTELCOL_BIN`` is not set (scripts/test sets it), or when the build fails.
    """
    configured = os.environ.get("OTELCOL_BIN")
    if configured:
        if not os.access(configured, os.X_OK):
            raise RuntimeError("OTELCOL_BIN=%s is not an executable" % configured)
        return configured
    if os.environ.get("CI") == "true":
        raise RuntimeError(
            "the Collector tests need the real Collector in CI: scripts/test builds it with scripts/otelcol "
            "and exports OTELCOL_BIN; run ./scripts/otelcol and set OTELCOL_BIN=<its last line>"
        )
    # Outside CI: build it (minutes the first time, instant afterwards). Its log goes to our stderr.
    result = subprocess.run(
        [str(ROOT / "scripts" / "otelcol")], stdout=subprocess.PIPE, stderr=sys.stderr, text=True, check=False
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise RuntimeError("scripts/otelcol failed (exit %d)" % result.returncode)
    return lines[-1]


class Collector:
    """One Collector process running a shipped config file, with free loopback ports given through its env.

    Attributes:
        otlp_http: The OTLP/HTTP metrics endpoint (``http://127.0.0.1:N/v1/metrics``).
        otlp_grpc: The OTLP/gRPC endpoint (``http://127.0.0.1:N``).
        prometheus_port: Where the ``prometheus`` exporter serves ``/metrics`` (prometheus pipeline only).
        telemetry_port: Where the Collector serves its own metrics.
    """

    def __init__(self, binary: str, config: Path, **env: str) -> None:
        self.config = config
        grpc_port, http_port = free_port(), free_port()
        self.prometheus_port = free_port()
        self.telemetry_port = free_port()
        self.otlp_grpc = "http://127.0.0.1:%d" % grpc_port
        self.otlp_http = "http://127.0.0.1:%d/v1/metrics" % http_port
        self._dir = tempfile.mkdtemp(prefix="otel-gitjob-otelcol-")
        self.log_path = Path(self._dir) / "otelcol.log"
        variables = {
            "OTELCOL_OTLP_GRPC_ENDPOINT": "127.0.0.1:%d" % grpc_port,
            "OTELCOL_OTLP_HTTP_ENDPOINT": "127.0.0.1:%d" % http_port,
            "OTELCOL_PROMETHEUS_ENDPOINT": "127.0.0.1:%d" % self.prometheus_port,
            "OTELCOL_TELEMETRY_HOST": "127.0.0.1",
            "OTELCOL_TELEMETRY_PORT": str(self.telemetry_port),
            **env,
        }
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [binary, "--config", "file:%s" % config],
            env={**os.environ, **variables},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            self._wait_listening([grpc_port, http_port, self.telemetry_port])
        except BaseException:
            self.stop()
            raise

    def _wait_listening(self, ports: Iterable[int], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for port in ports:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError("the Collector exited with %s: %s" % (self.process.returncode, self.log()))
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the Collector did not listen on %d: %s" % (port, self.log())) from None
                    time.sleep(0.05)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def metrics_text(self) -> str:
        """The ``prometheus`` exporter's ``/metrics`` page."""
        url = "http://127.0.0.1:%d/metrics" % self.prometheus_port
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()

    def samples(self, metric: str | None = None) -> dict[tuple[str, Labels], float]:
        """{(sample name, sorted labels): value} on the exporter's ``/metrics`` (one metric family or all)."""
        result = {}
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                if metric is None or sample.name == metric:
                    result[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return result

    def series_of(self, name: str, namespace: str = "fleet-local") -> set[str]:
        """Names of the samples on ``/metrics`` that carry the repo ``namespace/name``."""
        return {
            sample
            for sample, labels in self.samples()
            if ("name", name) in labels and ("namespace", namespace) in labels
        }

    def telemetry(self, metric: str) -> float:
        """Sum of the Collector's own metric ``metric`` over all its label sets (0 when absent)."""
        url = "http://127.0.0.1:%d/metrics" % self.telemetry_port
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == metric
        )

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()
        shutil.rmtree(self._dir, ignore_errors=True)


@dataclass
class Pipeline:
    """A MeterProvider exporting OTLP/HTTP to the Collector, flushed by hand."""

    provider: MeterProvider
    gitjob: GitJobMetrics
    lifecycle: Lifecycle

    def flush(self) -> None:
        assert self.provider.force_flush(10_000)

    def shutdown(self) -> None:
        self.provider.shutdown()
        self.lifecycle.shutdown()


@dataclass
class BarePipeline:
    """A bare opentelemetry-sdk provider with Fleet's created-jobs counter and no lifecycle."""

    provider: MeterProvider
    counter: Any

    def record(self, repo: tuple[str, str]) -> None:
        self.counter.add(1, {"namespace": repo[0], "name": repo[1]})

    def flush(self) -> None:
        assert self.provider.force_flush(10_000)

    def shutdown(self) -> None:
        self.provider.shutdown()


def resource(instance: str) -> Resource:
    """The resource of one controller replica: ``service.instance.id`` tells replicas apart downstream."""
    return Resource.create({"service.name": "gitjob", "service.instance.id": instance})


def lifecycle_pipeline(endpoint: str, instance: str, *, gauge_ttl: float = 120.0) -> Pipeline:
    """otel-gitjob's documented OTLP setup: ``LifecycleExporter(lifecycle, OTLPMetricExporter(...))``.

    The reader never exports on its own (infinite interval): the tests flush, so that they know
    which export carried a deletion.
    """
    lifecycle = Lifecycle()
    reader = PeriodicExportingMetricReader(
        LifecycleExporter(lifecycle, OTLPMetricExporter(endpoint=endpoint)), export_interval_millis=math.inf
    )
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views(), resource=resource(instance))
    return Pipeline(provider, GitJobMetrics(provider, lifecycle=lifecycle, gauge_ttl=gauge_ttl), lifecycle)


def bare_pipeline(endpoint: str, instance: str, temporality: str = "cumulative") -> BarePipeline:
    """What a controller has without otel-gitjob: nothing ever marks a series stale or evicts it."""
    kind = AggregationTemporality.DELTA if temporality == "delta" else AggregationTemporality.CUMULATIVE
    exporter = OTLPMetricExporter(endpoint=endpoint, preferred_temporality={Counter: kind})
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=math.inf)
    provider = MeterProvider(metric_readers=[reader], resource=resource(instance))
    counter = provider.get_meter("otel_gitjob").create_counter("fleet_gitjobs_created_success_total")
    return BarePipeline(provider, counter)


def record_everything(gitjob: GitJobMetrics, repo: tuple[str, str]) -> None:
    """One measurement on each GitJob instrument (the transient gauge included)."""
    gitjob.job_created(repo)
    gitjob.job_creation_failed(repo)
    gitjob.job_succeeded(repo, 12.0)
    gitjob.commit_fetched(repo, 0.3)
    gitjob.commit_fetch_failed(repo)
