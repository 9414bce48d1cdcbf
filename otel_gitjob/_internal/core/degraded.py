"""Which seams onto foreign internals run degraded, process-wide.

Each seam (``sdk``, ``prometheus``, ``push``) checks the installed release by behaviour at first use; one
whose check fails calls :func:`mark_degraded` (one WARNING per seam and process, and
``otel_gitjob_degraded{seam="…"} 1``) and takes its slower path that relies on no internals and is never
wrong. ``OTEL_GITJOB_DEGRADED=sdk,prometheus,push`` (any subset, or ``all``) forces that path: the escape
hatch for a release the self-check misjudges, and how the tests prove the path correct.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from otel_gitjob._internal.core.locks import ranked_lock

__all__ = ["FORCE_ENV", "SEAMS", "degraded_seams", "forced", "mark_checked", "mark_degraded", "seam_states"]

SEAMS = ("sdk", "prometheus", "push")
FORCE_ENV = "OTEL_GITJOB_DEGRADED"

_logger = logging.getLogger("otel_gitjob")
_lock = ranked_lock("degraded")  # guards the two dicts below, nothing is called under it
_checked: dict[str, str | None] = {}  # seam -> None (healthy) or why it is degraded


def forced(seam: str) -> bool:
    """Whether ``OTEL_GITJOB_DEGRADED`` forces this seam onto its degraded path (read on every call)."""
    names = {part.strip() for part in os.environ.get(FORCE_ENV, "").split(",")}
    return seam in names or "all" in names


def mark_checked(seam: str) -> None:
    """Record that a seam's self-check passed (it shows as ``otel_gitjob_degraded{seam} 0``)."""
    with _lock:
        _checked.setdefault(seam, None)


def mark_degraded(seam: str, reason: str) -> None:
    """Record that a seam runs degraded; the first time per seam, log one WARNING with the reason."""
    with _lock:
        first = _checked.get(seam) is None
        _checked[seam] = reason
    if first:
        _logger.warning(
            "otel-gitjob: the %s seam runs degraded (%s): output stays correct but costs more; "
            "otel_gitjob_degraded{seam=%r} is 1",
            seam,
            reason,
            seam,
        )


def seam_states() -> Mapping[str, str | None]:
    """Each checked seam: ``None`` when healthy, else why it is degraded."""
    with _lock:
        return dict(_checked)


def degraded_seams() -> frozenset[str]:
    """The seams running degraded now."""
    with _lock:
        return frozenset(seam for seam, reason in _checked.items() if reason is not None)
