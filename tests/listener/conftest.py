"""Fixtures for the listener tests: the kmock emulator with resourceVersions (``rv_emulator.py`` on top of
``tests/kube_emulator.py``), sinks and listeners."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kube_emulator import GITREPOS, Emulator, FleetEmulator, Reaction, parse_selector  # noqa: F401
from rv_emulator import HELMOPS, WIDGETS, ListenerEmulator
from sinks import RecordingSink
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
