"""The documentation site builds with warnings as errors, and says what the code does.

The site is built by the real ``mkdocs build --strict`` (mkdocs-material + mkdocstrings), as CI
does; promtool is Debian's, installed with prometheus by ``scripts/test``.
"""

from __future__ import annotations

import html
import importlib
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys

import pytest
import yaml
from prometheus_client import generate_latest

import otel_gitjob

ROOT = pathlib.Path(__file__).parents[1]
PAGES = (
    "getting-started.md",
    "cleanup-groups.md",
    "listener.md",
    "fleet.md",
    "testing.md",
    "collector.md",
    "compatibility.md",
    "troubleshooting.md",
    "self-metrics.md",
    "api.md",
)


def run(args: list[str], timeout: float, input: str | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run to the end; killed by PID if it outlives ``timeout``."""
    process = subprocess.Popen(
        args,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )
    try:
        stdout, stderr = process.communicate(input, timeout=timeout)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def test_the_site_builds_strictly_with_every_page_and_the_api_reference_from_docstrings(tmp_path):
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["strict"] is True
    in_nav = {page for entry in config["nav"] for page in entry.values()}
    assert set(PAGES) <= in_nav

    site = tmp_path / "site"
    result = run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        timeout=300,
        cwd=ROOT,
        env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
    )
    assert result.returncode == 0, result.stderr[-4000:]
    api = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", (site / "api" / "index.html").read_text())).split())
    assert "otel_gitjob.listener.ResourceListener" in api
    # Sphinx roles in the docstrings render as code, never raw (docs/_griffe_roles.py).
    assert not re.findall(r":(?:class|func|meth|attr|data|mod|exc|obj):", api)
    assert not re.findall(r"\.\. \w+::", api), "a Sphinx directive shows raw"  # e.g. ``.. envvar:: NAME``
    # mkdocstrings rendered the docstrings themselves, not just the names.
    for documented in (otel_gitjob.Lifecycle, otel_gitjob.GitJobMetrics, otel_gitjob.Lifecycle.forget):
        first_line = documented.__doc__.strip().splitlines()[0].replace("``", "").replace(":class:", "")
        words = " ".join(re.sub(r"[`*]", " ", first_line).split())
        assert " ".join(words.split()[:5]) in api, words
    troubleshooting = (site / "troubleshooting" / "index.html").read_text()
    assert (
        "pip install &#39;otel-gitjob[kube]&#39;" in troubleshooting
        or "pip install 'otel-gitjob[kube]'" in troubleshooting
    )


def test_the_documented_promtool_warning_is_the_only_one(gitjob, registry):
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool missing: apt-get install prometheus")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    repo = ("fleet-local", "simple")
    gitjob.job_created(repo)
    gitjob.job_creation_failed(repo)
    gitjob.job_succeeded(repo, 12.0)
    gitjob.commit_fetched(repo, 0.3)
    gitjob.commit_fetch_failed(repo)
    gitjob.job_succeeded(repo, float("nan"))  # so that the self-metric is in the exposition too
    exposition = generate_latest(registry).decode()
    assert "fleet_gitjob_duration_seconds_gauge{" in exposition and "otel_gitjob_dropped_measurements" in exposition

    result = run([promtool, "check", "metrics"], timeout=30, input=exposition)
    output = result.stdout + result.stderr
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    assert lines == ["fleet_gitjob_duration_seconds_gauge metric name should not include type 'gauge'"]
    documented = (ROOT / "docs" / "fleet-metrics.md").read_text()
    assert "fleet_gitjob_duration_seconds_gauge: metric name should not include type 'gauge'" in documented


def faces() -> list[str]:
    """The public modules: every module of the package outside ``_internal`` that declares ``__all__``."""
    names = ["otel_gitjob"] + [
        "otel_gitjob." + path.stem for path in sorted((ROOT / "otel_gitjob").glob("*.py")) if path.stem != "__init__"
    ]
    return [name for name in names if hasattr(importlib.import_module(name), "__all__")]


def test_the_api_page_documents_every_public_name_of_every_face():
    page = (ROOT / "docs" / "api.md").read_text()
    documented = set(re.findall(r"^::: (\S+)", page, re.M)) | set(re.findall(r"`([\w.]+)`", page))
    # A module documented with a ``members`` list documents those members.
    for module, members in re.findall(r"^::: (\S+)\n(?:    .*\n)*?      members:\n((?:        - \S+\n)+)", page, re.M):
        documented |= {"%s.%s" % (module, member) for member in re.findall(r"- (\S+)", members)}
    assert {"otel_gitjob", "otel_gitjob.listener", "otel_gitjob.fleet", "otel_gitjob.kopf"} <= set(faces())
    missing = [
        "%s.%s" % (face, name)
        for face in faces()
        for name in importlib.import_module(face).__all__
        if "%s.%s" % (face, name) not in documented
    ]
    assert not missing, "docs/api.md does not document: %s" % ", ".join(missing)
