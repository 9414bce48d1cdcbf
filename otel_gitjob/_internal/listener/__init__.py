"""Kubernetes GitRepo listener: GitRepo lifecycle events drive metric lifecycle.

Controller code never calls ``forget`` by hand: the listener watches
``fleet.cattle.io/v1alpha1`` GitRepos and calls ``sink.forget`` on deletion and
``sink.observe`` on creation, and serves Fleet's ``fleet_gitrepo_*`` status
gauges from its watch cache. See :mod:`.listener` for the design.
"""

from otel_gitjob._internal.listener._types import RepoRef, Sink
from otel_gitjob._internal.listener.actions import Action, ActionKind, decide_actions, diff_relist
from otel_gitjob._internal.listener.backoff import Backoff, backoff_delay
from otel_gitjob._internal.listener.events import MalformedEventError, WatchErrorEvent, WatchEvent, parse_event_line
from otel_gitjob._internal.listener.listener import GitRepoListener, describe_failure
from otel_gitjob._internal.listener.settings import SHARD_LABEL, ListenerSettings, shard_selector
from otel_gitjob._internal.listener.sidecar import run_sidecar
from otel_gitjob._internal.listener.state import GAUGES, RepoState, repo_attributes, repo_state, sanitize_repo_url

__all__ = [
    "GAUGES",
    "SHARD_LABEL",
    "Action",
    "ActionKind",
    "Backoff",
    "GitRepoListener",
    "ListenerSettings",
    "MalformedEventError",
    "RepoRef",
    "RepoState",
    "Sink",
    "WatchErrorEvent",
    "WatchEvent",
    "backoff_delay",
    "decide_actions",
    "describe_failure",
    "diff_relist",
    "parse_event_line",
    "repo_attributes",
    "repo_state",
    "run_sidecar",
    "sanitize_repo_url",
    "shard_selector",
]
