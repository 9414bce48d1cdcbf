"""Benchmark of the GitRepo listener against kmock's Kubernetes emulator (a script, not a test).

Measures:

* relist of N GitRepos (default 10,000): time from ``start()`` until the cache
  holds them all, and until every ``observe`` reached the sink; peak Python
  memory of the listener process during one relist (tracemalloc). The emulator
  runs in a child process so that neither its CPU nor its memory is counted.
* DELETED → ``forget``: for D deletions (default 1,000) out of the N repos,
  with the real ``otel_gitjob.Lifecycle`` as the sink when it is importable,
  the latency from sending the DELETE request until ``forget`` returned
  (end to end, includes the API round trip and kmock's own O(N) handling of a
  DELETE), and from the listener reading the DELETED line until ``forget``
  returned (the listener's own share). Afterwards one collection checks that
  no series of a deleted repo is left.

Goals: relist < 2 s, p99 < 50 ms. Run: ``python bench/bench_listener.py [--repos N] [--deletes D]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import multiprocessing
import statistics
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GROUP, VERSION, PLURAL = "fleet.cattle.io", "v1alpha1", "gitrepos"
NAMESPACE = "fleet-default"


def gitrepo(i: int) -> dict[str, Any]:
    """A realistic-size GitRepo (spec, status with resource counts, a few conditions)."""
    name = "repo-%05d" % i
    return {
        "apiVersion": "%s/%s" % (GROUP, VERSION),
        "kind": "GitRepo",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": "00000000-0000-0000-0000-%012d" % i,
            "resourceVersion": str(1000 + i),
            "labels": {"team": "t%d" % (i % 10)},
        },
        "spec": {
            "repo": "https://ci-bot:token%d@git.example.com/org/%s.git" % (i, name),
            "branch": "main",
            "paths": ["apps/%s" % name, "infra"],
            "targets": [{"clusterSelector": {"matchLabels": {"env": "prod"}}}],
        },
        "status": {
            "desiredReadyClusters": 3,
            "readyClusters": 3,
            "commit": "%040x" % i,
            "resourceCounts": {
                "desiredReady": 12,
                "ready": 12,
                "notReady": 0,
                "missing": 0,
                "modified": 0,
                "orphaned": 0,
                "unknown": 0,
                "waitApplied": 0,
            },
            "conditions": [
                {"type": t, "status": "True", "lastUpdateTime": "2026-01-01T00:00:00Z"}
                for t in ("Ready", "Accepted", "Stalled", "Reconciling")
            ],
        },
    }


def serve_emulator(repos: int, conn: Any) -> None:
    """Child process: kmock's emulator with ``repos`` GitRepos, until terminated."""
    import kmock

    resource = kmock.resource(GROUP, VERSION, PLURAL)

    async def main() -> None:
        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
            emulator.resources[resource] = kmock.ResourceInfo(kind="GitRepo", namespaced=True)
            for i in range(repos):
                emulator.objects[resource, NAMESPACE, "repo-%05d" % i] = gitrepo(i)
            conn.send(server.port)
            await asyncio.Event().wait()

    asyncio.run(main())


class TimingSink:
    """Wraps a lifecycle (or none: the listener alone) as the listener's Sink; records when each ``forget`` returned."""

    def __init__(self, inner: Any) -> None:
        from otel_gitjob._internal.core.drops import DropRecorder
        from otel_gitjob._internal.core.selfmetrics import SelfMetrics

        self.inner = inner
        self.forgotten: dict[str, float] = {}
        self.observed = 0
        self.drops = inner.drops if inner is not None else DropRecorder()
        self.self_metrics = inner.self_metrics if inner is not None else SelfMetrics()

    def forget(self, ref: Any, *, kind: str | None = None) -> int:
        removed = self.inner.forget(ref, kind=kind) if self.inner is not None else 0
        self.forgotten[ref.name] = time.perf_counter()
        return int(removed)

    def observe(self, ref: Any, *, kind: str | None = None) -> None:
        if self.inner is not None:
            self.inner.observe(ref, kind=kind)
        self.observed += 1

    def retain(self, live: Any, *, kind: str | None = None) -> int:
        return int(self.inner.retain(live, kind=kind)) if self.inner is not None else 0

    def forget_series(self, instrument_name: str, attributes: Any, *, kind: str | None = None) -> int:
        return int(self.inner.forget_series(instrument_name, attributes, kind=kind)) if self.inner is not None else 0

    def declare_kind(self, kind: str, *instrument_names: str, owner: Any = None) -> None:
        if self.inner is not None:
            self.inner.declare_kind(kind, *instrument_names, owner=owner)

    def provider_for(self, meter_provider: Any, user: str) -> Any:
        if self.inner is not None:
            return self.inner.provider_for(meter_provider, user)
        from opentelemetry.metrics import get_meter_provider

        return meter_provider if meter_provider is not None else get_meter_provider()


