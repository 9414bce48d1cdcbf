"""The pytest plugin of ``otel_gitjob.testing``, registered through the ``pytest11`` entry point.

It imports nothing of otel-gitjob until a test asks for the fixture: loading the plugin (which pytest
does in every suite of an environment where otel-gitjob is installed) must not import the SDK.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

__all__ = ["otel_gitjob_metrics"]


@pytest.fixture
def otel_gitjob_metrics() -> Iterator[Any]:
    """A fresh :class:`otel_gitjob.testing.MetricsKit` per test, shut down after it."""
    from otel_gitjob._internal.app.testing import MetricsKit

    kit = MetricsKit()
    yield kit
    kit.shutdown()
