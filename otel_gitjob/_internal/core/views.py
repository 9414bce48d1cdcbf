"""The view filter: the ingest-side hook that indexes new series and blocks late writes.

The SDK asks a view's aggregation for a new aggregation once per new attribute set (per reader): the
lifecycle check there costs nothing on the measurements that follow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.metrics.view import Aggregation, DefaultAggregation, DropAggregation, View

from otel_gitjob._internal.core import _sdk
from otel_gitjob._internal.core.errors import ConfigurationError
from otel_gitjob._internal.core.expiry import ExpiryProcessor
from otel_gitjob._internal.core.registry import SeriesRegistry

__all__ = ["LifecycleAggregation", "lifecycle_views", "uses_registry"]


class LifecycleAggregation(_sdk.AggregationHook):
    """Wraps a view's aggregation so that each new series passes the lifecycle first.

    Args:
        registry: The registry that indexes series and blocks forgotten objects.
        expiry: Returns the expiry processor, or None while nothing is transient.
        inner: The aggregation that does the work. When None (or the SDK's
            ``DefaultAggregation``), the one the reader asks for, as the SDK does for
            a view without an aggregation: an exporter's ``preferred_aggregation``.
        exemplars: Give the series of managed objects the SDK's exemplar reservoir;
            when False they share a no-op one. Other series always keep the SDK's.
    """

    def __init__(
        self,
        registry: SeriesRegistry,
        expiry: Callable[[], ExpiryProcessor | None],
        inner: Aggregation | None = None,
        exemplars: bool = True,
    ) -> None:
        self.registry = registry
        self._expiry = expiry
        self._inner = inner if inner is not None else DefaultAggregation()
        self._readers_choice = isinstance(self._inner, DefaultAggregation)
        self._exemplars = exemplars

    def create(
        self,
        instrument: Any,
        attributes: Any,
        reservoir_factory: Callable[..., Any],
        start_time_unix_nano: int,
    ) -> Any:
        registry = self.registry
        match, key = _sdk.calling_match() if registry.evicts or self._readers_choice else (None, None)
        inner = self._inner
        if self._readers_choice:
            inner = _sdk.reader_aggregation(match, instrument) or inner
        if not registry.evicts:
            match, key = None, None
        if attributes is None:
            # Once per view match, for the SDK's type template: the match is new and ours alone.
            _sdk.install_race_guard(match, registry._on_raced)
        elif attributes:
            placeholder = registry.on_new_series(instrument, attributes, key, match)
            if placeholder is not None:
                return placeholder
            if not self._exemplars and registry.identity_of(attributes) is not None:
                reservoir_factory = _sdk.no_exemplars_factory
        if attributes is not None and not registry.evicts:
            # Degraded: nothing touches the SDK's storage; a gate stands in for eviction.
            expiry = self._expiry()
            factory = reservoir_factory
            return registry.gate(
                instrument,
                attributes,
                key,
                lambda start: self._series(inner, instrument, attributes, factory, start, key),
                start_time_unix_nano,
                transient=expiry is not None and instrument.name in expiry.ttls,
            )
        return self._series(inner, instrument, attributes, reservoir_factory, start_time_unix_nano, key)

    def _series(
        self,
        inner: Aggregation,
        instrument: Any,
        attributes: Any,
        reservoir_factory: Callable[..., Any],
        start: int,
        key: Any,
    ) -> Any:
        """The aggregation of one series (or the type template): the inner one, tracked when transient."""
        aggregation = _sdk.create_aggregation(inner, instrument, attributes, reservoir_factory, start)
        expiry = self._expiry()
        if attributes is not None and expiry is not None and instrument.name in expiry.ttls:
            return expiry.wrap(instrument, attributes, aggregation, key)
        return aggregation


def lifecycle_views(
    registry: SeriesRegistry,
    expiry: Callable[[], ExpiryProcessor | None],
    user_views: Sequence[View],
    cardinality_limit: int | None = None,
    exemplars: bool = False,
) -> list[View]:
    """The user's views with managed aggregations, then a default view for every other instrument.

    The default view gives managed objects' series no exemplar reservoir unless ``exemplars``; other series
    and the user's views keep the SDK's. A user's view the SDK refuses for an instrument (a histogram on an
    asynchronous one) is refused the same way, so the default view takes it.
    """
    wrapped: list[View] = []
    for view in user_views:
        if not isinstance(view, View):
            raise ConfigurationError(
                "lifecycle.views() takes opentelemetry.sdk.metrics.view.View objects, got %r" % (type(view).__name__,)
            )
        inner = _sdk.view_aggregation(view)
        if isinstance(inner, (DropAggregation, LifecycleAggregation)):
            wrapped.append(view)
        else:
            wrapped.append(_sdk.view_with_aggregation(view, LifecycleAggregation(registry, expiry, inner)))
    wrapped.append(
        _sdk.SelectiveView(
            LifecycleAggregation(registry, expiry, exemplars=exemplars),
            excluded=wrapped,
            cardinality_limit=cardinality_limit,
        )
    )
    return wrapped


def uses_registry(views: Sequence[View], registry: SeriesRegistry) -> bool:
    """Whether a MeterProvider's views route new series through ``registry``."""
    for view in views:
        aggregation = _sdk.view_aggregation(view)
        if isinstance(aggregation, LifecycleAggregation) and aggregation.registry is registry:
            return True
    return False
