"""A pytest plugin for the OpenTelemetry SDK's own test suite: every MeterProvider gets a Lifecycle's views.

``scripts/sdk-suite`` runs the SDK's ``tests/metrics`` (from the source archive of
the installed release) with ``-p _inject_lifecycle_views``. Each MeterProvider
the SDK's tests build is given ``Lifecycle().views(*their_views)`` instead of
their views, so that every test checks that the lifecycle is transparent for
what it does not manage. The Lifecycle is shut down with its provider.
"""

from __future__ import annotations

import functools
import inspect
import threading
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider

from otel_gitjob import Lifecycle

_original_init = MeterProvider.__init__
_original_shutdown = MeterProvider.shutdown
_signature = inspect.signature(_original_init)
_building = threading.local()  # the Lifecycle's own self-check builds a private MeterProvider

Lifecycle().shutdown()  # run the one-off self-check before the SDK is patched


@functools.wraps(_original_init)
def _init(self: MeterProvider, *args: Any, **kwargs: Any) -> None:
    if getattr(_building, "active", False):
        _original_init(self, *args, **kwargs)
        return
    bound = _signature.bind(self, *args, **kwargs)
    _building.active = True
    try:
        lifecycle = Lifecycle()
    finally:
        _building.active = False
    bound.arguments["views"] = lifecycle.views(*bound.arguments.get("views", ()))
    self._otel_gitjob_lifecycle = lifecycle  # type: ignore[attr-defined]
    _original_init(*bound.args, **bound.kwargs)


@functools.wraps(_original_shutdown)
def _shutdown(self: MeterProvider, *args: Any, **kwargs: Any) -> Any:
    try:
        return _original_shutdown(self, *args, **kwargs)
    finally:
        lifecycle = getattr(self, "_otel_gitjob_lifecycle", None)
        if lifecycle is not None:
            lifecycle.shutdown()


MeterProvider.__init__ = _init  # type: ignore[method-assign]
MeterProvider.shutdown = _shutdown  # type: ignore[method-assign]


def pytest_report_header() -> str:
    return "otel-gitjob: every MeterProvider gets Lifecycle().views(*its views)"
