"""Render ``/metrics`` straight from the collected OTel points, with each series' label string cached.

Today's path turns every collected point into prometheus_client ``Sample`` objects
(opentelemetry-exporter-prometheus's ``_CustomCollector``) and then formats each
sample (``prometheus_client.generate_latest``), rebuilding and escaping the same
label strings on every scrape. :class:`FastExposition` produces the same bytes
from the :class:`~opentelemetry.sdk.metrics.export.MetricsData` itself:

* Names, help texts, units and types come from the exporter's own code: each
  family's ``HELP``/``TYPE``/``UNIT`` lines are prometheus_client's rendering of
  the family object the exporter would build (with no samples), so name
  sanitising, unit suffixes and ``_total`` cannot drift.
* Each series' label string (``{name="a",namespace="b"}``, already escaped and
  sorted) is cached per family, keyed by the identity of the point's attributes
  object: the SDK copies a series' attributes once when it creates the series
  and hands out that same dict in every collection, so the key is stable while
  the series lives. The entry holds that dict, so its ``id`` cannot be reused.
* The cache only holds series of the latest collection: a family whose points
  are fewer than its entries (a repo forgotten, a transient gauge expired) is
  pruned to the points just rendered, and a family that was not collected at all
  is dropped. Memory is released one scrape after the series leaves the SDK.

A family the fast renderer cannot prove identical for (a label named ``le`` on a
histogram, label or metric names that the negotiated escaping would rewrite,
several OTel metrics folded into one Prometheus family, non-string label values
that could change in place) is rendered by prometheus_client itself from the
exporter's family object, so the output stays byte-identical in every case.

Either way a series UTF-8 cannot encode is left out (its cache entry says so)
and a label value is cut to :data:`~.sanitize.MAX_LABEL_VALUE` characters,
both counted (:mod:`.sanitize`).
"""

from __future__ import annotations

import functools
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.metrics.export import AggregationTemporality, Gauge, Histogram, MetricsData, Sum
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from otel_gitjob._internal.core.locks import ranked_lock
from otel_gitjob._internal.prometheus import _seam
from otel_gitjob._internal.prometheus._seam import map_unit, sanitize_attribute
from otel_gitjob._internal.prometheus.sanitize import REASON_UNENCODABLE, ScrapeCounts, cap, clean_families, encodable

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import Metric
    from prometheus_client.metrics_core import Metric as PromFamily

__all__ = ["FastExposition", "Format", "self_check"]

# floatToGoString of a small whole number is "<n>.0"; bucket counts and most counter values are
# small whole numbers, so a table lookup replaces a Python call per line.
_SMALL = 4096
_SMALL_INTS = tuple("%d.0" % i for i in range(_SMALL))

_ESCAPE_SAFE = frozenset('\\\n"')


class Format:
    """A negotiated exposition: Prometheus text or OpenMetrics, with its name escaping.

    Attributes:
        openmetrics: OpenMetrics text (``# UNIT`` lines, ``# EOF``) rather than Prometheus text.
        escaping: prometheus_client's escaping scheme for metric and label names.
        version: The OpenMetrics version asked for (prometheus_client passes it on; it only
            matters for native histograms, which the OTel exporter never produces).
    """

    __slots__ = ("escaping", "openmetrics", "version")

    def __init__(self, openmetrics: bool = False, escaping: str = _seam.UNDERSCORES, version: str = "1.0.0") -> None:
        self.openmetrics = openmetrics
        self.escaping = escaping
        self.version = version

    def key(self) -> tuple[bool, str]:
        return (self.openmetrics, self.escaping)

    def encode(self, registry: Any) -> bytes:
        """Render ``registry`` the old way (prometheus_client) in this format."""
        return _seam.encode(registry, self.openmetrics, self.escaping, self.version)

    def __repr__(self) -> str:
        return "Format(openmetrics=%r, escaping=%r, version=%r)" % (self.openmetrics, self.escaping, self.version)


class _One:
    """A prometheus_client collector that yields the given families (to render them the old way)."""

    __slots__ = ("families",)

    def __init__(self, families: Iterable[PromFamily]) -> None:
        self.families = list(families)

    def collect(self) -> list[PromFamily]:
        return self.families


