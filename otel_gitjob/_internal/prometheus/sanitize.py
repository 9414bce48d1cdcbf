"""What one series may not do to a scrape: fail it (a value UTF-8 cannot encode) or bloat it (a huge label value).

A lone surrogate (what ``surrogateescape`` makes of undecodable bytes) in a label value makes
prometheus_client's ``generate_latest`` raise, turning every scrape into an HTTP 500: such a series is left
out and counted. A label value longer than :data:`MAX_LABEL_VALUE` (a GitRepo's ``paths`` can be megabytes,
repeated in each status gauge) is cut and counted. Both counts are self-metrics.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from otel_gitjob._internal.core.locks import ranked_lock

__all__ = [
    "MAX_LABEL_VALUE",
    "REASON_UNENCODABLE",
    "CleanRegistry",
    "ScrapeCounts",
    "cap",
    "clean_families",
    "encodable",
]

# Characters a label value keeps on /metrics. Prometheus has no limit of its own by default
# (scrape_config label_value_length_limit); 4 KiB keeps every ordinary value whole (names, URLs, commit
# messages' first lines) and bounds what one object adds to every scrape.
MAX_LABEL_VALUE = 4096

REASON_UNENCODABLE = "unencodable"
"""A series with a label value (or name) UTF-8 cannot encode, such as a lone surrogate."""


def encodable(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8 (no lone surrogates)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def cap(value: str) -> tuple[str, bool]:
    """``value`` cut to :data:`MAX_LABEL_VALUE` characters, and whether it was cut."""
    if len(value) <= MAX_LABEL_VALUE:
        return value, False
    return value[:MAX_LABEL_VALUE], True


class ScrapeCounts:
    """Series dropped from scrapes (by reason) and label values truncated; thread-safe."""

    def __init__(self) -> None:
        self._lock = ranked_lock("scrape.counts")
        self._dropped: dict[str, int] = {}
        self._truncated = 0

    def dropped(self, reason: str, count: int = 1) -> None:
        """Count ``count`` series left out of one scrape."""
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + count

    def truncated(self, count: int = 1) -> None:
        """Count ``count`` label values cut to :data:`MAX_LABEL_VALUE`."""
        with self._lock:
            self._truncated += count

    def dropped_counts(self) -> dict[str, int]:
        """A snapshot of dropped series by reason."""
        with self._lock:
            return dict(self._dropped)

    def truncated_count(self) -> int:
        """Label values truncated so far."""
        with self._lock:
            return self._truncated

    def dropped_source(self) -> list[tuple[float, Mapping[str, str]]]:
        """The ``otel_gitjob_scrape_series_dropped`` self-metric rows."""
        return [(count, {"reason": reason}) for reason, count in self.dropped_counts().items()]

    def truncated_source(self) -> list[tuple[float, Mapping[str, str]]]:
        """The ``otel_gitjob_label_values_truncated`` self-metric row."""
        return [(self.truncated_count(), {})]


def clean_families(families: Iterable[Any], counts: ScrapeCounts) -> Iterator[Any]:
    """prometheus_client families without unencodable samples and with capped label values.

    A family needing no change is passed on as is; otherwise a shallow copy carries the cleaned samples
    (a collector may hand out the same object twice).
    """
    for family in families:
        if not encodable(family.name) or not encodable(family.documentation or ""):
            counts.dropped(REASON_UNENCODABLE, len(family.samples) or 1)
            continue
        samples = None
        for index, sample in enumerate(family.samples):
            labels = sample.labels
            fixed = None
            drop = not encodable(sample.name)
            for name, value in labels.items():
                if not isinstance(value, str):
                    continue
                if drop or not encodable(name) or not encodable(value):
                    drop = True
                    break
                short, cut = cap(value)
                if cut:
                    counts.truncated()
                    if fixed is None:
                        fixed = dict(labels)
                    fixed[name] = short
            if drop or fixed is not None:
                if samples is None:
                    samples = list(family.samples[:index])
                if drop:
                    counts.dropped(REASON_UNENCODABLE)
                else:
                    samples.append(sample._replace(labels=fixed))
            elif samples is not None:
                samples.append(sample)
        if samples is None:
            yield family
        else:
            clean = copy.copy(family)
            clean.samples = samples
            yield clean


class CleanRegistry:
    """A prometheus_client registry seen through :func:`clean_families` (what ``generate_latest`` is given)."""

    def __init__(self, registry: Any, counts: ScrapeCounts) -> None:
        self._registry = registry
        self._counts = counts

    def collect(self) -> Iterator[Any]:
        return clean_families(self._registry.collect(), self._counts)
