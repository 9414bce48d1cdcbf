"""THE seam onto the OTLP metric exporters' internals: sending a request we built through their own client.

Only this module touches a ``_``-prefixed name of
``opentelemetry-exporter-otlp-proto-http`` or ``-grpc``. Markers and final deltas
go in requests of their own, never inside the exporter's requests of live data,
with the exporter's own endpoint, TLS, headers, compression, timeout and limits
(``max_export_batch_size``, ``max_request_size``, ``grpc.max_send_message_length``,
at most :data:`MAX_REQUEST_BYTES`). One adapter per shape of the exporters: see
the ``Transport`` subclasses.

Before the first marker of an exporter class is sent, :func:`transport_for`
checks its adapter with a throwaway exporter of that class: over HTTP a known
request must reach a loopback receiver exactly; over gRPC the exporter's client
(a recorder) must get exactly that request, and live data unchanged. When no
adapter fits or the check fails (or ``OTEL_GITJOB_DEGRADED=push``), the seam
runs *degraded* (one WARNING, ``otel_gitjob_degraded{seam="push"} 1``):
:class:`PublicTransport` uses the public ``export()`` only, which carries final
deltas but not markers (SDK data has no point flags); markers are counted as
dropped and receivers drop those series at their own expiry.
"""

from __future__ import annotations

import inspect
import logging
import sys
import threading
import time
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExportResult, MetricsData

from otel_gitjob._internal.core import degraded
from otel_gitjob._internal.core.locks import join, ranked_lock
from otel_gitjob._internal.push.encoding import NO_RECORDED_VALUE, metrics_data

__all__ = ["MAX_REQUEST_BYTES", "SEAM", "PublicTransport", "Transport", "reset_checks", "transport_for"]

SEAM = "push"
_logger = logging.getLogger("otel_gitjob")

# 4 MiB: the default max_recv_msg_size_mib of the Collector's OTLP/gRPC receiver, and well below its
# HTTP receiver's 20 MiB body limit. Markers are never urgent enough to risk a refused request.
MAX_REQUEST_BYTES = 4 * 1024 * 1024


class Transport:
    """Sends a prebuilt ``ExportMetricsServiceRequest`` through one OTLP exporter instance.

    An adapter fits an exporter class whose ``method`` takes ``params`` first.
    """

    name = "none"  # in logs and the self-check's reason
    sends_requests = True  # False for PublicTransport: only SDK data goes, through export()
    method = ""
    params: tuple[str, ...] = ()

    def __init__(self, exporter: Any) -> None:
        self.exporter = exporter

    @classmethod
    def fits(cls, exporter_class: type) -> bool:
        """Whether the exporter class has this adapter's shape."""
        function = getattr(exporter_class, cls.method, None) if cls.method else None
        return function is not None and tuple(_params(function)[: len(cls.params)]) == cls.params

    def install(self) -> None:
        """Patch the exporter instance, where the transport needs to."""

    def uninstall(self) -> None:
        """Undo :meth:`install`."""

    def limits(self) -> tuple[int | None, int]:
        """``(max points, max bytes)`` per request, as the exporter would split and refuse."""
        batch = getattr(self.exporter, "_max_export_batch_size", None)
        max_points = batch if isinstance(batch, int) and batch > 0 else None
        return max_points, MAX_REQUEST_BYTES

    def send(self, request: Any) -> MetricExportResult:
        raise NotImplementedError


def _params(function: Any) -> list[str]:
    try:
        return [name for name in inspect.signature(function).parameters if name != "self"]
    except (TypeError, ValueError):
        return []


class _Http(Transport):
    def limits(self) -> tuple[int | None, int]:
        max_points, max_bytes = super().limits()
        limit = getattr(self.exporter, "_max_request_size", None)
        if isinstance(limit, int) and limit > 0:
            max_bytes = min(max_bytes, limit)
        return max_points, max_bytes

    def send(self, request: Any) -> MetricExportResult:
        if getattr(self.exporter, "_shutdown", False):
            return MetricExportResult.FAILURE
        return self._post(request)

    def _post(self, request: Any) -> MetricExportResult:
        raise NotImplementedError


class HttpTransport(_Http):
    """OTLP/HTTP 1.45 and later: ``_export_batch`` sends one request (size check, compression, retries)."""

    name, method, params = "http-export-batch", "_export_batch", ("export_request",)

    def _post(self, request: Any) -> MetricExportResult:
        return self.exporter._export_batch(request)  # type: ignore[no-any-return]


