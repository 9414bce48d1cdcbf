"""The small types the listener shares with its callers, and :class:`Sink`, what it needs of the lifecycle."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry.metrics import MeterProvider

from otel_gitjob._internal.core.drops import DropRecorder
from otel_gitjob._internal.core.identity import ObjectRef
from otel_gitjob._internal.core.registry import Owner
from otel_gitjob._internal.core.selfmetrics import SelfMetrics

__all__ = ["ObjectKey", "ObjectRef", "Sink"]


ObjectKey = tuple[str, str]
"""``(namespace, name)``: what the watch cache and the work queue are keyed on."""


class Sink(Protocol):
    """Everything the listener calls on the lifecycle; ``otel_gitjob.Lifecycle`` is the production sink.

    Every method must be safe to call from any thread; the operations must not raise (the Lifecycle's never do).
    """

    @property
    def drops(self) -> DropRecorder:
        """Where dropped objects and fields are counted."""

    @property
    def self_metrics(self) -> SelfMetrics:
        """Where the listener adds its ``otel_gitjob_*`` self-metric sources."""

    @property
    def degraded(self) -> bool:
        """True while the SDK seam runs degraded: the status gauges then write through the SDK's API only."""

    def forget(self, obj: Any, *, kind: str | None = None) -> int:
        """Drop every series of the object; returns how many were dropped."""

    def observe(self, obj: Any, *, kind: str | None = None) -> None:
        """Mark the object as alive (lifts the block against late writes)."""

    def retain(self, live: Iterable[Any], *, kind: str | None = None) -> int:
        """Forget every object of ``kind`` with series that is not in ``live``; returns how many."""

    def forget_series(self, instrument_name: str, attributes: Mapping[str, Any], *, kind: str | None = None) -> int:
        """Remove one series of a live object (a status gauge whose labels changed)."""

    def declare_kind(self, kind: str, *instrument_names: str, owner: Owner | None = None) -> None:
        """Scope instruments to ``kind``; ``owner(instrument_name, attributes)`` names a series' object."""

    def provider_for(self, meter_provider: MeterProvider | None, user: str) -> MeterProvider:
        """The provider (the global one when None) for ``user``'s gauges; ``ConfigurationError`` if it bypasses us."""


if TYPE_CHECKING:  # the production sink satisfies the protocol (checked by mypy)
    from otel_gitjob._internal.core.lifecycle import Lifecycle

    def _lifecycle_is_a_sink(lifecycle: Lifecycle) -> Sink:
        return lifecycle
