"""``/healthz`` and ``/readyz``: checks the application registers, answered without a collection.

The application registers ``(ok, detail)`` callables per component (listeners, the expiry sweeper).
Liveness is "every registered thread still runs", readiness "every registered component is ready"; with
nothing registered both answer ok as soon as the server answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from otel_gitjob._internal.core.locks import ranked_lock

__all__ = ["Check", "HealthChecks"]

_logger = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, str]]
"""A health check: ``(ok, one-line detail)``; it must be quick and never block on a collection."""


class HealthChecks:
    """Named liveness and readiness checks; thread-safe."""

    def __init__(self) -> None:
        self._lock = ranked_lock("health")
        self._live: dict[str, Check] = {}
        self._ready: dict[str, Check] = {}

    def add(self, name: str, *, live: Check | None = None, ready: Check | None = None) -> None:
        """Register (or replace) the checks of one component.

        Args:
            name: The component, as ``/healthz`` and ``/readyz`` list it.
            live: Whether its threads run.
            ready: Whether it serves complete data.
        """
        with self._lock:
            if live is not None:
                self._live[name] = live
            if ready is not None:
                self._ready[name] = ready

    def remove(self, name: str) -> None:
        """Forget a component's checks."""
        with self._lock:
            self._live.pop(name, None)
            self._ready.pop(name, None)

    def live(self) -> tuple[bool, str]:
        """Run the liveness checks: ``(all ok, one line per component)``."""
        return self._run(self._live)

    def ready(self) -> tuple[bool, str]:
        """Run the readiness checks: ``(all ok, one line per component)``."""
        return self._run(self._ready)

    def _run(self, checks: dict[str, Check]) -> tuple[bool, str]:
        with self._lock:
            items = sorted(checks.items())
        ok = True
        lines = []
        for name, check in items:
            try:
                passed, detail = check()
            except Exception as error:  # a broken check fails its probe, it never fails the server
                _logger.debug("health check %s raised", name, exc_info=True)
                passed, detail = False, "check raised %s" % type(error).__name__
            ok = ok and bool(passed)
            lines.append("%s %s: %s" % ("ok" if passed else "FAIL", name, detail))
        return ok, "\n".join(lines)
