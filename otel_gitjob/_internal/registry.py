"""The lifecycle registry: which series belong to which object, and forgetting them.

Every attribute set that carries an object's identity (by default the
``namespace`` and ``name`` attributes of a GitRepo) is indexed when the SDK
creates storage for it, so :meth:`Lifecycle.forget` costs O(series of that
object), never a scan. Forgetting evicts the series from every reader's SDK
storage (freeing the memory and the cardinality slot) and leaves a *block*
(a tombstone) that turns late writes into no-ops until the object is seen
alive again.

Locking, in the order they may be taken:

1. ``_op_lock`` serialises the operations that evict (forget, observe,
   pruning, expiry), so that an eviction never races a later re-creation of
   the same series. The recording path never takes it.
2. The SDK's per-view-match lock, held by the SDK while it creates a series
   (and so while it calls :meth:`Lifecycle._on_new_series`) and by us while
   we delete from its table.
3. ``_state_lock`` guards the index and the blocks; it is only ever held for
   a few dictionary operations and never while another lock is taken.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Container, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader, MetricsData
from opentelemetry.sdk.metrics.view import View

from otel_gitjob._internal import _sdk
from otel_gitjob._internal.badinput import DropRecorder
from otel_gitjob._internal.identity import coerce_repo

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from otel_gitjob._internal.expiry import ExpiryProcessor

__all__ = ["ConfigurationError", "Lifecycle"]

_logger = logging.getLogger("otel_gitjob")

Identity = tuple[str, ...]
SeriesRef = tuple[Any, Hashable]  # (SDK instrument, series key)

REASON_FORGOTTEN = "forgotten_repo"


class ConfigurationError(ValueError):
    """A setting of otel-gitjob is wrong; the message says how to fix it."""


@dataclass(slots=True)
class _Block:
    """A forgotten object's tombstone."""

    uid: str | None
    expires_at: float
    placeholders: list[tuple[Any, Hashable, _sdk.Placeholder]] = field(default_factory=list)
    # Series that already have a counting placeholder: with several readers the SDK
    # creates one placeholder per reader, and a late write must be counted once.
    counted: set[SeriesRef] = field(default_factory=set)


