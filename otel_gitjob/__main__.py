"""Command line: ``otel-gitjob demo`` and ``otel-gitjob watch``.

Every failure a person can cause (no cluster, a missing extra, a port in use...) ends in one line
on stderr saying what is wrong and what to do, and an exit code of its own (``EXIT_CODES``);
``--debug`` adds the traceback.
"""

import sys

from otel_gitjob._internal.app.cli import EXIT_CODES, main

__all__ = ["EXIT_CODES", "main"]


if __name__ == "__main__":
    sys.exit(main())
