"""Test stand-ins for the lifecycle as the listener sees it (the ``Sink`` protocol)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.metrics import MeterProvider, get_meter_provider

from otel_gitjob._internal.core.drops import DropRecorder
from otel_gitjob._internal.core.selfmetrics import SelfMetrics


class SinkBase:
    """The listener's whole :class:`~otel_gitjob._internal.kube._types.Sink`, doing nothing.

    Test sinks override what they record; the rest of the protocol is here so that every test sink
    satisfies it (the listener calls all of it).
    """

    def __init__(self) -> None:
        self.drops = DropRecorder()
        self.self_metrics = SelfMetrics()
        self.degraded = False
        self.other_calls: list[tuple[Any, ...]] = []

    def forget(self, obj: Any, *, kind: str | None = None) -> int:
        return 0

    def observe(self, obj: Any, *, kind: str | None = None) -> None:
        pass

    def retain(self, live: Iterable[Any], *, kind: str | None = None) -> int:
        self.other_calls.append(("retain", sorted(ref.name for ref in live), kind))
        return 0

    def forget_series(self, instrument_name: str, attributes: Mapping[str, Any], *, kind: str | None = None) -> int:
        self.other_calls.append(("forget_series", instrument_name, dict(attributes), kind))
        return 1

    def declare_kind(self, kind: str, *instrument_names: str, owner: Any = None) -> None:
        self.other_calls.append(("declare_kind", kind, instrument_names))

    def provider_for(self, meter_provider: MeterProvider | None, user: str) -> MeterProvider:
        return meter_provider if meter_provider is not None else get_meter_provider()


class RecordingSink(SinkBase):
    """A sink that records calls, for unit-level listener tests.

    It stands in for ``otel_gitjob.Lifecycle`` where a test asserts on which
    calls the listener makes; the end-to-end test uses the real Lifecycle.
    Clearing ``gate`` holds every call until it is set again (a stuck consumer).
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, Any]] = []
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()

    def forget(self, ref: Any, *, kind: str | None = None) -> int:
        self._record("forget", ref)
        return 1

    def observe(self, ref: Any, *, kind: str | None = None) -> None:
        self._record("observe", ref)

    def _record(self, kind: str, ref: Any) -> None:
        assert self.gate.wait(30), "the test never opened the sink's gate"
        with self._lock:
            self.calls.append((kind, ref))

    def names(self, kind: str) -> list[str]:
        """Names passed to ``kind`` calls, in call order."""
        with self._lock:
            return [ref.name for k, ref in self.calls if k == kind]

    def refs(self, kind: str) -> list[Any]:
        """Refs passed to ``kind`` calls, in call order."""
        with self._lock:
            return [ref for k, ref in self.calls if k == kind]
