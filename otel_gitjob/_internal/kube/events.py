"""Parsing one line of a Kubernetes watch stream: newline-delimited ``{"type": ..., "object": ...}``.

``ERROR`` lines carry a ``Status`` (410 when the resource version is too old) and end the stream.
Anything else that is not a well-formed event is a :class:`MalformedEventError`: the stream cannot be
trusted past it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ADDED",
    "BOOKMARK",
    "DELETED",
    "ERROR",
    "MODIFIED",
    "MalformedEventError",
    "WatchErrorEvent",
    "WatchEvent",
    "parse_event_line",
]

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
BOOKMARK = "BOOKMARK"
ERROR = "ERROR"
_OBJECT_EVENTS = frozenset({ADDED, MODIFIED, DELETED, BOOKMARK})


class MalformedEventError(ValueError):
    """A watch line that is not a well-formed event."""


class WatchErrorEvent(Exception):
    """An ``ERROR`` event in the stream: the server ended the watch.

    Attributes:
        code: HTTP-like status code from the ``Status`` object (410: expired).
        reason: ``Status.reason``.
        message: ``Status.message``.
    """

    def __init__(self, code: int | None, reason: str, message: str) -> None:
        super().__init__(code, reason, message)
        self.code, self.reason, self.message = code, reason, message

    def __str__(self) -> str:
        return "watch ERROR event %s %s: %s" % (self.code, self.reason, self.message)


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One object event from a watch stream.

    Attributes:
        type: ``ADDED``, ``MODIFIED``, ``DELETED`` or ``BOOKMARK``.
        object: The object as a dict (for ``BOOKMARK``, only its metadata).
    """

    type: str
    object: Mapping[str, Any]

    @property
    def resource_version(self) -> str | None:
        """``metadata.resourceVersion`` of the object, if any."""
        rv = (self.object.get("metadata") or {}).get("resourceVersion")
        return rv if isinstance(rv, str) and rv else None


def parse_event_line(line: str | bytes) -> WatchEvent | None:
    """Parse one watch line.

    Args:
        line: One line of the stream, without the newline.

    Returns:
        The event, or ``None`` for a blank keep-alive line.

    Raises:
        MalformedEventError: The line is not JSON, or not an event.
        WatchErrorEvent: The line is an ``ERROR`` event.
    """
    if not line or not line.strip():
        return None
    try:
        data = json.loads(line)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise MalformedEventError("not JSON: %s" % _excerpt(line)) from exc
    if not isinstance(data, dict):
        raise MalformedEventError("not an event object: %s" % _excerpt(line))
    kind, obj = data.get("type"), data.get("object")
    if kind == ERROR:
        status = obj if isinstance(obj, dict) else {}
        code = status.get("code")
        reason, message = str(status.get("reason") or ""), str(status.get("message") or "")
        raise WatchErrorEvent(code if isinstance(code, int) else None, reason, message)
    if kind not in _OBJECT_EVENTS:
        raise MalformedEventError("unknown event type %r" % (kind,))
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
        raise MalformedEventError("%s event without an object with metadata" % kind)
    return WatchEvent(kind, obj)


def _excerpt(line: str | bytes, limit: int = 80) -> str:
    text = line if isinstance(line, str) else line.decode("utf-8", errors="replace")
    return repr(text[:limit] + ("..." if len(text) > limit else ""))
