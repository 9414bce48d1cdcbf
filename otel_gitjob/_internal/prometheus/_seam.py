"""THE seam onto prometheus_client's and opentelemetry-exporter-prometheus's internals.

Only this module touches a ``_``-prefixed name of either package, with one adapter per shape those
internals take across the supported releases: prometheus_client's name escaping (:data:`CLIENT_SHAPE`:
``escaping`` from 0.23.1, ``quoting`` in 0.22, ``legacy`` in 0.20 and 0.21) and the exporter's collector
(:data:`EXPORTER_SHAPE`: ``fast`` from 0.66b0, else ``exporter``, whose own rendering serves ``/metrics``).

Before the fast renderer serves its first scrape, :func:`fast_path_ok` checks it by behaviour against
prometheus_client's rendering of a public ``PrometheusMetricReader``, in each format. Any difference or
exception and the seam runs *degraded* (``OTEL_GITJOB_DEGRADED=prometheus`` forces it): ``/metrics`` is
prometheus_client's own ``generate_latest`` (the lifecycle filter still runs), with one WARNING and
``otel_gitjob_degraded{seam="prometheus"} 1``.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from importlib import metadata
from typing import TYPE_CHECKING, Any

import opentelemetry.exporter.prometheus as _exporter
from prometheus_client import exposition as _text
from prometheus_client.openmetrics import exposition as _om

from otel_gitjob._internal.core import degraded
from otel_gitjob._internal.core.locks import ranked_lock

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import Metric, MetricsData

__all__ = [
    "ALLOWUTF8",
    "CLIENT_SHAPE",
    "DOTS",
    "EXPORTER_SHAPE",
    "SEAM",
    "UNDERSCORES",
    "FilteringReader",
    "check_value",
    "collector_is_plain",
    "collector_of",
    "encode",
    "fast_path_ok",
    "format_of",
    "label_name_kept",
    "map_unit",
    "move_collector",
    "registry_serves_only",
    "reset_check",
    "resolve_metric_name",
    "sample_name",
    "sanitize_attribute",
    "take_latest",
    "translate_metric",
    "unregister",
]

SEAM = "prometheus"
_logger = logging.getLogger("otel_gitjob")

# -- prometheus_client: name escaping -------------------------------------------------------------------------

# The scheme names are prometheus_client's own strings (releases without schemes only ever use UNDERSCORES).
UNDERSCORES: str = getattr(_om, "UNDERSCORES", "underscores")
ALLOWUTF8: str = getattr(_om, "ALLOWUTF8", "allow-utf-8")
DOTS: str = getattr(_om, "DOTS", "dots")


def _client_shape() -> str:
    if hasattr(_om, "ALLOWUTF8") and hasattr(_om, "_is_legacy_labelname_rune"):
        return "escaping"
    if hasattr(_om, "escape_metric_name"):
        return "quoting"
    return "legacy"


CLIENT_SHAPE = _client_shape()

if CLIENT_SHAPE == "legacy":

    def _is_legacy_metric_name(name: str) -> bool:
        return True  # 0.20/0.21 write every name as it is

else:
    from prometheus_client.validation import _is_valid_legacy_metric_name as _is_legacy_metric_name


def encode(registry: Any, openmetrics: bool, escaping: str, version: str) -> bytes:
    """prometheus_client's rendering of ``registry`` in a negotiated format."""
    if CLIENT_SHAPE != "escaping":
        return bytes(_om.generate_latest(registry) if openmetrics else _text.generate_latest(registry))
    if openmetrics:
        return bytes(_om.generate_latest(registry, escaping=escaping, version=version))
    return bytes(_text.generate_latest(registry, escaping=escaping))


