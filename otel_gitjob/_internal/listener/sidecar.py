"""``otel-gitjob watch``: the listener as a standalone sidecar process."""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from opentelemetry import metrics

from otel_gitjob._internal.listener._types import Sink
from otel_gitjob._internal.listener.listener import GitRepoListener
from otel_gitjob._internal.listener.settings import ListenerSettings

__all__ = ["load_configuration", "run_sidecar"]

logger = logging.getLogger(__name__)


def load_configuration(kubeconfig: str | None = None) -> k8s_client.Configuration:
    """Load a client configuration from a kubeconfig, in-cluster config, or the default kubeconfig.

    Args:
        kubeconfig: Path to a kubeconfig file. When omitted, the in-cluster
            service account is used if present, else ``~/.kube/config``.
    """
    configuration = k8s_client.Configuration()
    if kubeconfig:
        k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except k8s_config.ConfigException:
            k8s_config.load_kube_config(client_configuration=configuration)
    return configuration


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
) -> int:
    """Watch GitRepos until SIGTERM/SIGINT (or ``stop``, or Ctrl-C), then stop cleanly.

    Args:
        namespace: One namespace, or ``None`` for cluster-wide.
        kubeconfig: Kubeconfig path; ``None`` for in-cluster config.
        shard_id: Fleet shard id (``None``: the default shard).
        all_shards: Watch every shard.
        lifecycle: The sink the listener drives (``otel_gitjob.Lifecycle``).
        meter_provider: Where the status gauges go (the exporter is the caller's).
        settings: Base settings; namespace and shard arguments override them.
        stop: Set it to stop; by default SIGTERM and SIGINT set it (main thread only).
        configuration: Use this client configuration instead of loading ``kubeconfig``.

    Returns:
        The process exit code: 0 after a clean stop, 1 if a thread would not stop.
    """
    settings = dataclasses.replace(
        settings or ListenerSettings(), namespace=namespace or None, shard_id=shard_id or None, all_shards=all_shards
    )
    if stop is None:
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
    listener = GitRepoListener(
        lifecycle,
        configuration=configuration or load_configuration(kubeconfig),
        settings=settings,
        meter_provider=meter_provider,
    )
    logger.info(
        "watching GitRepos in %s, selector %s",
        settings.namespace or "all namespaces",
        settings.label_selector or "(all shards)",
    )
    listener.start()
    try:
        stop.wait()
    finally:  # also on KeyboardInterrupt
        logger.info("stopping the GitRepo listener")
        stopped = listener.stop()
    return 0 if stopped else 1
