"""The test tiers: which tests belong to which, and what each integration tier needs to run.

Every test gets the marker of its tier (``pytest -m unit``, ``-m "not kube"``, ...). A tier whose
component is missing is skipped with one line naming what to install; under ``CI=true`` the same
check fails each of its tests instead (CI installs everything: ``scripts/test``). CONTRIBUTING.md
lists the tiers with their times.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "otel-gitjob"


def _prometheus() -> str | None:
    if os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus"):
        return None
    return "Debian's prometheus (apt-get install prometheus, or set PROMETHEUS_BIN)"


def _otelcol() -> str | None:
    if os.environ.get("OTELCOL_BIN") or shutil.which("go"):
        return None  # given, or scripts/otelcol can build it on first use
    manifest = (ROOT / "collector" / "builder-config.yaml").read_text()
    version = re.search(r"^  version: *(\S+)", manifest, re.M)
    if version and os.access(CACHE / ("otelcol-%s" % version.group(1)) / "otelcol", os.X_OK):
        return None
    return "the OpenTelemetry Collector (install Go and run ./scripts/otelcol, or set OTELCOL_BIN)"


def _kube_apiserver() -> str | None:
    real_apiserver = sys.modules.get("real_apiserver")
    if real_apiserver is None:  # tests/kube's conftest has not loaded it (it is not on sys.path yet)
        spec = importlib.util.spec_from_file_location("real_apiserver", TESTS / "kube" / "real_apiserver.py")
        assert spec is not None and spec.loader is not None
        real_apiserver = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(real_apiserver)
    try:
        real_apiserver.find_binaries()
    except real_apiserver.BinariesMissing:
        return (
            "kube-apiserver and etcd (install Go and run ./scripts/kube-apiserver, or set KUBE_APISERVER_BIN, ETCD_BIN)"
        )
    return None


def _helm() -> str | None:
    version = re.search(r"^VERSION=(\S+)$", (ROOT / "scripts" / "helm").read_text(), re.M)
    cache = Path(os.environ.get("OTEL_GITJOB_CACHE") or CACHE)  # where scripts/helm puts it
    built = version is not None and os.access(cache / ("helm-%s" % version.group(1)) / "helm", os.X_OK)
    if built or os.access(os.environ.get("HELM_BIN", ""), os.X_OK):
        return None
    return "helm (install Go and run ./scripts/helm, or set HELM_BIN)"


def _image_tools() -> str | None:
    missing = [tool for tool in ("buildah", "debootstrap") if shutil.which(tool) is None]
    if os.geteuid() == 0 and not missing:
        return None
    return "root and Debian's buildah and debootstrap (as root: apt-get install buildah debootstrap)"


@dataclass(frozen=True)
class Tier:
    """One tier: its marker, the tests in it (paths under tests/) and what it needs besides pip."""

    marker: str
    paths: tuple[str, ...]
    description: str
    needs: tuple[Callable[[], str | None], ...] = ()

    def missing(self) -> list[str]:
        return [what for what in (_checked(need) for need in self.needs) if what]


@functools.cache
def _checked(need: Callable[[], str | None]) -> str | None:
    return need()


# First match wins; "unit" takes every test no other tier claims.
TIERS = (
    Tier("listener", ("listener",), "the list/watch listener against kmock's in-process API emulator"),
    Tier("otlp", ("otlp",), "OTLP export to in-process sinks and rotel (pip)"),
    Tier("e2e", ("e2e",), "listener, /metrics and a real Prometheus", (_prometheus,)),
    Tier(
        "collector",
        ("collector",),
        "OTLP through the real OpenTelemetry Collector into Prometheus",
        (_otelcol, _prometheus),
    ),
    Tier("helm", ("kube/test_chart.py",), "the Helm chart linted and rendered by the helm binary", (_helm,)),
    Tier("kube", ("kube",), "the listener and kopf against a real kube-apiserver + etcd", (_kube_apiserver,)),
    Tier("image", ("test_image.py",), "the sidecar image, built with buildah and run", (_image_tools,)),
    Tier("unit", ("",), "everything in-process: no server, no binary"),
)


def tier_of(path: Path) -> Tier:
    """The tier of a test file."""
    try:
        relative = path.resolve().relative_to(TESTS).as_posix()
    except ValueError:  # collected from outside tests/ along with it: no component to check
        return next(tier for tier in TIERS if tier.marker == "unit")
    for tier in TIERS:
        if any(relative == p or relative.startswith(p + "/") or p == "" for p in tier.paths):
            return tier
    raise AssertionError("unreachable: the unit tier takes every path")


def markers() -> list[str]:
    """The ``markers`` lines pytest registers (pyproject lists the same; tests/test_tiers.py checks)."""
    return ["%s: %s" % (tier.marker, tier.description) for tier in TIERS]
