"""The newcomer path: one-call setup serving /metrics, and the demo command."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from support import metrics_url, scrape

import otel_gitjob
from otel_gitjob import ConfigurationError


def test_setup_serves_fleet_metrics_over_http_and_forgets_on_delete():
    instrumentation = otel_gitjob.setup(port=0)
    try:
        host, port = instrumentation.address
        assert host == "127.0.0.1"
        url = metrics_url(port, host)
        instrumentation.gitjob.job_created(("fleet-local", "simple"))
        assert 'fleet_gitjobs_created_success_total{name="simple",namespace="fleet-local"} 1.0' in scrape(url)

        assert instrumentation.lifecycle.forget(("fleet-local", "simple")) == 1

        assert "simple" not in scrape(url)
    finally:
        instrumentation.shutdown()


def test_setup_honours_the_sdk_prometheus_environment_variables(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.2")
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", "0")
    instrumentation = otel_gitjob.setup()
    try:
        host, port = instrumentation.address
        assert host == "127.0.0.2"
        instrumentation.gitjob.job_creation_failed(("ns", "r"))
        assert 'fleet_gitjobs_created_failure_total{name="r",namespace="ns"} 1.0' in scrape(metrics_url(port, host))
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


def start_command(*args: str, env: dict[str, str] | None = None, ignore_sigint: bool = False) -> subprocess.Popen:
    """``python -m otel_gitjob ARGS`` with its output on a pipe; SIGINT ignored as in a background CI step."""
    return subprocess.Popen(
        [sys.executable, "-m", "otel_gitjob", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ, OTEL_EXPORTER_PROMETHEUS_PORT="0", PYTHONUNBUFFERED="1", **(env or {})),
        # A non-interactive shell starts background jobs with SIGINT ignored; the CLI must handle it anyway.
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None,
    )


class Output:
    """Collects a process's lines on a daemon thread, so a stuck pipe can never keep pytest alive."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(
            target=lambda: self.lines.extend(iter(process.stdout.readline, "")), daemon=True
        )
        self._thread.start()

    def wait_for(self, predicate, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not predicate(self.lines):
            time.sleep(0.05)
        return predicate(self.lines)

    def join(self) -> str:
        self._thread.join(timeout=5)
        return "".join(self.lines)


def kill(process: subprocess.Popen) -> None:
    """Kill by PID if still running (the test's finally), and reap it."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def test_demo_command_serves_series_that_appear_and_vanish_and_exits_130_on_ctrl_c_even_if_sigint_was_ignored():
    process = start_command("demo", "--interval", "0.01", "--seed", "7", "--repos", "3", ignore_sigint=True)
    output = Output(process)
    try:
        assert output.wait_for(lambda lines: any(" deleted: " in line for line in lines)), output.lines
        match = re.search(r"http://([\d.]+):(\d+)/metrics", "".join(output.lines))
        assert match, output.lines
        text = scrape(metrics_url(int(match.group(2)), match.group(1)))
        assert "fleet_gitjobs_created_success_total" in text or "fleet_gitrepo_fetch" in text
        deleted = [line for line in output.lines if " deleted: " in line]
        assert deleted and re.search(r"\d+ series removed", deleted[0])

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 130
    finally:
        kill(process)
    text = output.join()
    assert text.splitlines()[-1] == "stopped"
    assert "Traceback" not in text
    assert "durations are simulated" in text


def test_demo_command_prints_the_transient_gauge_expiring_after_its_ttl():
    process = start_command("demo", "--interval", "0.05", "--seed", "3", "--gauge-ttl", "0.5")
    output = Output(process)
    try:
        assert output.wait_for(lambda lines: any(line.startswith("~ ") for line in lines)), output.lines
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        kill(process)
    lines = output.join().splitlines()
    expired = [line for line in lines if line.startswith("~ ")]
    match = re.fullmatch(r"~ gauge of fleet-demo/(repo-\d+) expired after (\d+) s", expired[0])
    assert match, expired
    name = match.group(1)
    # It expired after a job of that repo set it, and the repo was not deleted in between.
    before = lines[: lines.index(expired[0])]
    last_job = max(i for i, line in enumerate(before) if line.startswith("  %s: git job created" % name))
    assert not any(line.startswith("- GitRepo fleet-demo/%s " % name) for line in before[last_job:])


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


def test_demo_never_reports_a_gauge_expiring_before_its_ttl():
    # Every scrape of the demo's own registry must still show a gauge set less than its TTL ago; an SDK that
    # clears gauges at each collection made it print "expired after 0 s".
    process = start_command("demo", "--interval", "0.01", "--seed", "3", "--gauge-ttl", "600")
    output = Output(process)
    try:
        assert output.wait_for(lambda lines: sum("succeeded in" in line for line in lines) >= 15), output.lines
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        kill(process)
    lines = output.join().splitlines()
    assert sum("succeeded in" in line for line in lines) >= 15
    assert [line for line in lines if line.startswith("~ ")] == []
