"""The kopf integration: one event handler per kind (see :mod:`otel_gitjob.kopf`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
from opentelemetry import metrics

from otel_gitjob._internal.core.errors import ConfigurationError
from otel_gitjob._internal.kube._types import Sink
from otel_gitjob._internal.kube.cache import ObjectCache
from otel_gitjob._internal.kube.events import ADDED, DELETED, MODIFIED
from otel_gitjob._internal.kube.gauges import SeriesOwners, register_status_gauges
from otel_gitjob._internal.kube.kind import REASON_BAD_OBJECT, KindSpec, ObjectState
from otel_gitjob._internal.kube.lifecycle_calls import KindCalls
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
        kind: The kind (``otel_gitjob.fleet.GITREPO``, ``HELMOP``, or your own ``KindSpec``).
        meter_provider: Where the kind's status gauges go (the global provider when omitted).
        status_gauges: Set ``False`` to serve no status gauges.
        finalizer: Also register a non-optional ``@kopf.on.delete`` (kopf then
            puts a finalizer on every object); see the module docstring for the trade-off.
        registry: The kopf registry (kopf's default one when omitted).

    Returns:
        What was registered.
    """
    if not isinstance(kind, KindSpec):
        raise ConfigurationError(
            "kind must be a KindSpec (otel_gitjob.fleet.GITREPO, HELMOP, or your own), got %r" % (kind,)
        )
    calls = KindCalls(lifecycle, kind.kind)
    work = WorkQueue(calls)  # drained by each handler: kopf runs handlers off its watch loop already
    result = KopfInstrumentation(kind=kind, cache=ObjectCache())
    owners = SeriesOwners()
    calls.declare(kind.instrument_names if status_gauges else kind.instruments)
    if status_gauges:  # the series of multi-series gauges name their object through the owners
        calls.declare(kind.sample_gauge_names, owners.owner)
    if status_gauges and kind.gauges:
        check = getattr(lifecycle, "provider_for", None)  # a Lifecycle refuses a provider it cannot index
        provider = (
            check(meter_provider, "otel_gitjob.kopf.instrument")
            if check
            else meter_provider or metrics.get_meter_provider()
        )
        result.gauges = register_status_gauges(
            provider.get_meter("otel_gitjob.kopf"), result.cache, kind.gauges, calls.retire, owners
        )
    resource = dict(group=kind.group, version=kind.version, plural=kind.plural, registry=registry)

    drop = lifecycle.drops.drop

    @kopf.on.event(**resource, id="otel-gitjob-%s" % kind.plural)  # type: ignore[arg-type]
    def on_event(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        event_type = event.get("type") or ADDED  # None: kopf's initial listing
        if event_type not in (ADDED, MODIFIED, DELETED):
            return
        raw = dict(body)
        try:
            state = kind.project(raw, drop)
        except Exception as exc:  # one bad object must not break the operator
            drop(REASON_BAD_OBJECT, "%s: %s" % (kind.kind, exc))
            if event_type != DELETED:
                return
            try:
                state = _identity_only(kind, raw)  # a deletion is forgotten even then
            except Exception:
                return
        work.submit(result.cache.apply_event(event_type, state))
        work.run_pending()

    result.handlers.append(on_event)

    if finalizer:

        @kopf.on.delete(**resource, id="otel-gitjob-%s-finalizer" % kind.plural)  # type: ignore[arg-type]
        def on_delete(body: kopf.Body, **_: Any) -> None:
            raw = dict(body)
            try:
                state = kind.project(raw)
            except Exception:
                state = _identity_only(kind, raw)
            work.submit(result.cache.apply_event(DELETED, state))
            work.run_pending()

        result.handlers.append(on_delete)
    return result


def _identity_only(kind: KindSpec, raw: Mapping[str, Any]) -> ObjectState:
    return ObjectState(kind.identity(raw), {}, (None,) * len(kind.gauges))
