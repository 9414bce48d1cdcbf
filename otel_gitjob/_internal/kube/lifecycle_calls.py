"""Every call the listener makes on the lifecycle, in one place, scoped to one kind.

Besides ``forget``/``observe``:

* :meth:`KindCalls.retire`: evict one old label set of a status gauge (a
  GitRepo's branch changed) through ``Sink.forget_series``. Fleet deletes by
  partial match on every collect; without this, each edit left the old label
  set in SDK storage until the object was deleted.
* :meth:`KindCalls.retain`: after a relist, forget every object of this kind
  the lifecycle still tracks but the list does not hold, through
  ``Sink.retain`` (kube-state-metrics' model: the watch cache is
  authoritative).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from otel_gitjob._internal.core.registry import Owner
from otel_gitjob._internal.kube._types import ObjectRef, Sink

__all__ = ["KindCalls"]


class KindCalls:
    """The lifecycle as one kind's listener sees it: every call carries ``kind=``.

    Satisfies the work queue's needs (``forget(ref)``, ``observe(ref)``).

    Args:
        sink: ``otel_gitjob.Lifecycle`` or another :class:`~._types.Sink`.
        kind: The Kubernetes kind name (``GitRepo``).
    """

    def __init__(self, sink: Sink, kind: str) -> None:
        self.sink = sink
        self.kind = kind

    def forget(self, ref: ObjectRef) -> int:
        """Forget one object of this kind."""
        return self.sink.forget(ref, kind=self.kind)

    def observe(self, ref: ObjectRef) -> None:
        """Declare one object of this kind alive."""
        self.sink.observe(ref, kind=self.kind)

    def declare(self, instrument_names: Iterable[str], owner: Owner | None = None) -> None:
        """Scope instruments (the status gauges) to this kind.

        Args:
            instrument_names: The instruments.
            owner: ``owner(instrument_name, attributes)`` for series without
                the identity labels (multi-series gauges).
        """
        names = tuple(instrument_names)
        if names:
            self.sink.declare_kind(self.kind, *names, owner=owner)

    def retain(self, live: Iterable[ObjectRef]) -> int:
        """Forget every tracked object of this kind not in ``live``; returns how many were forgotten."""
        return self.sink.retain(list(live), kind=self.kind)

    def retire(self, instrument_name: str, attributes: Mapping[str, Any]) -> int:
        """Evict one label set of one of this kind's gauges (its labels changed)."""
        return self.sink.forget_series(instrument_name, attributes, kind=self.kind)
