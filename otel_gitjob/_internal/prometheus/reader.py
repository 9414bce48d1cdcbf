"""The pull path's reader: nothing of a forgotten object leaves the process through a scrape.

Forgetting evicts a series from SDK storage; the reader guards a collection taken just before a ``forget``
(or an expiry) and exported after it, and runs housekeeping due before a collection. It never shuts down
its lifecycle (one may serve several providers). The push path's counterpart is
:class:`~otel_gitjob._internal.push.exporter.LifecycleExporter`.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import MetricsData
from prometheus_client import REGISTRY

from otel_gitjob._internal.core import _sdk
from otel_gitjob._internal.core.errors import ConfigurationError
from otel_gitjob._internal.core.lifecycle import Lifecycle, hooks_of
from otel_gitjob._internal.prometheus import _seam
from otel_gitjob._internal.prometheus.endpoint import check_collect_timeout, collect_timeout_from_env
from otel_gitjob._internal.prometheus.sanitize import ScrapeCounts

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["LifecyclePrometheusReader"]


# opentelemetry-exporter-prometheus grew these options over the supported range (0.54b0 has neither).
_READER_OPTIONS = set(inspect.signature(PrometheusMetricReader.__init__).parameters)


class LifecyclePrometheusReader(_sdk.AttachHook, _seam.FilteringReader):  # type: ignore[misc]
    """A ``PrometheusMetricReader`` that consults the lifecycle before and after each collection.

    Defaults differ from the SDK's so the output is Fleet's: no
    ``otel_scope_*`` labels and no ``target_info`` unless asked for.

    Args:
        lifecycle: The :class:`~otel_gitjob.Lifecycle` the MeterProvider's views report to.
        registry: The prometheus_client registry (the global one when None).
        disable_target_info: Leave out ``target_info``.
        scope_info_enabled: Add ``otel_scope_*`` labels (exporter releases that support them).
        collect_timeout: Seconds a scrape's collection may take (``OTEL_GITJOB_COLLECT_TIMEOUT`` or 300 s;
            at least 0.5).
        **options: Passed on to ``PrometheusMetricReader``.

    Raises:
        ConfigurationError: When ``lifecycle`` is not a Lifecycle, a MeterProvider
            takes this reader but was built without ``lifecycle.views()``, or the
            collect timeout is not a number of at least 0.5 s.
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
        self._lifecycle = hooks_of(lifecycle)
        self.collect_timeout_millis = 1000 * (
            check_collect_timeout(collect_timeout) if collect_timeout is not None else collect_timeout_from_env()
        )
        self.scrape_counts = ScrapeCounts()
        """Series the ``/metrics`` endpoint left out and label values it cut (self-metrics)."""
        lifecycle.self_metrics.add("otel_gitjob_scrape_series_dropped", self.scrape_counts.dropped_source)
        lifecycle.self_metrics.add("otel_gitjob_label_values_truncated", self.scrape_counts.truncated_source)
        target = registry if registry is not None else REGISTRY
        if "scope_info_enabled" in _READER_OPTIONS:
            options["scope_info_enabled"] = scope_info_enabled
        unknown = set(options) - _READER_OPTIONS
        if unknown:
            raise ConfigurationError(
                "this opentelemetry-exporter-prometheus does not take %s; upgrade it or leave them out"
                % ", ".join(sorted(unknown))
            )
        if "registry" in _READER_OPTIONS:
            options["registry"] = target
        super().__init__(disable_target_info=disable_target_info, **options)
        self._target_registry = target
        self._registered = True
        if "registry" not in _READER_OPTIONS and target is not REGISTRY:
            # Older exporters always register with the global registry: move the collector.
            _seam.move_collector(self, REGISTRY, target)

    def _on_attach(self) -> None:
        views = _sdk.views_of_reader(self)
        if views is not None and not self._lifecycle.uses(views):
            raise ConfigurationError(
                "this reader's MeterProvider was created without the lifecycle's views, so forgotten objects "
                "cannot be evicted: create it as MeterProvider(metric_readers=[...], views=lifecycle.views())"
            )

    # MetricReader.collect is marked @final, but a scrape offers no other hook that runs before the
    # SDK collects (expiry must happen first to be exact); the SDK's own collect still does the work.
    def collect(self, timeout_millis: float | None = None) -> None:  # type: ignore[misc]
        self._lifecycle.before_collect()
        super().collect(timeout_millis=self.collect_timeout_millis if timeout_millis is None else timeout_millis)

    def filter_collection(self, metrics_data: MetricsData) -> MetricsData:
        """Leave out what the lifecycle forgot or expired (every collection, before the exporter sees it)."""
        return self._lifecycle.filter(metrics_data)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Unregister from the Prometheus registry (MeterProvider.shutdown); the lifecycle stays up. Idempotent."""
        if not self._registered:
            return
        self._registered = False
        self._lifecycle.self_metrics.remove("otel_gitjob_scrape_series_dropped", self.scrape_counts.dropped_source)
        self._lifecycle.self_metrics.remove("otel_gitjob_label_values_truncated", self.scrape_counts.truncated_source)
        if "registry" in _READER_OPTIONS:
            super().shutdown(timeout_millis=timeout_millis, **kwargs)
        else:
            _seam.unregister(self, self._target_registry)
