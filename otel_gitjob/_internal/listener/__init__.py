"""Kubernetes listener: object lifecycle events drive metric lifecycle.

Controller code never calls ``forget`` by hand: a :class:`ResourceListener`
watches one kind (described by a :class:`KindSpec`; Fleet's GitRepo and
HelmOp are presets) and calls ``lifecycle.forget`` on deletion and
``lifecycle.observe`` on creation, and serves the kind's status gauges from
its watch cache. See :mod:`.listener` for the design.
"""

from otel_gitjob._internal.listener._types import RepoRef, Sink
from otel_gitjob._internal.listener.actions import Action, ActionKind, decide_actions, diff_relist
from otel_gitjob._internal.listener.backoff import Backoff, backoff_delay
from otel_gitjob._internal.listener.events import MalformedEventError, WatchErrorEvent, WatchEvent, parse_event_line
from otel_gitjob._internal.listener.kind import GaugeSpec, KindSpec, ObjectState
from otel_gitjob._internal.listener.listener import GitRepoListener, ResourceListener, describe_failure
from otel_gitjob._internal.listener.settings import SHARD_LABEL, ListenerSettings, shard_selector
from otel_gitjob._internal.listener.sidecar import run_sidecar
from otel_gitjob._internal.listener.state import (
    GAUGES,
    GITREPO,
    HELMOP,
    RepoState,
    helmop_attributes,
    repo_attributes,
    repo_state,
    sanitize_repo_url,
)

__all__ = [
    "GAUGES",
    "GITREPO",
    "HELMOP",
    "SHARD_LABEL",
    "Action",
    "ActionKind",
    "Backoff",
    "GaugeSpec",
    "GitRepoListener",
    "KindSpec",
    "ListenerSettings",
    "MalformedEventError",
    "ObjectState",
    "RepoRef",
    "RepoState",
    "ResourceListener",
    "Sink",
    "WatchErrorEvent",
    "WatchEvent",
    "backoff_delay",
    "decide_actions",
    "describe_failure",
    "diff_relist",
    "helmop_attributes",
    "parse_event_line",
    "repo_attributes",
    "repo_state",
    "run_sidecar",
    "sanitize_repo_url",
    "shard_selector",
]
