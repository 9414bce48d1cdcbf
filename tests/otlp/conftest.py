"""Fixtures of the OTLP tests: decoding sinks, pipelines flushed by hand, and rotel as the collector."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from otlp_helpers import GrpcSink, HttpSink, Pipeline, Rotel, Sink, rotel_binary, wait_listening
from support import free_port, stop_process

from otel_gitjob import GitJobMetrics, Lifecycle, LifecycleExporter


@pytest.fixture(params=["cumulative", "delta"])
def temporality(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test under both temporalities, chosen the way users choose them (the OTLP env variable)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", request.param)
    return request.param


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    sink = HttpSink()
    yield sink
    sink.close()


@pytest.fixture
def grpc_sink() -> Iterator[GrpcSink]:
    sink = GrpcSink()
    yield sink
    sink.close()


@pytest.fixture(params=["http", "grpc"])
def sink(request: pytest.FixtureRequest) -> Iterator[Sink]:
    """A sink of the protocol the test is parametrized with (``sink.protocol``)."""
    sink: Sink = HttpSink() if request.param == "http" else GrpcSink()
    yield sink
    sink.close()


@pytest.fixture
def make_pipeline() -> Iterator[Callable[..., Pipeline]]:
    """Build lifecycle → MeterProvider → PeriodicExportingMetricReader(LifecycleExporter(lifecycle, exporter)).

    The reader never exports on its own (infinite interval): tests flush explicitly.
    """
    built: list[Pipeline] = []

    def make(exporter: Any, lifecycle: Lifecycle, gauge_ttl: float = 120.0) -> Pipeline:
        wrapped = LifecycleExporter(lifecycle, exporter)
        reader = PeriodicExportingMetricReader(wrapped, export_interval_millis=math.inf)
        provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
        gitjob = GitJobMetrics(provider, lifecycle=lifecycle, gauge_ttl=gauge_ttl)
        pipeline = Pipeline(lifecycle, provider, reader, gitjob, wrapped)
        built.append(pipeline)
        return pipeline

    yield make
    for pipeline in built:
        pipeline.provider.shutdown()


@pytest.fixture
def start_rotel(tmp_path: Path) -> Iterator[Callable[[Sink], Rotel]]:
    """Start rotel in the foreground (we own its pid): OTLP receivers on free ports, OTLP exporter to a sink."""
    started: list[subprocess.Popen] = []

    def start(sink: Sink) -> Rotel:
        grpc_port, http_port = free_port(), free_port()
        log_file = tmp_path / ("rotel-%d.log" % len(started))
        command = [
            str(rotel_binary()),
            "start",
            "--otlp-grpc-endpoint",
            "127.0.0.1:%d" % grpc_port,
            "--otlp-http-endpoint",
            "127.0.0.1:%d" % http_port,
            "--otlp-receiver-traces-disabled",
            "--otlp-receiver-logs-disabled",
            "--exporter",
            "otlp",
            "--otlp-exporter-protocol",
            sink.protocol,
            "--otlp-exporter-endpoint",
            "http://127.0.0.1:%d" % sink.port,
            # Forward each request as it comes: the test flushes and waits for it downstream.
            "--disable-batching",
            "--pid-file",
            str(tmp_path / ("rotel-%d.pid" % len(started))),
            "--log-file",
            str(log_file),
        ]
        with open(log_file, "ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        started.append(process)
        wait_listening(grpc_port, process, log_file)
        wait_listening(http_port, process, log_file)
        return Rotel(process, "http://127.0.0.1:%d" % grpc_port, "http://127.0.0.1:%d/v1/metrics" % http_port, log_file)

    yield start
    for process in started:
        stop_process(process)
