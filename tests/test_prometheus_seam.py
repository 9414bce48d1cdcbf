"""The prometheus seam: an adapter per prometheus_client and exporter shape, a byte-comparing check, a degraded path.

Degraded, ``/metrics`` is prometheus_client's own rendering of the registry: slower, never wrong (no
forgotten or expired series, no old label set, no write made while an object was forgotten).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import opentelemetry.exporter.prometheus as exporter_module
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import exposition as prometheus_exposition
from support import FakeClock

from otel_gitjob import GitJobMetrics, Lifecycle, LifecyclePrometheusReader
from otel_gitjob._internal.core import degraded
from otel_gitjob._internal.prometheus import _seam
from otel_gitjob._internal.prometheus.endpoint import MetricsEndpoint
from otel_gitjob._internal.prometheus.renderer import EXPORTER_SUPPORTED, self_check

needs_fast_path = pytest.mark.skipif(
    not EXPORTER_SUPPORTED, reason="this opentelemetry-exporter-prometheus is served the old way"
)


def _client_version() -> tuple[int, ...]:
    return tuple(int(part) for part in metadata.version("prometheus-client").split(".")[:3])


@pytest.fixture
def fresh_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh process-wide record of seam states, nothing forced."""
    monkeypatch.setattr(degraded, "_checked", {})
    monkeypatch.delenv(degraded.FORCE_ENV, raising=False)


@pytest.fixture
def fresh_check(fresh_record: None) -> Iterator[None]:
    """The self-check runs again in this test, and once more (unpatched) in the next one."""
    _seam.reset_check()
    yield
    _seam.reset_check()


