"""OTLP sinks (HTTP and gRPC) that decode what they receive, and how the OTLP tests build exporters."""

from __future__ import annotations

import gzip
import http.server
import socket
import subprocess
import threading
import time
import zlib
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

from otel_gitjob import GitJobMetrics, Lifecycle

NO_RECORDED_VALUE = 1


@dataclass(frozen=True)
class Point:
    """One received data point, flattened with what its metric says about it."""

    request: int  # index of the request it arrived in
    scope: str
    metric: str
    kind: str  # sum, gauge, histogram, exponential_histogram
    temporality: int  # 0 for gauges; 1 delta, 2 cumulative
    monotonic: bool
    attributes: tuple[tuple[str, Any], ...]
    flags: int
    value: Any  # as_int/as_double, or (count, sum) for histograms; None when unset
    start: int
    time: int
    points_in_metric: int

    @property
    def stale(self) -> bool:
        return bool(self.flags & NO_RECORDED_VALUE)

    def attrs(self) -> dict[str, Any]:
        return dict(self.attributes)


def flatten(requests: list[ExportMetricsServiceRequest]) -> list[Point]:
    """Every point of the package's metrics under test; its own ``otel_gitjob_*`` self-metrics are left out."""
    points = []
    for index, request in enumerate(requests):
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name.startswith("otel_gitjob_"):
                        continue
                    kind = metric.WhichOneof("data")
                    data = getattr(metric, kind)
                    temporality = getattr(data, "aggregation_temporality", 0)
                    monotonic = getattr(data, "is_monotonic", False)
                    for pt in data.data_points:
                        attributes = tuple(
                            sorted((kv.key, getattr(kv.value, kv.value.WhichOneof("value"))) for kv in pt.attributes)
                        )
                        if kind in ("sum", "gauge"):
                            which = pt.WhichOneof("value")
                            value = getattr(pt, which) if which else None
                        else:
                            value = (pt.count, pt.sum if pt.HasField("sum") else None)
                        points.append(
                            Point(
                                index,
                                sm.scope.name,
                                metric.name,
                                kind,
                                temporality,
                                monotonic,
                                attributes,
                                pt.flags,
                                value,
                                getattr(pt, "start_time_unix_nano", 0),
                                pt.time_unix_nano,
                                len(data.data_points),
                            )
                        )
    return points


