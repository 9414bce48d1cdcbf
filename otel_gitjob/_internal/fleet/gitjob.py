"""Fleet's GitJob metrics on the OpenTelemetry metrics API.

The instruments are one table (:data:`GITJOB_INSTRUMENTS`), one row per
metric of Fleet's contract; :class:`GitJobMetrics` builds them on a meter and
offers typed recording methods that take a GitRepo in any form a controller
holds and never raise.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry.metrics import MeterProvider

from otel_gitjob._internal.core.drops import safe_detail
from otel_gitjob._internal.core.errors import ConfigurationError
from otel_gitjob._internal.core.handles import Handle, Kit
from otel_gitjob._internal.core.identity import (
    REASON_BAD_OBJECT,
    coerce_object,
    fast_identity,
    valid_identity_value,
)
from otel_gitjob._internal.core.lifecycle import Lifecycle, hooks_of
from otel_gitjob._internal.core.registry import Incarnation
from otel_gitjob.version import __version__

__all__ = ["GITJOB_INSTRUMENTS", "GitJobHandle", "GitJobMetrics", "InstrumentSpec"]

# Fleet's ShortLivedMetricsTTL: long enough for a few scrapes at the usual 30-60 s interval.
DEFAULT_GAUGE_TTL = 120.0

REASON_BAD_DURATION = "bad_duration"
REASON_INTERNAL = "internal_error"

_logger = logging.getLogger("otel_gitjob")

_INF = math.inf

_METRIC_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

# Fleet's bucket bounds. Whole numbers are ints on purpose: the Prometheus
# exporter prints a bound as Python formats it, and Fleet's output says le="1".
_GITJOB_BUCKETS = (1, 2, 5, 10, 30, 60, 180, 300, 600, 1200, 1800, 3600)
_FETCH_BUCKETS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 30)


@dataclass(frozen=True)
class InstrumentSpec:
    """One row of the instrument table.

    Attributes:
        key: The attribute of :class:`GitJobMetrics` holding the instrument.
        suffix: The metric name after the prefix (``fleet_`` + suffix on /metrics).
        kind: ``counter``, ``histogram`` or ``gauge``.
        description: The help text.
        unit: The OTel unit. Empty for the gauge and counters: the Prometheus
            exporters append a unit suffix to names that don't end with it,
            which would rename Fleet's ``..._seconds_gauge``.
        buckets: Explicit bucket bounds of a histogram.
    """

    key: str
    suffix: str
    kind: str
    description: str
    unit: str = ""
    buckets: tuple[float, ...] | None = None


GITJOB_INSTRUMENTS: tuple[InstrumentSpec, ...] = (
    InstrumentSpec("created_success", "gitjobs_created_success_total", "counter", "Git jobs created for the GitRepo."),
    InstrumentSpec(
        "created_failure",
        "gitjobs_created_failure_total",
        "counter",
        "Attempts to create a git job for the GitRepo that failed.",
    ),
    InstrumentSpec(
        "duration",
        "gitjob_duration_seconds",
        "histogram",
        "Duration of successful git jobs of the GitRepo, from start to completion.",
        unit="s",
        buckets=_GITJOB_BUCKETS,
    ),
    InstrumentSpec(
        "duration_gauge",
        "gitjob_duration_seconds_gauge",
        "gauge",
        "Duration in seconds of the GitRepo's latest successful git job; removed a TTL after it was set.",
    ),
    InstrumentSpec(
        "fetch_success",
        "gitrepo_fetch_latest_commit_success_total",
        "counter",
        "Polls of the git host for the GitRepo's latest commit that succeeded.",
    ),
    InstrumentSpec(
        "fetch_failure",
        "gitrepo_fetch_latest_commit_failure_total",
        "counter",
        "Polls of the git host for the GitRepo's latest commit that failed, for any reason.",
    ),
    InstrumentSpec(
        "fetch_duration",
        "gitrepo_fetch_latest_commit_duration_seconds",
        "histogram",
        "Duration of successful polls of the git host for the GitRepo's latest commit.",
        unit="s",
        buckets=_FETCH_BUCKETS,
    ),
)


_INDEX = {spec.key: i for i, spec in enumerate(GITJOB_INSTRUMENTS)}


class GitJobMetrics:
    """Fleet's seven GitJob instruments, with typed recording methods.

    Every method takes the GitRepo as a :class:`ObjectRef`, a ``(namespace, name)``
    tuple, a mapping with ``metadata`` (a watch event object or kopf body) or a
    ``kubernetes`` client model, and never raises: unusable input is dropped,
    logged once per kind and counted in ``otel_gitjob_dropped_measurements_total``.
    :meth:`bind` gives the same calls for one GitRepo (:class:`GitJobHandle`).

    Args:
        meter_provider: Where to create the instruments; the global provider when None. It must be
            built with ``lifecycle.views()`` (else :class:`ConfigurationError`: the lifecycle could
            never forget its series).
        lifecycle: The registry that forgets a repo's series when it is deleted.
        prefix: Metric name prefix; Fleet's is ``fleet``.
        gauge_ttl: Seconds the job-duration gauge stays after it was last set.
        instruments: Keys (see :data:`GITJOB_INSTRUMENTS`) of the instruments to
            create; all seven when None. Recording to a left-out one does nothing.
    """

    # Set from GITJOB_INSTRUMENTS, one attribute per row's key (tests and benchmarks reach them).
    _created_success: Any
    _created_failure: Any
    _duration: Any
    _duration_gauge: Any
    _fetch_success: Any
    _fetch_failure: Any
    _fetch_duration: Any

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        *,
        lifecycle: Lifecycle,
        prefix: str = "fleet",
        gauge_ttl: float = DEFAULT_GAUGE_TTL,
        instruments: Iterable[str] | None = None,
    ) -> None:
        if not isinstance(lifecycle, Lifecycle):
            raise ConfigurationError("GitJobMetrics needs lifecycle=Lifecycle(...), got %r" % (lifecycle,))
        if not isinstance(prefix, str) or (prefix and _METRIC_NAME.fullmatch(prefix) is None):
            raise ConfigurationError(
                "prefix must be empty or a Prometheus metric name prefix such as 'fleet' (a letter or '_', then "
                "letters, digits and '_'), got %r" % (prefix,)
            )
        if len(lifecycle.identity_keys) != 2:
            raise ConfigurationError(
                "GitJobMetrics labels series with a namespace and a name; give it a Lifecycle whose identity_keys "
                "are two keys (namespace key, name key), got %r" % (lifecycle.identity_keys,)
            )
        known = [spec.key for spec in GITJOB_INSTRUMENTS]
        enabled = set(known if instruments is None else instruments)
        for key in sorted(enabled - set(known)):
            raise ConfigurationError("unknown instrument %r; the GitJob instruments are %s" % (key, known))
        self._hooks = hooks_of(lifecycle)
        self._kind = lifecycle.default_kind
        self._namespace_key, self._name_key = lifecycle.identity_keys
        self._drops = lifecycle.drops
        self._registry = self._hooks.registry
        # Handles by (namespace, name, uid) as the typed calls met them; an incarnation's end drops its entries.
        self._handles: dict[Any, GitJobHandle] = {}
        provider = lifecycle.provider_for(meter_provider, "GitJobMetrics")
        meter = provider.get_meter("otel_gitjob", __version__)
        self.names: dict[str, str] = {}
        for spec in GITJOB_INSTRUMENTS:
            name = "%s_%s" % (prefix, spec.suffix) if prefix else spec.suffix
            self.names[spec.key] = name
            setattr(
                self, "_" + spec.key, _FACTORIES[spec.kind](meter, spec, name) if spec.key in enabled else _DISABLED
            )
        instruments = [getattr(self, "_" + spec.key) for spec in GITJOB_INSTRUMENTS]
        kinds = [spec.kind for spec in GITJOB_INSTRUMENTS]
        self._kit = Kit(instruments, kinds, self._drops, fast=not lifecycle.degraded)
        self._slow_kit = Kit(instruments, kinds, self._drops, fast=False)
        # Declared even when the gauge is left out, so that a bad TTL is reported all the same.
        lifecycle.transient(self.names["duration_gauge"], gauge_ttl)
        lifecycle.register_self_metrics(meter)

    # -- recording ------------------------------------------------------------------------------------------

    def job_created(self, repo: Any) -> None:
        """A git job was created for the repo."""
        self._bound(repo).job_created()

    def job_creation_failed(self, repo: Any) -> None:
        """Creating the repo's git job failed."""
        self._bound(repo).job_creation_failed()

    def job_succeeded(self, repo: Any, duration_seconds: float) -> None:
        """A git job of the repo succeeded after ``duration_seconds`` (histogram and transient gauge)."""
        self._bound(repo).job_succeeded(duration_seconds)

    def commit_fetched(self, repo: Any, duration_seconds: float) -> None:
        """Polling the git host for the repo's latest commit succeeded after ``duration_seconds``."""
        self._bound(repo).commit_fetched(duration_seconds)

    def commit_fetch_failed(self, repo: Any) -> None:
        """Polling the git host for the repo's latest commit failed."""
        self._bound(repo).commit_fetch_failed()

    def time_commit_fetch(self, repo: Any) -> AbstractContextManager[None]:
        """Time a latest-commit poll: ``with metrics.time_commit_fetch(repo): poll()``.

        Records success and duration when the block completes, a failure when
        it raises (the exception propagates).
        """
        return _commit_fetch_timer(self._bound(repo))

    def bind(self, repo: Any) -> GitJobHandle:
        """The typed calls for one GitRepo, without naming it again: ``metrics.bind(repo).job_created()``.

        The handle belongs to the repo's incarnation (its uid, when ``repo``
        carries one): once the repo is forgotten, or bound again under another
        uid, it records nothing and never brings a series back (each call is
        counted as ``stale_handle``). Never raises; a ``repo`` that names no
        GitRepo gives a handle that records nothing (counted).
        """
        handle = self._handle(repo, for_call=False)
        return handle if isinstance(handle, GitJobHandle) else GitJobHandle(self._slow_kit, {}, None)

    # -- helpers --------------------------------------------------------------------------------------------

    def _bound(self, repo: Any) -> GitJobHandle | _Disabled:
        """The handle a typed call records through: cached by identity, which is read by the repo's type."""
        handle = self._handles.get(fast_identity(repo))
        if handle is not None and handle.alive:
            return handle
        return self._handle(repo, for_call=True)

    def _handle(self, repo: Any, for_call: bool) -> GitJobHandle | _Disabled:
        """A handle for ``repo``, cached for the typed calls; ``_NOTHING`` when it names no GitRepo. Never raises."""
        try:
            ref, reason = coerce_object(repo)
            if ref is None:
                self._drops.drop(reason or REASON_BAD_OBJECT, safe_detail(repo))
                return _NOTHING
            key = (ref.namespace, ref.name, ref.uid)
            handle = self._handles.get(key) if for_call else None
            if handle is not None and handle.alive:
                return handle
            if not (valid_identity_value(ref.namespace) and valid_identity_value(ref.name)):
                self._drops.drop(REASON_BAD_OBJECT, "a namespace/name that is not a valid Kubernetes name")
                return _NOTHING
            identity = (ref.namespace, ref.name)
            if for_call and ref.uid is not None and not self._hooks.admit(self._kind, identity, ref.uid):
                return _NOTHING  # a late write of a forgotten incarnation (counted)
            attributes = {self._namespace_key: ref.namespace, self._name_key: ref.name}
            incarnation = self._registry.incarnation((self._kind, identity), ref.uid)
            if incarnation is None and for_call:
                # Forgotten and not seen alive again: the SDK path drops the write at the block, and counts it.
                return GitJobHandle(self._slow_kit, attributes, Incarnation(None))
            handle = GitJobHandle(self._kit, attributes, incarnation)
            if for_call and incarnation is not None:
                self._handles[key] = handle
                incarnation.cached(self._handles, key)
                if incarnation.dead:  # forgotten meanwhile: its end may have missed this entry
                    self._handles.pop(key, None)
            return handle
        except Exception as error:  # recording never raises into the controller
            self._drops.drop(REASON_INTERNAL, "%s: %s" % ("record" if for_call else "bind", type(error).__name__))
            _logger.debug("otel-gitjob: binding a repo failed", exc_info=True)
            return _NOTHING


