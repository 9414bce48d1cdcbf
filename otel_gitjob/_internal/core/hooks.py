"""The declared protocol between the lifecycle and the readers and exporters above it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from opentelemetry.sdk.metrics.export import MetricsData
from opentelemetry.sdk.metrics.view import View

from otel_gitjob._internal.core.registry import SeriesRegistry
from otel_gitjob._internal.core.selfmetrics import SelfMetrics

__all__ = ["LifecycleHooks"]


class LifecycleHooks(Protocol):
    """What readers and exporters need of a :class:`~otel_gitjob.Lifecycle`."""

    registry: SeriesRegistry
    self_metrics: SelfMetrics

    def before_collect(self) -> None: ...

    def filter(self, metrics_data: MetricsData) -> MetricsData: ...

    def uses(self, views: Sequence[View]) -> bool: ...
