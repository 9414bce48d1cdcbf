"""Every lock of the package, by name and rank: the lock order, written once and checked in tests.

A thread holding a lock may only take locks of a strictly higher rank (an ``RLock`` may be re-entered);
docs/design/locks.md explains :data:`RANKS`, with the SDK's own locks in between. With
``OTEL_GITJOB_LOCK_CHECK=1`` (the test suite sets it) :func:`ranked_lock` returns a lock that fails on an
inversion; otherwise a plain ``threading`` lock, so the check costs nothing in production.
"""

from __future__ import annotations

import os
import threading
from typing import Any

__all__ = ["RANKS", "LockOrderError", "join", "ranked_condition", "ranked_lock", "violations"]

RANKS: dict[str, int] = {  # why each lock ranks where it does: docs/design/locks.md
    "sdk.self_check": 10,
    "gauges.callback": 20,
    "registry.op": 30,
    "markers.send": 40,
    "push.flusher": 50,
    "sdk.gate": 55,
    "sdk.touching": 60,
    "expiry": 70,
    "markers.store": 70,
    "registry.state": 80,
    "renderer": 85,
    # Leaves: no lock is taken while one of them is held.
    **dict.fromkeys(
        (
            "drops",
            "selfmetrics",
            "degraded",
            "lifecycle.expiry",
            "kube.cache",
            "kube.workqueue",
            "kube.response",
            "endpoint.flight",
            "prometheus.self_check",
            "push.self_check",
            "scrape.counts",
            "health",
            "server.held",
            "setup.instance_id",
        ),
        90,
    ),
}

CHECK = os.environ.get("OTEL_GITJOB_LOCK_CHECK", "") == "1"
"""Whether locks created from now on check the order (read once, from ``OTEL_GITJOB_LOCK_CHECK``)."""

violations: list[str] = []
"""Every inversion seen (test mode), also when the error raised was swallowed by a never-raise path."""


class LockOrderError(AssertionError):
    """A thread took a lock while holding one of an equal or higher rank (test mode only)."""


class _Held(threading.local):
    """The checked locks this thread holds, in the order taken."""

    def __init__(self) -> None:
        self.stack: list[_CheckedLock] = []


_held = _Held()


class _CheckedLock:
    """A lock that checks, before blocking, that every lock this thread holds ranks lower."""

    __slots__ = ("_lock", "name", "rank", "reentrant")

    def __init__(self, name: str, reentrant: bool) -> None:
        self._lock: Any = threading.RLock() if reentrant else threading.Lock()
        self.name = name
        self.rank = RANKS[name]
        self.reentrant = reentrant

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        stack = _held.stack
        # A try-acquire cannot deadlock (Condition uses one to ask whether it owns the lock).
        if blocking and not (self.reentrant and self in stack):
            for held in stack:
                if held.rank >= self.rank:
                    message = "took %s (rank %d) while holding %s (rank %d)"
                    message %= (self.name, self.rank, held.name, held.rank)
                    violations.append(message)
                    raise LockOrderError(message)
        acquired = bool(self._lock.acquire(blocking, timeout))
        if acquired:
            stack.append(self)
        return acquired

    def release(self) -> None:
        self._lock.release()
        stack = _held.stack
        for index in range(len(stack) - 1, -1, -1):
            if stack[index] is self:
                del stack[index]
                break

    def locked(self) -> bool:
        return self in _held.stack if self.reentrant else bool(self._lock.locked())

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self.release()


def ranked_lock(name: str, *, reentrant: bool = False) -> Any:
    """A new lock of rank ``RANKS[name]``: a plain ``threading`` lock unless the order is checked."""
    if name not in RANKS:
        raise KeyError("no lock %r in core/locks.RANKS; add it there and to docs/design/locks.md" % (name,))
    if CHECK:
        return _CheckedLock(name, reentrant)
    return threading.RLock() if reentrant else threading.Lock()


def ranked_condition(name: str) -> threading.Condition:
    """A condition variable over a new lock of rank ``RANKS[name]``."""
    return threading.Condition(ranked_lock(name))


def join(thread: threading.Thread, timeout: float | None = None) -> None:
    """``thread.join(timeout)``; in test mode, fails if this thread holds a lock of ours (a deadlock risk)."""
    if CHECK:
        held = [lock.name for lock in _held.stack]
        if held:
            message = "joined %s while holding %s" % (thread.name, ", ".join(held))
            violations.append(message)
            raise LockOrderError(message)
    thread.join(timeout)
