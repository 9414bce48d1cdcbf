"""Every call the listener makes on the lifecycle, in one place.

The listener drives ``otel_gitjob.Lifecycle`` (or any sink with ``forget`` and
``observe``). The lifecycle is growing kind-aware identities (``forget(ref,
kind=...)``, ``declare_kind``, ``retain``); this module is the single seam
that adapts to what the sink in hand offers, decided once per sink by
inspecting its signatures, so that the listener's logic does not change when
the lifecycle does. :func:`call` is the one function every call goes through.

Two operations have a fallback on the current ``Lifecycle``'s index when it
has no public method for them yet (both are no-ops for other sinks):

* :meth:`KindCalls.retire`: evict one old label set of a status gauge (a
  GitRepo's branch changed). Fleet deletes by partial match on every collect;
  without this, each edit left the old label set in SDK storage until the
  object was deleted.
* :meth:`KindCalls.retain`: after a relist, forget every object of this kind
  the lifecycle still tracks but the list does not hold (kube-state-metrics'
  model: the watch cache is authoritative).
"""

from __future__ import annotations

import inspect
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from otel_gitjob._internal.listener._types import RepoRef

__all__ = ["KindCalls", "accepts_keyword", "call"]

logger = logging.getLogger(__name__)

_SEEN_LIMIT = 100_000
"""Identities remembered per kind for the ``retain`` fallback (about 10 MB at the limit)."""


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
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def forget(self, ref: RepoRef) -> int:
        """Forget one object of this kind."""
        self._remember(ref)
        return int(call(self.sink, "forget", self.kind, ref) or 0)

    def observe(self, ref: RepoRef) -> None:
        """Declare one object of this kind alive."""
        self._remember(ref)
        call(self.sink, "observe", self.kind, ref)

    def declare(self, instrument_names: Iterable[str]) -> None:
        """Scope instruments (the status gauges) to this kind, when the lifecycle can."""
        names = tuple(instrument_names)
        declare_kind = getattr(self.sink, "declare_kind", None)
        if names and declare_kind is not None:
            declare_kind(self.kind, *names)

    def retain(self, live: Iterable[RepoRef]) -> int:
        """Forget every tracked object of this kind not in ``live``; returns how many were forgotten."""
        live_refs = list(live)
        if hasattr(self.sink, "retain"):
            return int(call(self.sink, "retain", self.kind, live_refs) or 0)
        tracked = _tracked_identities(self.sink)
        if tracked is None:
            return 0
        live_keys = {(ref.namespace, ref.name) for ref in live_refs}
        forgotten = 0
        # Only identities this listener has seen: with a lifecycle that has no kinds, an
        # identity it never saw may be another kind's object of the same name.
        for key in [key for key in tracked if key in self._seen and key not in live_keys]:
            call(self.sink, "forget", self.kind, RepoRef(key[0], key[1]))
            forgotten += 1
        return forgotten

    def retire(self, instrument_name: str, attributes: Mapping[str, Any]) -> int:
        """Evict one label set of one of this kind's gauges (its labels changed)."""
        method = getattr(self.sink, "forget_series", None)
        if method is not None:
            return int(call(self.sink, "forget_series", self.kind, instrument_name, attributes) or 0)
        return _retire_from_index(self.sink, instrument_name, attributes)

    def _remember(self, ref: RepoRef) -> None:
        key = (ref.namespace, ref.name)
        self._seen[key] = None
        self._seen.move_to_end(key)
        while len(self._seen) > _SEEN_LIMIT:
            self._seen.popitem(last=False)


def _tracked_identities(sink: Any) -> list[tuple[str, str]] | None:
    """The 2-key identities a current ``Lifecycle`` indexes, or ``None`` for other sinks."""
    index, lock = getattr(sink, "_index", None), getattr(sink, "_state_lock", None)
    if not isinstance(index, dict) or lock is None or len(getattr(sink, "identity_keys", ())) != 2:
        return None
    with lock:
        return [identity for identity in index if isinstance(identity, tuple) and len(identity) == 2]


def _retire_from_index(sink: Any, instrument_name: str, attributes: Mapping[str, Any]) -> int:
    """Evict the series ``(instrument_name, attributes)`` through a current ``Lifecycle``'s index.

    Uses the lifecycle's own eviction (under its operation lock, so that the
    OTLP staleness marker is sent and the index stays exact). 0 for other sinks.
    """
    identity_of: Callable[[Mapping[str, Any]], Any] | None = getattr(sink, "identity_of", None)
    index, op_lock, state_lock = (getattr(sink, n, None) for n in ("_index", "_op_lock", "_state_lock"))
    evict = getattr(sink, "_evict", None)
    if identity_of is None or not isinstance(index, dict) or None in (op_lock, state_lock, evict):
        return 0
    identity = identity_of(attributes)
    if identity is None:
        return 0
    wanted = dict(attributes)
    with op_lock:  # type: ignore[union-attr]
        with state_lock:  # type: ignore[union-attr]
            series = index.get(identity) or {}
            gone = [
                (ref, attrs)
                for ref, attrs in series.items()
                if getattr(ref[0], "name", None) == instrument_name and dict(attrs) == wanted
            ]
            for ref, _ in gone:
                del series[ref]
            if not series:
                index.pop(identity, None)
        return int(evict(identity, gone)) if gone else 0  # type: ignore[misc]