def format_of(encoder: Callable[..., bytes]) -> tuple[bool, str, str] | None:
    """``(openmetrics, escaping, version)`` of the encoder ``choose_encoder`` picked; None for one we do not know."""
    if encoder is _text.generate_latest:
        return (False, UNDERSCORES, "1.0.0")
    if encoder is _om.generate_latest:
        return (True, UNDERSCORES, "1.0.0")
    if isinstance(encoder, functools.partial) and not encoder.args:
        keywords = encoder.keywords
        escaping = keywords.get("escaping", UNDERSCORES)
        if encoder.func is _text.generate_latest and set(keywords) <= {"escaping"}:
            return (False, escaping, "1.0.0")
        if encoder.func is _om.generate_latest and set(keywords) <= {"escaping", "version"}:
            return (True, escaping, keywords.get("version", "1.0.0"))
    return None


def sample_name(name: str, openmetrics: bool, escaping: str) -> str | None:
    """The sample name as the format writes it, or None when it would be quoted (render the old way)."""
    if CLIENT_SHAPE == "legacy":
        return name
    if not _is_legacy_metric_name(name):
        if CLIENT_SHAPE == "quoting" or escaping == ALLOWUTF8:
            return None
    elif CLIENT_SHAPE == "quoting":
        return name
    if openmetrics:
        return str(_om._escape(name, escaping, _om._is_legacy_labelname_rune))
    return str(_om.escape_metric_name(name, escaping))


def label_name_kept(name: str, escaping: str) -> bool:
    """Whether the format writes a label name as it is (no rewriting, no quoting)."""
    if CLIENT_SHAPE == "legacy":
        return True
    if CLIENT_SHAPE == "quoting":
        return bool(_om.escape_label_name(name) == name)
    return bool(_om.escape_label_name(name, escaping) == name)


def registry_serves_only(registry: Any, collector: Any) -> bool:
    """Whether ``registry`` holds ``collector`` alone and no ``target_info`` (else: serve the old way)."""
    try:
        with registry._lock:
            collectors = list(registry._collector_to_names)
            target_info = registry._target_info
    except AttributeError:  # not a prometheus_client CollectorRegistry we know
        return False
    return collectors == [collector] and not target_info


# -- opentelemetry-exporter-prometheus: the reader's collector ------------------------------------------------


def _exporter_shape() -> str:
    custom = getattr(_exporter, "_CustomCollector", None)
    try:
        import inspect

        translate = inspect.signature(custom._translate_metric).parameters  # type: ignore[union-attr]
        init = inspect.signature(custom.__init__).parameters  # type: ignore[misc]
        from opentelemetry.exporter.prometheus import _mapping

        _mapping.map_unit, _mapping.sanitize_attribute  # noqa: B018 (present, or AttributeError)
    except (AttributeError, ImportError, TypeError, ValueError):
        return "exporter"
    if {"metric", "scope_attrs", "resource_attrs", "metric_family_id_metric_family"} <= set(translate) and {
        "disable_target_info",
        "scope_info_enabled",
        "resource_attribute_filter",
    } <= set(init):
        return "fast"
    return "exporter"


EXPORTER_SHAPE = _exporter_shape()

if EXPORTER_SHAPE == "fast":
    from opentelemetry.exporter.prometheus._mapping import map_unit, sanitize_attribute
else:

    def map_unit(unit: str) -> str:
        """Unused with this exporter's shape (the fast renderer is off)."""
        raise NotImplementedError

    def sanitize_attribute(key: str) -> str:
        """Unused with this exporter's shape (the fast renderer is off)."""
        raise NotImplementedError


def _exporter_version() -> str:
    try:
        return metadata.version("opentelemetry-exporter-prometheus")
    except metadata.PackageNotFoundError:
        return "unknown"


def collector_of(reader: Any) -> Any:
    """The prometheus_client collector a ``PrometheusMetricReader`` registers (None when it has none)."""
    return getattr(reader, "_collector", None)


def collector_is_plain(collector: Any) -> bool:
    """Whether the fast renderer reproduces the collector's options (no target_info, scope or resource labels)."""
    return (
        bool(getattr(collector, "_disable_target_info", False))
        and not getattr(collector, "_scope_info_enabled", True)
        and getattr(collector, "_resource_attribute_filter", True) is None
    )


