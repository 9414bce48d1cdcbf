"""The Grafana dashboard's queries through the Collector path, as ``tests/e2e/test_dashboard.py`` runs them direct.

GitRepo listener + GitJob metrics → OTLP (``LifecycleExporter``, exporting
every 500 ms) → the Collector with ``collector/otelcol-prometheus.yaml`` →
Prometheus scraping its ``prometheus`` exporter with the Prometheus Operator's
relabelling. Every PromQL expression of ``examples/grafana/fleet-gitjob.json``
and of Fleet's own dashboards must return data for a live repo, and nothing
for a deleted one.
"""

from __future__ import annotations

import functools
import math
import random
import threading

import _dashboard
import kubernetes
from _dashboard import STATUS, dashboard, fleets_own_queries, panel_expressions
from collector_helpers import PROMETHEUS_CONFIG, resource
from kube_emulator import Emulator
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from prometheus_server import SCRAPE_INTERVAL

from otel_gitjob import GitJobMetrics, Lifecycle, LifecycleExporter
from otel_gitjob.fleet import GITREPO
from otel_gitjob.listener import ListenerSettings, ResourceListener

RATE_INTERVAL = "%ds" % int(4 * SCRAPE_INTERVAL)  # Grafana's $__rate_interval: at least four scrape intervals


def substitute(expr: str, namespace: str, name: str) -> str:
    return _dashboard.substitute(expr, namespace, name, RATE_INTERVAL)


def test_every_dashboard_query_returns_data_through_the_collector(start_collector, start_prometheus) -> None:
    emulator = Emulator()
    collector = start_collector(PROMETHEUS_CONFIG)
    prometheus = start_prometheus(["127.0.0.1:%d" % collector.prometheus_port])
    lifecycle = Lifecycle()
    reader = PeriodicExportingMetricReader(
        LifecycleExporter(lifecycle, OTLPMetricExporter(endpoint=collector.otlp_http)), export_interval_millis=500
    )
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views(), resource=resource("replica-0"))
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle, gauge_ttl=30)
    listener = ResourceListener(
        lifecycle,
        GITREPO,
        configuration=kubernetes.client.Configuration(host="http://127.0.0.1:%d" % emulator.port),
        settings=ListenerSettings(all_shards=True, backoff_base=0.05, backoff_cap=0.5, inactivity_timeout=5.0),
        meter_provider=provider,
    )
    live = {"live", "doomed"}
    lock = threading.Lock()
    stop = threading.Event()

    def controller() -> None:
        rng = random.Random(3)
        while not stop.wait(0.1):
            with lock:
                names = sorted(live)
            for name in names:
                repo = ("fleet-local", name)
                gitjob.job_created(repo)
                gitjob.job_creation_failed(repo)
                gitjob.job_succeeded(repo, rng.uniform(1, 100))
                gitjob.commit_fetched(repo, rng.uniform(0.05, 3))
                gitjob.commit_fetch_failed(repo)

    thread = threading.Thread(target=controller)
    try:
        for name in sorted(live):
            emulator.create(name, status=STATUS)
        listener.start()
        assert listener.wait_synced(10)
        emulator.wait_watching()
        thread.start()
        prometheus.wait_scraping()
        queries = panel_expressions() + fleets_own_queries()
        for name in ("live", "doomed"):
            for expr in queries:
                query = substitute(expr, "fleet-local", name)
                result = prometheus.wait_for(
                    query, lambda r: r and all(math.isfinite(float(s["value"][1])) for s in r), timeout=20
                )
                assert {s["metric"].get("name") for s in result} == {name}, query
        variables = {v["name"]: v for v in dashboard()["templating"]["list"] if v["type"] == "query"}
        options = functools.partial(_dashboard.variable_values, prometheus.query, rate_interval=RATE_INTERVAL)
        assert "fleet-local" in options(variables["namespace"], namespace=".*")
        assert "live" in options(variables["name"], namespace="fleet-local")

        with lock:
            live.discard("doomed")
        emulator.delete("doomed")
        for expr in queries:
            prometheus.wait_for(
                substitute(expr, "fleet-local", "doomed"), lambda r: not r, timeout=4 * SCRAPE_INTERVAL + 10
            )
            assert prometheus.query(substitute(expr, "fleet-local", "live")), expr
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()
        assert listener.stop(timeout=10)
        provider.shutdown()
        lifecycle.shutdown()
        emulator.close()
