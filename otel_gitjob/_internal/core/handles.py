"""Bound handles: one object's series, written without naming the object again.

A handle checks its value, then writes straight into the series' aggregations
through the SDK seam (:class:`~._sdk.BoundSeries`), creating them there on the
first write where the SDK allows. Whatever that cannot do (the first write on
an SDK older than 1.45.2, the seam degraded) goes through the instrument's own
call, once the handle checked that its incarnation lives: a handle of a
forgotten or superseded incarnation writes nothing, never creates the series
again, and counts each write as ``stale_handle``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import metrics as api

from otel_gitjob._internal.core import _sdk
from otel_gitjob._internal.core.drops import DropRecorder
from otel_gitjob._internal.core.errors import ConfigurationError
from otel_gitjob._internal.core.registry import Incarnation

__all__ = [
    "BoundCounter",
    "BoundGauge",
    "BoundHistogram",
    "BoundInstrument",
    "BoundUpDownCounter",
    "Handle",
    "KINDS",
    "Kit",
    "handle_class",
]

_logger = logging.getLogger("otel_gitjob")

REASON_STALE_HANDLE = "stale_handle"
REASON_BAD_VALUE = "bad_value"
REASON_INTERNAL = "internal_error"

# The largest float: a larger int compares as finite but cannot be exported (it overflows a float).
_MAX = sys.float_info.max
# After this many writes in a row that found no series to bind to (a delta reader's table, an overflowed
# series), a handle stops trying and writes through the instrument.
_MAX_MISSES = 3


def _non_negative(value: Any) -> bool:
    return bool(0 <= value <= _MAX)


def _finite(value: Any) -> bool:
    return bool(-_MAX <= value <= _MAX)


# Each kind of instrument's call, and the values it takes.
KINDS = {
    "counter": ("add", _non_negative),
    "up_down_counter": ("add", _finite),
    "histogram": ("record", _non_negative),
    "gauge": ("set", _finite),
}


class Kit(_sdk.Instruments):
    """What the handles of the same instruments share: their calls, the checks of their values, where drops go.

    Args:
        instruments: The instruments, by index.
        kinds: Each instrument's kind (a :data:`KINDS` key).
        drops: Where dropped writes are counted.
        fast: Bind to the SDK's aggregations (False while the SDK seam runs degraded).
    """

    __slots__ = ("calls", "checks", "drops", "fast")

    def __init__(self, instruments: Sequence[Any], kinds: Sequence[str], drops: DropRecorder, fast: bool) -> None:
        super().__init__(instruments)
        self.calls = tuple(
            getattr(instrument, KINDS[kind][0]) for instrument, kind in zip(instruments, kinds, strict=True)
        )
        self.checks = tuple(KINDS[kind][1] for kind in kinds)
        self.drops = drops
        self.fast = fast


class Handle(_sdk.BoundSeries):
    """Series of one object's incarnation on the instruments of a :class:`Kit`. Never raises."""

    __slots__ = ("_incarnation", "_misses")

    def __init__(self, kit: Kit, attributes: Mapping[str, Any], incarnation: Incarnation | None) -> None:
        super().__init__(kit, attributes)
        self._incarnation = incarnation if incarnation is not None else _DEAD
        self._misses = 0

    @property
    def alive(self) -> bool:
        """False once the object's incarnation was forgotten or superseded: every write is then dropped."""
        return not self._incarnation.dead

    def _non_negative(self, i: int, value: Any) -> None:
        try:
            if 0 <= value <= _MAX and not self._incarnation.dead and self.write(i, value):
                return
        except Exception:  # noqa: S110 - the slow path counts what it was
            pass
        self._slow(i, value)

    def _finite(self, i: int, value: Any) -> None:
        try:
            if -_MAX <= value <= _MAX and not self._incarnation.dead and self.write(i, value):
                return
        except Exception:  # noqa: S110 - the slow path counts what it was
            pass
        self._slow(i, value)

    def _slow(self, i: int, value: Any) -> None:
        """The write the fast path could not make: checks, the instrument's own call, then bind again."""
        kit: Kit = self._instruments  # type: ignore[assignment]
        try:
            valid = kit.checks[i](value)
        except Exception:  # not a number
            valid = False
        if not valid:
            kit.drops.drop(REASON_BAD_VALUE, "%s of %s" % (kit.instruments[i].name, type(value).__name__))
            return
        try:
            incarnation = self._incarnation
            with incarnation.guard:  # lands wholly before a forget, or is refused after it
                if incarnation.dead:
                    kit.drops.drop(REASON_STALE_HANDLE, kit.instruments[i].name)
                    return
                bindable = kit.fast and self._misses < _MAX_MISSES
                if bindable and self.create(i, value):
                    self._misses = 0 if self._targets[i] is not None else self._misses + 1
                    return
                kit.calls[i](value, self._attributes)
            if bindable:
                self._misses = 0 if self.bind(i) else self._misses + 1
        except Exception as error:  # a handle never raises into the controller
            kit.drops.drop(REASON_INTERNAL, "bound write: %s" % (type(error).__name__,))
            _logger.debug("otel-gitjob: a bound write failed", exc_info=True)

    def __repr__(self) -> str:
        return "<%s %r%s>" % (type(self).__name__, dict(self._attributes), "" if self.alive else " (stale)")


