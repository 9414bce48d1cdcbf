"""Public names kept for one release after they were renamed or removed; each use warns (DeprecationWarning).

They live here, at the top of the package, because what they forward to lives in rooms the core must not
import (a ``Lifecycle`` method that builds a Prometheus reader is an upward import).
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter
from prometheus_client import CollectorRegistry

from otel_gitjob._internal.core import lifecycle as core
from otel_gitjob._internal.prometheus.reader import LifecyclePrometheusReader
from otel_gitjob._internal.push.exporter import LifecycleExporter

__all__ = ["aliases"]


def _warn(old: str, new: str) -> None:
    warnings.warn("%s is deprecated and goes in the next release; use %s" % (old, new), DeprecationWarning, 3)


def _prometheus_reader(
    self: core.Lifecycle, registry: CollectorRegistry | None = None, **options: Any
) -> LifecyclePrometheusReader:
    """Deprecated: ``LifecyclePrometheusReader(lifecycle, registry, ...)``."""
    _warn("Lifecycle.prometheus_reader()", "otel_gitjob.LifecyclePrometheusReader(lifecycle, registry)")
    return LifecyclePrometheusReader(self, registry, **options)


def _wrap_exporter(self: core.Lifecycle, exporter: MetricExporter) -> LifecycleExporter:
    """Deprecated: ``LifecycleExporter(lifecycle, exporter)``."""
    _warn("Lifecycle.wrap_exporter()", "otel_gitjob.LifecycleExporter(lifecycle, exporter)")
    return LifecycleExporter(self, exporter)


# Put on the class from up here: the core must not import the reader and the exporter it would build.
setattr(core.Lifecycle, "prometheus_reader", _prometheus_reader)  # noqa: B010
setattr(core.Lifecycle, "wrap_exporter", _wrap_exporter)  # noqa: B010


def _gitrepo_listener() -> Any:
    kube = importlib.import_module("otel_gitjob._internal.kube.listener")  # needs the [kube] extra: on use only
    presets = importlib.import_module("otel_gitjob._internal.fleet.presets")
    return functools.partial(kube.ResourceListener, kind=presets.GITREPO)


# Per public module: old name -> (what to use instead, how to get the old name's value).
_ALIASES: dict[str, dict[str, tuple[str, Callable[[], Any]]]] = {
    "otel_gitjob": {
        "RepoRef": (
            "otel_gitjob.ObjectRef",
            lambda: importlib.import_module("otel_gitjob._internal.core.identity").ObjectRef,
        ),
    },
    "otel_gitjob.listener": {
        "GitRepoListener": ("ResourceListener(lifecycle, otel_gitjob.fleet.GITREPO, ...)", _gitrepo_listener),
    },
}


def aliases(module: str) -> Callable[[str], Any]:
    """The ``__getattr__`` (PEP 562) of a public module: its deprecated names, each warning when used."""
    names = _ALIASES.get(module, {})

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError("module %r has no attribute %r" % (module, name))
        replacement, load = names[name]
        _warn("%s.%s" % (module, name), replacement)
        return load()

    return __getattr__
