"""The shipped Collector pipelines reference only what they define; rotel starts with the shipped env file."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from otlp_helpers import read_log, rotel_binary, wait_listening
from support import free_port, stop_process

COLLECTOR = Path(__file__).resolve().parents[2] / "collector"
SECTIONS = ("receivers", "processors", "exporters", "connectors", "extensions")


def collector_configs() -> list[Path]:
    return sorted(COLLECTOR.glob("otelcol-*.yaml"))


def test_both_collector_pipelines_are_shipped() -> None:
    assert {path.name for path in collector_configs()} == {
        "otelcol-prometheus.yaml",
        "otelcol-prometheusremotewrite.yaml",
    }


@pytest.mark.parametrize("path", collector_configs(), ids=lambda path: path.name)
def test_pipelines_reference_only_defined_components(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    defined = {section: set(config.get(section) or {}) for section in SECTIONS}
    pipelines = config["service"]["pipelines"]
    assert pipelines
    for name, pipeline in pipelines.items():
        assert name.split("/")[0] == "metrics"
        assert pipeline["receivers"] and pipeline["exporters"]
        for role in ("receivers", "processors", "exporters"):
            for component in pipeline.get(role, []):
                assert component in defined[role] or component in defined["connectors"], (
                    "%s: pipeline %s uses undefined %s %r" % (path.name, name, role, component)
                )
    for extension in config["service"].get("extensions", []):
        assert extension in defined["extensions"]


@pytest.mark.parametrize("path", collector_configs(), ids=lambda path: path.name)
def test_pipeline_is_otlp_memory_limiter_batch_then_prometheus(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    pipeline = config["service"]["pipelines"]["metrics"]
    assert pipeline["receivers"] == ["otlp"]
    assert pipeline["processors"] == ["memory_limiter", "batch"]  # the limiter must come first
    (exporter,) = pipeline["exporters"]
    assert exporter in ("prometheus", "prometheusremotewrite")
    settings = config["exporters"][exporter]
    assert settings["resource_to_telemetry_conversion"]["enabled"] is True
    if exporter == "prometheus":
        # 5 minutes unless the deployment sets the variable (tests/collector/ sets it to show the mechanism).
        assert settings["metric_expiration"] == "${env:OTELCOL_METRIC_EXPIRATION:-5m}"


def test_rotel_starts_with_the_shipped_env_file(tmp_path: Path) -> None:
    env = {}
    for line in (COLLECTOR / "rotel.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    assert env["ROTEL_EXPORTER"] == "otlp"
    grpc_port, http_port = free_port(), free_port()
    # The shipped file, but on free local ports; the downstream Collector need not exist to start.
    env.update(
        ROTEL_OTLP_GRPC_ENDPOINT="127.0.0.1:%d" % grpc_port,
        ROTEL_OTLP_HTTP_ENDPOINT="127.0.0.1:%d" % http_port,
        ROTEL_OTLP_EXPORTER_ENDPOINT="http://127.0.0.1:%d" % free_port(),
        ROTEL_PID_FILE=str(tmp_path / "rotel.pid"),
        ROTEL_LOG_FILE=str(tmp_path / "rotel.log"),
    )
    log_file = tmp_path / "rotel.out"
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            [str(rotel_binary()), "start"],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_listening(grpc_port, process, log_file)
        wait_listening(http_port, process, log_file)
        assert process.poll() is None, read_log(log_file)
    finally:
        stop_process(process)