class GitJobHandle(Handle):
    """The typed calls of :class:`GitJobMetrics` for one GitRepo (``GitJobMetrics.bind(repo)``). Never raises."""

    __slots__ = ()

    # The instruments' indexes in GITJOB_INSTRUMENTS (the kit's order).
    _CREATED = _INDEX["created_success"]
    _CREATION_FAILED = _INDEX["created_failure"]
    _DURATION = _INDEX["duration"]
    _DURATION_GAUGE = _INDEX["duration_gauge"]
    _FETCHED = _INDEX["fetch_success"]
    _FETCH_FAILED = _INDEX["fetch_failure"]
    _FETCH_DURATION = _INDEX["fetch_duration"]

    def job_created(self) -> None:
        """A git job was created for the repo."""
        self._non_negative(self._CREATED, 1)

    def job_creation_failed(self) -> None:
        """Creating the repo's git job failed."""
        self._non_negative(self._CREATION_FAILED, 1)

    def job_succeeded(self, duration_seconds: float) -> None:
        """A git job of the repo succeeded after ``duration_seconds`` (histogram and transient gauge)."""
        if (type(duration_seconds) is float and 0 <= duration_seconds < _INF) or self._valid(duration_seconds):
            self._non_negative(self._DURATION, duration_seconds)
            self._finite(self._DURATION_GAUGE, duration_seconds)

    def commit_fetched(self, duration_seconds: float) -> None:
        """Polling the git host for the repo's latest commit succeeded after ``duration_seconds``."""
        if (type(duration_seconds) is float and 0 <= duration_seconds < _INF) or self._valid(duration_seconds):
            self._non_negative(self._FETCHED, 1)
            self._non_negative(self._FETCH_DURATION, duration_seconds)

    def commit_fetch_failed(self) -> None:
        """Polling the git host for the repo's latest commit failed."""
        self._non_negative(self._FETCH_FAILED, 1)

    def time_commit_fetch(self) -> AbstractContextManager[None]:
        """Time a latest-commit poll: ``with handle.time_commit_fetch(): poll()``."""
        return _commit_fetch_timer(self)

    def _valid(self, value: Any) -> bool:
        try:
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
                return True
        except Exception:  # an int too large for a float, a number whose comparison raises
            pass
        self._instruments.drops.drop(REASON_BAD_DURATION, safe_detail(value))  # type: ignore[attr-defined]
        return False


@contextmanager
def _commit_fetch_timer(repo: GitJobHandle | _Disabled) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    except BaseException:
        repo.commit_fetch_failed()
        raise
    repo.commit_fetched(time.perf_counter() - start)


class _Disabled:
    """Stands for an instrument the user left out, and for the repo of a call that was dropped."""

    name = "(left out)"

    def add(self, *args: Any, **kwargs: Any) -> None:
        pass

    record = set = job_created = job_creation_failed = job_succeeded = commit_fetched = commit_fetch_failed = add


_DISABLED = _Disabled()
_NOTHING: Any = _DISABLED

_FACTORIES: dict[str, Callable[..., Any]] = {
    "counter": lambda meter, spec, name: meter.create_counter(name, unit=spec.unit, description=spec.description),
    "gauge": lambda meter, spec, name: meter.create_gauge(name, unit=spec.unit, description=spec.description),
    "histogram": lambda meter, spec, name: meter.create_histogram(
        name,
        unit=spec.unit,
        description=spec.description,
        explicit_bucket_boundaries_advisory=list(spec.buckets or ()),
    ),
}
