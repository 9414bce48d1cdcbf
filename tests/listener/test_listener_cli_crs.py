"""``otel-gitjob watch --custom-resource-state-config[-file]`` against the emulator."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from rv_emulator import WIDGETS
from support import scrape, wait_until
from test_listener_cli import announced_url

from otel_gitjob.__main__ import EXIT_CODES, main

EXIT_CONFIGURATION = next(code for code, meaning in EXIT_CODES.items() if "ConfigurationError" in meaning)

CONFIG = """
kind: CustomResourceStateMetrics
spec:
  resources:
    - groupVersionKind: {group: example.com, kind: Widget, version: v1}
      labelsFromPath: {widget: [metadata, name]}
      metrics:
        - name: %s
          help: Widget size
          each: {type: Info, info: {labelsFromPath: {size: [spec, size]}}}
"""


def kubeconfig_for(emulator, tmp_path) -> str:
    path = tmp_path / "config"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:%d'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n" % emulator.port
    )
    return str(path)


def test_inline_config_wins_over_the_file_and_only_its_kinds_are_served(emulator, tmp_path):
    config_file = tmp_path / "crs.yaml"
    config_file.write_text(CONFIG % "from_file")
    emulator.create_object(
        WIDGETS, {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "shop"},
                  "spec": {"size": "large"}},
    )  # fmt: skip
    emulator.create("a-repo", status={"readyClusters": 1})
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_gitjob", "watch", "--kubeconfig", kubeconfig_for(emulator, tmp_path),
         "--custom-resource-state-config-file", str(config_file),
         "--custom-resource-state-config", CONFIG % "from_inline"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, OTEL_EXPORTER_PROMETHEUS_PORT="0", PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 20
        url = announced_url(lines, deadline)
        wanted = (
            'kube_customresource_from_inline{customresource_group="example.com",customresource_kind="Widget",'
            'customresource_version="v1",size="large",widget="w"} 1.0'
        )
        wait_until(lambda: wanted in scrape(url), timeout=max(0.0, deadline - time.monotonic()), what=wanted)
        exposition = scrape(url)
        assert wanted in exposition, exposition
        assert "from_file" not in exposition
        assert "fleet_gitrepo_" not in exposition  # a config alone serves its kinds only
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0
    assert "Traceback" not in "".join(lines)


def test_a_bad_config_is_refused_at_start_with_the_path(emulator, tmp_path, capsys):
    config_file = tmp_path / "crs.yaml"
    config_file.write_text((CONFIG % "m").replace("type: Info", "type: Histogram"))
    code = main(["watch", "--kubeconfig", kubeconfig_for(emulator, tmp_path), "--custom-resource-state-config-file",
                 str(config_file)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == EXIT_CONFIGURATION
    assert "spec.resources[0] (example.com_v1_Widget).metrics[0] (m).each.type: unknown metric type Histogram" in err
    assert "Traceback" not in err


def test_a_missing_config_file_is_refused_at_start(emulator, tmp_path, capsys):
    code = main(["watch", "--kubeconfig", kubeconfig_for(emulator, tmp_path), "--custom-resource-state-config-file",
                 str(tmp_path / "absent.yaml")])  # fmt: skip
    assert code == EXIT_CONFIGURATION
    assert "unable to open Custom Resource State Metrics file" in capsys.readouterr().err
