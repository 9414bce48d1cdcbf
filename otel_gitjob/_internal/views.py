"""The view filter: the ingest-side hook that indexes new series and blocks late writes.

The SDK asks a view's aggregation for a new aggregation exactly once per new
attribute set (per reader), which is where the lifecycle check belongs: it
costs nothing on the measurements that follow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.metrics.view import Aggregation, DefaultAggregation, DropAggregation, View

from otel_gitjob._internal import _sdk

if TYPE_CHECKING:
    from otel_gitjob._internal.registry import Lifecycle

__all__ = ["LifecycleAggregation", "lifecycle_views"]


class LifecycleAggregation(Aggregation):
    """Wraps a view's aggregation so that each new series passes the lifecycle first.

    Args:
        lifecycle: The registry that indexes series and blocks forgotten objects.
        inner: The aggregation that does the work (the SDK default when None).
    """

    def __init__(self, lifecycle: Lifecycle, inner: Aggregation | None = None) -> None:
        self.lifecycle = lifecycle
        self._inner = inner if inner is not None else DefaultAggregation()

    def _create_aggregation(
        self,
        instrument: Any,
        attributes: Any,
        reservoir_factory: Callable[..., Any],
        start_time_unix_nano: int,
    ) -> Any:
        # attributes is None once per view match, for the SDK's type template.
        if attributes:
            placeholder = self.lifecycle._on_new_series(instrument, attributes)
            if placeholder is not None:
                return placeholder
        aggregation = self._inner._create_aggregation(instrument, attributes, reservoir_factory, start_time_unix_nano)
        expiry = self.lifecycle._expiry
        if attributes and expiry is not None and instrument.name in expiry.ttls:
            return expiry.wrap(instrument, attributes, aggregation)
        return aggregation


def lifecycle_views(
    lifecycle: Lifecycle, user_views: Sequence[View], cardinality_limit: int | None = None
) -> list[View]:
    """The user's views with managed aggregations, then a default view for every other instrument."""
    wrapped: list[View] = []
    for view in user_views:
        if not isinstance(view, View):
            raise TypeError("lifecycle.views() takes opentelemetry.sdk.metrics.view.View objects, got %r" % (view,))
        inner = _sdk.view_aggregation(view)
        if isinstance(inner, (DropAggregation, LifecycleAggregation)):
            wrapped.append(view)
        else:
            wrapped.append(_sdk.view_with_aggregation(view, LifecycleAggregation(lifecycle, inner)))
    wrapped.append(
        _sdk.SelectiveView(LifecycleAggregation(lifecycle), excluded=user_views, cardinality_limit=cardinality_limit)
    )
    return wrapped


def uses_lifecycle(views: Sequence[View], lifecycle: Lifecycle) -> bool:
    """Whether a MeterProvider's views route new series through ``lifecycle``."""
    for view in views:
        aggregation = _sdk.view_aggregation(view)
        if isinstance(aggregation, LifecycleAggregation) and aggregation.lifecycle is lifecycle:
            return True
    return False
