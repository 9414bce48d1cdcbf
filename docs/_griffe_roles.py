"""Griffe extension: Sphinx roles in docstrings (``:class:`~a.B```) render as code, not as raw text.

An ``.. envvar:: NAME`` line (the OpenTelemetry SDK's notation for its variables) is dropped: the member's
heading on the site names the variable already.

The docstrings are read in editors and ``help()`` too, where the roles are the usual notation; on the
site each role becomes a code span of the name it shows (``~`` keeps the last component, as Sphinx does).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ENVVAR = re.compile(r"^[ \t]*\.\. envvar:: *\S+[ \t]*\n?", re.MULTILINE)
_ROLE = re.compile(r":(?:py:)?(class|func|meth|attr|data|mod|exc|obj|const):`(~?)([^`]+)`(?:\\\\ )?")


def _code(match: re.Match[str]) -> str:
    role, short, target = match.groups()
    target = target.strip().lstrip(".")
    shown = target.rsplit(".", 1)[-1] if short else target
    if role in ("func", "meth") and not shown.endswith(")"):
        shown += "()"
    return "`%s`" % shown


def convert(text: str) -> str:
    """``text`` with every Sphinx role replaced by a Markdown code span, and no ``.. envvar::`` line."""
    return _ROLE.sub(_code, _ENVVAR.sub("", text))


class SphinxRoles(griffe.Extension):
    """Rewrites the roles of every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
