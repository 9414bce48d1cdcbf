"""The ``Lifecycle`` façade: composes the registry, the expiry processor, the views and bound handles.

It adds the object references a controller holds (bodies, models, tuples) and
ownership: whoever creates a Lifecycle shuts it down; readers and exporters
never do. What they need of it (:class:`~.hooks.LifecycleHooks`) they reach
through :func:`hooks_of`, off its public surface.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from opentelemetry.metrics import Meter, MeterProvider, get_meter_provider
from opentelemetry.sdk.metrics.export import MetricsData
from opentelemetry.sdk.metrics.view import View

from otel_gitjob._internal.core import _sdk, degraded
from otel_gitjob._internal.core.drops import DropRecorder, safe_detail
from otel_gitjob._internal.core.errors import ConfigurationError
from otel_gitjob._internal.core.expiry import ExpiryProcessor
from otel_gitjob._internal.core.handles import BoundInstrument, Kit, handle_class
from otel_gitjob._internal.core.hooks import LifecycleHooks
from otel_gitjob._internal.core.identity import REASON_BAD_OBJECT, coerce_object, kind_of, valid_identity_value
from otel_gitjob._internal.core.locks import ranked_lock
from otel_gitjob._internal.core.points import collection_stamp, filter_points
from otel_gitjob._internal.core.registry import (
    REASON_STALE_UID,
    Identity,
    Incarnation,
    ObjectKey,
    SeriesRegistry,
    positive_seconds,
    validate_kind,
)
from otel_gitjob._internal.core.selfmetrics import SelfMetrics
from otel_gitjob._internal.core.views import lifecycle_views, uses_registry

__all__ = ["Lifecycle", "hooks_of"]

_logger = logging.getLogger("otel_gitjob")

# The reason given when the SDK seam runs degraded (logged once per process by core/degraded).
DEGRADED_REASON = (
    "eviction cannot be trusted with opentelemetry-sdk %s (%s): forgotten and expired series are kept out of every "
    "export, but their memory and cardinality slots are not freed; opentelemetry-sdk %s are known to work"
)


class Lifecycle:
    """Ties metric series to the lifetime of Kubernetes objects.

    One Lifecycle serves one or more MeterProviders and every reader on them.
    Pass :meth:`views` to each MeterProvider so that new series are indexed as
    they are created, and read it through
    :class:`~otel_gitjob.LifecyclePrometheusReader` (pull) or export through
    :class:`~otel_gitjob.LifecycleExporter` (push) so that nothing of a
    forgotten object leaves the process. You own it: call :meth:`shutdown` (or use it as
    a context manager) when you are done; shutting a MeterProvider down never
    shuts down the Lifecycle it used.

    Args:
        identity_keys: Attribute keys that together identify an object. A series
            is managed when its attributes carry all of them as strings. With two
            keys, an object maps to them as ``(namespace, name)``; with one key,
            as ``(name,)``. Any other object can be named by a mapping of these
            keys to values.
        default_kind: The Kubernetes kind of series whose instrument declared
            none (:meth:`declare_kind`), and of objects that carry no kind.
            ``GitRepo``: Fleet's GitJob metrics describe GitRepos.
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
        default_kind: str = "GitRepo",
        max_blocks: int = 10_000,
        block_seconds: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(max_blocks, bool) or not isinstance(max_blocks, int) or max_blocks < 0:
            raise ConfigurationError("max_blocks must be an int >= 0, got %r" % (max_blocks,))
        block_seconds = positive_seconds("block_seconds", block_seconds)
        check = _sdk.self_check()
        if check.ok and degraded.forced("sdk"):
            check = _sdk.SelfCheck(False, check.adapter, ("forced by %s" % degraded.FORCE_ENV,))
        self._sdk_check = check
        if check.ok:
            degraded.mark_checked("sdk")
        else:
            degraded.mark_degraded(
                "sdk", DEGRADED_REASON % (_sdk.SDK_VERSION, "; ".join(check.problems), _sdk.KNOWN_GOOD_RELEASES)
            )
        self._clock = clock
        self._drops = DropRecorder(clock=clock)
        self._registry = SeriesRegistry(
            identity_keys,
            default_kind=default_kind,
            max_blocks=max_blocks,
            block_seconds=block_seconds,
            clock=clock,
            drops=self._drops,
            evicts=self._sdk_check.ok,
        )
        self._expiry: ExpiryProcessor | None = None
        self._expiry_lock = ranked_lock("lifecycle.expiry")
        self._shut_down = False
        self._forgets_total = 0
        self.unchecked_providers = 0
        self._warned_unchecked = False
        self._self_metrics = SelfMetrics()
        self._hooks = _Hooks(self)
        self._add_self_metric_sources()

    # -- properties -------------------------------------------------------------------------------------------

    @property
    def identity_keys(self) -> tuple[str, ...]:
        return self._registry.identity_keys

    @property
    def default_kind(self) -> str:
        return self._registry.default_kind

    @property
    def degraded(self) -> bool:
        """True when the SDK seam runs degraded: its self-check failed, or ``OTEL_GITJOB_DEGRADED`` forces it."""
        return not self._registry.evicts

    @property
    def drops(self) -> DropRecorder:
        """The dropped measurements and objects, counted by reason (``drops.counts()``)."""
        return self._drops

    @property
    def self_metrics(self) -> SelfMetrics:
        """The sources of the ``otel_gitjob_*`` self-metrics; the listener adds its own."""
        return self._self_metrics

    # -- wiring -----------------------------------------------------------------------------------------------

    def views(self, *user_views: View, cardinality_limit: int | None = None, exemplars: bool = False) -> list[View]:
        """Views to pass to ``MeterProvider(views=...)``.

        Args:
            *user_views: Your own views, if any. They are returned wrapped so that
                their series are managed too; instruments they don't match get a
                default view.
            cardinality_limit: Attribute sets per instrument for the instruments no
                view of yours matches; the reader's limit (the SDK's 2,000 by
                default) when None. Forgotten objects no longer count against it,
                so it only has to fit the live ones. opentelemetry-sdk releases
                before 1.45.2 have no limit, and ignore it.
            exemplars: Keep the SDK's per-series exemplar reservoirs for the series of
                managed objects that no view of yours matches (every other series
                keeps them). Off by default: the Prometheus text format never shows
                exemplars; turn it on for an OTLP backend that does.

        As with the SDK's own default view, instruments no view of yours matches get
        the aggregation the reader asks for (an exporter's ``preferred_aggregation``,
        e.g. exponential histograms).
        """
        if cardinality_limit is not None and (
            isinstance(cardinality_limit, bool) or not isinstance(cardinality_limit, int) or cardinality_limit < 1
        ):
            raise ConfigurationError("cardinality_limit must be a positive int, got %r" % (cardinality_limit,))
        return lifecycle_views(self._registry, lambda: self._expiry, user_views, cardinality_limit, exemplars)

    def transient(self, instrument_name: str, ttl_seconds: float) -> None:
        """Declare an instrument transient: each series disappears ``ttl_seconds`` after its last write.

        Declare before the instrument records its first value.
        """
        with self._expiry_lock:
            if self._expiry is None:
                self._expiry = ExpiryProcessor(self._registry, clock=self._clock)
            expiry = self._expiry
        expiry.declare(instrument_name, ttl_seconds)

    def declare_kind(
        self, kind: str, *instrument_names: str, owner: Callable[[str, Mapping[str, Any]], Any] | None = None
    ) -> None:
        """Declare that the series of these instruments belong to objects of ``kind``.

        Forgetting an object of another kind with the same identity never touches
        them. Instruments declared nowhere belong to the default kind.

        Args:
            kind: The Kubernetes kind.
            *instrument_names: The instruments.
            owner: For series that do not carry the identity keys:
                ``owner(instrument_name, attributes)`` returns a mapping of the
                identity keys naming the series' object, or None.
        """
        self._registry.declare_kind(kind, instrument_names, owner)

    def provider_for(self, meter_provider: MeterProvider | None, user: str) -> MeterProvider:
        """The MeterProvider ``user`` creates its instruments on, checked to route their series through this lifecycle.

        A provider built without :meth:`views` never tells the lifecycle of a new
        series, so :meth:`forget` would remove nothing and the series would be
        exported for ever. Refused at once; so is a provider that records nothing
        (the API's no-op provider, or the proxy it returns while no MeterProvider
        is set). A provider whose views cannot be read (not an SDK MeterProvider)
        is accepted with one WARNING and ``otel_gitjob_unchecked_providers``.

        Args:
            meter_provider: The provider given; the global one (``get_meter_provider()``) when None.
            user: Who asks, for the error message.

        Raises:
            ConfigurationError: The provider cannot serve this lifecycle; the message says the fix.
        """
        provider = meter_provider if meter_provider is not None else get_meter_provider()
        where = (
            "the meter_provider given to %s" % user
            if meter_provider is not None
            else "the global MeterProvider that %s falls back to (opentelemetry.metrics.get_meter_provider(), "
            "e.g. the one opentelemetry-instrument sets up)" % user
        )
        fix = (
            "build the provider with this lifecycle's views, "
            "MeterProvider(metric_readers=[LifecyclePrometheusReader(lifecycle), ...], views=lifecycle.views()), "
            "and pass it as meter_provider= (or set it as the global provider before creating %s)" % user
        )
        if _sdk.is_noop_provider(provider):
            raise ConfigurationError(
                "%s records nothing (no MeterProvider is set, or it is a no-op provider): %s" % (where, fix)
            )
        views = _sdk.views_of_provider(provider)
        if views is None:
            self.unchecked_providers += 1
            if not self._warned_unchecked:
                self._warned_unchecked = True
                _logger.warning(
                    "otel-gitjob: %s is a %s, whose views cannot be checked: unless it passes lifecycle.views() "
                    "to an SDK MeterProvider, forget() and expiry cannot reach its series "
                    "(otel_gitjob_unchecked_providers counts such providers)",
                    where,
                    type(provider).__name__,
                )
            return provider
        if not uses_registry(views, self._registry):
            raise ConfigurationError(
                "%s was built without this lifecycle's views, so forget() could never remove its series: %s"
                % (where, fix)
            )
        return provider

    # -- the operations ---------------------------------------------------------------------------------------

    def forget(self, obj: Any, *, kind: str | None = None) -> int:
        """Remove every series of an object, now and from every reader. Never raises.

        Args:
            obj: A :class:`~otel_gitjob.ObjectRef`, a ``(namespace, name)`` tuple, an
                object or mapping with ``metadata`` (a body, a model, a watch event),
                or a mapping of the identity keys.
            kind: The object's Kubernetes kind; by default the object's own
                (``kind`` of a body or model), else the lifecycle's default kind.

        Returns:
            The number of series removed (0 for an object never seen or not understood).
        """
        try:
            key, uid = self._object_of(obj, kind, "forget")
            if key is None:
                return 0
            return self._forget(key, uid)
        except Exception as error:  # recording-side calls never raise into the controller
            self._drops.drop("internal_error", "forget: %s" % (type(error).__name__,))
            _logger.debug("otel-gitjob: forget failed", exc_info=True)
            return 0

    def observe(self, obj: Any, *, kind: str | None = None) -> None:
        """Declare an object alive: lift the block against its writes, if any. Never raises.

        Call it when the object is (re)created; a forgotten object's series then
        start again from zero. Late writes carrying the uid it was forgotten
        under are dropped from then on.
        """
        try:
            key, uid = self._object_of(obj, kind, "observe")
            if key is not None:
                self._registry.lift(key, uid)
        except Exception as error:
            self._drops.drop("internal_error", "observe: %s" % (type(error).__name__,))
            _logger.debug("otel-gitjob: observe failed", exc_info=True)

    def retain(self, live: Iterable[Any], *, kind: str | None = None) -> int:
        """Forget every object of ``kind`` that has series but is not in ``live``. Never raises.

        The kube-state-metrics model: after a full list the watch cache is the
        truth, so an object deleted while the watch was down, or revived by a
        late write after its block expired, goes now.

        Args:
            live: The objects of the kind that exist (any form :meth:`forget` takes).
            kind: Their kind; the lifecycle's default when None.

        Returns:
            How many objects were forgotten.
        """
        try:
            kind = validate_kind(kind) if kind is not None else self.default_kind
            keep = set()
            for obj in live:
                key, _uid = self._object_of(obj, kind, "retain")
                if key is not None:
                    keep.add(key)
            stale = [obj for obj in self._registry.objects_of_kind(kind) if obj not in keep]
            for obj in stale:
                self._forget(obj, None)
            return len(stale)
        except Exception as error:
            self._drops.drop("internal_error", "retain: %s" % (type(error).__name__,))
            _logger.debug("otel-gitjob: retain failed", exc_info=True)
            return 0

    def forget_series(self, instrument_name: str, attributes: Mapping[str, Any], *, kind: str | None = None) -> int:
        """Remove one series of a live object, without blocking the object. Never raises.

        For a gauge whose labels describe the object (a GitRepo's ``branch``):
        when they change, the old label set must go, as Fleet's partial-match
        delete does, while the object lives on. The object is the one the
        attributes' identity keys name.

        Args:
            instrument_name: The instrument whose series it is.
            attributes: The series' attributes, exactly.
            kind: The object's kind; the lifecycle's default when None.

        Returns:
            How many series were removed.
        """
        try:
            identity = self._registry.identity_for(instrument_name.lower(), attributes)
            if identity is None:
                return 0
            obj = (validate_kind(kind) if kind is not None else self.default_kind, identity)
            return self._registry.forget_series(obj, instrument_name.lower(), attributes)
        except Exception as error:
            self._drops.drop("internal_error", "forget_series: %s" % (type(error).__name__,))
            _logger.debug("otel-gitjob: forget_series failed", exc_info=True)
            return 0

    def bind(self, instrument: Any, obj: Any, attributes: Mapping[str, Any] | None = None) -> BoundInstrument:
        """A handle on the series of ``instrument`` for ``obj``, with ``attributes`` besides its identity.

        The handle writes with ``add``, ``record`` or ``set`` (as the instrument
        has) at a fraction of the instrument's cost, and never raises. It belongs
        to the object's incarnation (its uid, when ``obj`` carries one): once the
        object is forgotten, or bound again under another uid, the handle writes
        nothing and never brings the series back (each write is counted as
        ``stale_handle``). A handle bound before the first write creates the
        series on its first write. An ``obj`` that names no object gives a handle
        whose writes are all dropped and counted.

        Args:
            instrument: A counter, up-down counter, histogram or gauge (transient or
                not) created on a MeterProvider built with :meth:`views`.
            obj: The object, in any form :meth:`forget` takes.
            attributes: The series' other attributes (not the identity keys).

        Raises:
            ConfigurationError: ``instrument`` is not one of those, or ``attributes``
                is not a mapping of string keys to scalar values that leaves out the
                identity keys.
        """
        handle_type, instrument_kind = handle_class(instrument)
        extra = dict(attributes or {})
        if (
            not all(isinstance(key, str) and key for key in extra)
            or not all(isinstance(value, (str, bool, int, float)) for value in extra.values())
            or set(extra) & set(self.identity_keys)
        ):
            raise ConfigurationError(
                "bind() attributes are the series' other attributes: non-empty string keys, str/bool/int/float "
                "values, without the identity keys %s (the object gives those); got %r"
                % (self.identity_keys, attributes)
            )
        kit = Kit([instrument], [instrument_kind], self._drops, fast=not self.degraded)
        try:
            key, uid = self._object_of(obj, None, "bind")
            if key is None or not all(valid_identity_value(value) for value in key[1]):
                if key is not None:
                    self._drops.drop(REASON_BAD_OBJECT, "bind: a name that is not a valid Kubernetes name")
                return handle_type(kit, extra, None)
            series = {**extra, **dict(zip(self.identity_keys, key[1], strict=True))}
            owner = self._registry.object_of(instrument.name, series)
            incarnation = self._registry.incarnation(owner, uid) if owner is not None else Incarnation(uid)
            return handle_type(kit, series, incarnation)
        except Exception as error:
            self._drops.drop("internal_error", "bind: %s" % (type(error).__name__,))
            _logger.debug("otel-gitjob: bind failed", exc_info=True)
            return handle_type(kit, extra, None)

    def shutdown(self) -> None:
        """Stop the expiry sweeper and drop all state. Idempotent; call it when you are done.

        Takes no lock while it waits for the sweeper, which may need the
        registry's lock to finish the slice it is evicting.
        """
        if self._shut_down:
            return
        self._shut_down = True
        expiry = self._expiry
        if expiry is not None:
            expiry.shutdown()
        self._registry.clear()

    def __enter__(self) -> Lifecycle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()

    # -- self-metrics ---------------------------------------------------------------------------------------------

    def register_self_metrics(self, meter: Meter) -> None:
        """Export the package's own ``otel_gitjob_*`` metrics on ``meter`` (see :mod:`selfmetrics`).

        Their series carry no identity attributes, so the lifecycle never manages them.
        """
        self._drops.register(meter)
        self._self_metrics.register(meter)

    def _add_self_metric_sources(self) -> None:
        add = self._self_metrics.add
        registry = self._registry
        add(
            "otel_gitjob_degraded",
            lambda: [
                (0.0 if reason is None else 1.0, {"seam": seam}) for seam, reason in degraded.seam_states().items()
            ],
        )

        def by_kind(counts: dict[str, int]) -> list[tuple[float, dict[str, str]]]:
            # The default kind is always reported, so that "no objects" reads 0, not absent.
            return [(n, {"kind": kind}) for kind, n in {registry.default_kind: 0, **counts}.items()]

        add("otel_gitjob_objects", lambda: by_kind(registry.objects_by_kind()))
        add("otel_gitjob_series", lambda: by_kind(registry.series_by_kind()))
        add("otel_gitjob_blocked_objects", lambda: [(registry.blocked_objects(), {})])
        add("otel_gitjob_placeholders", lambda: [(registry.placeholders(), {})])
        add("otel_gitjob_forgets", lambda: [(self._forgets_total, {})])
        add("otel_gitjob_expired_series", lambda: [(self._expiry.expired_total if self._expiry else 0, {})])
        add("otel_gitjob_unchecked_providers", lambda: [(self.unchecked_providers, {})])
        add("otel_gitjob_expiry_lag_seconds", lambda: [(self._expiry.overdue_seconds() if self._expiry else 0.0, {})])

    # -- internals ----------------------------------------------------------------------------------------------

    def _forget(self, obj: ObjectKey, uid: str | None) -> int:
        removed = self._registry.forget(obj, uid)
        expiry = self._expiry
        if expiry is not None:
            expiry.discard_object(obj)
        self._forgets_total += 1
        return removed

    def _object_of(self, obj: Any, kind: str | None, operation: str) -> tuple[ObjectKey | None, str | None]:
        """The object a controller's reference names, and its uid; drops and counts what it cannot read."""
        if kind is not None:
            kind = validate_kind(kind)
        keys = self._registry.identity_keys
        if isinstance(obj, Mapping) and "metadata" not in obj and "object" not in obj:
            # A mapping of the identity keys ({"namespace": ..., "name": ...}, kopf's meta).
            identity = self._registry.identity_of(obj)
            if identity is not None:
                uid = obj.get("uid")
                key = (kind or kind_of(obj) or self.default_kind, identity)
                return key, uid if isinstance(uid, str) and uid else None
        ref, reason = coerce_object(obj)
        if ref is None:
            self._drops.drop(reason or REASON_BAD_OBJECT, "%s: %s" % (operation, safe_detail(obj)))
            return None, None
        kind = kind or kind_of(obj) or self.default_kind
        if len(keys) == 2:
            return (kind, (ref.namespace, ref.name)), ref.uid
        if len(keys) == 1:
            return (kind, (ref.name,)), ref.uid
        self._drops.drop(REASON_BAD_OBJECT, "%s: with identity keys %s, name objects by a mapping" % (operation, keys))
        return None, None


