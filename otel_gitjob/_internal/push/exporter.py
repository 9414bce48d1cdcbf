"""The push path's exporter wrapper: nothing of a forgotten object leaves the process through an export.

It never shuts down the lifecycle it was given: one lifecycle may serve
several providers, and its owner shuts it down.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

from otel_gitjob._internal.core import _sdk
from otel_gitjob._internal.core.errors import ConfigurationError
from otel_gitjob._internal.core.lifecycle import Lifecycle, hooks_of
from otel_gitjob._internal.push.markers import staleness_markers_for

__all__ = ["LifecycleExporter"]


class LifecycleExporter(MetricExporter):
    """Wraps a push exporter so that forgotten and expired series are never exported.

    Temporality and aggregation preferences are the wrapped exporter's, so a
    ``PeriodicExportingMetricReader`` configures itself exactly as it would
    for the exporter alone. OTLP exporters also send each removed series once
    more, flagged stale (``NO_RECORDED_VALUE``).

    Args:
        lifecycle: The :class:`~otel_gitjob.Lifecycle` the MeterProvider's views report to.
        exporter: The exporter to wrap.

    Raises:
        ConfigurationError: ``lifecycle`` is not a Lifecycle, or ``exporter`` not a MetricExporter.
    """

    def __init__(self, lifecycle: Lifecycle, exporter: MetricExporter) -> None:
        hooks = hooks_of(lifecycle)
        if not isinstance(exporter, MetricExporter):
            raise ConfigurationError("LifecycleExporter takes a MetricExporter, got %r" % (type(exporter).__name__,))
        temporality, aggregation = _sdk.exporter_preferences(exporter)
        super().__init__(preferred_temporality=temporality, preferred_aggregation=aggregation)
        self._lifecycle = hooks
        self.exporter = exporter
        # OTLP exporters also send removed series once more, flagged stale (markers.py); None for others.
        self.staleness = staleness_markers_for(hooks.registry, exporter, owner=self, self_metrics=hooks.self_metrics)

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        self._lifecycle.before_collect()
        metrics_data = self._lifecycle.filter(metrics_data)
        if self.staleness is not None:
            return self.staleness.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        return self.exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        if self.staleness is not None:
            self.staleness.flush()
        return self.exporter.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Shut the wrapped exporter down (MeterProvider.shutdown); the lifecycle stays up."""
        if self.staleness is not None:
            self.staleness.close()
        self.exporter.shutdown(timeout_millis=timeout_millis, **kwargs)
