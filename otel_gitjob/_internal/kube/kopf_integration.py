"""The kopf integration: one event handler per kind (see :mod:`otel_gitjob.kopf`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
from opentelemetry import metrics

from otel_gitjob._internal.kube._types import Sink
from otel_gitjob._internal.kube.cache import ObjectCache
from otel_gitjob._internal.kube.events import ADDED, DELETED, MODIFIED
from otel_gitjob._internal.kube.gauges import serve_kind
from otel_gitjob._internal.kube.kind import KindSpec, check_kind
from otel_gitjob._internal.kube.workqueue import WorkQueue

__all__ = ["KopfInstrumentation", "instrument"]

logger = logging.getLogger(__name__)


@dataclass
class KopfInstrumentation:
    """What :func:`instrument` registered.

    Attributes:
        kind: The kind spec.
        cache: The projection of every object kopf has shown (what the gauges read).
        gauges: The kind's status gauges.
        handlers: The functions registered with kopf.
    """

    kind: KindSpec
    cache: ObjectCache
    gauges: list[Any] = field(default_factory=list)
    handlers: list[Any] = field(default_factory=list)


def instrument(
    lifecycle: Sink,
    kind: KindSpec,
    *,
    meter_provider: metrics.MeterProvider | None = None,
    status_gauges: bool = True,
    finalizer: bool = False,
    registry: kopf.OperatorRegistry | None = None,
) -> KopfInstrumentation:
    """Register kopf handlers that keep ``kind``'s metrics in step with its objects.

    Args:
        lifecycle: ``otel_gitjob.Lifecycle`` (``instrumentation.lifecycle``).
        kind: The kind (a :class:`~.kind.KindSpec`).
        meter_provider: Where the kind's status gauges go (the global provider when omitted).
        status_gauges: Set ``False`` to serve no status gauges.
        finalizer: Also register a non-optional ``@kopf.on.delete`` (kopf then
            puts a finalizer on every object); see the module docstring for the trade-off.
        registry: The kopf registry (kopf's default one when omitted).

    Returns:
        What was registered.
    """
    check_kind(kind)
    work = WorkQueue(lifecycle, kind.kind)  # drained by each handler: kopf runs handlers off its watch loop already
    result = KopfInstrumentation(kind=kind, cache=ObjectCache())
    result.gauges = serve_kind(
        lifecycle,
        kind,
        result.cache,
        meter_provider=meter_provider,
        status_gauges=status_gauges,
        user="otel_gitjob.kopf.instrument",
        scope="otel_gitjob.kopf",
    )
    resource = dict(group=kind.group, version=kind.version, plural=kind.plural, registry=registry)

    drop = lifecycle.drops.drop

    @kopf.on.event(**resource, id="otel-gitjob-%s" % kind.plural)  # type: ignore[arg-type]
    def on_event(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        event_type = event.get("type") or ADDED  # None: kopf's initial listing
        if event_type not in (ADDED, MODIFIED, DELETED):
            return
        state = kind.project_or_drop(dict(body), drop, deleted=event_type == DELETED)
        if state is not None:
            work.submit(result.cache.apply_event(event_type, state))
            work.run_pending()

    result.handlers.append(on_event)

    if finalizer:

        @kopf.on.delete(**resource, id="otel-gitjob-%s-finalizer" % kind.plural)  # type: ignore[arg-type]
        def on_delete(body: kopf.Body, **_: Any) -> None:
            state = kind.project_or_drop(dict(body), drop, deleted=True)
            if state is not None:
                work.submit(result.cache.apply_event(DELETED, state))
                work.run_pending()

        result.handlers.append(on_delete)
    return result
