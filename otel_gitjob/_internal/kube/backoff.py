"""Capped exponential backoff with jitter."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

__all__ = ["Backoff", "backoff_delay"]


def backoff_delay(
    step: int,
    *,
    base: float,
    cap: float,
    factor: float = 2.0,
    jitter: float = 0.5,
    rand: Callable[[], float] = random.random,
) -> float:
    """The delay in seconds before retry number ``step`` (0-based).

    The nominal delay is ``min(cap, base * factor**step)``; jitter removes up to ``jitter`` of it at
    random, so the result lies in ``[d * (1 - jitter), d]``.

    Args:
        step: How many failures came before this one without a reset.
        base: Delay of step 0, in seconds.
        cap: Largest nominal delay, in seconds.
        factor: Growth per step.
        jitter: Fraction of the delay drawn at random, in ``[0, 1)``.
        rand: Source of uniform randoms in ``[0, 1)`` (injectable for tests).
    """
    # Compare exponents rather than computing factor**step, which overflows for long outages.
    nominal = cap if step >= 64 else min(cap, base * factor**step)
    return nominal * (1.0 - jitter * rand())


class Backoff:
    """Counts consecutive failures and hands out the next delay (:func:`backoff_delay`).

    The step starts over once ``reset_after`` seconds pass without a failure, like client-go's backoff
    manager. Not thread-safe: one watch loop owns one instance. ``clock`` and ``rand`` are injectable for tests.
    """

    def __init__(
        self,
        *,
        base: float,
        cap: float,
        factor: float = 2.0,
        jitter: float = 0.5,
        reset_after: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._base, self._cap, self._factor, self._jitter = base, cap, factor, jitter
        self._reset_after = reset_after
        self._clock, self._rand = clock, rand
        self._step = 0
        self._last_failure: float | None = None

    @property
    def step(self) -> int:
        """How many failures have been counted since the last reset."""
        return self._step

    def failure(self) -> float:
        """Count one failure and return how long to wait before retrying."""
        now = self._clock()
        if self._last_failure is not None and now - self._last_failure > self._reset_after:
            self._step = 0
        self._last_failure = now
        delay = backoff_delay(
            self._step, base=self._base, cap=self._cap, factor=self._factor, jitter=self._jitter, rand=self._rand
        )
        self._step += 1
        return delay
