"""The watch cache: the objects of one kind this listener currently sees, under one lock."""

from __future__ import annotations

from collections.abc import Mapping

from otel_gitjob._internal.core.locks import ranked_lock
from otel_gitjob._internal.kube._types import ObjectKey, ObjectRef
from otel_gitjob._internal.kube.actions import Action, decide_actions, diff_relist
from otel_gitjob._internal.kube.events import DELETED
from otel_gitjob._internal.kube.kind import ObjectState

__all__ = ["ObjectCache"]


class ObjectCache:
    """Object states (:class:`~.kind.ObjectState`) keyed by ``(namespace, name)``.

    Written by the watch thread; read by the gauge callbacks from any thread. Each update returns the
    actions it implies, decided under the same lock so that decisions and contents never disagree.
    """

    def __init__(self) -> None:
        self._lock = ranked_lock("kube.cache")
        self._states: dict[ObjectKey, ObjectState] = {}

    def apply_event(self, event_type: str, state: ObjectState) -> list[Action]:
        """Apply one ADDED/MODIFIED/DELETED event and return its actions."""
        with self._lock:
            actions = decide_actions(event_type, self._states.get(state.key), state)
            if event_type == DELETED:
                self._states.pop(state.key, None)
            else:
                self._states[state.key] = state
        return actions

    def replace(self, listed: Mapping[ObjectKey, ObjectState]) -> list[Action]:
        """Replace the whole cache with a relist and return the diff's actions."""
        new = dict(listed)
        with self._lock:
            known, self._states = self._states, new
        return diff_relist(known, new)

    def snapshot(self) -> list[ObjectState]:
        """A consistent copy of all states (what the gauge callbacks read)."""
        with self._lock:
            return list(self._states.values())

    def get(self, key: ObjectKey) -> ObjectState | None:
        """The state of one object, if cached."""
        with self._lock:
            return self._states.get(key)

    def refs(self) -> list[ObjectRef]:
        """The identities of every cached object (the live set after a relist)."""
        with self._lock:
            return [state.ref for state in self._states.values()]

    def __len__(self) -> int:
        with self._lock:
            return len(self._states)