class BoundCounter(Handle):
    """A counter's series of one object: ``handle.add(amount)``. Never raises."""

    __slots__ = ()

    def add(self, amount: float) -> None:
        """Add a non-negative finite ``amount``; anything else is dropped and counted."""
        self._non_negative(0, amount)


class BoundUpDownCounter(Handle):
    """An up-down counter's series of one object: ``handle.add(amount)``. Never raises."""

    __slots__ = ()

    def add(self, amount: float) -> None:
        """Add a finite ``amount``; anything else is dropped and counted."""
        self._finite(0, amount)


class BoundHistogram(Handle):
    """A histogram's series of one object: ``handle.record(amount)``. Never raises."""

    __slots__ = ()

    def record(self, amount: float) -> None:
        """Record a non-negative finite ``amount``; anything else is dropped and counted."""
        self._non_negative(0, amount)


class BoundGauge(Handle):
    """A gauge's series of one object: ``handle.set(value)``; a transient gauge's TTL restarts. Never raises."""

    __slots__ = ()

    def set(self, value: float) -> None:
        """Set a finite ``value``; anything else is dropped and counted."""
        self._finite(0, value)


_DEAD = Incarnation(None)
_DEAD.dead = True

BoundInstrument = BoundCounter | BoundUpDownCounter | BoundHistogram | BoundGauge
# The SDK's instruments subclass the API's; the API names no public gauge class on every release we support.
_CLASSES: tuple[tuple[type, type[BoundInstrument], str], ...] = (
    (api.Counter, BoundCounter, "counter"),
    (api.UpDownCounter, BoundUpDownCounter, "up_down_counter"),
    (api.Histogram, BoundHistogram, "histogram"),
)


def handle_class(instrument: Any) -> tuple[type[BoundInstrument], str]:
    """The handle type for a synchronous instrument, and the instrument's kind (a :data:`KINDS` key).

    Raises:
        ConfigurationError: ``instrument`` is not a counter, up-down counter, histogram or gauge.
    """
    for api_class, handle, verb in _CLASSES:
        if isinstance(instrument, api_class):
            return handle, verb
    if isinstance(instrument, api.Instrument) and not isinstance(instrument, api.Asynchronous):
        if callable(getattr(instrument, "set", None)):
            return BoundGauge, "gauge"
    raise ConfigurationError(
        "bind() takes a synchronous instrument (counter, up-down counter, histogram or gauge) created on a "
        "MeterProvider built with lifecycle.views(), got %r" % (type(instrument).__name__,)
    )
