"""The tiers are honest: each test has its tier's marker, and a tier whose component is missing skips with one line.

The skip check runs pytest in a child process with a PATH and caches that hold none of the components
(no prometheus, no Go, no Collector, no kube-apiserver, no buildah); under ``CI=true`` the same run fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from tiers import ROOT, TESTS, TIERS, markers, tier_of

INTEGRATION = {
    "e2e": "tests/e2e",
    "collector": "tests/collector",
    "helm": "tests/kube/test_chart.py",
    "kube": "tests/kube",
    "image": "tests/test_image.py",
}


def test_pyproject_registers_every_tier_marker():
    registered = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    assert set(markers()) <= set(registered)


@pytest.mark.parametrize(
    ("path", "marker"),
    [
        ("test_kinds.py", "unit"),
        ("listener/test_listener_watch.py", "listener"),
        ("otlp/test_otlp_markers.py", "otlp"),
        ("e2e/test_dashboard.py", "e2e"),
        ("collector/test_collector_build.py", "collector"),
        ("kube/test_watch_real_server.py", "kube"),
        ("kube/test_chart.py", "helm"),
        ("kube/test_chart_on_server.py", "kube"),
        ("test_image.py", "image"),
    ],
)
def test_each_test_file_belongs_to_its_tier(path, marker):
    assert tier_of(TESTS / path).marker == marker


def test_every_integration_tier_says_what_it_needs():
    for tier in TIERS:
        assert (tier.marker in INTEGRATION) == bool(tier.needs), tier.marker


def _run_without_components(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    empty = tmp_path / "bin"
    empty.mkdir(parents=True)
    env = {
        "PATH": str(empty),
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "OTEL_GITJOB_CACHE": str(tmp_path / "cache" / "otel-gitjob"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if "PYTHONPATH" in os.environ:  # a checkout imported without installing it
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    if ci:
        env["CI"] = "true"
    # As root, the image tier still misses buildah and debootstrap: the empty PATH hides them.
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *INTEGRATION.values()],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_without_its_components_each_integration_tier_skips_with_one_line_and_fails_in_ci(tmp_path):
    result = _run_without_components(tmp_path / "plain", ci=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    skip_lines = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    for marker in INTEGRATION:
        lines = [line for line in skip_lines if ": %s tier needs " % marker in line]
        assert len(lines) == 1, (marker, skip_lines)
        assert "install" in lines[0] or "set " in lines[0]
    assert len(skip_lines) == len(INTEGRATION), skip_lines
    summary = result.stdout.splitlines()[-1]
    skipped = re.fullmatch(r"=* ?(\d+) skipped in .*", summary)
    assert skipped, summary  # nothing passed, failed or errored: every test of these tiers skipped

    ci = _run_without_components(tmp_path / "ci", ci=True)
    ci_summary = ci.stdout.splitlines()[-1]
    assert ci.returncode != 0
    assert re.fullmatch(r"=* ?%s errors? in .*" % skipped.group(1), ci_summary), ci_summary  # each test fails
