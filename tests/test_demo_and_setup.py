"""The newcomer path: one-call setup serving /metrics, and the demo command."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

import otel_gitjob
from otel_gitjob import ConfigurationError


def scrape(host: str, port: int) -> str:
    with urllib.request.urlopen("http://%s:%d/metrics" % (host, port), timeout=5) as response:
        return response.read().decode()


def test_setup_serves_fleet_metrics_over_http_and_forgets_on_delete():
    instrumentation = otel_gitjob.setup(port=0)
    try:
        host, port = instrumentation.address
        assert host == "127.0.0.1"
        instrumentation.gitjob.job_created(("fleet-local", "simple"))
        assert 'fleet_gitjobs_created_success_total{name="simple",namespace="fleet-local"} 1.0' in scrape(host, port)

        assert instrumentation.lifecycle.forget(("fleet-local", "simple")) == 1

        assert "simple" not in scrape(host, port)
    finally:
        instrumentation.shutdown()


def test_setup_honours_the_sdk_prometheus_environment_variables(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.2")
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", "0")
    instrumentation = otel_gitjob.setup()
    try:
        assert instrumentation.address[0] == "127.0.0.2"
        instrumentation.gitjob.job_creation_failed(("ns", "r"))
        assert 'fleet_gitjobs_created_failure_total{name="r",namespace="ns"} 1.0' in scrape(*instrumentation.address)
    finally:
        instrumentation.shutdown()


def test_setup_with_a_bad_port_variable_says_what_to_fix(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", "ninety")
    with pytest.raises(ConfigurationError, match="OTEL_EXPORTER_PROMETHEUS_PORT must be a port number"):
        otel_gitjob.setup()


def test_setup_with_a_port_in_use_says_what_to_fix():
    first = otel_gitjob.setup(port=0)
    try:
        with pytest.raises(ConfigurationError, match="cannot serve /metrics"):
            otel_gitjob.setup(port=first.address[1])
    finally:
        first.shutdown()


def test_demo_command_serves_series_that_appear_and_vanish_and_stops_cleanly_on_ctrl_c():
    env = dict(os.environ, OTEL_EXPORTER_PROMETHEUS_PORT="0", PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_gitjob", "demo", "--interval", "0.01", "--seed", "7", "--repos", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")))
    reader.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(" deleted: " in line for line in lines):
            time.sleep(0.05)
        match = re.search(r"http://([\d.]+):(\d+)/metrics", "".join(lines))
        assert match, "".join(lines)
        text = scrape(match.group(1), int(match.group(2)))
        assert "fleet_gitjobs_created_success_total" in text or "fleet_gitrepo_fetch" in text
        deleted = [line for line in lines if " deleted: " in line]
        assert deleted and re.search(r"\d+ series removed", deleted[0])
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        reader.join(timeout=5)
    assert lines[-1].strip() == "stopped"
    assert "Traceback" not in "".join(lines)


def test_setup_runs_push_exporters_through_the_lifecycle():
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

    exported = []

    class Capture(MetricExporter):
        def export(self, metrics_data, timeout_millis=10_000, **kwargs):
            exported.append(
                {
                    p.attributes.get("name")
                    for rm in metrics_data.resource_metrics
                    for sm in rm.scope_metrics
                    for m in sm.metrics
                    if not m.name.startswith("otel_gitjob_")  # the package's own metrics
                    for p in m.data.data_points
                }
            )
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis=10_000):
            return True

        def shutdown(self, timeout_millis=30_000, **kwargs):
            pass

    instrumentation = otel_gitjob.setup(serve=False, exporters=[Capture()], export_interval_millis=3_600_000)
    try:
        instrumentation.gitjob.job_created(("ns", "kept"))
        instrumentation.gitjob.job_created(("ns", "gone"))
        instrumentation.meter_provider.force_flush()
        instrumentation.lifecycle.forget(("ns", "gone"))
        instrumentation.meter_provider.force_flush()
    finally:
        instrumentation.shutdown()
    assert exported[0] == {"kept", "gone"}
    assert exported[1] == {"kept"}


def test_setup_fits_more_live_repos_than_the_sdk_default_limit_without_overflow():
    instrumentation = otel_gitjob.setup(serve=False)
    try:
        for i in range(2500):
            instrumentation.gitjob.job_created(("ns", "r%d" % i))
        from prometheus_client import generate_latest

        text = generate_latest(instrumentation.registry).decode()
        assert "overflow" not in text
        assert 'name="r2499"' in text
    finally:
        instrumentation.shutdown()
