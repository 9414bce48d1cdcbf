"""The package's own metrics: one table of ``otel_gitjob_*`` instruments, fed by every component.

Each component (registry, expiry, OTLP markers, listener) adds a *source* for the rows it can answer;
:meth:`SelfMetrics.register` creates one observable instrument per row whose callback asks every source of
that row. The series carry no identity attributes, so the lifecycle never manages them. Counters are
cumulative (``_total`` on /metrics), units UCUM.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_gitjob._internal.core.locks import ranked_lock

__all__ = ["SELF_METRICS", "SelfMetric", "SelfMetrics"]

_logger = logging.getLogger("otel_gitjob")

Source = Callable[[], Iterable[tuple[float, Mapping[str, str]]]]


@dataclass(frozen=True)
class SelfMetric:
    """One row of the self-metrics table: name, ``gauge`` or ``counter``, UCUM unit, help text."""

    name: str
    kind: str
    unit: str
    description: str


SELF_METRICS: tuple[SelfMetric, ...] = (
    SelfMetric(
        "otel_gitjob_degraded",
        "gauge",
        "1",
        "1 per seam onto a foreign package's internals (sdk, prometheus, push) that runs degraded: its self-check "
        "failed or OTEL_GITJOB_DEGRADED forces it; 0 per seam checked healthy. Output stays correct but costs more "
        "(for sdk: deleted objects' memory is not freed). Alert when 1.",
    ),
    SelfMetric("otel_gitjob_objects", "gauge", "{object}", "Objects with at least one live series, by kind."),
    SelfMetric("otel_gitjob_series", "gauge", "{series}", "Series indexed under an object, by kind."),
    SelfMetric("otel_gitjob_blocked_objects", "gauge", "{object}", "Forgotten objects whose late writes are dropped."),
    SelfMetric("otel_gitjob_placeholders", "gauge", "{series}", "Placeholders of late writes awaiting eviction."),
    SelfMetric("otel_gitjob_forgets", "counter", "{object}", "Objects forgotten."),
    SelfMetric("otel_gitjob_expired_series", "counter", "{series}", "Transient series removed after their TTL."),
    SelfMetric(
        "otel_gitjob_expiry_lag_seconds",
        "gauge",
        "s",
        "How far past its deadline the most overdue transient series is (0 when none is due). Alert when it "
        "stays above a scrape interval: the sweeper is starved.",
    ),
    SelfMetric(
        "otel_gitjob_unchecked_providers",
        "gauge",
        "{provider}",
        "MeterProviders instruments were created on whose views could not be checked (not an SDK MeterProvider): "
        "forget() and expiry reach their series only if they pass lifecycle.views() on. Alert when above 0.",
    ),
    SelfMetric(
        "otel_gitjob_staleness_markers_pending",
        "gauge",
        "{marker}",
        "OTLP staleness markers waiting for a successful export. Grows while the Collector is unreachable.",
    ),
    SelfMetric("otel_gitjob_staleness_markers_sent", "counter", "{marker}", "OTLP staleness markers delivered."),
    SelfMetric(
        "otel_gitjob_staleness_markers_dropped",
        "counter",
        "{marker}",
        "OTLP staleness markers given up (too many pending or too old): those series linger downstream until "
        "the Collector's metric_expiration. Alert on any increase.",
    ),
    SelfMetric("otel_gitjob_watch_restarts", "counter", "{restart}", "Watch streams restarted, by kind and reason."),
    SelfMetric("otel_gitjob_relists", "counter", "{list}", "Full lists of a kind (start-up, 410 Gone, errors)."),
    SelfMetric("otel_gitjob_relist_duration_seconds", "gauge", "s", "Duration of the latest full list, by kind."),
    SelfMetric(
        "otel_gitjob_workqueue_depth",
        "gauge",
        "{object}",
        "Objects waiting in the listener's work queue. Alert when it keeps growing.",
    ),
    SelfMetric(
        "otel_gitjob_workqueue_latency_seconds",
        "gauge",
        "s",
        "Age of the oldest object waiting in the listener's work queue.",
    ),
    SelfMetric(
        "otel_gitjob_scrape_series_dropped",
        "counter",
        "{series}",
        "Series left out of a /metrics scrape, by reason (unencodable: a label value UTF-8 cannot encode, such "
        "as a lone surrogate); counted per scrape. The rest of the scrape is served. Alert on any increase.",
    ),
    SelfMetric(
        "otel_gitjob_label_values_truncated",
        "counter",
        "{value}",
        "Label values cut to 4096 characters on /metrics (new series only on the fast path, every scrape otherwise).",
    ),
)

_BY_NAME = {row.name: row for row in SELF_METRICS}


class SelfMetrics:
    """Sources of the self-metrics, by row; thread-safe. One per :class:`~otel_gitjob.Lifecycle`."""

    def __init__(self) -> None:
        self._lock = ranked_lock("selfmetrics")  # never held while a source runs
        self._sources: dict[str, list[Source]] = {row.name: [] for row in SELF_METRICS}
        self._meters: list[Meter] = []

    def add(self, name: str, source: Source) -> None:
        """Add a source of the row ``name``: it returns ``(value, attributes)`` pairs when asked."""
        if name not in _BY_NAME:
            raise KeyError("no self-metric %r; the rows are %s" % (name, sorted(_BY_NAME)))
        with self._lock:
            self._sources[name].append(source)

    def remove(self, name: str, source: Source) -> None:
        with self._lock:
            if source in self._sources.get(name, ()):
                self._sources[name].remove(source)

    def register(self, meter: Meter) -> None:
        """Create every row's observable instrument on ``meter`` (once per meter)."""
        with self._lock:
            if any(known is meter for known in self._meters):
                return
            self._meters.append(meter)
        for row in SELF_METRICS:
            create = meter.create_observable_counter if row.kind == "counter" else meter.create_observable_gauge
            create(row.name, callbacks=[self._callback(row.name)], unit=row.unit, description=row.description)

    def observe(self, name: str) -> list[tuple[float, dict[str, str]]]:
        """What the sources of ``name`` say now, summed per attribute set (tests, debugging)."""
        with self._lock:
            sources = list(self._sources[name])
        totals: dict[tuple[tuple[str, str], ...], float] = {}
        for source in sources:
            try:
                for value, attributes in source():
                    key = tuple(sorted(attributes.items()))
                    totals[key] = totals.get(key, 0.0) + value
            except Exception:  # a broken source must not break the collection
                _logger.exception("otel-gitjob: self-metric source of %s failed", name)
        return [(value, dict(key)) for key, value in totals.items()]

    def _callback(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(value, attributes) for value, attributes in self.observe(name)]

        return callback
