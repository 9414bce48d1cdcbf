"""Fixtures of the Collector tests: the real OpenTelemetry Collector and a real Prometheus behind it.

Every process is started here and stopped by its pid in a ``finally``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# The Prometheus helpers of the end-to-end tests (Debian's prometheus, queried over its HTTP API).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from collector_helpers import Collector, otelcol_binary  # noqa: E402
from prometheus_server import PrometheusServer  # noqa: E402


@pytest.fixture(scope="session")
def otelcol() -> str:
    """The Collector binary (built by scripts/otelcol outside CI; in CI a missing one fails)."""
    return otelcol_binary()


@pytest.fixture
def start_collector(otelcol: str) -> Iterator[Callable[..., Collector]]:
    """``start_collector(config, **env)``: the Collector running a shipped config, stopped at teardown."""
    started: list[Collector] = []

    def start(config: Path, **env: str) -> Collector:
        collector = Collector(otelcol, config, **env)
        started.append(collector)
        return collector

    try:
        yield start
    finally:
        for collector in started:
            collector.stop()
        assert all(collector.process.returncode is not None for collector in started)


@pytest.fixture
def start_prometheus() -> Iterator[Callable[..., PrometheusServer]]:
    """``start_prometheus(targets, extra_args=...)``: Debian's prometheus, stopped at teardown."""
    started: list[PrometheusServer] = []

    def start(targets: list[str], **kwargs: object) -> PrometheusServer:
        server = PrometheusServer(targets, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
