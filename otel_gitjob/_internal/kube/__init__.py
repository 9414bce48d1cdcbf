"""Generic Kubernetes list/watch: object lifecycle events drive metric lifecycle.

A :class:`ResourceListener` (or the kopf integration) watches one kind described by a :class:`KindSpec`,
calls ``forget`` on deletion and ``observe`` on creation through the :class:`Sink` protocol, and serves
the kind's status gauges from its watch cache.
"""

from otel_gitjob._internal.kube._types import Sink
from otel_gitjob._internal.kube.kind import GaugeSpec, KindSpec
from otel_gitjob._internal.kube.listener import ResourceListener
from otel_gitjob._internal.kube.settings import ListenerSettings

__all__ = ["GaugeSpec", "KindSpec", "ListenerSettings", "ResourceListener", "Sink"]
