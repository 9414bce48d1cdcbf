"""Dropped measurements: counted, logged once per kind, never raised.

Recording calls never raise into the controller (the OTel API convention). :class:`DropRecorder` counts
every drop by reason (``otel_gitjob_dropped_measurements_total{reason}``) and logs the first of each reason,
then at most one summary per interval, naming what was dropped by a short description only: an object
body may carry credentials and be megabytes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_gitjob._internal.core.locks import ranked_lock

__all__ = ["DROPPED_METRIC_NAME", "DropRecorder", "safe_detail"]

_logger = logging.getLogger("otel_gitjob")

DROPPED_METRIC_NAME = "otel_gitjob_dropped_measurements"

# Longest detail a log line carries.
_MAX_DETAIL = 200


def safe_detail(obj: object) -> str:
    """A description of a dropped object that is safe to log: numbers as they are, else type and length."""
    try:
        if isinstance(obj, (bool, int, float)) or obj is None:
            big = isinstance(obj, int) and obj.bit_length() >= 100
            text = "an int of %d bits" % obj.bit_length() if big else repr(obj)  # type: ignore[union-attr]
        elif isinstance(obj, (str, bytes)):
            text = "a %s of length %d" % (type(obj).__name__, len(obj))
        else:
            text = "a %s" % (type(obj).__name__,)
    except Exception:
        text = "an object"
    return text[:_MAX_DETAIL]


class DropRecorder:
    """Counts and logs dropped measurements; thread-safe.

    Args:
        log_interval: Seconds between two log lines for the same reason (a hot loop cannot flood the log).
        clock: Monotonic clock, injectable for tests.
    """

    def __init__(self, log_interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = ranked_lock("drops")
        self._counts: dict[str, int] = {}
        self._next_log: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._log_interval = log_interval
        self._clock = clock

    def drop(self, reason: str, detail: str | None = None) -> None:
        """Count one dropped measurement and log it if this reason has not been logged lately.

        Args:
            reason: The label value of the self-metric; keep them few and stable.
            detail: A short description safe to log (see :func:`safe_detail`); truncated.
        """
        now = self._clock()
        with self._lock:
            self._counts[reason] = self._counts.get(reason, 0) + 1
            if now < self._next_log.get(reason, float("-inf")):
                self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
                return
            self._next_log[reason] = now + self._log_interval
            suppressed = self._suppressed.pop(reason, 0)
        text = str(detail)[:_MAX_DETAIL] if detail is not None else "-"
        if suppressed:
            _logger.warning(
                "otel-gitjob dropped a measurement (reason=%s): %s; %d more dropped for this reason since the last log",
                reason,
                text,
                suppressed,
            )
        else:
            _logger.warning("otel-gitjob dropped a measurement (reason=%s): %s", reason, text)

    def counts(self) -> dict[str, int]:
        """A snapshot of drops by reason."""
        with self._lock:
            return dict(self._counts)

    def register(self, meter: Meter) -> None:
        """Export the counts as an observable counter on ``meter``."""
        meter.create_observable_counter(
            DROPPED_METRIC_NAME,
            callbacks=[self._observe],
            unit="{measurement}",
            description="Measurements otel-gitjob dropped instead of recording, by reason.",
        )

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(count, {"reason": reason}) for reason, count in self.counts().items()]
