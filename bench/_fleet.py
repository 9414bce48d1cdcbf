"""The Fleet workload of bench_scale.py: one server per variant, the same metrics on each.

Per repo: the seven GitJob series (both counters' failure series included, as in
bench_core.py) and, for the full set, the ten ``fleet_gitrepo_*`` status gauges
(labels name, namespace, repo, branch, paths) read from a watch-cache-like dict.
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import prometheus_client  # noqa: E402
from opentelemetry.exporter.prometheus import PrometheusMetricReader  # noqa: E402
from opentelemetry.metrics import Observation  # noqa: E402
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, ObservableGauge  # noqa: E402
from opentelemetry.sdk.metrics import _Gauge as Gauge  # noqa: E402

from otel_gitjob import GITJOB_INSTRUMENTS  # noqa: E402
from otel_gitjob._internal.fleet.gitjob import _FACTORIES  # noqa: E402
from otel_gitjob._internal.fleet.presets import GAUGES, GITREPO, repo_state  # noqa: E402
from otel_gitjob._internal.kube.gauges import serve_kind  # noqa: E402

PREFIX = "fleet"
VARIANTS = ("prometheus_client", "bare_sdk", "gitjob_old", "gitjob_fast")
# 1,000,000 attribute sets per instrument class on the OTel readers: the SDK's default of 2,000 would fold
# every repo beyond 2,000 into otel_metric_overflow.
LIMIT = 1_000_000
LIMITS: dict[type, int] = {Counter: LIMIT, Histogram: LIMIT, Gauge: LIMIT, ObservableGauge: LIMIT}


def create_instrument(meter: Any, spec: Any, name: str) -> Any:
    """One GitJob instrument, created exactly as GitJobMetrics creates it."""
    return _FACTORIES[spec.kind](meter, spec, name)


def gitrepo(i: int) -> dict[str, Any]:
    """A GitRepo object as the API would return it (status counts vary per repo)."""
    return {
        "metadata": {"namespace": "ns-%d" % (i % 100), "name": "repo-%d" % i, "uid": "uid-%d" % i},
        "spec": {
            "repo": "https://github.com/example/fleet-repo-%d" % (i % 500),
            "branch": "main",
            "paths": ["apps/%d" % (i % 7), "infra"],
        },
        "status": {
            "desiredReadyClusters": 3,
            "readyClusters": i % 4,
            "resourceCounts": {"desiredReady": 12, "ready": 10 + i % 3, "notReady": i % 2, "missing": 0},
        },
    }


class _Cache:
    """Stands in for the listener's ObjectCache: states keyed by (namespace, name)."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, str], Any] = {}

    def snapshot(self) -> list[Any]:
        return list(self.states.values())


def _bare_gauges(meter: Any, cache: _Cache) -> None:
    """The ten status gauges as a user writes them without otel-gitjob: one Observation per cached repo."""
    for i, spec in enumerate(GAUGES):

        def observe(options: Any, i: int = i) -> list[Observation]:
            return [Observation(state.values[i], state.attributes) for state in cache.snapshot()]

        meter.create_observable_gauge(spec.name, callbacks=[observe], description=spec.description)


