"""Every call the listener makes on the lifecycle, in one place.

The listener drives ``otel_gitjob.Lifecycle`` (or any sink with ``forget`` and
``observe``: a user's own, in tests or wrappers). :func:`call` is the one
function every call goes through; it passes ``kind=`` to the methods that take
it, so a minimal sink works too. Besides ``forget``/``observe``:

* :meth:`KindCalls.retire`: evict one old label set of a status gauge (a
  GitRepo's branch changed) through ``Lifecycle.forget_series``. Fleet deletes
  by partial match on every collect; without this, each edit left the old label
  set in SDK storage until the object was deleted.
* :meth:`KindCalls.retain`: after a relist, forget every object of this kind
  the lifecycle still tracks but the list does not hold, through
  ``Lifecycle.retain`` (kube-state-metrics' model: the watch cache is
  authoritative).

A sink without those methods simply does without them.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from otel_gitjob._internal.kube._types import RepoRef

__all__ = ["KindCalls", "accepts_keyword", "call"]

logger = logging.getLogger(__name__)


def accepts_keyword(function: Any, keyword: str) -> bool:
    """Whether ``function`` takes ``keyword=`` (by name, or through ``**kwargs``)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        or (p.name == keyword and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD))
        for p in parameters
    )


def call(sink: Any, method: str, kind: str | None, *args: Any) -> Any:
    """Call ``sink.method(*args)``, adding ``kind=kind`` when the method takes it.

    The one function through which the listener reaches the lifecycle.
    Returns ``None`` when the sink has no such method.
    """
    function = getattr(sink, method, None)
    if function is None:
        return None
    if kind is not None and accepts_keyword(function, "kind"):
        return function(*args, kind=kind)
    return function(*args)


class KindCalls:
    """The lifecycle as one kind's listener sees it: ``forget``/``observe`` scoped to the kind.

    Satisfies the work queue's sink protocol (``forget(ref)``, ``observe(ref)``).

    Args:
        sink: ``otel_gitjob.Lifecycle`` or any object with ``forget``/``observe``.
        kind: The Kubernetes kind name (``GitRepo``).
    """

    def __init__(self, sink: Any, kind: str) -> None:
        self.sink = sink
        self.kind = kind
        # Per method name: the bound method (None when the sink has none) and whether it takes kind=.
        # Decided once, not per watch event: inspecting a signature costs far more than the call.
        self._methods: dict[str, tuple[Any, bool]] = {}

    def _call(self, method: str, *args: Any) -> Any:
        resolved = self._methods.get(method)
        if resolved is None:
            function = getattr(self.sink, method, None)
            resolved = self._methods[method] = (function, function is not None and accepts_keyword(function, "kind"))
        function, takes_kind = resolved
        if function is None:
            return None
        return function(*args, kind=self.kind) if takes_kind else function(*args)

    def forget(self, ref: RepoRef) -> int:
        """Forget one object of this kind."""
        return int(self._call("forget", ref) or 0)

    def observe(self, ref: RepoRef) -> None:
        """Declare one object of this kind alive."""
        self._call("observe", ref)

    def declare(self, instrument_names: Iterable[str], owner: Any = None) -> None:
        """Scope instruments (the status gauges) to this kind, when the lifecycle can.

        Args:
            instrument_names: The instruments.
            owner: ``owner(instrument_name, attributes)`` for series without
                the identity labels (multi-series gauges), when the lifecycle takes one.
        """
        names = tuple(instrument_names)
        declare_kind = getattr(self.sink, "declare_kind", None)
        if not names or declare_kind is None:
            return
        if owner is not None and accepts_keyword(declare_kind, "owner"):
            declare_kind(self.kind, *names, owner=owner)
        else:
            declare_kind(self.kind, *names)

    def retain(self, live: Iterable[RepoRef]) -> int:
        """Forget every tracked object of this kind not in ``live``; returns how many were forgotten."""
        return int(self._call("retain", list(live)) or 0)

    def retire(self, instrument_name: str, attributes: Mapping[str, Any]) -> int:
        """Evict one label set of one of this kind's gauges (its labels changed)."""
        return int(self._call("forget_series", instrument_name, attributes) or 0)
