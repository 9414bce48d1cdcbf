"""Bound handles: one series of one object's incarnation, written without naming the object again.

A handle checks its value, then writes straight into the series' aggregations
through the SDK seam (:class:`~._sdk.SeriesWriter`). Whatever that cannot do
(the first write, a series expired or evicted, the seam degraded) goes through
the instrument's own call, after the handle checked that its incarnation lives:
a handle of a forgotten or superseded incarnation writes nothing, never creates
the series again, and counts each write as ``stale_handle``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import metrics as api

from otel_gitjob._internal.core import _sdk
from otel_gitjob._internal.core.drops import DropRecorder
from otel_gitjob._internal.core.errors import ConfigurationError
from otel_gitjob._internal.core.registry import Incarnation

__all__ = ["BoundCounter", "BoundGauge", "BoundHistogram", "BoundInstrument", "BoundUpDownCounter", "handle_class"]

_logger = logging.getLogger("otel_gitjob")

REASON_STALE_HANDLE = "stale_handle"
REASON_BAD_VALUE = "bad_value"
REASON_INTERNAL = "internal_error"

_INF = math.inf
# After this many writes in a row that found no series to bind to (a delta reader's table, an overflowed
# series), a handle stops trying and writes through the instrument.
_MAX_MISSES = 3


class _Handle(_sdk.SeriesWriter):
    """A series bound to an incarnation; subclasses name the write after the instrument's."""

    __slots__ = ("_incarnation", "_drops", "_call", "_fast", "_misses")

    def __init__(
        self,
        instrument: Any,
        attributes: Mapping[str, Any],
        incarnation: Incarnation | None,
        drops: DropRecorder,
        fast: bool,
    ) -> None:
        super().__init__(instrument, attributes)
        self._incarnation = incarnation if incarnation is not None else _DEAD
        self._drops = drops
        self._call: Callable[[Any, Any], None] = getattr(instrument, self._verb)
        self._fast = fast
        self._misses = 0

    _verb = "add"

    @property
    def alive(self) -> bool:
        """False once the object's incarnation was forgotten or superseded: every write is then dropped."""
        return not self._incarnation.dead

    def _slow(self, value: Any) -> None:
        """The write the fast path could not make: checks, the instrument's own call, then bind again."""
        try:
            valid = self._valid(value)
        except Exception:  # not a number
            valid = False
        if not valid:
            self._drops.drop(REASON_BAD_VALUE, "%s of %s" % (self._verb, type(value).__name__))
            return
        try:
            incarnation = self._incarnation
            with incarnation.guard:
                if incarnation.dead:
                    self._drops.drop(REASON_STALE_HANDLE, self._instrument.name)
                    return
                self._call(value, self._attributes)
            if self._fast and self._misses < _MAX_MISSES:
                self.bind()
                self._misses = 0 if self._targets else self._misses + 1
        except Exception as error:  # a handle never raises into the controller
            self._drops.drop(REASON_INTERNAL, "%s: %s" % (self._verb, type(error).__name__))
            _logger.debug("otel-gitjob: a bound %s failed", self._verb, exc_info=True)

    def _valid(self, value: Any) -> bool:
        return bool(0 <= value < _INF)

    def __repr__(self) -> str:
        return "<%s %s %r%s>" % (
            type(self).__name__,
            self._instrument.name,
            dict(self._attributes),
            "" if self.alive else " (stale)",
        )


class BoundCounter(_Handle):
    """A counter's series of one object: ``handle.add(amount)``. Never raises."""

    __slots__ = ()

    def add(self, amount: float) -> None:
        """Add a non-negative finite ``amount``; anything else is dropped and counted."""
        try:
            if 0 <= amount < _INF and not self._incarnation.dead and self.write(amount):
                return
        except Exception:  # noqa: S110 - the slow path counts what it was
            pass
        self._slow(amount)


class BoundUpDownCounter(_Handle):
    """An up-down counter's series of one object: ``handle.add(amount)``. Never raises."""

    __slots__ = ()

    def add(self, amount: float) -> None:
        """Add a finite ``amount``; anything else is dropped and counted."""
        try:
            if -_INF < amount < _INF and not self._incarnation.dead and self.write(amount):
                return
        except Exception:  # noqa: S110 - the slow path counts what it was
            pass
        self._slow(amount)

    def _valid(self, value: Any) -> bool:
        return bool(-_INF < value < _INF)


class BoundHistogram(_Handle):
    """A histogram's series of one object: ``handle.record(amount)``. Never raises."""

    __slots__ = ()
    _verb = "record"

    def record(self, amount: float) -> None:
        """Record a non-negative finite ``amount``; anything else is dropped and counted."""
        try:
            if 0 <= amount < _INF and not self._incarnation.dead and self.write(amount):
                return
        except Exception:  # noqa: S110 - the slow path counts what it was
            pass
        self._slow(amount)


class BoundGauge(_Handle):
    """A gauge's series of one object: ``handle.set(value)``; a transient gauge's TTL restarts. Never raises."""

    __slots__ = ()
    _verb = "set"

    def set(self, value: float) -> None:
        """Set a finite ``value``; anything else is dropped and counted."""
        try:
            if -_INF < value < _INF and not self._incarnation.dead and self.write(value):
                return
        except Exception:  # noqa: S110 - the slow path counts what it was
            pass
        self._slow(value)

    def _valid(self, value: Any) -> bool:
        return bool(-_INF < value < _INF)


_DEAD = Incarnation(None)
_DEAD.dead = True

# The SDK's instruments subclass the API's; the API names no public gauge class on every release we support.
BoundInstrument = BoundCounter | BoundUpDownCounter | BoundHistogram | BoundGauge
_CLASSES: tuple[tuple[type, type[BoundInstrument]], ...] = (
    (api.Counter, BoundCounter),
    (api.UpDownCounter, BoundUpDownCounter),
    (api.Histogram, BoundHistogram),
)


def handle_class(instrument: Any) -> type[BoundInstrument]:
    """The handle type for a synchronous instrument.

    Raises:
        ConfigurationError: ``instrument`` is not a counter, up-down counter, histogram or gauge.
    """
    for api_class, handle in _CLASSES:
        if isinstance(instrument, api_class):
            return handle
    if isinstance(instrument, api.Instrument) and not isinstance(instrument, api.Asynchronous):
        if callable(getattr(instrument, "set", None)):
            return BoundGauge
    raise ConfigurationError(
        "bind() takes a synchronous instrument (counter, up-down counter, histogram or gauge) created on a "
        "MeterProvider built with lifecycle.views(), got %r" % (type(instrument).__name__,)
    )
