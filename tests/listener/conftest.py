"""Fixtures for the listener tests: the kmock emulator with resourceVersions (``rv_emulator.py`` on top of
``tests/kube_emulator.py``), sinks and listeners."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kube_emulator import GITREPOS, Emulator, FleetEmulator, Reaction, parse_selector  # noqa: F401
from rv_emulator import HELMOPS, WIDGETS, ListenerEmulator
from support import wait_until


@pytest.fixture()
def emulator(request: pytest.FixtureRequest) -> Iterator[ListenerEmulator]:
    """A fresh emulator per test serving GitRepos, HelmOps and Widgets, stopped (and checked stopped) at teardown.

    ``@pytest.mark.kinds({...})`` overrides the extra kinds (``{}``: GitRepos only, HelmOps answer 404).
    """
    marker = request.node.get_closest_marker("kinds")
    kinds = marker.args[0] if marker else {HELMOPS: "HelmOp", WIDGETS: "Widget"}
    emu = ListenerEmulator(kinds)
    try:
        yield emu
    finally:
        emu.close()


@pytest.fixture()
def wait_for() -> Callable[..., Any]:
    """``wait_for(condition, timeout=10)``: ``support.wait_until``, as a fixture."""
    return wait_until


class RecordingSink:
    """A sink that records calls, for unit-level listener tests.

    It stands in for ``otel_gitjob.Lifecycle`` where a test asserts on which
    calls the listener makes; the end-to-end test uses the real Lifecycle.
    Clearing ``gate`` holds every call until it is set again (a stuck consumer).
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()

    def forget(self, ref: Any) -> int:
        self._record("forget", ref)
        return 1

    def observe(self, ref: Any) -> None:
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


@pytest.fixture()
def sink() -> RecordingSink:
    """A fresh :class:`RecordingSink`."""
    return RecordingSink()


FAST = {
    "backoff_base": 0.02,
    "backoff_cap": 0.1,
    "backoff_jitter": 0.0,
    "connect_timeout": 2.0,
    "list_timeout": 2.0,
    "inactivity_timeout": 2.0,
    "stop_timeout": 5.0,
}


@pytest.fixture()
def make_listener(emulator: Emulator) -> Iterator[Callable[..., Any]]:
    """``make_listener(sink, **settings)``: a started listener on the emulator, stopped at teardown.

    Settings default to small backoffs and timeouts (``FAST``). Teardown
    asserts both listener threads ended.
    """
    from opentelemetry.sdk.metrics import MeterProvider

    from otel_gitjob.fleet import GITREPO
    from otel_gitjob.listener import ListenerSettings, ResourceListener

    listeners: list[Any] = []

    def make(
        sink: Any, *, kind: Any = GITREPO, meter_provider: Any = None, start: bool = True, **overrides: Any
    ) -> Any:
        settings = ListenerSettings(**{**FAST, **overrides})
        listener = ResourceListener(
            sink,
            kind,
            configuration=emulator.configuration,
            settings=settings,
            # A real Lifecycle refuses a provider without its views; the recording sink has none.
            meter_provider=meter_provider or MeterProvider(views=sink.views() if hasattr(sink, "views") else ()),
        )
        listener.test_emulator = emulator  # for the tests' synced() helper
        listeners.append(listener)
        if start:
            listener.start()
        return listener

    yield make
    for listener in listeners:
        assert listener.stop(timeout=5), "listener threads did not stop"
        assert not listener.alive
