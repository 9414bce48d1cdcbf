"""Small helpers for the real-API-server tests: polling, reading /metrics, the ``watch`` sidecar process."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from support import points_of, scrape, series, stop_process, wait_until

import otel_gitjob
from otel_gitjob._internal.core.lifecycle import hooks_of
from otel_gitjob.fleet import GITREPO
from otel_gitjob.listener import ListenerSettings, ResourceListener

REPO = Path(__file__).resolve().parents[2]
RBAC_YAML = REPO / "examples" / "k8s" / "rbac.yaml"


def names_of(exposition: str, metric: str) -> set[tuple[str, str]]:
    """``{(namespace, name)}`` of the objects that have a ``metric`` series."""
    return {(dict(labels)["namespace"], dict(labels)["name"]) for labels in series(exposition, metric)}


@dataclass
class Sidecar:
    """A running ``otel-gitjob watch`` process."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    url: str = ""

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def metrics(self) -> str:
        return scrape(self.url)


@contextlib.contextmanager
def watch_sidecar(*args: str) -> Iterator[Sidecar]:
    """Run ``python -m otel_gitjob watch ARGS`` on a free port; SIGTERM it by PID on exit.

    Asserts on exit that it stopped with code 0 and printed no traceback.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_gitjob", "watch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ, OTEL_EXPORTER_PROMETHEUS_PORT="0", PYTHONUNBUFFERED="1"),
    )
    sidecar = Sidecar(process)
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: sidecar.lines.extend(iter(process.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()
    try:
        match = wait_until(
            lambda: re.search(r"http://[\d.]+:\d+/metrics", sidecar.output), what="the sidecar's /metrics address"
        )
        sidecar.url = match.group(0)
        yield sidecar
    finally:
        stop_process(process, timeout=20)
        reader.join(timeout=5)
    assert process.returncode == 0, sidecar.output
    assert "Traceback" not in sidecar.output, sidecar.output


@dataclass
class WatchedGitRepos:
    """The shipped ResourceListener on GITREPO in one namespace, feeding a real Lifecycle and MeterProvider.

    Made by :func:`gitrepo_watcher`; :meth:`start` starts it and waits for its first list, :meth:`close`
    stops everything (the ``watch`` fixtures of the watch tests call it after each test).
    """

    namespace: str
    lifecycle: otel_gitjob.Lifecycle
    provider: MeterProvider
    reader: InMemoryMetricReader = field(repr=False)
    listener: ResourceListener
    api: Any = None  # the CustomObjectsApi it was given, if any

    def start(self) -> None:
        self.listener.start()
        assert self.listener.wait_synced(20), "the listener never listed"

    def series(self) -> set[str]:
        """Names of this namespace's GitRepos that have a ``fleet_gitrepo_ready_clusters`` point."""
        return gitrepos_with_series(self.reader, self.namespace)

    def tracked(self) -> set[str]:
        """Names of this namespace's GitRepos the lifecycle still tracks (what ``forget`` removes)."""
        return {
            ref[1]
            for _, ref in hooks_of(self.lifecycle).registry.objects_of_kind("GitRepo")
            if ref[0] == self.namespace
        }

    def sees(self, names: set[str]) -> bool:
        """Whether the series and the lifecycle's objects are exactly ``names`` once the queue is applied."""
        return bool(self.listener.wait_idle(5)) and self.series() == names and self.tracked() == names

    def close(self) -> None:
        try:
            assert self.listener.stop(), "a listener thread did not stop"
        finally:
            self.provider.shutdown()
            self.lifecycle.shutdown()


def gitrepo_watcher(namespace: str, *, api: Any = None, configuration: Any = None, **settings: Any) -> WatchedGitRepos:
    """A :class:`WatchedGitRepos`, not started: through ``api`` (a CustomObjectsApi) or ``configuration``."""
    lifecycle = otel_gitjob.Lifecycle()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
    listener = ResourceListener(
        lifecycle,
        GITREPO,
        api=api,
        configuration=configuration,
        meter_provider=provider,
        settings=ListenerSettings(namespace=namespace, **settings),
    )
    return WatchedGitRepos(namespace, lifecycle, provider, reader, listener, api)


def gitrepos_with_series(reader: Any, namespace: str, metric: str = "fleet_gitrepo_ready_clusters") -> set[str]:
    """Names of ``namespace``'s GitRepos that have a ``metric`` point in ``reader``'s next collection."""
    points = [dict(attributes) for name, attributes in points_of(reader.get_metrics_data()) if name == metric]
    return {str(a["name"]) for a in points if a.get("namespace") == namespace}
