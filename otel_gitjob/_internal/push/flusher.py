"""The idle flusher: sends pending markers when no export comes to carry them.

The SDK skips the export of an empty collection (after the last repo is
forgotten, say), so markers could wait forever. A daemon thread, started at
the first removal, wakes when items are pending, waits one export interval of
real time and, if the oldest item is still one that was pending when it
started waiting, sends them on their own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from otel_gitjob._internal.core.locks import join, ranked_condition

if TYPE_CHECKING:
    from otel_gitjob._internal.push.store import MarkerStore

__all__ = ["IdleFlusher"]

_logger = logging.getLogger("otel_gitjob")


class IdleFlusher:
    """Calls ``flush()`` when items wait ``interval`` seconds without an export.

    Args:
        interval: Seconds to wait; 0 disables the flusher.
        store: The pending items (their sequence numbers tell whether an export sent them meanwhile).
        flush: Sends what is pending.
    """

    def __init__(self, interval: float, store: MarkerStore, flush: Callable[[], object]) -> None:
        self.interval = interval
        self._store = store
        self._flush = flush
        self._cond = ranked_condition("push.flusher")
        self._thread: threading.Thread | None = None
        self._closed = False

    def poke(self) -> None:
        """Items were enqueued: start the thread if needed, and wake it."""
        with self._cond:
            if self._closed or not self.interval:
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="otel-gitjob-otlp-markers", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and self._store.oldest_seq() is None:
                    self._cond.wait()
                waiting_since = self._store.last_seq()
                if not self._sleep_locked(self.interval):
                    return
            oldest = self._store.oldest_seq()
            if oldest is not None and oldest <= waiting_since:
                try:
                    self._flush()
                except Exception:  # the flusher must outlive any exporter error
                    _logger.exception("otel-gitjob: sending staleness markers failed")

    def _sleep_locked(self, seconds: float) -> bool:
        """Wait ``seconds`` of real time (pokes don't shorten it); False once closed."""
        deadline = time.monotonic() + seconds
        while not self._closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            self._cond.wait(remaining)
        return False

    def close(self) -> None:
        """Stop the thread (joins it unless called from it). Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            join(thread, 5.0)
