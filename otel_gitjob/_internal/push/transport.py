"""Hooking the exporter transports: sending a request we built through the OTLP exporter's own client.

Markers and final deltas travel in requests of their own, never inside the
exporter's requests of live data, so they can neither delay nor (by pushing
a request past a size limit) drop live data. Each request goes out with the
exporter's own endpoint, TLS, headers, compression, timeout and retries:

* OTLP/HTTP (``opentelemetry-exporter-otlp-proto-http`` 1.45 and later):
  ``_export_batch(request)`` sends one encoded request, checking the
  exporter's ``max_request_size`` itself. Earlier releases have no such
  step, and get no markers (a warning says so).
* OTLP/gRPC (every supported release): ``_export(data)`` encodes with
  ``_translate_data(data)`` once per attempt; that method is patched on the
  exporter *instance* to hand back our request for our data, and to call
  the exporter's own for anything else.

Limits follow the exporter's: ``max_export_batch_size`` points per request, and
at most :data:`MAX_REQUEST_BYTES` (or the exporter's ``max_request_size`` /
the channel's ``grpc.max_send_message_length``, when smaller).
"""

from __future__ import annotations

import sys
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExportResult, MetricsData

__all__ = ["MAX_REQUEST_BYTES", "Transport", "transport_for"]

_HTTP_MODULE = "opentelemetry.exporter.otlp.proto.http.metric_exporter"
_GRPC_MODULE = "opentelemetry.exporter.otlp.proto.grpc.metric_exporter"

# 4 MiB: the default max_recv_msg_size_mib of the Collector's OTLP/gRPC receiver, and well below its
# HTTP receiver's 20 MiB body limit. Markers are never urgent enough to risk a refused request.
MAX_REQUEST_BYTES = 4 * 1024 * 1024


class Transport:
    """Sends a prebuilt ``ExportMetricsServiceRequest`` through one OTLP exporter instance."""

    needs: tuple[str, ...] = ()

    def __init__(self, exporter: Any) -> None:
        self.exporter = exporter

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


class HttpTransport(Transport):
    """OTLP/HTTP: ``_export_batch`` sends one encoded request (size check, compression, retries)."""

    needs = ("_export_batch",)

    def limits(self) -> tuple[int | None, int]:
        max_points, max_bytes = super().limits()
        limit = getattr(self.exporter, "_max_request_size", None)
        if isinstance(limit, int) and limit > 0:
            max_bytes = min(max_bytes, limit)
        return max_points, max_bytes

    def send(self, request: Any) -> MetricExportResult:
        if getattr(self.exporter, "_shutdown", False):
            return MetricExportResult.FAILURE
        return self.exporter._export_batch(request)  # type: ignore[no-any-return]


class _Prebuilt(MetricsData):
    """Stands for a request we encoded ourselves on its way through the gRPC exporter's ``_export``."""

    def __init__(self, request: Any) -> None:
        # No SDK data: the exporter's point count (its own self-metrics) sees none.
        super().__init__(resource_metrics=[])
        object.__setattr__(self, "request", request)


class GrpcTransport(Transport):
    """OTLP/gRPC: ``_export(data)`` calls ``_translate_data(data)`` once per attempt (retries re-send)."""

    needs = ("_translate_data", "_export")

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


def transport_for(exporter: Any) -> tuple[type[Transport] | None, str | None]:
    """The transport class for an OTLP metric exporter, and the exporter's class name.

    Looks the exporter classes up in ``sys.modules`` so that nothing is imported
    for other exporters (the OTLP packages are optional). ``(None, None)`` for
    any other exporter.
    """
    for module_name, transport_class in ((_HTTP_MODULE, HttpTransport), (_GRPC_MODULE, GrpcTransport)):
        module = sys.modules.get(module_name)
        exporter_class = getattr(module, "OTLPMetricExporter", None)
        if exporter_class is not None and isinstance(exporter, exporter_class):
            return transport_class, exporter_class.__qualname__
    return None, None
