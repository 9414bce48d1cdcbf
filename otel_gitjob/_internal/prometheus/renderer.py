"""Render ``/metrics`` straight from the collected OTel points, with each series' label string cached.

opentelemetry-exporter-prometheus turns every collected point into prometheus_client
``Sample`` objects and formats each (``generate_latest``), rebuilding and escaping
the same label strings on every scrape. :class:`FastExposition` produces the same
bytes from the :class:`~opentelemetry.sdk.metrics.export.MetricsData` itself:

* ``HELP``/``TYPE``/``UNIT`` lines are prometheus_client's rendering of the family
  object the exporter would build (with no samples), so name sanitising, unit
  suffixes and ``_total`` cannot drift.
* Each series' label string (escaped, sorted) is cached in the order of the
  family's points: the SDK yields a family's series in the order it created
  them, each with the same attributes object at every collection, so an
  unchanged family matches position by position (by identity; the cache holds
  the attributes, so no identity is reused). Equal strings are shared across
  families (a repo's seven GitJob series hold one). A family that changed is
  re-matched once, and the cache then holds only the series just rendered.

A family the fast renderer cannot prove identical for (a label named ``le`` on a
histogram, names the negotiated escaping would rewrite, several OTel metrics
folded into one family, non-string label values that could change in place) is
rendered by prometheus_client from the exporter's family object.

Either way a series UTF-8 cannot encode is left out and a label value is cut to
:data:`~.sanitize.MAX_LABEL_VALUE` characters, both counted (:mod:`.sanitize`).
"""

from __future__ import annotations

import operator
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from types import SimpleNamespace
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
# Lines per encoded part (~0.3 MB): a scrape's buffers stay small enough that the C allocator reuses them
# rather than keeping tens of MB per thread it answered from (a 10,000-repo family is ~13 MB of text).
_PART_LINES = 4096
_SMALL_INTS = tuple("%d.0" % i for i in range(_SMALL))

_ESCAPE_SAFE = frozenset('\\\n"')


@dataclass(frozen=True, slots=True)
class Format:
    """A negotiated exposition: Prometheus text or OpenMetrics, with its name escaping.

    Attributes:
        openmetrics: OpenMetrics text (``# UNIT`` lines, ``# EOF``) rather than Prometheus text.
        escaping: prometheus_client's escaping scheme for metric and label names.
        version: The OpenMetrics version asked for (prometheus_client passes it on; it only
            matters for native histograms, which the OTel exporter never produces).
    """

    openmetrics: bool = False
    escaping: str = _seam.UNDERSCORES
    version: str = "1.0.0"

    def encode(self, registry: Any) -> bytes:
        """Render ``registry`` the old way (prometheus_client) in this format."""
        return _seam.encode(registry, self.openmetrics, self.escaping, self.version)


def _registry_of(families: Iterable[PromFamily]) -> Any:
    """What prometheus_client renders as a registry: it yields ``families`` (to render them the old way)."""
    listed = list(families)
    return SimpleNamespace(collect=lambda: listed)


def _escape_value(value: str) -> str:
    # prometheus_client's label-value escaping (openmetrics._escape with ALLOWUTF8), used by both formats.
    if _ESCAPE_SAFE.isdisjoint(value):
        return value
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


# A series whose label string is not made yet (a new series, or the family's label keys changed).
_MISSING: Any = object()
# Label values the exporter writes with json.dumps; anything else (a list, a dict) could change in place.
_SCALARS = (str, int, float, bool)


