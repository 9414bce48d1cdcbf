"""Listener settings and the Fleet sharding convention.

Every default below says why it is what it is; tests shrink the timings.
"""

from __future__ import annotations

from dataclasses import dataclass

from otel_gitjob._internal.core.errors import ConfigurationError

__all__ = [
    "GROUP",
    "PLURAL",
    "SHARD_LABEL",
    "VERSION",
    "ListenerSettings",
    "shard_selector",
]

GROUP = "fleet.cattle.io"
VERSION = "v1alpha1"
PLURAL = "gitrepos"
SHARD_LABEL = "fleet.cattle.io/shard-ref"
"""The label Fleet's sharded controllers select on (``--shard-id``)."""


def shard_selector(shard_id: str | None = None, all_shards: bool = False) -> str | None:
    """Build the label selector Fleet uses for one shard.

    Args:
        shard_id: The shard to watch. ``None`` (or ``""``) is Fleet's default
            shard: GitRepos that carry no shard label at all.
        all_shards: Watch every GitRepo regardless of its shard label.

    Returns:
        ``fleet.cattle.io/shard-ref=<id>``, ``!fleet.cattle.io/shard-ref`` for the
        default shard, or ``None`` (no selector) for all shards.

    Raises:
        ConfigurationError: When both a shard id and ``all_shards`` are given.
    """
    if all_shards:
        if shard_id:
            raise ConfigurationError("pass either shard_id or all_shards, not both")
        return None
    if shard_id:
        return "%s=%s" % (SHARD_LABEL, shard_id)
    return "!%s" % SHARD_LABEL


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    """How a listener watches, retries and times out.

    There is deliberately no queue size. The work queue holds at most one entry
    per GitRepo with pending work (events for the same repo coalesce into one
    entry), so its length is bounded by the number of GitRepos, not by the
    event rate. A fixed bound would force a choice between blocking the watch
    thread (a slow sink stalls the watch, which the design forbids) and
    dropping a deletion (which leaks series forever).

    Attributes:
        namespace: Watch one namespace; ``None`` watches cluster-wide (Fleet
            GitRepos live in many workspace namespaces).
        shard_id: Fleet shard id; see :func:`shard_selector`.
        all_shards: Watch every shard; see :func:`shard_selector`.
        backoff_base: First retry delay, in seconds. 0.8 s is client-go's
            reflector default: long enough not to hammer a restarting API
            server, short enough that a blip costs under a second of staleness.
        backoff_cap: Longest retry delay, in seconds. 30 s is client-go's cap: a
            persistent failure (403 after an RBAC change) costs two requests a
            minute, and recovery is noticed within half a minute of a fix.
        backoff_factor: Growth per consecutive failure. Doubling reaches the cap
            in six steps from 0.8 s.
        backoff_jitter: Fraction of each delay drawn at random (the delay is in
            ``[d * (1 - jitter), d]``). 0.5 spreads many listeners restarting
            together (a rollout, an API server restart) while guaranteeing every
            delay is at least half the nominal one, so a failure never spins.
        backoff_reset_after: Seconds without a failure after which the backoff
            starts over from ``backoff_base``. 120 s is client-go's reset period:
            a stream that keeps failing every minute still climbs to the cap.
        connect_timeout: TCP/TLS connect timeout, in seconds. 10 s covers a slow
            in-cluster DNS and TLS handshake; longer means a dead endpoint holds
            the retry loop for no benefit.
        list_timeout: Read timeout of a list page, in seconds. 60 s is the API
            server's own default request timeout: a page that has not arrived
            by then will not.
        page_size: Items per list page. 500 is client-go's pager default: big
            enough that 10,000 GitRepos take 20 round trips, small enough that
            one page never strains the API server's memory.
        watch_timeout_seconds: Server-side watch duration (``timeoutSeconds``).
            client-go picks 5-10 minutes; 300 s is the low end so that a stream
            silently broken by a proxy is replaced at least every five minutes
            even when the inactivity timeout cannot tell.
        inactivity_timeout: Client-side read timeout on the watch stream
            (``_request_timeout``), in seconds: a stream that sends nothing for
            this long is treated as a hung API server and replaced. None (the
            default) means ``watch_timeout_seconds + 30``: a healthy
            kube-apiserver may send nothing at all for a whole quiet stream (a
            bookmark comes only once the kind's cached resourceVersion has
            moved, which on a quiet cluster can wait for etcd's 10-minute
            progress notification; measured on v1.37.2, see
            ``tests/kube/test_bookmarks_real_server.py``), and it always closes
            the stream at ``timeoutSeconds``. Only silence past that deadline,
            plus 30 s for a slow close, means a hung server. A shorter value
            turns every quiet stream into a failure: a warning and a backoff.
        stop_timeout: Seconds :meth:`ResourceListener.stop` waits for each thread.
        missing_kind_retry: Seconds between two lists of a kind the API server
            does not serve (404: its CRD is not installed). A minute notices a
            Fleet upgrade soon enough and costs one request a minute.
    """

    namespace: str | None = None
    shard_id: str | None = None
    all_shards: bool = False
    backoff_base: float = 0.8
    backoff_cap: float = 30.0
    backoff_factor: float = 2.0
    backoff_jitter: float = 0.5
    backoff_reset_after: float = 120.0
    connect_timeout: float = 10.0
    list_timeout: float = 60.0
    page_size: int = 500
    watch_timeout_seconds: int = 300
    inactivity_timeout: float | None = None
    stop_timeout: float = 10.0
    missing_kind_retry: float = 60.0

    def __post_init__(self) -> None:
        # Fail at construction, not in the watch thread.
        shard_selector(self.shard_id, self.all_shards)
        if self.backoff_base <= 0 or self.backoff_cap < self.backoff_base:
            raise ConfigurationError(
                "need 0 < backoff_base <= backoff_cap, got %r and %r" % (self.backoff_base, self.backoff_cap)
            )
        if not 0 <= self.backoff_jitter < 1:
            raise ConfigurationError("backoff_jitter must be in [0, 1), got %r" % (self.backoff_jitter,))
        if self.missing_kind_retry <= 0:
            raise ConfigurationError("missing_kind_retry must be positive seconds, got %r" % (self.missing_kind_retry,))
        if self.watch_timeout_seconds < 1 or (self.inactivity_timeout is not None and self.inactivity_timeout <= 0):
            raise ConfigurationError(
                "watch_timeout_seconds (>= 1) and inactivity_timeout (> 0 or None) must be positive, got %r and %r"
                % (self.watch_timeout_seconds, self.inactivity_timeout)
            )

    @property
    def watch_read_timeout(self) -> float:
        """The read timeout of a watch stream: ``inactivity_timeout``, or the server's deadline plus 30 s."""
        if self.inactivity_timeout is not None:
            return self.inactivity_timeout
        return self.watch_timeout_seconds + 30.0

    @property
    def label_selector(self) -> str | None:
        """The label selector for this listener's shard (``None``: everything)."""
        return shard_selector(self.shard_id, self.all_shards)