class Scraped:
    """A lifecycle-managed provider served by a ``MetricsEndpoint``."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.lifecycle = Lifecycle(clock=self.clock)
        self.registry = CollectorRegistry()
        self.reader: Any = LifecyclePrometheusReader(self.lifecycle, self.registry)
        self.provider = MeterProvider(metric_readers=[self.reader], views=self.lifecycle.views())
        self.gitjob = GitJobMetrics(self.provider, lifecycle=self.lifecycle, gauge_ttl=60.0)
        self.endpoint = MetricsEndpoint(self.registry, self.reader)

    def scrape(self) -> bytes:
        return b"".join(self.endpoint.bake(None, None, {})[2])

    def close(self) -> None:
        self.provider.shutdown()
        self.lifecycle.shutdown()


@pytest.fixture
def scraped() -> Iterator[Scraped]:
    world = Scraped()
    yield world
    world.close()


def test_the_client_adapter_is_the_one_for_the_installed_prometheus_client() -> None:
    # prometheus-client 0.20 and 0.21 write every name as it is; 0.22 quotes UTF-8 names; 0.23 negotiates
    # escaping schemes. Each must import and serve (tests/test_exposition*.py run on each in the matrix).
    version = _client_version()
    want = "legacy" if version < (0, 22) else "quoting" if version < (0, 23) else "escaping"
    assert _seam.CLIENT_SHAPE == want


def test_the_self_check_passes_on_the_installed_releases(fresh_check: None) -> None:
    if EXPORTER_SUPPORTED:
        assert self_check() is None
    assert _seam.fast_path_ok(self_check) is EXPORTER_SUPPORTED
    assert degraded.seam_states() == {"prometheus": None}


def test_forcing_the_seam_degraded_serves_prometheus_clients_own_bytes(
    scraped: Scraped, fresh_record: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    scraped.gitjob.job_created(("fleet-local", "a"))
    assert scraped.endpoint.fast_path() is EXPORTER_SUPPORTED
    monkeypatch.setenv(degraded.FORCE_ENV, "prometheus")
    assert not scraped.endpoint.fast_path()
    assert "forced" in (degraded.seam_states()["prometheus"] or "")
    assert scraped.scrape() == generate_latest(scraped.registry)


@needs_fast_path
def test_a_prometheus_client_that_renders_differently_fails_the_check_and_is_served_as_it_renders(
    scraped: Scraped, fresh_check: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A prometheus_client release that escapes a newline in a label value another way: the fast renderer
    # would now differ from it, so the check must send /metrics down prometheus_client's own path.
    original = prometheus_exposition.generate_latest

    def newer(registry: Any = prometheus_exposition.REGISTRY, **options: Any) -> bytes:
        return original(registry, **options).replace(b"\\n", b"\\x0a")

    monkeypatch.setattr(prometheus_exposition, "generate_latest", newer)
    scraped.provider.get_meter("user").create_counter("user_notes").add(1, {"note": "line\nbreak"})
    with caplog.at_level(logging.WARNING, logger="otel_gitjob"):
        assert not scraped.endpoint.fast_path()
        assert not scraped.endpoint.fast_path()
    assert "differs from prometheus_client" in (degraded.seam_states()["prometheus"] or "")
    assert len([r for r in caplog.records if "prometheus seam runs degraded" in r.getMessage()]) == 1
    body = scraped.scrape()
    assert b'note="line\\x0abreak"' in body and body == newer(scraped.registry)


@needs_fast_path
def test_an_exporter_whose_unit_mapping_changed_fails_the_check(
    scraped: Scraped, fresh_check: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The exporter's own path maps units with its module's map_unit; a release that maps them differently
    # must not be rendered with the old mapping by the fast path.
    original = exporter_module.map_unit
    monkeypatch.setattr(exporter_module, "map_unit", lambda unit: original(unit) + ("_x" if unit else ""))
    assert not scraped.endpoint.fast_path()
    assert "differs" in (degraded.seam_states()["prometheus"] or "")
    scraped.gitjob.job_succeeded(("fleet-local", "a"), 3.0)
    body = scraped.scrape()
    assert b"fleet_gitjob_duration_seconds_seconds_x_bucket" in body and body == generate_latest(scraped.registry)


def test_degraded_scrapes_never_show_forgotten_expired_or_relabelled_series(
    scraped: Scraped, degraded_seam: str | None
) -> None:
    gitjob, lifecycle = scraped.gitjob, scraped.lifecycle
    for i in range(5):
        gitjob.job_created(("fleet-local", "repo-%d" % i))
        gitjob.job_succeeded(("fleet-local", "repo-%d" % i), 10.0 + i)
    notes = scraped.provider.get_meter("user").create_counter("user_notes")
    lifecycle.declare_kind("GitRepo", "user_notes")
    notes.add(1, {"namespace": "fleet-local", "name": "repo-0", "branch": "old"})
    assert b'branch="old"' in scraped.scrape()

    lifecycle.forget(("fleet-local", "repo-1"))
    gitjob.job_created(("fleet-local", "repo-1"))  # a late write while forgotten: dropped
    lifecycle.forget_series("user_notes", {"namespace": "fleet-local", "name": "repo-0", "branch": "old"})
    notes.add(1, {"namespace": "fleet-local", "name": "repo-0", "branch": "new"})
    scraped.clock.advance(61)  # every transient gauge expires
    gitjob.job_succeeded(("fleet-local", "repo-2"), 7.0)  # set again: visible for another TTL

    body = scraped.scrape()
    assert scraped.endpoint.fast_path() is (degraded_seam != "prometheus" and EXPORTER_SUPPORTED)
    assert b'name="repo-1"' not in body
    assert b'branch="old"' not in body and b'branch="new"' in body
    gauges = [line for line in body.splitlines() if line.startswith(b"fleet_gitjob_duration_seconds_gauge{")]
    assert gauges == [b'fleet_gitjob_duration_seconds_gauge{name="repo-2",namespace="fleet-local"} 7.0']

    lifecycle.observe(("fleet-local", "repo-1"))
    gitjob.job_created(("fleet-local", "repo-1"))
    # Writes made while forgotten do not count again: the counter starts afresh.
    assert b'fleet_gitjobs_created_success_total{name="repo-1",namespace="fleet-local"} 1.0' in scraped.scrape()
