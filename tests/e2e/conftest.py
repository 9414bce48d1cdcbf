"""Fixtures for the end-to-end tests: kmock's emulator → listener → otel-gitjob → a real Prometheus."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_stack import GAUGE_TTL, Stack
from kube_emulator import Emulator
from prometheus_server import OPERATOR, PrometheusServer

import otel_gitjob
from otel_gitjob.fleet import GITREPO
from otel_gitjob.listener import ListenerSettings, ResourceListener


@pytest.fixture
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The chain, scraped as the Prometheus Operator does unless parametrized (indirect) with a scrape mode."""
    mode = getattr(request, "param", OPERATOR)
    emulator = Emulator()
    instrumentation = otel_gitjob.setup(port=0, gauge_ttl=GAUGE_TTL)
    listener = ResourceListener(
        instrumentation.lifecycle,
        GITREPO,
        configuration=emulator.configuration,
        settings=ListenerSettings(all_shards=True, backoff_base=0.05, backoff_cap=0.5, inactivity_timeout=5.0),
        meter_provider=instrumentation.meter_provider,
    )
    listener.start()
    prometheus = PrometheusServer(["%s:%d" % instrumentation.address], mode=mode)
    try:
        assert listener.wait_synced(10)
        emulator.wait_watching()
        prometheus.wait_scraping()
        yield Stack(emulator, instrumentation, listener, prometheus)
    finally:
        prometheus.stop()
        assert listener.stop(timeout=10)
        instrumentation.shutdown()
        emulator.close()
    assert prometheus.process.returncode is not None