class _Hooks:
    """The lifecycle as readers, exporters and instruments see it (:class:`~.hooks.LifecycleHooks`)."""

    __slots__ = ("_lifecycle", "registry", "self_metrics")

    def __init__(self, lifecycle: Lifecycle) -> None:
        self._lifecycle = lifecycle
        self.registry = lifecycle._registry
        self.self_metrics = lifecycle._self_metrics

    @property
    def expiry(self) -> ExpiryProcessor | None:
        return self._lifecycle._expiry

    def before_collect(self) -> None:
        expiry = self._lifecycle._expiry
        if expiry is not None:
            expiry.expire_due()
        self.registry.housekeeping()

    def filter(self, metrics_data: MetricsData) -> MetricsData:
        # Only a removal racing the collection leaves points to drop (degraded: every collection is filtered).
        expiry = self._lifecycle._expiry
        if expiry is not None:
            metrics_data = expiry.filter_expired(metrics_data)
        registry = self.registry
        if not registry.removed_since(collection_stamp(metrics_data)):
            return metrics_data
        object_of = registry.object_of
        blocked = registry.is_blocked
        return filter_points(
            metrics_data,
            lambda name, attributes: (obj := object_of(name, attributes)) is None or not blocked(obj),
        )

    def uses(self, views: Sequence[View]) -> bool:
        return uses_registry(views, self.registry)

    def admit(self, kind: str, identity: Identity, uid: str | None) -> bool:
        # Lifts the block of an object recreated under a new uid; refuses, and counts, a late write of an
        # incarnation that was forgotten.
        if uid is None:
            return True
        if self.registry.admit((kind, identity), uid):
            return True
        self._lifecycle._drops.drop(REASON_STALE_UID, "%s %s" % (kind, "/".join(identity)))
        return False


def hooks_of(lifecycle: Any) -> LifecycleHooks:
    """What readers, exporters and instruments need of ``lifecycle``.

    Raises:
        ConfigurationError: ``lifecycle`` is not an ``otel_gitjob.Lifecycle``.
    """
    if not isinstance(lifecycle, Lifecycle):
        raise ConfigurationError(
            "expected an otel_gitjob.Lifecycle, got %r: create one with otel_gitjob.Lifecycle() and pass it"
            % (type(lifecycle).__name__,)
        )
    return lifecycle._hooks
