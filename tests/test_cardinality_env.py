"""``OTEL_GITJOB_CARDINALITY_LIMIT``: the per-instrument series limit of ``setup()`` (and so of ``watch``).

A watched object is one series of each of its kind's instruments: with the default of 10,000, a
sidecar watching 30,000 GitRepos folded 20,000 of them into ``otel_metric_overflow``.
"""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

import otel_gitjob
from otel_gitjob._internal.core import _sdk


def exposition_after_repos(count: int) -> str:
    instrumentation = otel_gitjob.setup(serve=False)
    try:
        for i in range(count):
            instrumentation.gitjob.job_created({"metadata": {"namespace": "ns", "name": "repo-%d" % i}})
        return generate_latest(instrumentation.registry).decode()
    finally:
        instrumentation.shutdown()


def test_the_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("OTEL_GITJOB_CARDINALITY_LIMIT", "3")
    folded = exposition_after_repos(4)
    if not _sdk.supports_cardinality_limit():
        # Older SDK releases take no per-view limit (docs/compatibility.md): the variable cannot apply.
        assert "otel_metric_overflow" not in folded
        assert all('name="repo-%d"' % i in folded for i in range(4))
        return
    assert "otel_metric_overflow" in folded
    assert sum('name="repo-%d"' % i in folded for i in range(4)) < 4

    monkeypatch.setenv("OTEL_GITJOB_CARDINALITY_LIMIT", "5")
    assert "otel_metric_overflow" not in exposition_after_repos(4)


def test_an_explicit_argument_wins(monkeypatch):
    monkeypatch.setenv("OTEL_GITJOB_CARDINALITY_LIMIT", "2")
    instrumentation = otel_gitjob.setup(serve=False, cardinality_limit=100)
    try:
        for i in range(5):
            instrumentation.gitjob.job_created({"metadata": {"namespace": "ns", "name": "repo-%d" % i}})
        assert "otel_metric_overflow" not in generate_latest(instrumentation.registry).decode()
    finally:
        instrumentation.shutdown()


@pytest.mark.parametrize("raw", ["lots", "0", "-5", "1.5"])
def test_junk_is_refused_with_the_variable_named(raw, monkeypatch):
    monkeypatch.setenv("OTEL_GITJOB_CARDINALITY_LIMIT", raw)
    with pytest.raises(otel_gitjob.ConfigurationError, match="OTEL_GITJOB_CARDINALITY_LIMIT must be"):
        otel_gitjob.setup(serve=False)
