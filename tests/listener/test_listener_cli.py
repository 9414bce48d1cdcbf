"""``otel-gitjob watch``: the sidecar as a process, against the emulator through a kubeconfig."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import kmock
from support import scrape


def announced_url(lines: list[str], deadline: float) -> str:
    """The /metrics URL the CLI prints once it serves (``OTEL_EXPORTER_PROMETHEUS_PORT=0`` picks the port)."""
    pattern = re.compile(r"http://[\d.]+:\d+/metrics")
    while not pattern.search("".join(lines)) and time.monotonic() < deadline:
        time.sleep(0.05)
    found = pattern.search("".join(lines))
    assert found is not None, "the CLI never printed its /metrics URL: %s" % "".join(lines)[-2000:]
    return found.group(0)


def test_watch_command_serves_status_gauges_forgets_deleted_repos_and_stops_on_sigterm(emulator, tmp_path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:%d'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n" % emulator.port
    )
    emulator.create("sidecar-repo", status={"readyClusters": 4})
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_gitjob", "watch", "--kubeconfig", str(kubeconfig), "--all-shards"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, OTEL_EXPORTER_PROMETHEUS_PORT="0", PYTHONUNBUFFERED="1"),
    )
    lines: list[str] = []
    # Daemon: a pipe that never closes must not keep pytest alive.
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 20
        url = announced_url(lines, deadline)
        wanted = 'fleet_gitrepo_ready_clusters{branch="main",name="sidecar-repo",namespace="fleet-local"'
        while wanted not in scrape(url) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert wanted in scrape(url)

        emulator.delete("sidecar-repo")
        while "sidecar-repo" in scrape(url) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "sidecar-repo" not in scrape(url)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(timeout=15)
        finally:
            if process.poll() is None:  # it ignored SIGTERM: kill it by PID
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        reader.join(timeout=5)
    assert returncode == 0, "".join(lines)
    assert "Traceback" not in "".join(lines)


def test_watch_command_kinds_option_picks_what_to_watch(emulator, tmp_path):
    from rv_emulator import HELMOPS

    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:%d'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n" % emulator.port
    )
    emulator.create("repo-not-watched")
    emulator.create_object(
        HELMOPS,
        {"metadata": {"name": "op", "namespace": "fleet-local"}, "spec": {"helm": {"chart": "c"}}, "status": {}},
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_gitjob", "watch", "--kubeconfig", str(kubeconfig), "--kinds", "helmops"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, OTEL_EXPORTER_PROMETHEUS_PORT="0", PYTHONUNBUFFERED="1"),
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")))
    reader.start()
    try:
        deadline = time.monotonic() + 20
        url = announced_url(lines, deadline)
        wanted = 'fleet_helmop_ready_clusters{chart="c",name="op",namespace="fleet-local"'
        while wanted not in scrape(url) and time.monotonic() < deadline:
            time.sleep(0.1)
        text = scrape(url)
        assert wanted in text
        assert "fleet_gitrepo_" not in text
        assert emulator.requests(kmock.action.LIST) == []  # no GitRepo request at all
    finally:
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=15)
        reader.join(timeout=5)
    assert returncode == 0, "".join(lines)


def test_watch_command_rejects_an_unknown_kind():
    result = subprocess.run(
        [sys.executable, "-m", "otel_gitjob", "watch", "--kinds", "gitrepos,bundles"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "unknown kind bundles; choose from gitrepos,helmops" in result.stderr
