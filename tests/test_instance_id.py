"""``setup()`` gives its MeterProvider a ``service.instance.id`` unless the user set one.

A Collector keys its series by resource: two shards exporting the same object under the same
resource would overwrite each other's points. Recent SDK releases detect a per-process UUID
themselves; older supported ones set none, so this runs in the SDK matrix too.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

from opentelemetry.sdk.resources import Resource

import otel_gitjob

INSTANCE_ID = "service.instance.id"
PRINT_ID = (
    "import otel_gitjob; i = otel_gitjob.setup(serve=False); "
    "print(i.meter_provider._sdk_config.resource.attributes.get('service.instance.id')); i.shutdown()"
)


def resource_of(instrumentation: otel_gitjob.Instrumentation) -> dict[str, object]:
    return dict(instrumentation.meter_provider._sdk_config.resource.attributes)


def test_every_process_gets_its_own_instance_id(monkeypatch):
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    instrumentation = otel_gitjob.setup(serve=False)
    try:
        ours = resource_of(instrumentation).get(INSTANCE_ID)
    finally:
        instrumentation.shutdown()
    assert ours is not None and uuid.UUID(str(ours))
    others = {
        subprocess.run([sys.executable, "-c", PRINT_ID], capture_output=True, text=True, check=True).stdout.strip()
        for _ in range(2)
    }
    assert len(others) == 2 and ours not in others, (ours, others)
    for other in others:
        uuid.UUID(other)


def test_an_instance_id_from_the_environment_is_kept(monkeypatch):
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=otel-gitjob-7d9f-abcde,k8s.pod.uid=1234")
    instrumentation = otel_gitjob.setup(serve=False)
    try:
        assert resource_of(instrumentation)[INSTANCE_ID] == "otel-gitjob-7d9f-abcde"
        assert resource_of(instrumentation)["k8s.pod.uid"] == "1234"
    finally:
        instrumentation.shutdown()


def test_a_resource_passed_in_keeps_its_instance_id_or_gets_one():
    kept = otel_gitjob.setup(serve=False, resource=Resource({INSTANCE_ID: "shard-a"}))
    added = otel_gitjob.setup(serve=False, resource=Resource({"service.name": "gitjob"}))
    try:
        assert resource_of(kept)[INSTANCE_ID] == "shard-a"
        assert resource_of(added)["service.name"] == "gitjob"
        uuid.UUID(str(resource_of(added)[INSTANCE_ID]))
    finally:
        kept.shutdown()
        added.shutdown()