class HttpRetriesTransport(_Http):
    """OTLP/HTTP 1.41 - 1.44: ``_export_with_retries(request, deadline[, points])``, with the exporter's retries."""

    name, method, params = "http-export-with-retries", "_export_with_retries", ("export_request", "deadline_sec")

    def _post(self, request: Any) -> MetricExportResult:
        deadline = time.time() + float(getattr(self.exporter, "_timeout", 10) or 10)
        if "num_items" not in _params(self.exporter._export_with_retries):  # 1.41
            return self.exporter._export_with_retries(request, deadline)  # type: ignore[no-any-return]
        # Each of our metrics holds one point.
        points = sum(len(scope.metrics) for resource in request.resource_metrics for scope in resource.scope_metrics)
        return self.exporter._export_with_retries(request, deadline, points)  # type: ignore[no-any-return]


class HttpPostTransport(_Http):
    """OTLP/HTTP 1.33 - 1.40: ``_export(bytes[, timeout])`` posts once; a failed send stays pending."""

    name, method, params = "http-export-bytes", "_export", ("serialized_data",)

    def _post(self, request: Any) -> MetricExportResult:
        import requests

        try:
            response = self.exporter._export(request.SerializeToString())
        except requests.exceptions.RequestException as exc:
            _logger.info("otel-gitjob: sending staleness markers failed: %s", exc)
            return MetricExportResult.FAILURE
        if response.ok:
            return MetricExportResult.SUCCESS
        _logger.info("otel-gitjob: the receiver refused staleness markers: HTTP %s", response.status_code)
        return MetricExportResult.FAILURE


class _Prebuilt(MetricsData):
    """Stands for a request we encoded ourselves on its way through the gRPC exporter's ``_export``."""

    def __init__(self, request: Any) -> None:
        # No SDK data: the exporter's point count (its own self-metrics) sees none.
        super().__init__(resource_metrics=[])
        object.__setattr__(self, "request", request)


class GrpcTransport(Transport):
    """OTLP/gRPC: ``_export(data)`` calls ``_translate_data(data)`` once per attempt (retries re-send).

    ``_translate_data`` is patched on the exporter *instance* to hand back our request for our data,
    and to call the exporter's own for anything else.
    """

    name, method = "grpc-translate-data", "_translate_data"

    @classmethod
    def fits(cls, exporter_class: type) -> bool:
        return super().fits(exporter_class) and "data" in _params(getattr(exporter_class, "_export", None))

    def install(self) -> None:
        translate = self.exporter._translate_data

        def translate_prebuilt(data: Any) -> Any:
            if isinstance(data, _Prebuilt):
                return data.request  # type: ignore[attr-defined]
            return translate(data)

        self.exporter._translate_data = translate_prebuilt

    def uninstall(self) -> None:
        self.exporter.__dict__.pop("_translate_data", None)  # back to the class's method

    def limits(self) -> tuple[int | None, int]:
        max_points, max_bytes = super().limits()
        for name, value in getattr(self.exporter, "_channel_options", None) or ():
            if name == "grpc.max_send_message_length" and isinstance(value, int) and value > 0:
                max_bytes = min(max_bytes, value)
        return max_points, max_bytes

    def send(self, request: Any) -> MetricExportResult:
        return self.exporter._export(data=_Prebuilt(request))  # type: ignore[no-any-return]


class PublicTransport(Transport):
    """The degraded adapter: the exporter's public ``export()`` only (final deltas go, markers cannot)."""

    name = "public"
    sends_requests = False


_ADAPTERS: tuple[tuple[str, str, tuple[type[Transport], ...]], ...] = (
    (
        "opentelemetry.exporter.otlp.proto.http.metric_exporter",
        "http",
        (HttpTransport, HttpRetriesTransport, HttpPostTransport),
    ),
    ("opentelemetry.exporter.otlp.proto.grpc.metric_exporter", "grpc", (GrpcTransport,)),
)

_checks_lock = ranked_lock("push.self_check")  # guards _checks; a check runs outside it (it starts and joins threads)
_checks: dict[type, tuple[type[Transport] | None, str]] = {}  # exporter class -> (adapter, why degraded)
_warned_markers = threading.Event()


def reset_checks() -> None:
    """Forget the self-checks' results (tests that swap internals)."""
    with _checks_lock:
        _checks.clear()


def transport_for(exporter: Any) -> Transport | None:
    """The transport for an OTLP metric exporter instance; None for any other exporter.

    An OTLP exporter gets its adapter once the class passed the self-check, else
    (or when forced) :class:`PublicTransport`, with the seam marked degraded. The
    exporter classes are looked up in ``sys.modules``: nothing is imported for
    other exporters (the OTLP packages are optional).
    """
    for module_name, protocol, adapters in _ADAPTERS:
        exporter_class = getattr(sys.modules.get(module_name), "OTLPMetricExporter", None)
        if exporter_class is None or not isinstance(exporter, exporter_class):
            continue
        if degraded.forced(SEAM):
            adapter, reason = None, "forced by %s" % degraded.FORCE_ENV
        else:
            adapter, reason = _checked(type(exporter), exporter_class, adapters, protocol)
        if adapter is None:
            degraded.mark_degraded(SEAM, reason)
            if not _warned_markers.is_set():
                _warned_markers.set()
                _logger.warning(
                    "otel-gitjob: OTLP staleness markers are not sent while the push seam is degraded; forgotten "
                    "and expired series are still never exported, receivers drop them at their own expiry "
                    "(counted in otel_gitjob_staleness_markers_dropped)"
                )
            return PublicTransport(exporter)
        degraded.mark_checked(SEAM)
        return adapter(exporter)
    return None


