"""The Collector we test against is the one the manifest describes, and it accepts the shipped files as they are."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml
from collector_helpers import COLLECTOR_DIR, PROMETHEUS_CONFIG, REMOTE_WRITE_CONFIG

MANIFEST = COLLECTOR_DIR / "builder-config.yaml"


def test_the_binary_has_exactly_the_manifests_components_at_the_manifests_versions(otelcol: str) -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    built = yaml.safe_load(subprocess.run([otelcol, "components"], capture_output=True, text=True, check=True).stdout)
    assert built["buildinfo"]["version"] == manifest["dist"]["version"]
    for kind in ("receivers", "processors", "exporters"):
        assert sorted(c["module"] for c in built[kind]) == sorted(m["gomod"] for m in manifest[kind]), kind
    assert sorted(c["module"] for c in built["providers"]) == sorted(m["gomod"] for m in manifest["providers"])
    versions = {m["gomod"].split()[1] for kind in ("receivers", "processors", "exporters") for m in manifest[kind]}
    # One release: core v0.165.0, contrib its v0.165.x patch release.
    assert {v.rsplit(".", 1)[0] for v in versions} == {"v0.165"}


@pytest.mark.parametrize("config", [PROMETHEUS_CONFIG, REMOTE_WRITE_CONFIG], ids=lambda p: p.name)
def test_shipped_file_validates_with_its_defaults(otelcol: str, config) -> None:
    # No OTELCOL_* variable set: the defaults the file carries are what a cluster deployment gets.
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTELCOL_")}
    result = subprocess.run(
        [otelcol, "validate", "--config", "file:%s" % config], capture_output=True, text=True, check=False, env=env
    )
    assert result.returncode == 0, result.stderr
