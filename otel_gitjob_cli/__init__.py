"""The ``otel-gitjob`` console script's entry point, outside the ``otel_gitjob`` package on purpose.

Importing ``otel_gitjob`` loads the OpenTelemetry SDK and takes a noticeable
fraction of a second; a Ctrl-C in that time would end in a traceback, because
the command's own SIGINT handling is not installed yet. This module imports
nothing heavy, so it can turn that early interrupt into the documented exit
code (130) without a traceback.
"""

from __future__ import annotations

__all__ = ["main"]

# otel_gitjob._internal.app.cli.EXIT_INTERRUPTED; not imported from there, which is the point of this module.
_EXIT_INTERRUPTED = 130


def main() -> int:
    """Run ``otel-gitjob``; an interrupt before its signal handlers are installed exits with 130."""
    try:
        from otel_gitjob._internal.app.cli import main as cli_main

        return cli_main()
    except KeyboardInterrupt:
        return _EXIT_INTERRUPTED
