"""The examples, run for real: the kopf operator under ``kopf run`` and the Widget (own CRD) controller."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from rv_emulator import GITREPOS, HELMOPS, WIDGETS
from support import free_port, metrics_url, named_points, scrape

import otel_gitjob

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def kubeconfig_for(emulator: Any, path: Path) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:%d'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n" % emulator.port
    )
    return path


@contextlib.contextmanager
def example_process(command: list[str], env: dict[str, str], expect_exit_0: bool = True) -> Iterator[None]:
    """Run an example as a user would; SIGTERM (SIGKILL after 20 s) after the block, then check its output."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    stdout = process.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")), daemon=True)
    reader.start()
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        reader.join(timeout=5)
    output = "".join(lines)
    if expect_exit_0:
        assert process.returncode == 0, output
    assert "Traceback" not in output, output[-3000:]


def test_kopf_example_operator_serves_and_forgets_gitrepos_and_helmops(emulator, tmp_path, wait_for):
    emulator.create("a", status={"readyClusters": 2})
    emulator.create_object(
        HELMOPS,
        {
            "apiVersion": "fleet.cattle.io/v1alpha1",
            "kind": "HelmOp",
            "metadata": {"name": "h", "namespace": "fleet-local"},
            "spec": {"helm": {"repo": "https://charts.example.com", "chart": "c"}},
            "status": {"readyClusters": 1},
        },
    )
    port = free_port()
    url = metrics_url(port)
    env = dict(
        os.environ,
        KUBECONFIG=str(kubeconfig_for(emulator, tmp_path / "kubeconfig")),
        OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
        PYTHONUNBUFFERED="1",
    )
    operator = str(EXAMPLES / "kopf_operator.py")
    command = [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces", operator]
    with example_process(command, env, expect_exit_0=False):
        repo = 'fleet_gitrepo_ready_clusters{branch="main",name="a",namespace="fleet-local"'
        helm = 'fleet_helmop_ready_clusters{chart="c",name="h",namespace="fleet-local"'
        wait_for(lambda: repo in scrape(url, missing_ok=True) and helm in scrape(url, missing_ok=True), timeout=30)
        # A new commit counts a job, and the operator writes nothing to Fleet's objects: the one PATCH of a
        # GitRepo or HelmOp the emulator receives is this test's own.
        emulator.patch("a", {"status": {"commit": "c0ffee"}})
        wait_for(
            lambda: (
                'fleet_gitjobs_created_success_total{name="a",namespace="fleet-local"} 1.0'
                in scrape(url, missing_ok=True)
            )
        )
        writes = [
            (r.method, r.resource, r.name)
            for r in emulator.call(lambda: list(emulator.kmock))
            if r.method in ("PATCH", "PUT", "POST") and r.resource in (GITREPOS, HELMOPS) and r.name
        ]
        assert writes == [("PATCH", GITREPOS, "a")], writes
        emulator.delete("a")
        wait_for(lambda: 'name="a"' not in scrape(url, missing_ok=True), timeout=20)
        assert helm in scrape(url, missing_ok=True)
        emulator.delete_object(HELMOPS, "fleet-local", "h")
        wait_for(lambda: 'name="h"' not in scrape(url, missing_ok=True), timeout=20)


def load_widget_example() -> Any:
    spec = importlib.util.spec_from_file_location("widget_controller", EXAMPLES / "widget_controller.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def widget(name: str, size: str, ready: int) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"size": size},
        "status": {"readyReplicas": ready},
    }


def test_widget_example_own_crd_metrics_are_cleaned_up_by_the_same_machinery(emulator, make_listener, wait_for):
    example = load_widget_example()
    lifecycle = otel_gitjob.Lifecycle()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
    reconciles = example.reconcile_counter(provider)
    emulator.create_object(WIDGETS, widget("w1", "small", 2))
    emulator.create_object(WIDGETS, widget("w2", "large", 5))
    listener = make_listener(lifecycle, kind=example.WIDGET, meter_provider=provider)
    assert listener.wait_synced(5) and listener.wait_idle(5)
    emulator.wait_watching_resource(WIDGETS)
    for name in ("w1", "w2"):
        example.reconcile(widget(name, "", 0), reconciles)
    assert named_points(reader.get_metrics_data(), "name", "size") == {
        ("widget_ready_replicas", "w1", "small"),
        ("widget_ready_replicas", "w2", "large"),
        ("widget_reconciles", "w1", ""),
        ("widget_reconciles", "w2", ""),
    }
    emulator.patch_object(WIDGETS, "shop", "w1", {"spec": {"size": "medium"}})
    wait_for(lambda: listener.cache.get(("shop", "w1")).attributes["size"] == "medium")
    assert {s for s in named_points(reader.get_metrics_data(), "name", "size") if s[1] == "w1"} == {
        ("widget_ready_replicas", "w1", "medium"),
        ("widget_reconciles", "w1", ""),
    }
    emulator.delete_object(WIDGETS, "shop", "w1")
    wait_for(lambda: listener.cache.get(("shop", "w1")) is None and listener.wait_idle(5))
    assert {s[1] for s in named_points(reader.get_metrics_data(), "name", "size")} == {"w2"}
    example.reconcile(widget("w1", "", 0), reconciles)  # a reconcile still running when it was deleted
    assert {s[1] for s in named_points(reader.get_metrics_data(), "name", "size")} == {"w2"}
    provider.shutdown()
    lifecycle.shutdown()


def test_widget_example_runs_as_a_process(emulator, tmp_path, wait_for):
    emulator.create_object(WIDGETS, widget("w1", "small", 3))
    port = free_port()
    url = metrics_url(port)
    env = dict(os.environ, OTEL_EXPORTER_PROMETHEUS_PORT=str(port), PYTHONUNBUFFERED="1")
    kubeconfig = kubeconfig_for(emulator, tmp_path / "kubeconfig")
    command = [sys.executable, str(EXAMPLES / "widget_controller.py"), "--kubeconfig", str(kubeconfig)]
    with example_process(command, env):
        wanted = 'widget_ready_replicas{name="w1",namespace="shop",size="small"} 3.0'
        wait_for(lambda: wanted in scrape(url, missing_ok=True), timeout=30)
        emulator.delete_object(WIDGETS, "shop", "w1")
        wait_for(lambda: 'name="w1"' not in scrape(url, missing_ok=True), timeout=20)


def test_plain_controller_example_watches_gitrepos_and_helmops(emulator, tmp_path, wait_for):
    emulator.create("a", status={"readyClusters": 1})
    emulator.create_object(
        HELMOPS,
        {"metadata": {"name": "h", "namespace": "fleet-local"}, "spec": {"helm": {"chart": "c"}}, "status": {}},
    )
    port = free_port()
    url = metrics_url(port)
    env = dict(os.environ, OTEL_EXPORTER_PROMETHEUS_PORT=str(port), PYTHONUNBUFFERED="1")
    kubeconfig = kubeconfig_for(emulator, tmp_path / "kubeconfig")
    command = [sys.executable, str(EXAMPLES / "plain_controller.py"), "--kubeconfig", str(kubeconfig)]
    with example_process(command, env):
        wait_for(
            lambda: 'fleet_helmop_ready_clusters{chart="c",name="h"' in scrape(url, missing_ok=True),
            timeout=30,
        )
        assert 'fleet_gitrepo_ready_clusters{branch="main",name="a"' in scrape(url, missing_ok=True)
        emulator.delete("a")
        wait_for(lambda: 'name="a"' not in scrape(url, missing_ok=True), timeout=20)
