"""One controller replica for the scale-out test: a shard's GitRepo listener and GitJob metrics over OTLP.

Run as its own process by ``test_collector_scale_out.py``::

    python replica.py --kube URL --shard ID --otlp URL --instance ID [--interval-ms N]

It is what a sharded GitJob controller with otel-gitjob does: a ``Lifecycle``,
a ``MeterProvider`` exporting through ``LifecycleExporter(lifecycle, OTLPMetricExporter())``
with ``service.instance.id`` naming the replica, a GitRepo ``ResourceListener`` on its
shard (``fleet.cattle.io/shard-ref``) that forgets deleted repos, and a
reconcile loop recording on every repo of its shard. It prints ``ready`` once
the first list is in, and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import kubernetes
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from otel_gitjob import GitJobMetrics, Lifecycle, LifecycleExporter
from otel_gitjob.fleet import GITREPO
from otel_gitjob.listener import ListenerSettings, ResourceListener


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kube", required=True, help="the Kubernetes API server URL")
    parser.add_argument("--shard", required=True, help="Fleet shard id this replica owns")
    parser.add_argument("--otlp", required=True, help="OTLP/HTTP metrics endpoint of the Collector")
    parser.add_argument("--instance", required=True, help="service.instance.id of this replica")
    parser.add_argument("--interval-ms", type=float, default=500.0, help="export interval")
    args = parser.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    lifecycle = Lifecycle()
    reader = PeriodicExportingMetricReader(
        LifecycleExporter(lifecycle, OTLPMetricExporter(endpoint=args.otlp)), export_interval_millis=args.interval_ms
    )
    provider = MeterProvider(
        metric_readers=[reader],
        views=lifecycle.views(),
        resource=Resource.create({"service.name": "gitjob", "service.instance.id": args.instance}),
    )
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle)
    listener = ResourceListener(
        lifecycle,
        GITREPO,
        configuration=kubernetes.client.Configuration(host=args.kube),
        settings=ListenerSettings(shard_id=args.shard, backoff_base=0.05, backoff_cap=0.5, inactivity_timeout=5.0),
        meter_provider=provider,
    )
    listener.start()
    try:
        if not listener.wait_synced(15):
            print("not synced", flush=True)
            return 1
        print("ready", flush=True)
        # The reconcile loop: every repo of the shard gets a job and a commit poll now and then. A repo
        # deleted while a round runs is recorded into a forgotten repo; the lifecycle drops those writes.
        while not stop.wait(0.2):
            for state in listener.cache.snapshot():
                repo = (state.ref.namespace, state.ref.name)
                gitjob.job_created(repo)
                gitjob.job_succeeded(repo, 3.0)
                gitjob.commit_fetched(repo, 0.2)
    finally:
        listener.stop(timeout=5)
        provider.shutdown()
        lifecycle.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
