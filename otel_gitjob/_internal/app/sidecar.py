"""``otel-gitjob watch``: the listener as a standalone sidecar process."""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from collections.abc import Sequence

from kubernetes import client as k8s_client
from opentelemetry import metrics

from otel_gitjob._internal.core.errors import ConfigurationError
from otel_gitjob._internal.fleet.presets import GITREPO, HELMOP
from otel_gitjob._internal.kube._types import Sink
from otel_gitjob._internal.kube.config import load_configuration
from otel_gitjob._internal.kube.kind import KindSpec
from otel_gitjob._internal.kube.listener import ResourceListener
from otel_gitjob._internal.kube.settings import ListenerSettings
from otel_gitjob._internal.prometheus.health import HealthChecks

__all__ = ["load_configuration", "run_sidecar"]

logger = logging.getLogger(__name__)


def run_sidecar(
    namespace: str | None,
    kubeconfig: str | None,
    shard_id: str | None,
    all_shards: bool,
    *,
    lifecycle: Sink,
    meter_provider: metrics.MeterProvider | None = None,
    settings: ListenerSettings | None = None,
    stop: threading.Event | None = None,
    configuration: k8s_client.Configuration | None = None,
    kinds: Sequence[KindSpec] = (GITREPO, HELMOP),
    forget_on_stop: bool = False,
    health: HealthChecks | None = None,
) -> int:
    """Watch the kinds until SIGTERM/SIGINT (or ``stop``, or Ctrl-C), then stop cleanly.

    One listener per kind; a kind whose CRD is missing is reported and
    retried by its own listener while the others watch.

    Args:
        namespace: One namespace, or ``None`` for cluster-wide.
        kubeconfig: Kubeconfig path; ``None``: see :func:`load_configuration`.
        shard_id: Fleet shard id (``None``: the default shard).
        all_shards: Watch every shard.
        lifecycle: The lifecycle the listeners drive (``otel_gitjob.Lifecycle``).
        meter_provider: Where the status gauges go (the exporter is the caller's).
        settings: Base settings; namespace and shard arguments override them.
        stop: Set it to stop; by default SIGTERM and SIGINT set it (main thread only).
        configuration: Use this client configuration instead of loading ``kubeconfig``.
        kinds: What to watch (default: Fleet's GitRepos and HelmOps).
        forget_on_stop: After a clean stop, forget every watched object (``otel-gitjob watch`` does):
            the last OTLP export, when the MeterProvider shuts down, then carries a staleness marker
            for each of their series instead of leaving them to the Collector's ``metric_expiration``
            (the next process usually exports under another ``service.instance.id``).
        health: Where each listener registers its checks (``Instrumentation.health``): ``/readyz`` says
            ready once every kind was listed and its watch is open, ``/healthz`` while their threads run.

    Returns:
        The process exit code: 0 after a clean stop, 1 if a thread would not stop.
    """
    settings = dataclasses.replace(
        settings or ListenerSettings(), namespace=namespace or None, shard_id=shard_id or None, all_shards=all_shards
    )
    if not kinds:
        raise ConfigurationError("no kinds to watch: pass kinds=(GITREPO, ...) (otel_gitjob.fleet)")
    if stop is None:
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
    configuration = configuration or load_configuration(kubeconfig)
    listeners = [
        ResourceListener(lifecycle, kind, configuration=configuration, settings=settings, meter_provider=meter_provider)
        for kind in kinds
    ]
    logger.info(
        "watching %s in %s",
        ", ".join("%s (selector %s)" % (each.kind.kind, each.label_selector or "none") for each in listeners),
        settings.namespace or "all namespaces",
    )
    names: list[str] = []
    for listener in listeners:  # two kinds of one plural (other groups) get distinct check names
        name = base = "listener-%s" % listener.kind.plural
        while name in names:
            name = "%s-%d" % (base, len(names))
        names.append(name)
    for name, listener in zip(names, listeners, strict=True):
        listener.start()
        if health is not None:
            health.add(name, live=listener.liveness, ready=listener.health)
    try:
        stop.wait()
    finally:  # also on KeyboardInterrupt
        logger.info("stopping the listeners")
        if health is not None:
            for name in names:
                health.remove(name)
        stopped = [listener.stop() for listener in listeners]
        if forget_on_stop and all(stopped):
            for listener in listeners:
                _forget_everything(listener, lifecycle)
    return 0 if all(stopped) else 1


def _forget_everything(listener: ResourceListener, lifecycle: Sink) -> None:
    """Forget every object of a stopped listener; its status gauges then observe nothing."""
    refs = listener.cache.refs()
    listener.cache.replace({})  # the listener is stopped: nothing else writes its cache any more
    for ref in refs:
        lifecycle.forget(ref, kind=listener.kind.kind)
    logger.info("forgot %d %s objects on stop", len(refs), listener.kind.kind)
