"""OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION reaches the series of a lifecycle's provider.

The OTLP exporter turns the variable into its ``preferred_aggregation``; the
lifecycle's catch-all view must honour it, as the SDK's default view does.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from otlp_helpers import Pipeline, Sink, otlp_exporter

from otel_gitjob import Lifecycle


@pytest.mark.parametrize(
    ("variable", "kind"),
    [("base2_exponential_bucket_histogram", "exponential_histogram"), ("explicit_bucket_histogram", "histogram")],
)
def test_the_default_histogram_aggregation_variable_is_honoured(
    variable: str, kind: str, sink: Sink, make_pipeline: Callable[..., Pipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", variable)
    with Lifecycle() as lifecycle:
        pipeline = make_pipeline(otlp_exporter(sink.protocol, sink.endpoint), lifecycle)
        repo = ("fleet-default", "histogram-aggregation")
        pipeline.gitjob.job_succeeded(repo, 42.0)
        pipeline.flush()
        points = sink.wait_for(lambda points: any(p.metric == "fleet_gitjob_duration_seconds" for p in points))
        kinds = {p.kind for p in points if p.metric == "fleet_gitjob_duration_seconds"}
        assert kinds == {kind}
