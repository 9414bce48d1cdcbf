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

OTEL_GITJOB_COLLECT_TIMEOUT = "OTEL_GITJOB_COLLECT_TIMEOUT"
"""
.. envvar:: OTEL_GITJOB_COLLECT_TIMEOUT

Seconds a ``/metrics`` collection may take before the SDK abandons it with ``MetricsTimeoutError``
(default 300; the SDK's own default of 10 s fails the first scrape of a 30,000-repo installation).
"""

OTEL_GITJOB_CARDINALITY_LIMIT = "OTEL_GITJOB_CARDINALITY_LIMIT"
"""
.. envvar:: OTEL_GITJOB_CARDINALITY_LIMIT

Live series per instrument before the SDK folds new ones into ``otel_metric_overflow`` (default
10,000). Every watched object is one series of each of its kind's instruments: set it above the
number of objects of one kind (the Helm chart sets it from ``sizing.expectedObjects``). It applies on
the SDK releases whose views take a cardinality limit (1.45.2 and later); older ones apply none of ours.
"""

OTEL_GITJOB_DEGRADED = "OTEL_GITJOB_DEGRADED"
"""
.. envvar:: OTEL_GITJOB_DEGRADED

Seams to run on their degraded path, which relies on no foreign internals (comma-separated: ``sdk``,
``prometheus``, ``push``, or ``all``). Output stays correct and costs more; for an installed release that
misbehaves in a way the start-up self-check does not catch.
"""

__all__ = [
    "OTEL_EXPORTER_PROMETHEUS_HOST",
    "OTEL_EXPORTER_PROMETHEUS_PORT",
    "OTEL_GITJOB_CARDINALITY_LIMIT",
    "OTEL_GITJOB_COLLECT_TIMEOUT",
    "OTEL_GITJOB_DEGRADED",
    "OTEL_GITJOB_GAUGE_TTL",
]
