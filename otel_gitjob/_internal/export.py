"""Readers and exporters that let nothing of a forgotten object leave the process.

Forgetting already evicts a series from SDK storage; what is left to guard
is a collection taken just before a ``forget`` (or an expiry) and exported
after it, and housekeeping that is due before a collection. Both destinations
share that logic: the pull path (:class:`LifecyclePrometheusReader`) and the
push path (:class:`LifecycleExporter`, for OTLP or any other exporter under a
``PeriodicExportingMetricReader``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from prometheus_client import REGISTRY

from otel_gitjob._internal import _sdk
from otel_gitjob._internal.otlp import staleness_markers_for
from otel_gitjob._internal.serve import collect_timeout_from_env
from otel_gitjob._internal.views import uses_lifecycle

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from otel_gitjob._internal.registry import Lifecycle

__all__ = ["LifecycleExporter", "LifecyclePrometheusReader"]


class LifecyclePrometheusReader(PrometheusMetricReader):
    """A ``PrometheusMetricReader`` that consults the lifecycle before and after each collection.

    Defaults differ from the SDK's so the output is Fleet's: no
    ``otel_scope_*`` labels and no ``target_info`` unless asked for.

    Args:
        lifecycle: The registry the MeterProvider's views report to.
        registry: The prometheus_client registry (the global one when None).
        disable_target_info: Leave out ``target_info``.
        scope_info_enabled: Add ``otel_scope_*`` labels.
        collect_timeout: Seconds a scrape's collection may take (``OTEL_GITJOB_COLLECT_TIMEOUT`` or 300 s).
        **options: Passed on to ``PrometheusMetricReader``.
    """

    def __init__(
        self,
        lifecycle: Lifecycle,
        registry: CollectorRegistry | None = None,
        *,
        disable_target_info: bool = True,
        scope_info_enabled: bool = False,
        collect_timeout: float | None = None,
        **options: Any,
    ) -> None:
        self._lifecycle = lifecycle
        self.collect_timeout_millis = 1000 * (
            collect_timeout if collect_timeout is not None else collect_timeout_from_env()
        )
        self._wiring_checked = False
        super().__init__(
            disable_target_info=disable_target_info,
            scope_info_enabled=scope_info_enabled,
            registry=registry if registry is not None else REGISTRY,
            **options,
        )

    # MetricReader.collect is marked @final, but a scrape offers no other hook that runs before the
    # SDK collects (expiry must happen first to be exact); the SDK's own collect still does the work.
    def collect(self, timeout_millis: float | None = None) -> None:  # type: ignore[misc]
        if not self._wiring_checked:
            _check_wiring(self, self._lifecycle)
            self._wiring_checked = True
        self._lifecycle._before_collect()
        super().collect(timeout_millis=self.collect_timeout_millis if timeout_millis is None else timeout_millis)

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        super()._receive_metrics(self._lifecycle._filter(metrics_data), timeout_millis=timeout_millis, **kwargs)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Unregister from the Prometheus registry and stop the lifecycle's sweeper (MeterProvider.shutdown)."""
        super().shutdown(timeout_millis=timeout_millis, **kwargs)
        self._lifecycle.shutdown()


class LifecycleExporter(MetricExporter):
    """Wraps a push exporter so that forgotten and expired series are never exported.

    Temporality and aggregation preferences are the wrapped exporter's, so a
    ``PeriodicExportingMetricReader`` configures itself exactly as it would
    for the exporter alone.
    """

    def __init__(self, lifecycle: Lifecycle, exporter: MetricExporter) -> None:
        if not isinstance(exporter, MetricExporter):
            raise TypeError("wrap_exporter() takes a MetricExporter, got %r" % (exporter,))
        temporality, aggregation = _sdk.exporter_preferences(exporter)
        super().__init__(preferred_temporality=temporality, preferred_aggregation=aggregation)
        self._lifecycle = lifecycle
        self.exporter = exporter
        # OTLP exporters also send removed series once more, flagged stale (otlp.py); None for others.
        self.staleness = staleness_markers_for(lifecycle, exporter)

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        self._lifecycle._before_collect()
        metrics_data = self._lifecycle._filter(metrics_data)
        if self.staleness is not None:
            return self.staleness.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        return self.exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        if self.staleness is not None:
            self.staleness.flush()
        return self.exporter.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if self.staleness is not None:
            self.staleness.close()
        self.exporter.shutdown(timeout_millis=timeout_millis, **kwargs)
        self._lifecycle.shutdown()


def _check_wiring(reader: Any, lifecycle: Lifecycle) -> None:
    from otel_gitjob._internal.registry import ConfigurationError

    views = _sdk.views_of_reader(reader)
    if views is not None and not uses_lifecycle(views, lifecycle):
        raise ConfigurationError(
            "this reader's MeterProvider was created without the lifecycle's views, so forgotten repos "
            "cannot be evicted: create it as MeterProvider(metric_readers=[...], views=lifecycle.views())"
        )
