"""The package's error type, at the bottom of the import graph so every layer can raise it."""

from __future__ import annotations

__all__ = ["ConfigurationError"]


class ConfigurationError(ValueError):
    """A setting of otel-gitjob is wrong; the message says how to fix it."""

    # Shown as otel_gitjob.ConfigurationError (where users import it), not its internal path.
    __module__ = "otel_gitjob"