class Server:
    """One variant's metrics, populated with ``repos`` repos."""

    def __init__(self, variant: str, full: bool) -> None:
        self.variant = variant
        self.full = full
        self.cache = _Cache()
        self.endpoint: Any = None
        if variant == "prometheus_client":
            prometheus_client.disable_created_metrics()  # OTel has no _created series; compare like with like
            self.registry = prometheus_client.CollectorRegistry()
            self._prom_instruments()
        elif variant == "bare_sdk":
            self.registry = prometheus_client.CollectorRegistry()
            reader = PrometheusMetricReader(
                disable_target_info=True,
                scope_info_enabled=False,
                registry=self.registry,
                cardinality_limits=LIMITS,
            )
            self.provider = MeterProvider(metric_readers=[reader])
            self._otel_instruments(self.provider)
        else:
            import otel_gitjob

            # The transient gauge would expire 120 s after it was set (Fleet's TTL) and leave these servers with
            # 10,000 series fewer than the others in later rounds; keep it for the whole benchmark.
            self.inst = otel_gitjob.setup(serve=False, cardinality_limit=LIMIT, gauge_ttl=1e9)
            self.registry = self.inst.registry
            self.provider = self.inst.meter_provider
            if full:  # the listener's own gauges (kube/gauges.py); _Cache has ObjectCache's snapshot()
                serve_kind(
                    self.inst.lifecycle,
                    GITREPO,
                    self.cache,  # type: ignore[arg-type]
                    meter_provider=self.provider,
                    status_gauges=True,
                    user="bench",
                    scope="otel_gitjob.listener",
                )

    def _prom_instruments(self) -> None:
        r = self.registry
        labels = ("name", "namespace")
        made: dict[str, Any] = {}
        for spec in GITJOB_INSTRUMENTS:
            name = "%s_%s" % (PREFIX, spec.suffix)
            if spec.kind == "counter":
                made[spec.key] = prometheus_client.Counter(name, spec.description, labels, registry=r)
            elif spec.kind == "gauge":
                made[spec.key] = prometheus_client.Gauge(name, spec.description, labels, registry=r)
            else:
                made[spec.key] = prometheus_client.Histogram(
                    name, spec.description, labels, registry=r, buckets=tuple(spec.buckets or ())
                )
        self.prom = made
        status_labels = ("name", "namespace", "repo", "branch", "paths")
        self.prom_status = [prometheus_client.Gauge(g.name, g.description, status_labels, registry=r) for g in GAUGES]

    def _otel_instruments(self, provider: MeterProvider) -> None:
        meter = provider.get_meter("otel_gitjob")
        made: dict[str, Any] = {}
        for spec in GITJOB_INSTRUMENTS:  # created exactly as GitJobMetrics creates them
            made[spec.key] = create_instrument(meter, spec, "%s_%s" % (PREFIX, spec.suffix))
        self.otel = made
        if self.full:
            _bare_gauges(provider.get_meter("otel_gitjob.listener"), self.cache)

    def add_repo(self, i: int) -> None:
        """Record one repo's seven GitJob series and (full set) cache its status."""
        obj = gitrepo(i)
        state = repo_state(obj)
        ns, name = state.ref.namespace, state.ref.name
        if self.variant == "prometheus_client":
            p = self.prom
            p["created_success"].labels(name, ns).inc()
            p["created_failure"].labels(name, ns).inc()
            p["duration"].labels(name, ns).observe(12.5)
            p["duration_gauge"].labels(name, ns).set(12.5)
            p["fetch_success"].labels(name, ns).inc()
            p["fetch_duration"].labels(name, ns).observe(0.3)
            p["fetch_failure"].labels(name, ns).inc()
            if self.full:
                a = state.attributes
                for gauge, value in zip(self.prom_status, state.values, strict=True):
                    gauge.labels(a["name"], a["namespace"], a["repo"], a["branch"], a["paths"]).set(value)
        elif self.variant == "bare_sdk":
            o = self.otel
            attributes = {"namespace": ns, "name": name}
            o["created_success"].add(1, attributes)
            o["created_failure"].add(1, attributes)
            o["duration"].record(12.5, attributes)
            o["duration_gauge"].set(12.5, attributes)
            o["fetch_success"].add(1, attributes)
            o["fetch_duration"].record(0.3, attributes)
            o["fetch_failure"].add(1, attributes)
            if self.full:
                self.cache.states[(ns, name)] = state
        else:
            g = self.inst.gitjob
            repo = (ns, name)
            g.job_created(repo)
            g.job_creation_failed(repo)
            g.job_succeeded(repo, 12.5)
            g.commit_fetched(repo, 0.3)
            g.commit_fetch_failed(repo)
            if self.full:
                self.cache.states[(ns, name)] = state

    def serve(self) -> tuple[Any, int]:
        """Start the variant's HTTP endpoint on a free port."""
        if self.variant == "gitjob_fast":
            from otel_gitjob._internal.prometheus.endpoint import start_http_server

            server, _ = start_http_server(0, addr="127.0.0.1", registry=self.registry, reader=_reader_of(self.registry))
            self.endpoint = server.endpoint
        else:
            server, _ = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=self.registry)
        return server, server.server_address[1]


def _reader_of(registry: Any) -> Any:
    """The PrometheusMetricReader whose collector is registered in ``registry``."""
    (collector,) = list(registry._collector_to_names)
    return collector._callback.__self__
