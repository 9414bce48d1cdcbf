"""Kubernetes listener: object lifecycle events drive metric lifecycle.

Controller code never calls ``forget`` by hand: a :class:`ResourceListener`
watches one kind (described by a :class:`KindSpec`; Fleet's GitRepo and
HelmOp are presets) and calls ``lifecycle.forget`` on deletion and
``lifecycle.observe`` on creation, and serves the kind's status gauges from
its watch cache. See :mod:`.listener` for the design.
"""

from otel_gitjob._internal.kube._types import ObjectRef, Sink
from otel_gitjob._internal.kube.actions import Action, ActionKind, decide_actions, diff_relist
from otel_gitjob._internal.kube.backoff import Backoff, backoff_delay
from otel_gitjob._internal.kube.events import MalformedEventError, WatchErrorEvent, WatchEvent, parse_event_line
from otel_gitjob._internal.kube.kind import GaugeSpec, KindSpec, ObjectState
from otel_gitjob._internal.kube.listener import ResourceListener, describe_failure
from otel_gitjob._internal.kube.settings import SHARD_LABEL, ListenerSettings, shard_selector

__all__ = [
    "SHARD_LABEL",
    "Action",
    "ActionKind",
    "Backoff",
    "GaugeSpec",
    "KindSpec",
    "ListenerSettings",
    "MalformedEventError",
    "ObjectState",
    "ObjectRef",
    "ResourceListener",
    "Sink",
    "WatchErrorEvent",
    "WatchEvent",
    "backoff_delay",
    "decide_actions",
    "describe_failure",
    "diff_relist",
    "parse_event_line",
    "shard_selector",
]