def make_stack() -> tuple[Any, Any, Any]:
    """(lifecycle or None, meter provider, reader)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    try:
        import otel_gitjob

        lifecycle = otel_gitjob.Lifecycle()
        return lifecycle, MeterProvider(metric_readers=[reader], views=lifecycle.views()), reader
    except (ImportError, AttributeError):
        return None, MeterProvider(metric_readers=[reader]), reader


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def bench_relist(configuration: Any, repos: int, runs: int) -> dict[str, float]:
    from otel_gitjob._internal.fleet.presets import GITREPO
    from otel_gitjob._internal.kube import ListenerSettings
    from otel_gitjob._internal.kube.listener import ResourceListener

    synced, observed, peaks = [], [], []
    for run in range(runs + 1):  # the last run is under tracemalloc, for memory only
        lifecycle, provider, _ = make_stack()
        sink = TimingSink(lifecycle)
        listener = ResourceListener(
            sink,
            GITREPO,
            configuration=configuration,
            settings=ListenerSettings(all_shards=True),
            meter_provider=provider,
        )
        gc.collect()
        traced = run == runs
        if traced:
            tracemalloc.start()
        started = time.perf_counter()
        listener.start()
        assert listener.wait_synced(60)
        t_synced = time.perf_counter() - started
        assert listener.wait_idle(60) and sink.observed == repos, sink.observed
        t_observed = time.perf_counter() - started
        if traced:
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        else:
            synced.append(t_synced)
            observed.append(t_observed)
        assert listener.stop(10)
        assert len(listener.cache) == repos
        provider.shutdown()
    return {
        "synced": statistics.median(synced),
        "observed": statistics.median(observed),
        "peak_mib": peaks[0] / 2**20,
    }


def bench_deletes(configuration: Any, repos: int, deletes: int) -> dict[str, Any]:
    import kubernetes

    from otel_gitjob._internal.fleet.presets import GITREPO
    from otel_gitjob._internal.kube import ListenerSettings
    from otel_gitjob._internal.kube.listener import ResourceListener

    lifecycle, provider, reader = make_stack()
    sink = TimingSink(lifecycle)
    listener = ResourceListener(
        sink, GITREPO, configuration=configuration, settings=ListenerSettings(all_shards=True), meter_provider=provider
    )
    received: dict[str, float] = {}
    handle_line = listener._handle_line

    def timed_handle_line(line: str) -> None:  # instrument the watch thread: when did DELETED arrive?
        if line.startswith('{"type": "DELETED"'):
            received[line.split('"name": "', 1)[1].split('"', 1)[0]] = time.perf_counter()
        handle_line(line)

    listener._handle_line = timed_handle_line  # type: ignore[method-assign]
    listener.start()
    assert listener.wait_synced(60) and listener.wait_idle(60)
    time.sleep(0.5)  # let the watch subscribe (kmock drops events sent before that)
    api = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(configuration))
    e2e, internal, round_trip = [], [], []
    step = max(1, repos // deletes)
    names = ["repo-%05d" % i for i in range(0, repos, step)][:deletes]
    for name in names:
        sent = time.perf_counter()
        api.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)
        round_trip.append(time.perf_counter() - sent)
        deadline = sent + 5
        while name not in sink.forgotten:
            if time.perf_counter() > deadline:
                raise RuntimeError("no forget for %s" % name)
            time.sleep(0.0002)
        e2e.append(sink.forgotten[name] - sent)
        internal.append(sink.forgotten[name] - received[name])
    data = reader.get_metrics_data()
    leftover = {
        p.attributes.get("name")
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        for p in m.data.data_points
    } & set(names)
    assert listener.stop(10)
    provider.shutdown()
    return {
        "sink": "otel_gitjob.Lifecycle" if lifecycle is not None else "no-op",
        "e2e_p50": percentile(e2e, 50) * 1e3,
        "e2e_p99": percentile(e2e, 99) * 1e3,
        "int_p50": percentile(internal, 50) * 1e3,
        "int_p99": percentile(internal, 99) * 1e3,
        "rt_p50": percentile(round_trip, 50) * 1e3,
        "rt_p99": percentile(round_trip, 99) * 1e3,
        "leftover": len(leftover),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=10_000)
    parser.add_argument("--deletes", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=5, help="relist runs (median)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import kubernetes

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=serve_emulator, args=(args.repos, child), daemon=True)
    server.start()
    try:
        if not parent.poll(120):
            raise RuntimeError("emulator did not start")
        configuration = kubernetes.client.Configuration(host="http://127.0.0.1:%d" % parent.recv())
        relist = bench_relist(configuration, args.repos, args.runs)
        deletes = bench_deletes(configuration, args.repos, args.deletes)
    finally:
        server.terminate()
        server.join(10)

    print()
    print("| measurement | result | goal |")
    print("| --- | ---: | ---: |")
    print(
        "| relist %d GitRepos: start → cache synced (median of %d) | %.3f s | < 2 s |"
        % (args.repos, args.runs, relist["synced"])
    )
    print(
        "| relist %d GitRepos: start → every observe applied (median) | %.3f s | |" % (args.repos, relist["observed"])
    )
    print("| relist peak Python memory (tracemalloc, listener process) | %.1f MiB | |" % relist["peak_mib"])
    print("| DELETED → forget, end to end from the DELETE request, p50 | %.2f ms | |" % deletes["e2e_p50"])
    print("| DELETED → forget, end to end from the DELETE request, p99 | %.2f ms | < 50 ms |" % deletes["e2e_p99"])
    print(
        "| of which: the DELETE request's round trip to kmock, p50 / p99 | %.2f / %.2f ms | |"
        % (deletes["rt_p50"], deletes["rt_p99"])
    )
    print("| DELETED line read → forget returned, p50 | %.2f ms | |" % deletes["int_p50"])
    print("| DELETED line read → forget returned, p99 | %.2f ms | < 50 ms |" % deletes["int_p99"])
    print("| series of deleted repos left in the next collect | %d | 0 |" % deletes["leftover"])
    print()
    print(
        "sink: %s; %d deletions out of %d repos; emulator: kmock in a child process; %s threads"
        % (deletes["sink"], args.deletes, args.repos, threading.active_count())
    )


if __name__ == "__main__":
    main()
