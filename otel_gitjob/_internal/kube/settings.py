"""Listener settings and shard selectors. Every default says why it is what it is; tests shrink the timings."""

from __future__ import annotations

from dataclasses import dataclass

from otel_gitjob._internal.core.errors import ConfigurationError

__all__ = ["ListenerSettings", "shard_selector"]


def shard_selector(label: str, shard_id: str | None = None, all_shards: bool = False) -> str | None:
    """The label selector of one shard of a sharded kind.

    Args:
        label: The kind's shard label (``KindSpec.shard_label``).
        shard_id: The shard to watch; ``None`` (or ``""``) is the default shard: objects without the label.
        all_shards: Watch every object, whatever its shard label.

    Returns:
        ``<label>=<id>``, ``!<label>`` for the default shard, or ``None`` (no selector) for all shards.
    """
    if all_shards:
        return None
    return "%s=%s" % (label, shard_id) if shard_id else "!%s" % label


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    """How a listener watches, retries and times out.

    There is deliberately no queue size: the work queue holds at most one entry per object with pending
    work, so it is bounded by the number of objects. A fixed bound would either block the watch thread
    or drop a deletion (a series leaked forever).

    Attributes:
        namespace: Watch one namespace; ``None`` watches cluster-wide.
        shard_id: The shard of a sharded kind; see :func:`shard_selector`.
        all_shards: Watch every shard; see :func:`shard_selector`.
        backoff_base: First retry delay, in seconds (client-go's reflector default: a blip costs under a second).
        backoff_cap: Longest retry delay, in seconds (client-go's: a persistent 403 costs two requests a minute).
        backoff_factor: Growth per consecutive failure (doubling reaches the cap in six steps).
        backoff_jitter: Fraction of each delay drawn at random (the delay is in ``[d * (1 - jitter), d]``):
            spreads listeners restarting together, and never lets a failure spin.
        backoff_reset_after: Seconds without a failure after which the backoff starts over (client-go's).
        connect_timeout: TCP/TLS connect timeout, in seconds: covers slow in-cluster DNS and TLS.
        list_timeout: Read timeout of a list page, in seconds (the API server's own request timeout).
        page_size: Items per list page (client-go's pager default).
        watch_timeout_seconds: Server-side watch duration (``timeoutSeconds``): the low end of
            client-go's 5-10 minutes, so a stream a proxy broke silently is replaced soon.
        inactivity_timeout: Client-side read timeout of the watch stream, in seconds: silence that long
            means a hung API server. ``None``: ``watch_timeout_seconds + 30``, since a healthy
            kube-apiserver may send nothing at all, not even a bookmark, for a whole quiet stream
            (``tests/kube/test_bookmarks_real_server.py``); a shorter value makes every quiet stream a failure.
        stop_timeout: Seconds :meth:`ResourceListener.stop` waits for each thread.
        missing_kind_retry: Seconds between two lists of a kind the API server does not serve (404).
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
        if self.shard_id and self.all_shards:
            raise ConfigurationError("pass either shard_id or all_shards, not both")
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