class Lifecycle:
    """Ties metric series to the lifetime of Kubernetes objects.

    One Lifecycle serves one or more MeterProviders and every reader on them.
    Pass :meth:`views` to the MeterProvider so that new series are indexed as
    they are created, and use :meth:`prometheus_reader` or :meth:`wrap_exporter`
    so that nothing of a forgotten object leaves the process.

    Args:
        identity_keys: Attribute keys that together identify an object. A series
            is managed when its attributes carry all of them as strings. With two
            keys, a :class:`RepoRef` maps to them as ``(namespace, name)``; with
            one key, as ``(name,)``. Any other object kind can be named by a
            mapping of these keys to values.
        max_blocks: How many forgotten objects are remembered to drop their late
            writes. 10,000 covers the deletions of a busy cluster over the block
            lifetime while keeping memory flat under any churn; the oldest
            blocks go first.
        block_seconds: How long a forgotten object's late writes are dropped.
            An hour outlives any reconcile still running at deletion time;
            after it, a write for the same name counts as a new object.
        clock: Monotonic clock in seconds, injectable for tests.
    """

    def __init__(
        self,
        identity_keys: Sequence[str] = ("namespace", "name"),
        *,
        max_blocks: int = 10_000,
        block_seconds: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _sdk.check_sdk_internals()
        self.identity_keys = _validate_identity_keys(identity_keys)
        if isinstance(max_blocks, bool) or not isinstance(max_blocks, int) or max_blocks < 0:
            raise ConfigurationError("max_blocks must be an int >= 0, got %r" % (max_blocks,))
        self._max_blocks = max_blocks
        self._block_seconds = _positive_seconds("block_seconds", block_seconds)
        self._clock = clock
        self.drops = DropRecorder(clock=clock)
        self._op_lock = threading.RLock()
        self._state_lock = threading.Lock()
        self._index: dict[Identity, dict[SeriesRef, Mapping[str, Any]]] = {}
        self._blocks: OrderedDict[Identity, _Block] = OrderedDict()
        self._pending_placeholders: set[Identity] = set()
        # time.time_ns() of the latest removal: a collection stamped later than this
        # cannot contain a removed series, so the export filter can skip its scan.
        self._last_removal_ns = 0
        self._expiry: ExpiryProcessor | None = None
        self._removal_listeners: list[Callable[[Identity | None, list[tuple[Any, Mapping[str, Any]]]], None]] = []
        self._shut_down = False

    # -- wiring ---------------------------------------------------------------------------------------------

    def views(self, *user_views: View, cardinality_limit: int | None = None) -> list[View]:
        """Views to pass to ``MeterProvider(views=...)``.

        Args:
            *user_views: Your own views, if any. They are returned wrapped so that
                their series are managed too; instruments they don't match get a
                default view.
            cardinality_limit: Attribute sets per instrument for the instruments no
                view of yours matches; the reader's limit (the SDK's 2,000 by
                default) when None. Forgotten repos no longer count against it, so
                it only has to fit the live ones.

        Like any view that sets an aggregation, these views take precedence over a
        reader's ``preferred_aggregation``: instruments no view of yours matches get
        the SDK's default aggregation. To aggregate differently (e.g. exponential
        histograms), pass a view that says so; it is wrapped like the others.
        """
        from otel_gitjob._internal.views import lifecycle_views

        if cardinality_limit is not None and (
            isinstance(cardinality_limit, bool) or not isinstance(cardinality_limit, int) or cardinality_limit < 1
        ):
            raise ConfigurationError("cardinality_limit must be a positive int, got %r" % (cardinality_limit,))
        return lifecycle_views(self, user_views, cardinality_limit)

    def prometheus_reader(self, registry: CollectorRegistry | None = None, **options: Any) -> MetricReader:
        """A Prometheus reader (pull) that exports nothing of forgotten objects.

        Args:
            registry: The prometheus_client registry to register with; the global
                one when None.
            **options: Passed to ``PrometheusMetricReader``. Unlike it, scope labels
                and ``target_info`` are off unless turned on
                (``scope_info_enabled=True``, ``disable_target_info=False``), so the
                output matches Fleet's.
        """
        from otel_gitjob._internal.export import LifecyclePrometheusReader

        return LifecyclePrometheusReader(self, registry=registry, **options)

    def wrap_exporter(self, exporter: MetricExporter) -> MetricExporter:
        """Wrap a push exporter (OTLP, console, ...) for a ``PeriodicExportingMetricReader``."""
        from otel_gitjob._internal.export import LifecycleExporter

        return LifecycleExporter(self, exporter)

    def transient(self, instrument_name: str, ttl_seconds: float) -> None:
        """Declare an instrument transient: each series disappears ``ttl_seconds`` after its last write.

        Declare before the instrument records its first value.
        """
        self._expiry_processor().declare(instrument_name, ttl_seconds)

    # -- the operations -------------------------------------------------------------------------------------

    def forget(self, repo: Any) -> int:
        """Remove every series of an object, now and from every reader.

        Args:
            repo: A :class:`RepoRef`, ``(namespace, name)`` tuple, an object or
                mapping with ``metadata``, or a mapping of the identity keys.

        Returns:
            The number of series removed (0 for an object never seen).
        """
        identity, uid = self._identity_of_ref(repo)
        if identity is None:
            return 0
        with self._op_lock:
            now = self._clock()
            with self._state_lock:
                self._last_removal_ns = time.time_ns()
                block = self._blocks.pop(identity, None)
                if block is None:
                    block = _Block(uid, now + self._block_seconds)
                else:
                    block.uid, block.expires_at = uid, now + self._block_seconds
                self._blocks[identity] = block
                evicted_blocks = self._trim_blocks_locked(now)
                series = self._index.pop(identity, {})
            removed = self._evict(identity, series.items())
            for old in evicted_blocks:
                self._evict_placeholders(old)
            if self._expiry is not None:
                self._expiry.discard_identity(identity)
        return removed

    def observe(self, repo: Any) -> None:
        """Declare an object alive: lift the block against its writes, if any.

        Call it when the object is (re)created; a forgotten object's series
        then start again from zero.
        """
        identity, _ = self._identity_of_ref(repo)
        if identity is not None:
            self._lift(identity)

    def shutdown(self) -> None:
        """Stop the expiry sweeper and drop all state. Idempotent."""
        with self._op_lock:
            self._shut_down = True
            if self._expiry is not None:
                self._expiry.shutdown()
            with self._state_lock:
                self._index.clear()
                self._blocks.clear()
                self._pending_placeholders.clear()

    # -- introspection (tests, benchmarks, debugging) -------------------------------------------------------

    def tracked_objects(self) -> int:
        """Objects with at least one indexed series."""
        with self._state_lock:
            return len(self._index)

    def blocked_objects(self) -> int:
        """Forgotten objects whose late writes are still dropped."""
        with self._state_lock:
            return len(self._blocks)

    # -- called by the SDK-side hooks -----------------------------------------------------------------------

    def identity_of(self, attributes: Mapping[str, Any] | None) -> Identity | None:
        """The object identity an attribute set carries, or None when the series is not managed."""
        if not attributes:
            return None
        values = tuple(attributes.get(key) for key in self.identity_keys)
        for value in values:
            if type(value) is not str:
                return None
        return cast(Identity, values)

    def _on_new_series(self, instrument: Any, attributes: Mapping[str, Any]) -> _sdk.Placeholder | None:
        """Index a series the SDK is creating, or return a placeholder when its object is blocked.

        Runs under the SDK's view-match lock, once per reader storage.
        """
        identity = self.identity_of(attributes)
        if identity is None:
            return None
        key = _sdk.series_key(attributes)
        with self._state_lock:
            block = self._blocks.get(identity)
            if block is None:
                self._index.setdefault(identity, {})[(instrument, key)] = attributes
                return None
            counts = (instrument, key) not in block.counted
            if counts:
                block.counted.add((instrument, key))
            placeholder = _sdk.Placeholder(attributes, self._count_late_write(identity) if counts else None)
            block.placeholders.append((instrument, key, placeholder))
            self._pending_placeholders.add(identity)
        return placeholder

    def _count_late_write(self, identity: Identity) -> Callable[[], None]:
        drops = self.drops

        def count() -> None:
            drops.drop(REASON_FORGOTTEN, identity)

        return count

    def _lift_if_recreated(self, identity: Identity, uid: str) -> None:
        """A write carrying ``uid``: lift the block if the object was forgotten under another uid."""
        block = self._blocks.get(identity)
        if block is not None and block.uid is not None and block.uid != uid:
            self._lift(identity)

    def _before_collect(self) -> None:
        """Housekeeping due before a collection: expiry, placeholders, old blocks."""
        if self._expiry is not None:
            self._expiry.expire_due()
        if not self._pending_placeholders and not (self._blocks and self._oldest_block_expired()):
            return
        with self._op_lock:
            now = self._clock()
            with self._state_lock:
                identities = list(self._pending_placeholders)
                self._pending_placeholders.clear()
                stale = [self._blocks[identity] for identity in identities if identity in self._blocks]
                expired = self._trim_blocks_locked(now)
            for block in stale:
                self._evict_placeholders(block)
            for block in expired:
                self._evict_placeholders(block)

    def _filter(self, metrics_data: MetricsData) -> MetricsData:
        """Drop data points of objects forgotten after this collection was taken.

        Series forgotten before a collection are already gone from the SDK
        storage; only a removal racing the collection leaves points to drop,
        so a collection stamped after the latest removal passes untouched.
        """
        if self._expiry is not None:
            metrics_data = self._expiry.filter_expired(metrics_data)
        stamp = collection_stamp(metrics_data)
        if stamp is None or stamp > self._last_removal_ns:
            return metrics_data
        blocks = self._blocks
        identity_of = self.identity_of
        return filter_points(metrics_data, lambda name, attributes: identity_of(attributes) not in blocks)

    # -- internals ------------------------------------------------------------------------------------------

    def _identity_of_ref(self, repo: Any) -> tuple[Identity | None, str | None]:
        keys = self.identity_keys
        if isinstance(repo, Mapping) and "metadata" not in repo and "object" not in repo:
            identity = self.identity_of(repo)
            if identity is None:
                _logger.warning("otel-gitjob: cannot tell which object %r names; expected keys %s", repo, keys)
            return identity, None
        ref, reason = coerce_repo(repo)
        if ref is None:
            _logger.warning("otel-gitjob: cannot tell which object %r names (%s)", repo, reason)
            return None, None
        if len(keys) == 2:
            return (ref.namespace, ref.name), ref.uid
        if len(keys) == 1:
            return (ref.name,), ref.uid
        _logger.warning("otel-gitjob: with identity keys %s, name objects by a mapping of those keys", keys)
        return None, None

    def _lift(self, identity: Identity) -> None:
        with self._op_lock:
            with self._state_lock:
                block = self._blocks.pop(identity, None)
            if block is not None:
                self._evict_placeholders(block)

    def _evict(self, identity: Identity | None, series: Iterable[tuple[SeriesRef, Mapping[str, Any]]]) -> int:
        """Evict series from SDK storage; must hold ``_op_lock``. Returns how many were present.

        Removal listeners (e.g. the OTLP staleness marker) hear of each series
        that was present, as ``(instrument, attributes)``.
        """
        removed = 0
        gone = []
        for (instrument, key), attributes in series:
            if _sdk.evict(instrument, key):
                removed += 1
                gone.append((instrument, attributes))
        if gone and self._removal_listeners:
            for listener in list(self._removal_listeners):
                try:
                    listener(identity, gone)
                except Exception:  # a listener must not break forget
                    _logger.exception("otel-gitjob: removal listener %r failed", listener)
        return removed

    def _unindex_many(self, series: Iterable[tuple[Identity | None, SeriesRef]]) -> None:
        """Drop expired series from the index (they are already evicted)."""
        with self._state_lock:
            for identity, ref in series:
                if identity is None:
                    continue
                indexed = self._index.get(identity)
                if indexed is None:
                    continue
                indexed.pop(ref, None)
                if not indexed:
                    del self._index[identity]

    def _evict_placeholders(self, block: _Block) -> None:
        placeholders, block.placeholders = block.placeholders, []
        block.counted.clear()
        for instrument, key, placeholder in placeholders:
            _sdk.evict(instrument, key, only=placeholder)

    def _oldest_block_expired(self) -> bool:
        try:
            oldest = next(iter(self._blocks.values()))
        except (StopIteration, RuntimeError):  # RuntimeError: changed during the unlocked peek
            return False
        return oldest.expires_at <= self._clock()

    def _trim_blocks_locked(self, now: float) -> list[_Block]:
        """Drop expired blocks and those over the limit, oldest first; needs ``_state_lock``."""
        trimmed = []
        blocks = self._blocks
        while blocks:
            identity, oldest = next(iter(blocks.items()))
            if len(blocks) <= self._max_blocks and oldest.expires_at > now:
                break
            del blocks[identity]
            if oldest.placeholders:
                trimmed.append(oldest)
        return trimmed

    def _expiry_processor(self) -> ExpiryProcessor:
        with self._op_lock:
            if self._expiry is None:
                from otel_gitjob._internal.expiry import ExpiryProcessor

                self._expiry = ExpiryProcessor(self, clock=self._clock)
            return self._expiry


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


def _validate_identity_keys(identity_keys: Sequence[str]) -> tuple[str, ...]:
    if isinstance(identity_keys, str):
        raise ConfigurationError(
            "identity_keys must be a sequence of attribute keys such as ('namespace', 'name'), not the string %r"
            % identity_keys
        )
    keys = tuple(identity_keys)
    if not keys or not all(isinstance(key, str) and key for key in keys) or len(set(keys)) != len(keys):
        raise ConfigurationError(
            "identity_keys must be one or more distinct non-empty attribute keys, e.g. ('namespace', 'name'); got %r"
            % (identity_keys,)
        )
    return keys


def _positive_seconds(what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError("%s must be a finite number of seconds > 0, got %r" % (what, value))
    return float(value)
