"""The hand-off between the watch thread and the sink: a coalescing work queue.

The watch thread :meth:`WorkQueue.submit`\\ s actions and never blocks; a worker
thread :meth:`WorkQueue.run`\\ s them against the sink. Actions for the same
repo that arrive before the worker reaches it merge into one entry, so the
``queue.Queue`` holds at most one key per repo however fast events come and
however slow the sink is.
"""

from __future__ import annotations

import enum
import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from otel_gitjob._internal.core.locks import ranked_lock
from otel_gitjob._internal.kube._types import ObjectKey, ObjectRef
from otel_gitjob._internal.kube.actions import Action, ActionKind

__all__ = ["RefSink", "WorkQueue"]

logger = logging.getLogger(__name__)


class RefSink(Protocol):
    """What the queue calls: one kind's lifecycle calls (:class:`~.lifecycle_calls.KindCalls`)."""

    def forget(self, ref: ObjectRef) -> int: ...

    def observe(self, ref: ObjectRef) -> None: ...


class _Stop(enum.Enum):
    """The type of the stop sentinel: a one-member enum, so that ``key is _STOP`` narrows the queue item."""

    STOP = enum.auto()


_STOP: Final = _Stop.STOP


@dataclass(slots=True)
class _Pending:
    forgets: list[ObjectRef] = field(default_factory=list)
    observe: ObjectRef | None = None
    call: Callable[[], Any] | None = None
    since: float = field(default_factory=time.monotonic)  # when the key was queued: the queue's latency


class WorkQueue:
    """Coalescing queue of sink calls, drained by :meth:`run` on a worker thread.

    Args:
        sink: Receives ``forget``/``observe`` calls, from the worker thread only.
    """

    def __init__(self, sink: RefSink) -> None:
        self._sink = sink
        self._lock = ranked_lock("kube.workqueue")
        self._pending: dict[ObjectKey, _Pending] = {}
        self._queue: queue.Queue[ObjectKey | Literal[_Stop.STOP]] = queue.Queue()

    def submit(self, actions: list[Action]) -> None:
        """Queue actions; never blocks on the sink.

        Per repo, forgets keep their order and an observe is kept only if no
        forget came after it: ``observe, forget`` nets to ``forget``, and
        ``forget(old uid), observe(new uid)`` stays as is.
        """
        with self._lock:
            for action in actions:
                if action.kind is ActionKind.REFRESH:
                    continue  # the gauges read the cache at collection time
                pending = self._pending.get(action.key)
                if pending is None:
                    pending = self._pending[action.key] = _Pending()
                    self._queue.put_nowait(action.key)
                if action.kind is ActionKind.FORGET:
                    pending.observe = None
                    if action.ref not in pending.forgets:
                        pending.forgets.append(action.ref)
                else:
                    pending.observe = action.ref

    def submit_call(self, key: ObjectKey, function: Callable[[], Any]) -> None:
        """Queue ``function()`` under ``key``, behind the work queued so far.

        A call still pending under the same key is replaced: only the latest
        (a relist's ``retain`` of the newest live set) matters.
        """
        with self._lock:
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = _Pending()
                self._queue.put_nowait(key)
            pending.call = function

    def depth(self) -> int:
        """Objects waiting (a self-metric)."""
        with self._lock:
            return len(self._pending)

    def oldest_age(self) -> float:
        """Seconds the oldest waiting object has waited; 0 when none waits (a self-metric).

        ``_pending`` keeps insertion order and a key leaves it when applied, so its first entry is the oldest.
        """
        with self._lock:
            for pending in self._pending.values():
                return max(0.0, time.monotonic() - pending.since)
        return 0.0

    def stop(self) -> None:
        """Make :meth:`run` return after the work queued so far."""
        self._queue.put_nowait(_STOP)

    def run(self) -> None:
        """Apply queued actions until :meth:`stop`. Sink errors are logged, never raised."""
        while True:
            key = self._queue.get()
            try:
                if key is _STOP:
                    return
                with self._lock:
                    pending = self._pending.pop(key)
                self._apply(pending)
            finally:
                self._queue.task_done()

    def run_pending(self) -> None:
        """Apply everything queued so far on the calling thread (for callers without a worker thread)."""
        while True:
            try:
                key = self._queue.get_nowait()
            except queue.Empty:
                return
            try:
                if key is _STOP:
                    continue
                with self._lock:
                    pending = self._pending.pop(key)
                self._apply(pending)
            finally:
                self._queue.task_done()

    def _apply(self, pending: _Pending) -> None:
        for ref in pending.forgets:
            try:
                self._sink.forget(ref)
            except Exception:
                logger.exception("sink.forget(%s/%s) failed", ref.namespace, ref.name)
        if pending.observe is not None:
            ref = pending.observe
            try:
                self._sink.observe(ref)
            except Exception:
                logger.exception("sink.observe(%s/%s) failed", ref.namespace, ref.name)
        if pending.call is not None:
            try:
                pending.call()
            except Exception:
                logger.exception("queued call %r failed", pending.call)

    def backlog(self) -> int:
        """Entries queued or being applied."""
        return self._queue.unfinished_tasks

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything queued so far has been applied.

        Returns:
            ``True`` when idle, ``False`` on timeout.
        """
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)
        return True