def resolve_metric_name(collector: Any, name: str) -> str:
    """The Prometheus family name the exporter gives an OTel metric name (sanitised, prefixed)."""
    return str(collector._resolve_metric_name(name))


def check_value(collector: Any, value: Any) -> str:
    """A label value as the exporter writes it (sequences as JSON)."""
    return str(collector._check_value(value))


def translate_metric(collector: Any, metric: Metric, families: dict[str, Any]) -> None:
    """Add the exporter's prometheus_client family for ``metric`` to ``families`` (keyed as the exporter does)."""
    collector._translate_metric(
        metric=metric, scope_attrs={}, resource_attrs={}, metric_family_id_metric_family=families
    )


def take_latest(collector: Any) -> MetricsData | None:
    """Pop every collection queued on the collector; the newest one (older ones would print families twice)."""
    datas = collector._metrics_datas
    latest = None
    while datas:
        latest = datas.popleft()
    return latest  # type: ignore[no-any-return]


class FilteringReader(_exporter.PrometheusMetricReader):  # type: ignore[misc]
    """A ``PrometheusMetricReader`` whose collections pass :meth:`filter_collection` before the exporter queues them."""

    def filter_collection(self, metrics_data: MetricsData) -> MetricsData:
        """What of a collection may be served (all of it here; subclasses filter)."""
        return metrics_data

    # The SDK hands every collection to a reader through this method (the one every reader implements).
    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        if metrics_data is None:
            return
        super()._receive_metrics(self.filter_collection(metrics_data), timeout_millis=timeout_millis, **kwargs)


def unregister(reader: Any, registry: Any) -> None:
    """Remove the reader's collector from ``registry``."""
    registry.unregister(reader._collector)


def move_collector(reader: Any, source: Any, target: Any) -> None:
    """Move the reader's collector between registries (exporters that always register globally)."""
    source.unregister(reader._collector)
    target.register(reader._collector)


# -- the behavioural self-check -------------------------------------------------------------------------------

_check_lock = ranked_lock("prometheus.self_check")  # guards _check_result; nothing is called under it
_check_result: list[str | None] = []  # [] not run yet; [None] fast path verified; [reason] degraded


def reset_check() -> None:
    """Forget the self-check's result (tests that swap internals)."""
    with _check_lock:
        _check_result.clear()


def fast_path_ok(check: Callable[[], str | None]) -> bool:
    """Whether the fast renderer may serve ``/metrics``: its shape is present and its self-check passed.

    Runs the check once per process. False when forced degraded, with the older exporter shape (its
    own path is that shape's adapter) or when the check failed (degraded, with one warning).

    Args:
        check: The renderer's self-check: None when its output is identical, else what differed.
    """
    if degraded.forced(SEAM):
        degraded.mark_degraded(SEAM, "forced by %s" % degraded.FORCE_ENV)
        return False
    with _check_lock:
        known = list(_check_result)
    if not known:
        # Run outside the lock (it collects from a MeterProvider of its own); two first scrapes at once
        # may both run it, and the first result stands.
        result = _run_check(check)
        with _check_lock:
            if not _check_result:
                _check_result.append(result)
            known = list(_check_result)
    reason = known[0]
    if reason is None:
        degraded.mark_checked(SEAM)
        return True
    if reason == "":
        degraded.mark_checked(SEAM)  # the older exporter's own path, as designed
        return False
    degraded.mark_degraded(SEAM, reason)
    return False


def _run_check(check: Callable[[], str | None]) -> str | None:
    if EXPORTER_SHAPE != "fast":
        version = _exporter_version()
        minor = re.match(r"0\.(\d+)", version)
        if minor is not None and int(minor.group(1)) < 66:
            return ""
        return "opentelemetry-exporter-prometheus %s has none of the collector shapes known here" % version
    try:
        return check()
    except Exception as exc:  # any failure means: not proven identical
        _logger.debug("otel-gitjob: the /metrics self-check raised", exc_info=True)
        return "the /metrics self-check raised %s: %s" % (type(exc).__name__, exc)
