"""The small types the listener shares with its callers.

The listener must not import the metrics core (layers never import upward), so
it talks to it through :class:`Sink`, a structural protocol that
``otel_gitjob.Lifecycle`` satisfies. :class:`RepoRef` is the core's value type
from ``otel_gitjob._internal.core.identity`` (a leaf module with no imports of its
own); the fallback below only exists so the listener stays importable should
that module move, and has the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["RepoKey", "RepoRef", "Sink"]

try:  # pragma: no branch - which branch runs depends on the installed core
    from otel_gitjob._internal.core.identity import RepoRef
except ImportError:  # pragma: no cover - only without the core's identity module

    @dataclass(frozen=True, slots=True)
    class RepoRef:  # type: ignore[no-redef]
        """The identity of one GitRepo (fallback twin of the core's ``RepoRef``).

        Attributes:
            namespace: The GitRepo's namespace.
            name: The GitRepo's name.
            uid: ``metadata.uid`` when known.
        """

        namespace: str
        name: str
        uid: str | None = None


RepoKey = tuple[str, str]
"""``(namespace, name)``: what the watch cache and the work queue are keyed on."""


@runtime_checkable
class Sink(Protocol):
    """Where the listener sends metric lifecycle actions.

    ``otel_gitjob.Lifecycle`` is the production sink. Both calls must be safe to
    call from a thread other than the one that created the sink.
    """

    def forget(self, ref: RepoRef) -> int:
        """Drop every series of the repo; returns how many were dropped."""
        ...  # pragma: no cover

    def observe(self, ref: RepoRef) -> None:
        """Mark the repo as alive (lifts the block against late writes)."""
        ...  # pragma: no cover
