"""What a watch event or a relist means for the metrics: pure functions returning :class:`Action` lists."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from otel_gitjob._internal.kube._types import ObjectKey, ObjectRef
from otel_gitjob._internal.kube.events import ADDED, DELETED, MODIFIED
from otel_gitjob._internal.kube.kind import ObjectState

__all__ = ["Action", "ActionKind", "decide_actions", "diff_relist"]


class ActionKind(enum.Enum):
    """What to do for one object."""

    OBSERVE = "observe"
    """The object exists: ``sink.observe(ref)``."""
    FORGET = "forget"
    """The object is gone (or was replaced): ``sink.forget(ref)``."""


@dataclass(frozen=True, slots=True)
class Action:
    """One lifecycle action.

    Attributes:
        kind: What to do.
        ref: The object it applies to (the old uid for a FORGET after a uid change).
    """

    kind: ActionKind
    ref: ObjectRef

    @property
    def key(self) -> ObjectKey:
        """``(namespace, name)`` of the object."""
        return (self.ref.namespace, self.ref.name)


def _uid_changed(old: ObjectState, new: ObjectState) -> bool:
    return old.ref.uid is not None and new.ref.uid is not None and old.ref.uid != new.ref.uid


def decide_actions(event_type: str, old: ObjectState | None, new: ObjectState) -> list[Action]:
    """Decide the actions for one watch event.

    Args:
        event_type: ``ADDED``, ``MODIFIED`` or ``DELETED``.
        old: What the cache held under the same namespace/name, if anything.
        new: The state read off the event's object.

    Returns:
        DELETED: forget. An unknown object (a MODIFIED too: relabelled into our shard): observe. A new uid
        under the same name (deleted and re-created while we looked away): forget the old, observe the new.
        Otherwise (a status change, a reconnect's replayed ADDED): nothing, the gauges read the cache.
    """
    if event_type == DELETED:
        return [Action(ActionKind.FORGET, new.ref)]
    if event_type not in (ADDED, MODIFIED):
        raise ValueError("no actions for event type %r" % (event_type,))
    if old is None:
        return [Action(ActionKind.OBSERVE, new.ref)]
    if _uid_changed(old, new):
        return [Action(ActionKind.FORGET, old.ref), Action(ActionKind.OBSERVE, new.ref)]
    return []


def diff_relist(known: Mapping[ObjectKey, ObjectState], listed: Mapping[ObjectKey, ObjectState]) -> list[Action]:
    """Decide the actions for a relist: forget what is no longer listed, observe what is new.

    A uid change is a forget plus an observe; unchanged objects need nothing (the gauges read the cache).

    Args:
        known: The cache before the relist.
        listed: The states read off the list response.

    Returns:
        Forgets first, then observes.
    """
    forgets = [Action(ActionKind.FORGET, state.ref) for key, state in known.items() if key not in listed]
    observes: list[Action] = []
    for key, state in listed.items():
        old = known.get(key)
        if old is None:
            observes.append(Action(ActionKind.OBSERVE, state.ref))
        elif _uid_changed(old, state):
            forgets.append(Action(ActionKind.FORGET, old.ref))
            observes.append(Action(ActionKind.OBSERVE, state.ref))
    return forgets + observes
