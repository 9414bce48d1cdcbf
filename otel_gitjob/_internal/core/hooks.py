"""The declared protocol between the lifecycle and the readers, exporters and instruments above it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from opentelemetry.sdk.metrics.export import MetricsData
from opentelemetry.sdk.metrics.view import View

from otel_gitjob._internal.core.expiry import ExpiryProcessor
from otel_gitjob._internal.core.registry import Identity, SeriesRegistry
from otel_gitjob._internal.core.selfmetrics import SelfMetrics

__all__ = ["LifecycleHooks"]


class LifecycleHooks(Protocol):
    """What readers, exporters and typed instruments need of a :class:`~otel_gitjob.Lifecycle`.

    Reached through ``hooks_of(lifecycle)``, never on the Lifecycle's public surface.
    """

    registry: SeriesRegistry
    self_metrics: SelfMetrics

    @property
    def expiry(self) -> ExpiryProcessor | None:
        """The expiry processor, once an instrument was declared transient."""
        ...

    def before_collect(self) -> None:
        """Housekeeping due before a collection: expiry, placeholders, old blocks."""
        ...

    def filter(self, metrics_data: MetricsData) -> MetricsData:
        """Drop the points of objects forgotten, and series expired, after this collection was taken."""
        ...

    def uses(self, views: Sequence[View]) -> bool:
        """Whether a MeterProvider built with ``views`` routes new series through this lifecycle."""
        ...

    def admit(self, kind: str, identity: Identity, uid: str | None) -> bool:
        """Whether a write for an object carrying ``uid`` may be recorded (refused writes are counted)."""
        ...
