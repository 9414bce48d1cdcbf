"""Environment variables otel-gitjob reads.

The Prometheus endpoint honours the SDK's own variables, so an
``opentelemetry-instrument``-style deployment configures it the same way.
"""

from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_PROMETHEUS_HOST,
    OTEL_EXPORTER_PROMETHEUS_PORT,
)

OTEL_GITJOB_GAUGE_TTL = "OTEL_GITJOB_GAUGE_TTL"
"""
.. envvar:: OTEL_GITJOB_GAUGE_TTL

Seconds the transient job-duration gauge stays after it was last set (default 120, Fleet's).
"""

__all__ = ["OTEL_EXPORTER_PROMETHEUS_HOST", "OTEL_EXPORTER_PROMETHEUS_PORT", "OTEL_GITJOB_GAUGE_TTL"]