def _checked(
    cls: type, exporter_class: type, adapters: tuple[type[Transport], ...], protocol: str
) -> tuple[type[Transport] | None, str]:
    with _checks_lock:
        known = _checks.get(cls)
    if known is not None:
        return known
    fitting = [adapter for adapter in adapters if adapter.fits(cls)]
    if not fitting:
        result: tuple[type[Transport] | None, str] = (
            None,
            "no adapter fits %s.%s" % (exporter_class.__module__, exporter_class.__qualname__),
        )
    else:
        adapter = fitting[0]
        try:
            problem = (_check_http if protocol == "http" else _check_grpc)(cls, adapter)
        except Exception as exc:  # any failure means: not proven to deliver
            _logger.debug("otel-gitjob: the push self-check raised", exc_info=True)
            problem = "%s: %s" % (type(exc).__name__, exc)
        if problem is None:
            result = (adapter, "")
        else:
            result = (None, "the %s adapter failed its self-check (%s)" % (adapter.name, problem))
    with _checks_lock:
        return _checks.setdefault(cls, result)


# -- the behavioural self-checks: a known request through a throwaway exporter of the class ---------------------


def _probe_request() -> Any:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="otel_gitjob_push_self_check")
    metric.gauge.data_points.add(time_unix_nano=1, flags=NO_RECORDED_VALUE)  # the flag must arrive
    return request


def _check_http(cls: type, adapter: type[Transport]) -> str | None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import requests
    from opentelemetry.exporter.otlp.proto.http import Compression

    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            received.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Log nothing."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll: shutdown() waits up to one poll interval.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="otel-gitjob-push-check", daemon=True
    )
    thread.start()
    try:
        session = requests.Session()
        session.trust_env = False  # straight to loopback, whatever proxy the environment names
        exporter = cls(
            endpoint="http://127.0.0.1:%d/v1/metrics" % server.server_address[1],
            timeout=5,
            compression=Compression.NoCompression,
            session=session,
        )
        try:
            request = _probe_request()
            result = adapter(exporter).send(request)
        finally:
            exporter.shutdown()
    finally:
        server.shutdown()
        server.server_close()
        join(thread, 5)
    if result is not MetricExportResult.SUCCESS:
        return "sending returned %s" % (result,)
    if received != [request.SerializeToString()]:
        return "the receiver got %d requests, not exactly the one sent" % len(received)
    return None


def _check_grpc(cls: type, adapter: type[Transport]) -> str | None:
    # The exporter's stub is replaced by a recorder: what is checked is the exporter's own send step
    # (_export calling _translate_data, then Export), with no channel, network or proxy involved.
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
    from opentelemetry.sdk.metrics.export import Gauge, Metric, NumberDataPoint
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    received: list[Any] = []

    class Recorder:
        def Export(self, request: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 (gRPC's naming)
            received.append(request)
            return ExportMetricsServiceResponse()

    exporter = cls(endpoint="127.0.0.1:9", insecure=True, timeout=5)
    try:
        exporter._client = Recorder()
        transport = adapter(exporter)
        transport.install()
        try:
            request = _probe_request()
            result = transport.send(request)
            gauge = Gauge([NumberDataPoint({}, 0, 1, 7)])
            live = Metric(name="otel_gitjob_push_self_check_live", description="", unit="", data=gauge)
            scope = InstrumentationScope("otel-gitjob-self-check")
            live_result = exporter.export(metrics_data({Resource.create({}): {scope: [live]}}))
        finally:
            transport.uninstall()
    finally:
        exporter.shutdown()
        channel = getattr(exporter, "_channel", None)
        if channel is not None:
            channel.close()
    if result is not MetricExportResult.SUCCESS or live_result is not MetricExportResult.SUCCESS:
        return "sending returned %s, a live export %s" % (result, live_result)
    if len(received) != 2 or received[0] != request:
        return "the exporter did not hand its client exactly the request sent"
    names = [m.name for rm in received[1].resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    if names != ["otel_gitjob_push_self_check_live"]:
        return "the exporter's own data no longer went through unchanged"
    return None
