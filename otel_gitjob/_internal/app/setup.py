"""One call for the common case: a Lifecycle, a MeterProvider and a Prometheus endpoint."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.environment_variables import OTEL_METRICS_EXEMPLAR_FILTER
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry

from otel_gitjob._internal.core.errors import ConfigurationError
from otel_gitjob._internal.core.lifecycle import Lifecycle, hooks_of
from otel_gitjob._internal.core.locks import ranked_lock
from otel_gitjob._internal.fleet.gitjob import DEFAULT_GAUGE_TTL, GitJobMetrics
from otel_gitjob._internal.prometheus.endpoint import start_http_server
from otel_gitjob._internal.prometheus.health import HealthChecks
from otel_gitjob._internal.prometheus.reader import LifecyclePrometheusReader
from otel_gitjob._internal.push.exporter import LifecycleExporter
from otel_gitjob.environment_variables import (
    OTEL_EXPORTER_PROMETHEUS_HOST,
    OTEL_EXPORTER_PROMETHEUS_PORT,
    OTEL_GITJOB_CARDINALITY_LIMIT,
    OTEL_GITJOB_GAUGE_TTL,
)

__all__ = ["Instrumentation", "listen_address", "setup", "with_instance_id"]

SERVICE_INSTANCE_ID = "service.instance.id"

# Deleted repos are evicted, so the SDK's per-instrument limit only has to fit the live ones; its
# default of 2,000 is below the repo count of large Fleet installations.
DEFAULT_CARDINALITY_LIMIT = 10_000

# 127.0.0.1, not the SDK's "localhost": a metrics endpoint should not appear on
# other interfaces unless asked (in a pod, set OTEL_EXPORTER_PROMETHEUS_HOST=0.0.0.0).
DEFAULT_HOST = "127.0.0.1"

# What the SDK's MeterProvider accepts in OTEL_METRICS_EXEMPLAR_FILTER.
_EXEMPLAR_FILTERS = ("trace_based", "always_on", "always_off")
DEFAULT_PORT = 9464


@dataclass(frozen=True)
class Instrumentation:
    """What :func:`setup` built.

    Attributes:
        gitjob: The GitJob instruments to record with.
        lifecycle: Call ``lifecycle.forget(repo)`` when a GitRepo is deleted.
        meter_provider: For your own instruments: their per-repo series are managed too.
        registry: The prometheus_client registry served on ``/metrics``.
        address: ``(host, port)`` the endpoint listens on, or None when not serving.
        health: The checks behind ``/healthz`` and ``/readyz``: add your own components' with
            ``health.add(name, live=..., ready=...)`` (each a callable returning ``(ok, detail)``).
    """

    gitjob: GitJobMetrics
    lifecycle: Lifecycle
    meter_provider: MeterProvider
    registry: CollectorRegistry
    address: tuple[str, int] | None
    _server: Any = None
    health: HealthChecks = field(default_factory=HealthChecks)
    _reader: Any = None

    def serve(self, *, host: str | None = None, port: int | None = None) -> tuple[str, int]:
        """Start ``/metrics``, ``/healthz`` and ``/readyz`` now, after ``setup(serve=False)``.

        For frameworks with a start-up hook (kopf's ``@kopf.on.startup()``): build the instruments at
        import, bind the port only when the operator starts.

        Args:
            host: Listen address; ``OTEL_EXPORTER_PROMETHEUS_HOST`` or 127.0.0.1.
            port: Listen port; ``OTEL_EXPORTER_PROMETHEUS_PORT`` or 9464 (0 picks a free port).

        Returns:
            ``(host, port)`` the endpoint listens on (also :attr:`address` from now on).

        Raises:
            ConfigurationError: When it serves already, or the address cannot be bound.
        """
        if self._server is not None:
            raise ConfigurationError("this instrumentation serves /metrics already, on %s" % (self.address,))
        host, port = listen_address(host, port)
        server = _serve(host, port, self.registry, self._reader, self.health)
        address = (host, server.server_address[1])
        # Frozen for users; these two fields describe the one server this method starts.
        object.__setattr__(self, "_server", server)
        object.__setattr__(self, "address", address)
        return address

    def shutdown(self) -> None:
        """Stop the endpoint, the MeterProvider and the lifecycle."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.meter_provider.shutdown()
        self.lifecycle.shutdown()


def with_instance_id(resource: Resource) -> Resource:
    """``resource``, with this process's random ``service.instance.id`` (a UUID) unless it has one.

    A Collector tells two exporting processes apart by their resource only; recent SDK releases set such an
    id themselves, older ones none. A deployment sets a stable one (the pod's name) in
    ``OTEL_RESOURCE_ATTRIBUTES``.
    """
    if resource.attributes.get(SERVICE_INSTANCE_ID):
        return resource
    return resource.merge(Resource({SERVICE_INSTANCE_ID: _process_instance_id()}))


_instance_id: tuple[int, str] | None = None  # (pid, id): a forked child draws its own
_instance_id_lock = ranked_lock("setup.instance_id")


def _process_instance_id() -> str:
    global _instance_id
    with _instance_id_lock:
        if _instance_id is None or _instance_id[0] != os.getpid():
            _instance_id = (os.getpid(), str(uuid.uuid4()))
        return _instance_id[1]


def setup(
    *,
    serve: bool = True,
    host: str | None = None,
    port: int | None = None,
    registry: CollectorRegistry | None = None,
    resource: Resource | None = None,
    exporters: Sequence[MetricExporter] = (),
    export_interval_millis: float | None = None,
    gauge_ttl: float | None = None,
    prefix: str = "fleet",
    cardinality_limit: int | None = None,
    collect_timeout: float | None = None,
    **lifecycle_options: Any,
) -> Instrumentation:
    """Build a Lifecycle, a MeterProvider with its views and a Prometheus reader, and serve ``/metrics``.

    Args:
        serve: Start the HTTP endpoint (otherwise expose ``registry`` yourself).
        host: Listen address; ``OTEL_EXPORTER_PROMETHEUS_HOST`` or 127.0.0.1.
        port: Listen port; ``OTEL_EXPORTER_PROMETHEUS_PORT`` or 9464 (0 picks a free port).
        registry: The prometheus_client registry; a new one when None, so that
            two setups in one process never collide.
        resource: The MeterProvider's resource; ``Resource.create()`` (which reads ``OTEL_SERVICE_NAME`` and
            ``OTEL_RESOURCE_ATTRIBUTES``) when None. Without a ``service.instance.id`` it gets a random one
            (one UUID per process), so that two processes exporting to one Collector never share a series.
        exporters: Push exporters (e.g. ``OTLPMetricExporter()``), each wrapped by the lifecycle and
            run by its own ``PeriodicExportingMetricReader``.
        export_interval_millis: Their export interval; ``OTEL_METRIC_EXPORT_INTERVAL`` or 60 s when None.
        gauge_ttl: TTL of the transient job-duration gauge; ``OTEL_GITJOB_GAUGE_TTL`` or 120 s.
        prefix: Metric name prefix.
        cardinality_limit: Live attribute sets per instrument before the SDK folds
            new ones into ``otel_metric_overflow``; ``OTEL_GITJOB_CARDINALITY_LIMIT`` or 10,000 (the
            SDK's default is 2,000). A watched object is one series per instrument of its kind.
        collect_timeout: Seconds a scrape's collection may take; ``OTEL_GITJOB_COLLECT_TIMEOUT`` or 300 s.
        **lifecycle_options: Passed to :class:`Lifecycle`.
    """
    host, port = listen_address(host, port)
    if gauge_ttl is None:
        raw_ttl = os.environ.get(OTEL_GITJOB_GAUGE_TTL)
        try:
            gauge_ttl = float(raw_ttl) if raw_ttl else DEFAULT_GAUGE_TTL
        except ValueError:
            raise ConfigurationError(
                "%s must be a number of seconds, got %r" % (OTEL_GITJOB_GAUGE_TTL, raw_ttl)
            ) from None
    if cardinality_limit is None:
        raw_limit = os.environ.get(OTEL_GITJOB_CARDINALITY_LIMIT, "").strip()
        try:
            cardinality_limit = int(raw_limit) if raw_limit else DEFAULT_CARDINALITY_LIMIT
        except ValueError:
            cardinality_limit = 0  # refused below, with the variable named
        if cardinality_limit < 1:
            raise ConfigurationError(
                "%s must be a whole number of series per instrument, at least 1, got %r"
                % (OTEL_GITJOB_CARDINALITY_LIMIT, raw_limit)
            )
    exemplar_filter = os.environ.get(OTEL_METRICS_EXEMPLAR_FILTER)
    if exemplar_filter is not None and exemplar_filter not in _EXEMPLAR_FILTERS:
        # The SDK's MeterProvider would raise a bare ValueError for it.
        raise ConfigurationError(
            "%s must be one of %s, got %r"
            % (OTEL_METRICS_EXEMPLAR_FILTER, ", ".join(_EXEMPLAR_FILTERS), exemplar_filter)
        )
    registry = registry if registry is not None else CollectorRegistry()
    lifecycle = Lifecycle(**lifecycle_options)
    reader = LifecyclePrometheusReader(lifecycle, registry, collect_timeout=collect_timeout)
    provider = MeterProvider(
        metric_readers=[
            reader,
            *(
                PeriodicExportingMetricReader(LifecycleExporter(lifecycle, exporter), export_interval_millis)
                for exporter in exporters
            ),
        ],
        views=lifecycle.views(cardinality_limit=cardinality_limit),
        resource=with_instance_id(resource if resource is not None else Resource.create()),
    )
    server = None
    address = None
    health = HealthChecks()
    health.add("expiry-sweeper", live=lambda: _sweeper_health(lifecycle))
    try:
        gitjob = GitJobMetrics(provider, lifecycle=lifecycle, prefix=prefix, gauge_ttl=gauge_ttl)
        if serve:
            server = _serve(host, port, registry, reader, health)
            address = (host, server.server_address[1])
    except BaseException:
        # A mistake found after the provider started (a bad prefix or TTL, a busy port) leaves nothing running.
        provider.shutdown()
        lifecycle.shutdown()
        raise
    return Instrumentation(gitjob, lifecycle, provider, registry, address, server, health, reader)


def listen_address(host: str | None, port: int | None) -> tuple[str, int]:
    """The arguments, else the environment variables, else the defaults; a bad port is a ConfigurationError."""
    host = host if host is not None else os.environ.get(OTEL_EXPORTER_PROMETHEUS_HOST, DEFAULT_HOST)
    if port is None:
        raw_port = os.environ.get(OTEL_EXPORTER_PROMETHEUS_PORT, str(DEFAULT_PORT))
        try:
            port = int(raw_port)
        except ValueError:
            raise ConfigurationError(
                "%s must be a port number, got %r" % (OTEL_EXPORTER_PROMETHEUS_PORT, raw_port)
            ) from None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigurationError(
            "the /metrics port must be 0-65535 (0 picks a free one), got %r; set %s or pass port="
            % (port, OTEL_EXPORTER_PROMETHEUS_PORT)
        )
    return host, port


def _serve(host: str, port: int, registry: CollectorRegistry, reader: Any, health: HealthChecks) -> Any:
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry, reader=reader, health=health)
    except OSError as error:
        raise ConfigurationError(
            "cannot serve /metrics on %s:%s (%s); set %s or pass port="
            % (host, port, error, OTEL_EXPORTER_PROMETHEUS_PORT)
        ) from error
    return server


def _sweeper_health(lifecycle: Lifecycle) -> tuple[bool, str]:
    expiry = hooks_of(lifecycle).expiry
    if expiry is not None and expiry.sweeper_died():
        return False, "the expiry sweeper thread has died"
    return True, "running" if expiry is not None and expiry.sweeper_alive() else "not needed yet"
