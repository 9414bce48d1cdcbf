"""The push exporters ``otel-gitjob watch`` runs, from the SDK's own environment variables.

``OTEL_METRICS_EXPORTER`` (comma-separated, default ``prometheus``) names them as the SDK's
auto-instrumentation does: ``prometheus`` (``/metrics``, always served: the probes share its server),
``otlp`` (``http/protobuf`` or ``grpc`` after ``OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL``; the exporter reads
the other ``OTEL_EXPORTER_OTLP_*`` variables itself) or ``none``. Anything else, or ``otlp`` without the
``[otlp]`` extra, is a ``ConfigurationError`` with the fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter

from otel_gitjob._internal.core.errors import ConfigurationError

__all__ = ["exporters_from_environment"]

# The SDK's names (opentelemetry.environment_variables / .sdk.environment_variables; spelled out here
# because not every supported release defines all three in the same module).
OTEL_METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"
OTEL_EXPORTER_OTLP_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
OTEL_EXPORTER_OTLP_METRICS_PROTOCOL = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"

# protocol -> the module of its exporter (both in the [otlp] extra)
_OTLP_EXPORTERS = {
    "http/protobuf": "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "grpc": "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
}
_KNOWN = ("prometheus", "otlp", "none")


def exporters_from_environment(environ: Mapping[str, str] | None = None) -> list[MetricExporter]:
    """The push exporters ``OTEL_METRICS_EXPORTER`` asks for (``[]`` for ``prometheus`` alone).

    Raises:
        ConfigurationError: An unknown exporter or protocol, or ``otlp`` without its package.
    """
    environ = os.environ if environ is None else environ
    names = [name.strip().lower() for name in environ.get(OTEL_METRICS_EXPORTER, "prometheus").split(",")]
    names = [name for name in names if name]
    unknown = [name for name in names if name not in _KNOWN]
    if unknown:
        raise ConfigurationError(
            "%s=%r: unknown exporter %s; use a comma-separated list of %s"
            % (OTEL_METRICS_EXPORTER, environ.get(OTEL_METRICS_EXPORTER), ", ".join(unknown), ", ".join(_KNOWN))
        )
    if "otlp" not in names:
        return []
    protocol = (
        environ.get(OTEL_EXPORTER_OTLP_METRICS_PROTOCOL) or environ.get(OTEL_EXPORTER_OTLP_PROTOCOL) or "http/protobuf"
    ).strip()
    module_name = _OTLP_EXPORTERS.get(protocol)
    if module_name is None:
        raise ConfigurationError(
            "%s=%r: unknown OTLP protocol; use %s"
            % (OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, protocol, " or ".join(_OTLP_EXPORTERS))
        )
    try:
        module: Any = __import__(module_name, fromlist=["OTLPMetricExporter"])
    except ImportError:
        raise ConfigurationError(
            "%s=otlp needs the OTLP exporter, which is not installed: pip install 'otel-gitjob[otlp]'"
            % OTEL_METRICS_EXPORTER
        ) from None
    return [module.OTLPMetricExporter()]