class Sink:
    """Records every ExportMetricsServiceRequest it receives; can be told to fail or to hang."""

    protocol = ""
    port = 0
    endpoint = ""

    def __init__(self) -> None:
        self.requests: list[ExportMetricsServiceRequest] = []
        self.resources: list[Any] = []
        self.cond = threading.Condition()
        self.fail_next = 0  # answer this many requests with an error
        self.release = threading.Event()  # cleared: requests hang until set
        self.release.set()
        self.hanging = threading.Event()  # set once a request hangs on ``release``

    def record(self, request: ExportMetricsServiceRequest) -> bool:
        """Store the request; False when it is to be answered with an error."""
        if not self.release.is_set():
            self.hanging.set()
        self.release.wait(10)
        with self.cond:
            if self.fail_next > 0:
                self.fail_next -= 1
                return False
            self.requests.append(request)
            self.cond.notify_all()
            return True

    def points(self) -> list[Point]:
        with self.cond:
            return flatten(list(self.requests))

    def count(self) -> int:
        with self.cond:
            return len(self.requests)

    def wait_for(self, predicate: Callable[[list[Point]], bool], timeout: float = 10.0) -> list[Point]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                points = flatten(list(self.requests))
                if predicate(points):
                    return points
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("the sink did not receive the expected points in %.0f s" % timeout)
                self.cond.wait(remaining)

    def close(self) -> None:
        raise NotImplementedError

    def wait_requests(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("expected %d requests, got %d" % (count, len(self.requests)))
                self.cond.wait(remaining)


class HttpSink(Sink):
    """OTLP/HTTP protobuf receiver on 127.0.0.1 (handles gzip and deflate bodies)."""

    protocol = "http"

    def __init__(self) -> None:
        super().__init__()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                request = ExportMetricsServiceRequest()
                request.ParseFromString(body)
                ok = sink.record(request)
                payload = ExportMetricsServiceResponse().SerializeToString() if ok else b"collector failure"
                # 400: refused on every exporter release (before 1.39 the HTTP exporter retried a 500).
                self.send_response(200 if ok else 400)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.endpoint = "http://127.0.0.1:%d/v1/metrics" % self.port
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name="http-sink", daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class GrpcSink(Sink):
    """OTLP/gRPC receiver on 127.0.0.1."""

    protocol = "grpc"

    def __init__(self) -> None:
        super().__init__()
        sink = self

        class Servicer(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request: ExportMetricsServiceRequest, context: Any) -> ExportMetricsServiceResponse:  # noqa: N802
                if not sink.record(request):
                    context.abort(grpc.StatusCode.INTERNAL, "collector failure")
                return ExportMetricsServiceResponse()

        self.executor = futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="grpc-sink")
        self.server = grpc.server(self.executor)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Servicer(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.server.start()

    def close(self) -> None:
        self.release.set()
        self.server.stop(0).wait(5)
        self.executor.shutdown(wait=True)


def exporter_options(protocol: str) -> set[str]:
    """The constructor options this release of the protocol's OTLP metric exporter takes."""
    import inspect

    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    return set(inspect.signature(OTLPMetricExporter.__init__).parameters)


def otlp_exporter(protocol: str, endpoint: str, **options: Any) -> Any:
    """The SDK's OTLP metric exporter of ``protocol``, aimed at ``endpoint``."""
    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter(endpoint=endpoint, **options)
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter

    return GrpcExporter(endpoint=endpoint, insecure=True, **options)


@dataclass
class Pipeline:
    lifecycle: Lifecycle
    provider: MeterProvider
    reader: PeriodicExportingMetricReader
    gitjob: GitJobMetrics
    exporter: Any  # the LifecycleExporter

    def flush(self) -> None:
        assert self.provider.force_flush(10_000)


# -- rotel, a real OTLP collector between the exporter and the sink -------------------------------------------


def rotel_binary() -> Path:
    """The binary the ``rotel`` package ships and starts (``rotel.agent.Agent.agent_path``)."""
    from rotel.agent import Agent  # ImportError here fails the test: rotel is a test requirement

    path = Path(Agent.agent_path)
    assert path.exists(), "the rotel package has no agent binary at %s" % path
    return path


@dataclass
class Rotel:
    process: subprocess.Popen
    grpc_endpoint: str
    http_endpoint: str
    log_file: Path


def wait_listening(port: int, process: subprocess.Popen, log_file: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("rotel exited with %s: %s" % (process.returncode, read_log(log_file)))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("rotel did not listen on %d: %s" % (port, read_log(log_file)))


def read_log(path: Path) -> str:
    try:
        return path.read_text()[-2000:]
    except OSError:
        return ""


# -- what the tests record and look for ------------------------------------------------------------------------

REPO_A = ("fleet-local", "repo-a")
REPO_B = ("fleet-local", "repo-b")
ATTRS_A = (("name", "repo-a"), ("namespace", "fleet-local"))
ATTRS_B = (("name", "repo-b"), ("namespace", "fleet-local"))

EXPECTED_KINDS = {
    "fleet_gitjobs_created_success_total": ("sum", True),
    "fleet_gitjobs_created_failure_total": ("sum", True),
    "fleet_gitjob_duration_seconds": ("histogram", False),
    "fleet_gitjob_duration_seconds_gauge": ("gauge", False),
    "fleet_gitrepo_fetch_latest_commit_success_total": ("sum", True),
    "fleet_gitrepo_fetch_latest_commit_failure_total": ("sum", True),
    "fleet_gitrepo_fetch_latest_commit_duration_seconds": ("histogram", False),
}


def record_everything(gitjob: Any, repo: tuple[str, str]) -> None:
    """One measurement on each of the seven instruments."""
    gitjob.job_created(repo)
    gitjob.job_creation_failed(repo)
    gitjob.job_succeeded(repo, 12.0)
    gitjob.commit_fetched(repo, 0.3)
    gitjob.commit_fetch_failed(repo)


def of(points: list[Point], attributes: tuple, request: int | None = None) -> list[Point]:
    return [p for p in points if p.attributes == attributes and (request is None or p.request == request)]
