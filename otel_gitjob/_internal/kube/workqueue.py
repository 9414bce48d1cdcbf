"""The hand-off between the watch thread and the sink: a coalescing work queue.

The watch thread :meth:`WorkQueue.submit`\\ s actions and never blocks; a worker thread applies them.
Actions for one object merge into one entry until the worker reaches it, so the queue holds at most
one entry per object however fast events come and however slow the sink is.
"""

from __future__ import annotations

import enum
import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from otel_gitjob._internal.core.locks import ranked_lock
from otel_gitjob._internal.kube._types import ObjectKey, ObjectRef, Sink
from otel_gitjob._internal.kube.actions import Action, ActionKind

__all__ = ["WorkQueue"]

logger = logging.getLogger(__name__)


class _Stop(enum.Enum):  # a one-member enum, so that ``key is _STOP`` narrows the queue item
    STOP = enum.auto()


_STOP: Final = _Stop.STOP


@dataclass(slots=True)
class _Pending:
    forgets: list[ObjectRef] = field(default_factory=list)
    observe: ObjectRef | None = None
    call: Callable[[], Any] | None = None
    since: float = field(default_factory=time.monotonic)  # when the key was queued: the queue's latency


class WorkQueue:
    """Coalescing queue of one kind's sink calls, drained by :meth:`run` on a worker thread.

    Args:
        sink: Receives ``forget``/``observe`` calls with ``kind=kind``, from the worker thread only.
        kind: The kind of every object queued.
    """

    def __init__(self, sink: Sink, kind: str) -> None:
        self._sink = sink
        self._kind = kind
        self._lock = ranked_lock("kube.workqueue")
        self._pending: dict[ObjectKey, _Pending] = {}
        self._queue: queue.Queue[ObjectKey | Literal[_Stop.STOP]] = queue.Queue()

    def _entry(self, key: ObjectKey) -> _Pending:
        """The pending entry of ``key``, queued if new (under ``_lock``)."""
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending()
            self._queue.put_nowait(key)
        return pending

    def submit(self, actions: list[Action]) -> None:
        """Queue actions; never blocks on the sink.

        Per object, forgets keep their order and an observe is kept only if no forget came after it:
        ``observe, forget`` nets to ``forget``; ``forget(old uid), observe(new uid)`` stays as is.
        """
        with self._lock:
            for action in actions:
                pending = self._entry(action.key)
                if action.kind is ActionKind.FORGET:
                    pending.observe = None
                    if action.ref not in pending.forgets:
                        pending.forgets.append(action.ref)
                else:
                    pending.observe = action.ref

    def submit_call(self, key: ObjectKey, function: Callable[[], Any]) -> None:
        """Queue ``function()`` under ``key``, behind the work queued so far; replaces a call still pending there."""
        with self._lock:
            self._entry(key).call = function

    def depth(self) -> int:
        """Objects waiting (a self-metric)."""
        with self._lock:
            return len(self._pending)

    def oldest_age(self) -> float:
        """Seconds the oldest waiting object has waited; 0 when none waits (a self-metric)."""
        with self._lock:
            for pending in self._pending.values():  # insertion order, and applied keys leave: the first is the oldest
                return max(0.0, time.monotonic() - pending.since)
        return 0.0

    def stop(self) -> None:
        """Make :meth:`run` return after the work queued so far."""
        self._queue.put_nowait(_STOP)

    def run(self) -> None:
        """Apply queued actions until :meth:`stop`. Sink errors are logged, never raised."""
        while self._apply_next(block=True):
            pass

    def run_pending(self) -> None:
        """Apply everything queued so far on the calling thread (for callers without a worker thread)."""
        while self._apply_next(block=False):
            pass

    def _apply_next(self, block: bool) -> bool:
        """Apply one entry; ``False`` when the queue is empty (not blocking) or stopped (blocking)."""
        try:
            key = self._queue.get(block)
        except queue.Empty:
            return False
        try:
            if key is _STOP:
                return not block  # run() ends there; run_pending() has no worker to stop
            with self._lock:
                pending = self._pending.pop(key)
            for ref in pending.forgets:
                self._safely(self._sink.forget, ref)
            if pending.observe is not None:
                self._safely(self._sink.observe, pending.observe)
            if pending.call is not None:
                try:
                    pending.call()
                except Exception:
                    logger.exception("queued call %r failed", pending.call)
            return True
        finally:
            self._queue.task_done()

    def _safely(self, method: Callable[..., Any], ref: ObjectRef) -> None:
        try:
            method(ref, kind=self._kind)
        except Exception:
            logger.exception("sink.%s(%s/%s) failed", method.__name__, ref.namespace, ref.name)

    def backlog(self) -> int:
        """Entries queued or being applied."""
        return self._queue.unfinished_tasks

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything queued so far has been applied; ``False`` on timeout."""
        idle = self._queue.all_tasks_done
        with idle:
            return idle.wait_for(lambda: not self._queue.unfinished_tasks, timeout)
