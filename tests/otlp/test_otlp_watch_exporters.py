"""What ``setup()`` exports as ``service.instance.id``, and the exporters ``watch`` takes from the environment.

The sink is a real OTLP/HTTP receiver decoding what the SDK's own exporter sends. (That every process
gets an id of its own, on every supported SDK release, is tests/test_instance_id.py.)
"""

from __future__ import annotations

import math

import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

import otel_gitjob
from otel_gitjob._internal.app.exporters import exporters_from_environment

REPO = {"metadata": {"namespace": "fleet-local", "name": "shared"}}


def exported_resources(sink) -> list[dict[str, object]]:
    return [
        {kv.key: kv.value.string_value for kv in rm.resource.attributes}
        for request in sink.requests
        for rm in request.resource_metrics
    ]


def test_an_instance_id_from_the_environment_is_kept(http_sink, monkeypatch):
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=otel-gitjob-7d9f-abcde,k8s.pod.uid=1234")
    shard = otel_gitjob.setup(
        serve=False, exporters=[HttpExporter(endpoint=http_sink.endpoint)], export_interval_millis=math.inf
    )
    try:
        shard.gitjob.job_created(REPO)
        assert shard.meter_provider.force_flush(10_000)
    finally:
        shard.shutdown()
    (resource, *_) = exported_resources(http_sink)
    assert resource["service.instance.id"] == "otel-gitjob-7d9f-abcde"
    assert resource["k8s.pod.uid"] == "1234"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, []),
        ({"OTEL_METRICS_EXPORTER": "prometheus"}, []),
        ({"OTEL_METRICS_EXPORTER": "none"}, []),
        ({"OTEL_METRICS_EXPORTER": "prometheus,otlp"}, [HttpExporter]),
        ({"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, [GrpcExporter]),
        (
            {
                "OTEL_METRICS_EXPORTER": " OTLP ",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf",
            },
            [HttpExporter],
        ),
    ],
)
def test_exporters_from_environment(environ, expected):
    exporters = exporters_from_environment(environ)
    try:
        assert [type(exporter) for exporter in exporters] == expected
    finally:
        for exporter in exporters:
            exporter.shutdown()


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"OTEL_METRICS_EXPORTER": "otlp,jaeger"}, "unknown exporter jaeger"),
        (
            {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/json"},
            "unknown OTLP protocol",
        ),
    ],
)
def test_exporters_from_environment_refuses_junk(environ, says):
    with pytest.raises(otel_gitjob.ConfigurationError, match=says):
        exporters_from_environment(environ)