def _escape_value(value: str) -> str:
    # prometheus_client's label-value escaping (openmetrics._escape with ALLOWUTF8), used by both formats.
    if _ESCAPE_SAFE.isdisjoint(value):
        return value
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _number(value: Any) -> str:
    if type(value) is int and 0 <= value < _SMALL:
        return _SMALL_INTS[value]
    return str(floatToGoString(value))


class _Family:
    """Cached label strings of one Prometheus family, valid for one sorted tuple of label keys."""

    __slots__ = ("entries", "keys")

    def __init__(self) -> None:
        # id(point.attributes) -> (attributes, point's own key tuple, label strings...)
        self.entries: dict[int, tuple[Any, ...]] = {}
        self.keys: tuple[str, ...] | None = None


# opentelemetry-exporter-prometheus 0.66b0 and later have the collector this renderer reproduces; on older
# releases (paired with opentelemetry-sdk 1.33 - 1.44) the exporter's own path serves /metrics.
EXPORTER_SUPPORTED = _seam.EXPORTER_SHAPE == "fast"


class FastExposition:
    """Renders a ``PrometheusMetricReader``'s collection without prometheus_client's sample objects.

    Args:
        collector: The reader's prometheus_client collector (for its name, prefix and label-value rules).
        counts: Where series left out and label values cut are counted.
    """

    def __init__(self, collector: Any, counts: ScrapeCounts | None = None) -> None:
        self._collector = collector
        self._counts = counts if counts is not None else ScrapeCounts()
        self._families: dict[str, _Family] = {}
        self._headers: dict[tuple[Any, ...], str] = {}
        # One string object per distinct label string across families (the ten status gauges of a
        # repo share one), rebuilt from the live entries once it has doubled since the last rebuild.
        self._intern: dict[str, str] = {}
        self._intern_rebuilt_at = 0
        self._key_tuples: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._lock = ranked_lock("renderer")

    def supported(self) -> bool:
        """Whether the collector's options are ones this renderer reproduces.

        ``target_info``, scope labels and resource-attribute labels are off in
        otel-gitjob's reader by default; with any of them on, with an exporter
        release whose collector has another shape, or with the prometheus seam
        degraded (its self-check failed, or forced), serve the old way.
        """
        return _seam.fast_path_ok(self_check) and _seam.collector_is_plain(self._collector)

    def cached_series(self, *, own: bool = True) -> int:
        """Number of cached label strings (for tests and the memory benchmark).

        Args:
            own: Count the package's own ``otel_gitjob_*`` self-metric series too.
        """
        return sum(
            len(family.entries)
            for family_id, family in self._families.items()
            if own or not family_id.startswith("otel_gitjob_")
        )

    def render(self, metrics_data: MetricsData | None, fmt: Format) -> bytes:
        """Render one collection as the old path would.

        Args:
            metrics_data: The (filtered) collection, or None when the reader produced none.
            fmt: The negotiated format.

        Returns:
            The exposition, UTF-8 encoded.
        """
        with self._lock:
            out: list[str] = []
            if metrics_data is not None:
                self._render(metrics_data, fmt, out)
            elif self._families:  # nothing collected: no series is live any more
                self._families.clear()
                self._rebuild_intern()
            if fmt.openmetrics:
                out.append("# EOF\n")
            text = "".join(out)
            try:
                return text.encode("utf-8")
            except UnicodeEncodeError:  # a help text or name no series check covers: leave out its family
                return self._encode_families(out)

    def _encode_families(self, out: list[str]) -> bytes:
        parts = []
        for family_text in out:
            if encodable(family_text):
                parts.append(family_text.encode("utf-8"))
            else:
                self._counts.dropped(REASON_UNENCODABLE, max(1, family_text.count("\n") - 2))
        return b"".join(parts)

    # -- internals ----------------------------------------------------------------------------------------

    def _render(self, metrics_data: MetricsData, fmt: Format, out: list[str]) -> None:
        collector = self._collector
        # Group metrics into Prometheus families as the exporter does (name|description|unit|type),
        # in the order the exporter's dict would yield them.
        groups: dict[str, list[tuple[Metric, str, str, str, type]]] = {}
        for rm in metrics_data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    data = metric.data
                    if isinstance(data, Sum):
                        as_gauge = (
                            not data.is_monotonic and data.aggregation_temporality == AggregationTemporality.CUMULATIVE
                        )
                        kind: type = GaugeMetricFamily if as_gauge else CounterMetricFamily
                    elif isinstance(data, Gauge):
                        kind = GaugeMetricFamily
                    elif isinstance(data, Histogram):
                        kind = HistogramMetricFamily
                    else:
                        # The exporter logs and skips it; let it do both.
                        kind = type(None)
                    name = _seam.resolve_metric_name(collector, metric.name)
                    description = metric.description or ""
                    unit = map_unit(metric.unit or "")
                    family_id = "|".join(("|".join((name, description, unit)), kind.__name__))
                    groups.setdefault(family_id, []).append((metric, name, description, unit, kind))

        seen = set()
        pruned = False
        for family_id, members in groups.items():
            metric, name, description, unit, kind = members[0]
            if len(members) > 1 or kind is type(None):
                self._render_old(members, fmt, out)
                continue
            seen.add(family_id)
            family = self._families.get(family_id)
            if family is None:
                family = self._families[family_id] = _Family()
            if not self._render_family(family, family_id, metric, name, description, unit, kind, fmt, out):
                self._render_old(members, fmt, out)
            elif len(family.entries) > len(metric.data.data_points):
                family.entries = {id(p.attributes): family.entries[id(p.attributes)] for p in metric.data.data_points}
                pruned = True
        if len(seen) != len(self._families):
            for family_id in [f for f in self._families if f not in seen]:
                del self._families[family_id]
            pruned = True
        if pruned or len(self._intern) > 2 * self._intern_rebuilt_at + 1024:
            self._rebuild_intern()

    def _rebuild_intern(self) -> None:
        intern: dict[str, str] = {}
        for family in self._families.values():
            for entry in family.entries.values():
                for text in entry[2:]:
                    if text is not None:
                        intern[text] = text
        self._intern = intern
        self._intern_rebuilt_at = len(intern)

    def _render_old(self, members: Sequence[tuple[Metric, str, str, str, type]], fmt: Format, out: list[str]) -> None:
        families: dict[str, PromFamily] = {}
        for metric, *_ in members:
            _seam.translate_metric(self._collector, metric, families)
        text = fmt.encode(_One(clean_families(families.values(), self._counts))).decode("utf-8")
        if fmt.openmetrics and text.endswith("# EOF\n"):
            text = text[: -len("# EOF\n")]
        out.append(text)

    def _header(self, name: str, description: str, unit: str, kind: type, fmt: Format) -> tuple[str, PromFamily]:
        family = kind(name=name, documentation=description, labels=(), unit=unit)
        key = (name, description, unit, kind, fmt.key())
        header = self._headers.get(key)
        if header is None:
            header = fmt.encode(_One([family])).decode("utf-8")
            if fmt.openmetrics:
                header = header[: -len("# EOF\n")]
            if len(self._headers) > 4096:  # families come and go with views; never grow without bound
                self._headers.clear()
            self._headers[key] = header
        return header, family

    def _sample_name(self, name: str, fmt: Format) -> str | None:
        """The sample name as the format writes it, or None when it would be quoted (render the old way)."""
        return _seam.sample_name(name, fmt.openmetrics, fmt.escaping)

    def _point_keys(self, attributes: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
        labels = {sanitize_attribute(key): value for key, value in attributes.items()}
        keys = tuple(sorted(labels))
        return self._key_tuples.setdefault(keys, keys), labels

    def _render_family(
        self,
        family: _Family,
        family_id: str,
        metric: Metric,
        name: str,
        description: str,
        unit: str,
        kind: type,
        fmt: Format,
        out: list[str],
    ) -> bool:
        header, prom = self._header(name, description, unit, kind, fmt)
        points: Sequence[Any] = metric.data.data_points
        histogram = kind is HistogramMetricFamily
        keys = family.keys
        entries = family.entries

        # Pass 1: the family's label keys are the union over its current points (the exporter backfills
        # "" for a point without one). In the steady state every point is cached and carries the family's
        # key tuple itself, so this is one dict lookup per point.
        full_seen = False
        missing = False
        others: dict[int, tuple[str, ...]] | None = None
        for point in points:
            attributes = point.attributes
            entry = entries.get(id(attributes))
            if entry is not None and entry[0] is attributes:
                point_keys = entry[1]
            else:
                missing = True
                point_keys = self._point_keys(attributes)[0]
            if point_keys is keys:
                full_seen = True
            else:
                if others is None:
                    others = {}
                others[id(point_keys)] = point_keys
        if others is not None:
            union = set(keys) if full_seen and keys is not None else set()
            for point_keys in others.values():
                union.update(point_keys)
            new_keys = tuple(sorted(union))
            new_keys = self._key_tuples.setdefault(new_keys, new_keys)
            if new_keys != keys:
                family.keys = keys = new_keys
                family.entries = entries = {}
                missing = True
        if keys is None:  # no points
            keys = ()
        if len(self._key_tuples) > 4096:
            self._key_tuples.clear()

        # Label and sample names the format would rewrite, or a histogram attribute named "le":
        # leave the family to prometheus_client.
        label_names = (*keys, "le") if histogram else keys
        if histogram and "le" in keys:
            return False
        escaping = fmt.escaping
        if not all(_seam.label_name_kept(k, escaping) for k in label_names):
            return False
        if histogram:
            suffixes: tuple[str, ...] = ("_bucket", "_count", "_sum")
        elif kind is CounterMetricFamily:
            suffixes = ("_total",)
        else:
            suffixes = ("",)
        sample_names = [self._sample_name(prom.name + suffix, fmt) for suffix in suffixes]
        if None in sample_names:
            return False

        # Pass 2 (new series only): their label strings, all before any line of the family is written, so
        # the long-lived cache entries are not allocated in between a scrape's short-lived lines.
        if missing:
            for point in points:
                attributes = point.attributes
                entry = entries.get(id(attributes))
                if entry is None or entry[0] is not attributes:
                    entry = self._new_entry(attributes, keys, histogram)
                    if entry is None:
                        return False
                    entries[id(attributes)] = entry

        # Pass 3: the lines, joined per family so that a scrape holds one family's lines at a time.
        lines: list[str] = [header]
        if histogram:
            self._render_histogram(points, entries, sample_names, lines)  # type: ignore[arg-type]

        else:
            sample = sample_names[0]
            assert sample is not None
            small = _SMALL_INTS
            dropped = 0
            for point in points:
                entry = entries[id(point.attributes)]
                if entry[2] is None:  # a label value UTF-8 cannot encode
                    dropped += 1
                    continue
                value = point.value
                if type(value) is int and 0 <= value < _SMALL:
                    text = small[value]
                else:
                    text = floatToGoString(value)
                lines.append("%s%s %s\n" % (sample, entry[2], text))
            if dropped:
                self._counts.dropped(REASON_UNENCODABLE, dropped)
        out.append("".join(lines))
        return True

    def _render_histogram(
        self,
        points: Sequence[Any],
        entries: dict[int, tuple[Any, ...]],
        sample_names: list[str],
        lines: list[str],
    ) -> None:
        bucket, count, total = sample_names
        small = _SMALL_INTS
        bounds_key: Any = None
        le_parts: list[str] = []
        with_totals = True
        dropped = 0
        for point in points:
            _, _, plain, pre, post = entries[id(point.attributes)]
            if plain is None:  # a label value UTF-8 cannot encode
                dropped += 1
                continue
            bounds = point.explicit_bounds
            # Each point carries its own copy of the bounds; equal ones render alike.
            if bounds is not bounds_key and bounds != bounds_key:
                bounds_key = bounds
                # _convert_buckets: f"{bound}" and "+Inf"; the sum and count go only with a non-negative first bucket.
                les = [f"{b}" for b in bounds]
                les.append("+Inf")
                le_parts = ['le="%s"' % _escape_value(le) for le in les]
                with_totals = float(les[0]) >= 0
            head = "%s{%s" % (bucket, pre)
            tail = "%s} " % post
            cumulative = 0
            for le_part, cumulative in zip(le_parts, accumulate(point.bucket_counts), strict=False):
                lines.append(
                    "%s%s%s%s\n"
                    % (head, le_part, tail, small[cumulative] if cumulative < _SMALL else floatToGoString(cumulative))
                )
            if with_totals and point.sum is not None:
                lines.append(
                    "%s%s %s\n"
                    % (count, plain, small[cumulative] if cumulative < _SMALL else floatToGoString(cumulative))
                )
                lines.append("%s%s %s\n" % (total, plain, floatToGoString(point.sum)))
        if dropped:
            self._counts.dropped(REASON_UNENCODABLE, dropped)

    def _new_entry(self, attributes: Any, keys: tuple[str, ...], histogram: bool) -> tuple[Any, ...] | None:
        point_keys, raw = self._point_keys(attributes)
        collector = self._collector
        check = functools.partial(_seam.check_value, collector)
        values: dict[str, str] = {}
        for label, value in raw.items():
            if not isinstance(value, (str, int, float, bool, tuple)) or (
                isinstance(value, tuple) and not all(isinstance(v, (str, int, float, bool)) for v in value)
            ):
                # A list (or anything mutable) could change in place while its series lives; the cached
                # string would go stale. Such values are not valid OTel attributes from our code anyway.
                return None
            text = check(value)
            if not encodable(text) or not encodable(label):
                # Cached as left out: the series is skipped (and counted) at every scrape while it lives.
                return (attributes, point_keys, None, None, None) if histogram else (attributes, point_keys, None)
            text, cut = cap(text)
            if cut:
                self._counts.truncated()
            values[label] = _escape_value(text)
        intern = self._intern
        if not histogram:
            text = ",".join(['%s="%s"' % (k, values.get(k, "")) for k in keys])
            text = "{%s}" % text if text else ""
            return (attributes, point_keys, intern.setdefault(text, text))
        split = bisect_left(keys, "le")
        pre = "".join(['%s="%s",' % (k, values.get(k, "")) for k in keys[:split]])
        post = "".join([',%s="%s"' % (k, values.get(k, "")) for k in keys[split:]])
        plain = ",".join(['%s="%s"' % (k, values.get(k, "")) for k in keys])
        plain = "{%s}" % plain if plain else ""
        return (attributes, point_keys, intern.setdefault(plain, plain), intern.setdefault(pre, pre), post)


def self_check() -> str | None:
    """Render a known collection with the fast renderer and with prometheus_client; the first difference."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    reader = PrometheusMetricReader(disable_target_info=True, scope_info_enabled=False, registry=registry)
    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader, memory])
    try:
        meter = provider.get_meter("otel-gitjob-self-check")
        counter = meter.create_counter("check_runs", unit="s", description='runs "counted"\\ here')
        gauge = meter.create_up_down_counter("check_depth", description="depth")
        histogram = meter.create_histogram("check_duration", unit="s", description="durations")
        odd: dict[str, Any] = {"name": 'a"b\\c\nd', "namespace": "é名🙂", "other": 3}
        plain: dict[str, Any] = {"name": "plain", "namespace": "ns"}
        for attributes in (plain, odd):
            counter.add(3, attributes)
            gauge.add(-2.5, attributes)
            histogram.record(0.25, attributes)
            histogram.record(1e9, attributes)
        counter.add(1)
        formats = [Format(openmetrics=False), Format(openmetrics=True)]
        if _seam.CLIENT_SHAPE == "escaping":
            formats += [
                Format(openmetrics=False, escaping=_seam.ALLOWUTF8),
                Format(openmetrics=True, escaping=_seam.ALLOWUTF8),
            ]
        fast = FastExposition(_seam.collector_of(reader))
        for _ in range(2):  # the second scrape renders from the label cache
            data = memory.get_metrics_data()
            for fmt in formats:
                want = fmt.encode(registry)
                got = fast.render(data, fmt)
                if got != want:
                    return "the fast /metrics renderer differs from prometheus_client in %r" % (fmt,)
        return None
    finally:
        provider.shutdown()
