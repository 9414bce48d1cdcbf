"""Helpers shared by the tests: a hand-moved clock and exact-sample scraping."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Scrape ``registry`` and return {(sample name, sorted labels): value}."""
    text = generate_latest(registry).decode()
    result = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            result[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return result


def sample_names_for(registry: CollectorRegistry, **labels: str) -> set[str]:
    """Names of the samples carrying all of ``labels``."""
    wanted = set(labels.items())
    return {name for (name, sample_labels) in samples(registry) if wanted <= set(sample_labels)}