class _Family:
    """One Prometheus family's cached series: parallel lists in the order of its points."""

    __slots__ = ("attributes", "cuts", "keys", "labels", "missing", "point_keys")

    def __init__(self) -> None:
        self.keys: tuple[str, ...] | None = None  # the sorted union of its points' label keys
        self.attributes: list[Any] = []  # held, so that no identity is reused
        self.point_keys: list[tuple[str, ...]] = []  # each series' own sorted label keys
        self.labels: list[str | None] = []  # None: UTF-8 cannot encode it
        self.cuts: list[int] = []  # histograms: where `le` goes into the label string
        self.missing = False  # some label string is _MISSING


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
        # One string object per distinct label string across families, rebuilt from the live families once
        # it has doubled since the last rebuild.
        self._intern: dict[str, str] = {}
        self._intern_rebuilt_at = 0
        # A series' attribute keys (in its order) -> its sorted label keys, shared by its series; attribute
        # key -> label name (None when UTF-8 cannot encode it). Both bounded: families come and go with views.
        self._key_tuples: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._label_names: dict[str, str | None] = {}
        self._memo: dict[Any, tuple[str | None, int, int]] = {}  # one scrape's label strings by label set
        self._lock = ranked_lock("renderer")

    def supported(self) -> bool:
        """Whether this renderer reproduces the collector's output.

        Not with ``target_info``, scope or resource-attribute labels on (off in otel-gitjob's reader by
        default), an exporter whose collector has another shape, or the prometheus seam degraded.
        """
        return _seam.fast_path_ok(self_check) and _seam.collector_is_plain(self._collector)

    def cached_series(self, *, own: bool = True) -> int:
        """Number of cached label strings; ``own=False`` leaves out the ``otel_gitjob_*`` self-metrics."""
        return sum(
            len(family.labels)
            for family_id, family in self._families.items()
            if own or not family_id.startswith("otel_gitjob_")
        )

    def render(self, metrics_data: MetricsData | None, fmt: Format) -> bytes:
        """Render one collection as the old path would, as one ``bytes`` (see :meth:`render_parts`)."""
        return b"".join(self.render_parts(metrics_data, fmt))

    def render_parts(self, metrics_data: MetricsData | None, fmt: Format) -> list[bytes]:
        """Render one collection as the old path would, in UTF-8 parts of at most a few thousand lines.

        Each part is encoded and its text dropped as soon as it is rendered, so a scrape holds the
        exposition about once (joining and encoding the whole would hold it three times).

        Args:
            metrics_data: The (filtered) collection, or None when the reader produced none.
            fmt: The negotiated format.

        Returns:
            The exposition's parts, in order.
        """
        with self._lock:
            parts: list[bytes] = []
            if metrics_data is not None:
                try:
                    self._render(metrics_data, fmt, parts)
                finally:
                    self._memo.clear()
            elif self._families:  # nothing collected: no series is live any more
                self._families.clear()
                self._rebuild_intern()
            if fmt.openmetrics:
                parts.append(b"# EOF\n")
            return parts

    def _emit(self, text: str, out: list[bytes]) -> None:
        try:
            out.append(text.encode("utf-8"))
        except UnicodeEncodeError:  # a help text or name no series check covers: leave out its family
            self._counts.dropped(REASON_UNENCODABLE, max(1, text.count("\n") - 2))

    # -- internals ----------------------------------------------------------------------------------------

    def _render(self, metrics_data: MetricsData, fmt: Format, out: list[bytes]) -> None:
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
                    else:  # the exporter logs and skips it; let it do both
                        kind = type(None)
                    name = _seam.resolve_metric_name(collector, metric.name)
                    description = metric.description or ""
                    unit = map_unit(metric.unit or "")
                    family_id = "|".join(("|".join((name, description, unit)), kind.__name__))
                    groups.setdefault(family_id, []).append((metric, name, description, unit, kind))

        seen = set()
        changed = False
        for family_id, members in groups.items():
            metric, name, description, unit, kind = members[0]
            if len(members) > 1 or kind is type(None):
                self._render_old(members, fmt, out)
                continue
            seen.add(family_id)
            family = self._families.get(family_id)
            if family is None:
                family = self._families[family_id] = _Family()
            points: Sequence[Any] = metric.data.data_points
            attributes = [point.attributes for point in points]
            if len(attributes) != len(family.attributes) or not all(map(operator.is_, attributes, family.attributes)):
                changed = self._match(family, attributes, kind is HistogramMetricFamily) or changed
            if not self._render_family(family, points, name, description, unit, kind, fmt, out):
                self._render_old(members, fmt, out)
        if len(seen) != len(self._families):
            for family_id in [f for f in self._families if f not in seen]:
                del self._families[family_id]
            changed = True
        if changed or len(self._intern) > 2 * self._intern_rebuilt_at + 1024:
            self._rebuild_intern()

    def _match(self, family: _Family, attributes: list[Any], histogram: bool) -> bool:
        """Line the family's cache up with this collection's series; whether any series left it."""
        old_attributes, old_keys, old_labels = family.attributes, family.point_keys, family.labels
        old_cuts = family.cuts
        index: dict[int, int] | None = None
        point_keys: list[tuple[str, ...]] = []
        labels: list[str | None] = []
        cuts: list[int] = []
        kept = 0
        for i, attrs in enumerate(attributes):
            j: int | None = i
            if i >= len(old_attributes) or old_attributes[i] is not attrs:
                if index is None:  # ids are unique: the old list holds every object it names
                    index = {id(old): k for k, old in enumerate(old_attributes)}
                j = index.get(id(attrs))
            if j is None:
                point_keys.append(self._point_keys(attrs))
                labels.append(_MISSING)
                cuts.append(0)
            else:
                kept += 1
                point_keys.append(old_keys[j])
                labels.append(old_labels[j])
                cuts.append(old_cuts[j] if histogram else 0)
        # The family's label keys are the union over its points (the exporter backfills "" for a point
        # without one); when they change, every label string is made again.
        distinct = {id(keys): keys for keys in point_keys}
        if len(distinct) == 1:
            (keys,) = distinct.values()
        else:
            keys = tuple(sorted(set().union(*distinct.values())))
        if keys != family.keys:
            family.keys = keys
            labels = [_MISSING] * len(labels)
        family.attributes, family.point_keys, family.labels = attributes, point_keys, labels
        family.cuts = cuts if histogram else []
        family.missing = _MISSING in labels
        return kept < len(old_attributes)

    def _rebuild_intern(self) -> None:
        intern: dict[str, str] = {}
        for family in self._families.values():
            for text in family.labels:
                if type(text) is str:
                    intern[text] = text
        self._intern = intern
        self._intern_rebuilt_at = len(intern)

    def _render_old(self, members: Sequence[tuple[Metric, str, str, str, type]], fmt: Format, out: list[bytes]) -> None:
        families: dict[str, PromFamily] = {}
        for metric, *_ in members:
            _seam.translate_metric(self._collector, metric, families)
        encoded = fmt.encode(_registry_of(clean_families(families.values(), self._counts)))
        out.append(encoded.removesuffix(b"# EOF\n") if fmt.openmetrics else encoded)

    def _header(self, name: str, description: str, unit: str, kind: type, fmt: Format) -> tuple[str, PromFamily]:
        family = kind(name=name, documentation=description, labels=(), unit=unit)
        key = (name, description, unit, kind, fmt)
        header = self._headers.get(key)
        if header is None:
            header = fmt.encode(_registry_of([family])).decode("utf-8")
            if fmt.openmetrics:
                header = header[: -len("# EOF\n")]
            if len(self._headers) > 4096:  # families come and go with views; never grow without bound
                self._headers.clear()
            self._headers[key] = header
        return header, family

    def _point_keys(self, attributes: Any) -> tuple[str, ...]:
        raw = tuple(attributes)
        keys = self._key_tuples.get(raw)
        if keys is None:
            if len(self._key_tuples) > 4096:
                self._key_tuples.clear()
            keys = self._key_tuples[raw] = tuple(sorted({sanitize_attribute(key) for key in raw}))
        return keys

    def _render_family(
        self,
        family: _Family,
        points: Sequence[Any],
        name: str,
        description: str,
        unit: str,
        kind: type,
        fmt: Format,
        out: list[bytes],
    ) -> bool:
        header, prom = self._header(name, description, unit, kind, fmt)
        if not encodable(header):  # a help text UTF-8 cannot encode: prometheus_client's path drops the family
            return False
        histogram = kind is HistogramMetricFamily
        keys = family.keys or ()

        # Label and sample names the format would rewrite, or a histogram attribute named "le":
        # leave the family to prometheus_client.
        if histogram and "le" in keys:
            return False
        escaping = fmt.escaping
        if not all(_seam.label_name_kept(k, escaping) for k in ((*keys, "le") if histogram else keys)):
            return False
        if histogram:
            suffixes: tuple[str, ...] = ("_bucket", "_count", "_sum")
        elif kind is CounterMetricFamily:
            suffixes = ("_total",)
        else:
            suffixes = ("",)
        sample_names = [_seam.sample_name(prom.name + suffix, fmt.openmetrics, fmt.escaping) for suffix in suffixes]
        if None in sample_names:  # the format would quote it
            return False

        # New series' label strings before any line, so long-lived strings sit apart from a scrape's lines.
        if family.missing:
            split = bisect_left(keys, "le")
            labels, cuts, memo = family.labels, family.cuts, self._memo
            for i, attributes in enumerate(family.attributes):
                if labels[i] is _MISSING:
                    # A repo's series in other families have equal attributes: one string made per scrape.
                    items = tuple(attributes.items())
                    same = (keys, items) if all(type(value) is str for _, value in items) else None
                    made = memo.get(same) if same is not None else None
                    if made is None:
                        made = self._label_string(attributes, keys, split)
                        if made is None:
                            return False
                        if same is not None:
                            memo[same] = made
                    labels[i], cut, truncated = made
                    if histogram:
                        cuts[i] = cut
                    if truncated:
                        self._counts.truncated(truncated)
            family.missing = False

        # The lines, encoded a part at a time so that a scrape holds few of them as text.
        lines: list[str] = [header]
        if histogram:
            self._render_histogram(family, points, keys, sample_names, lines, out)  # type: ignore[arg-type]
        else:
            sample = sample_names[0]
            small = _SMALL_INTS
            dropped = 0
            for label, point in zip(family.labels, points, strict=True):
                if label is None:  # a label value UTF-8 cannot encode
                    dropped += 1
                    continue
                value = point.value
                if type(value) is int and 0 <= value < _SMALL:
                    text = small[value]
                else:
                    text = floatToGoString(value)
                lines.append("%s%s %s\n" % (sample, label, text))
                if len(lines) >= _PART_LINES:
                    self._emit("".join(lines), out)
                    lines.clear()
            if dropped:
                self._counts.dropped(REASON_UNENCODABLE, dropped)
        self._emit("".join(lines), out)
        return True

    def _render_histogram(
        self,
        family: _Family,
        points: Sequence[Any],
        keys: tuple[str, ...],
        sample_names: list[str],
        lines: list[str],
        out: list[bytes],
    ) -> None:
        bucket, count, total = sample_names
        small = _SMALL_INTS
        # `le` goes where it sorts among the label keys: first (`{le="1",a="x"}`), or after a key.
        le_format = ('le="%s",' if keys else 'le="%s"') if bisect_left(keys, "le") == 0 else ',le="%s"'
        bounds_key: Any = None
        le_parts: list[str] = []
        with_totals = True
        dropped = 0
        for plain, cut, point in zip(family.labels, family.cuts, points, strict=True):
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
                le_parts = [le_format % _escape_value(le) for le in les]
                with_totals = float(les[0]) >= 0
            shape = plain or "{}"
            head = bucket + shape[:cut]
            tail = shape[cut:] + " "
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
            if len(lines) >= _PART_LINES:
                self._emit("".join(lines), out)
                lines.clear()
        if dropped:
            self._counts.dropped(REASON_UNENCODABLE, dropped)

    def _label_string(self, attributes: Any, keys: tuple[str, ...], split: int) -> tuple[str | None, int, int] | None:
        """A series' label string (None when UTF-8 cannot encode it), where ``le`` goes, values cut.

        None when a value is not a scalar or a tuple of scalars: such a value could change in place while
        its series lives, and the cached string would go stale (not a valid OTel attribute from our code).
        """
        names = self._label_names
        values: dict[str, str] = {}
        truncations = 0
        for key, value in attributes.items():
            if type(value) is str:
                text = value
            elif isinstance(value, _SCALARS) or (
                isinstance(value, tuple) and all(isinstance(v, _SCALARS) for v in value)
            ):
                text = _seam.check_value(self._collector, value)
            else:
                return None
            label = names.get(key, _MISSING)
            if label is _MISSING:
                label = sanitize_attribute(key)
                label = label if encodable(label) else None
                if len(names) > 4096:
                    names.clear()
                names[key] = label
            if label is None or not encodable(text):
                return None, 0, truncations  # left out (and counted) at every scrape while the series lives
            text, truncated = cap(text)
            truncations += truncated
            values[label] = _escape_value(text)
        parts = ['%s="%s"' % (k, values.get(k, "")) for k in keys]
        if not parts:
            return "", 1, truncations
        plain = "{%s}" % ",".join(parts)
        # Where `le` goes: after "{" when it sorts first, else after the labels before it.
        cut = 1 + len(",".join(parts[:split])) if split else 1
        return self._intern.setdefault(plain, plain), cut, truncations


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
