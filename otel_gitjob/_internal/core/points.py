"""Helpers over collected ``MetricsData``: the collection stamp and point filtering.

Shared by the expiry processor and the exporters; they depend on the SDK's
public data model only.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from dataclasses import replace
from typing import Any

from opentelemetry.sdk.metrics.export import MetricsData

__all__ = ["collection_stamp", "filter_points"]


def collection_stamp(metrics_data: MetricsData) -> int | None:
    """The collection time the SDK stamped on every point of one collection."""
    for resource_metrics in metrics_data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    return point.time_unix_nano
    return None


def filter_points(
    metrics_data: MetricsData,
    keep: Callable[[str, Mapping[str, Any]], bool],
    only_metrics: Container[str] | None = None,
) -> MetricsData:
    """A copy of ``metrics_data`` without the points ``keep(metric_name, attributes)`` rejects.

    Returns the original object when nothing is rejected. With ``only_metrics``,
    other metrics are passed through unexamined.
    """
    changed = False
    resource_metrics = []
    for rm in metrics_data.resource_metrics:
        scope_metrics = []
        for sm in rm.scope_metrics:
            metrics = []
            for metric in sm.metrics:
                if only_metrics is not None and metric.name not in only_metrics:
                    metrics.append(metric)
                    continue
                name = metric.name
                data: Any = metric.data  # Sum | Gauge | Histogram | ...: all have data_points
                points = [point for point in data.data_points if keep(name, point.attributes or {})]
                if len(points) == len(data.data_points):
                    metrics.append(metric)
                    continue
                changed = True
                if points:
                    metrics.append(replace(metric, data=replace(data, data_points=points)))
            scope_metrics.append(replace(sm, metrics=metrics))
        resource_metrics.append(replace(rm, scope_metrics=scope_metrics))
    if not changed:
        return metrics_data
    return MetricsData(resource_metrics=resource_metrics)
