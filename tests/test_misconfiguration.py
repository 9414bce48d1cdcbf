"""A MeterProvider whose series the lifecycle cannot index is refused when instruments are built on it.

Without ``lifecycle.views()`` the SDK never tells the lifecycle of a new
series: ``forget()`` returned 0 and the repo was exported for ever, silently.
The global provider leads straight there (``opentelemetry-instrument`` sets up
one without views), so it is checked too, in a fresh interpreter each time,
since the global provider can be set once per process.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_gitjob import ConfigurationError, GitJobMetrics, Lifecycle

ROOT = Path(__file__).resolve().parent.parent


def test_a_provider_built_without_the_lifecycles_views_is_refused_with_the_fix(lifecycle):
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    try:
        with pytest.raises(ConfigurationError, match=r"views=lifecycle\.views\(\)"):
            GitJobMetrics(provider, lifecycle=lifecycle)
    finally:
        provider.shutdown()


def test_a_provider_built_with_another_lifecycles_views_is_refused(lifecycle):
    other = Lifecycle()
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()], views=other.views())
    try:
        with pytest.raises(ConfigurationError, match="without this lifecycle's views"):
            GitJobMetrics(provider, lifecycle=lifecycle)
    finally:
        provider.shutdown()
        other.shutdown()


def test_a_no_op_provider_is_refused(lifecycle):
    with pytest.raises(ConfigurationError, match="records nothing"):
        GitJobMetrics(metrics.NoOpMeterProvider(), lifecycle=lifecycle)


def test_the_right_provider_is_accepted_and_forget_reaches_its_series(lifecycle):
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
    try:
        gitjob = GitJobMetrics(provider, lifecycle=lifecycle)
        gitjob.job_created(("ns", "r"))
        assert lifecycle.forget(("ns", "r")) == 1
        assert lifecycle.unchecked_providers == 0
    finally:
        provider.shutdown()


class _WrappingProvider(metrics.MeterProvider):
    """A MeterProvider of the API that is not the SDK's (a vendor wrapper): its views cannot be read."""

    def __init__(self, inner: MeterProvider) -> None:
        self._inner = inner

    def get_meter(self, name, version=None, schema_url=None, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self._inner.get_meter(name, version, schema_url)


def test_a_provider_that_cannot_be_inspected_gets_one_warning_and_the_self_metric(lifecycle, caplog):
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()], views=lifecycle.views())
    try:
        with caplog.at_level(logging.WARNING, logger="otel_gitjob"):
            GitJobMetrics(_WrappingProvider(provider), lifecycle=lifecycle)
            GitJobMetrics(_WrappingProvider(provider), lifecycle=lifecycle, prefix="other")
        warnings = [r.getMessage() for r in caplog.records if "cannot be checked" in r.getMessage()]
        assert len(warnings) == 1 and "_WrappingProvider" in warnings[0]
        assert lifecycle.self_metrics.observe("otel_gitjob_unchecked_providers") == [(2.0, {})]
    finally:
        provider.shutdown()


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (the global MeterProvider is set once per process)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    environment.pop("OTEL_GITJOB_DEGRADED", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=environment, timeout=120
    )


def test_the_global_provider_is_refused_while_none_is_set():
    result = _run(
        """
        from otel_gitjob import ConfigurationError, GitJobMetrics, Lifecycle
        try:
            GitJobMetrics(lifecycle=Lifecycle())
        except ConfigurationError as error:
            print("refused:", error)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "refused: the global MeterProvider" in result.stdout and "records nothing" in result.stdout


def test_the_global_provider_that_opentelemetry_instrument_sets_up_is_refused_with_the_fix():
    # What `opentelemetry-instrument` runs before the program: the SDK's configurator, from the environment.
    result = _run(
        """
        from opentelemetry.sdk._configuration import _OTelSDKConfigurator
        _OTelSDKConfigurator().configure()
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        assert isinstance(metrics.get_meter_provider(), MeterProvider)
        from otel_gitjob import ConfigurationError, GitJobMetrics, Lifecycle
        try:
            GitJobMetrics(lifecycle=Lifecycle())
        except ConfigurationError as error:
            print("refused:", error)
        """,
        OTEL_METRICS_EXPORTER="console",
        OTEL_TRACES_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_METRIC_EXPORT_INTERVAL="3600000",
    )
    assert result.returncode == 0, result.stderr
    assert "refused: the global MeterProvider" in result.stdout
    assert "opentelemetry-instrument" in result.stdout and "views=lifecycle.views()" in result.stdout


def test_a_global_provider_built_with_the_lifecycles_views_is_accepted():
    result = _run(
        """
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from otel_gitjob import GitJobMetrics, Lifecycle
        lifecycle = Lifecycle()
        metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()], views=lifecycle.views()))
        gitjob = GitJobMetrics(lifecycle=lifecycle)
        gitjob.job_created(("ns", "r"))
        print("forgot", lifecycle.forget(("ns", "r")))
        """
    )
    assert result.returncode == 0, result.stderr
    assert "forgot 1" in result.stdout
