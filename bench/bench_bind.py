"""The recording path: bound handles and the typed calls, against prometheus_client and the bare SDK, one run.

    python bench/bench_bind.py            # 50,000 calls x 9 rounds
    python bench/bench_bind.py --quick

1,000 live repos on each side (prometheus_client's registry, a MeterProvider
with the lifecycle's views and its Prometheus reader). Every variant runs in
every round, the order reversed on odd rounds; the table gives each variant's
median ns per call and the medians of its per-round ratios to
prometheus_client's ``labels(ns, name).inc()`` and to the bare SDK's
``counter.add(1, attrs)`` with the same attributes.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import kopf  # noqa: E402
import prometheus_client  # noqa: E402
from kubernetes import client as k8s  # noqa: E402
from kubernetes.dynamic.resource import ResourceInstance  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.version import __version__ as sdk_version  # noqa: E402

from otel_gitjob import GitJobMetrics, Lifecycle, LifecyclePrometheusReader, ObjectRef  # noqa: E402

NS, NAME, UID = "ns", "repo-7", "uid-7"
RAW = {
    "apiVersion": "fleet.cattle.io/v1alpha1",
    "kind": "GitRepo",
    "metadata": {"namespace": NS, "name": NAME, "uid": UID},
}

# The shapes a controller holds a GitRepo in.
SHAPES: dict[str, Any] = {
    "(ns, name) tuple": (NS, NAME),
    "ObjectRef": ObjectRef(NS, NAME, UID),
    "dict body": RAW,
    "kopf.Body": kopf.Body(RAW),
    "kopf meta": kopf.Body(RAW).meta,
    "kubernetes client model": k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(namespace=NS, name=NAME, uid=UID)),
    "dynamic-client ResourceInstance": ResourceInstance(None, RAW),
}


def timed(fn: Callable[[int], None], calls: int) -> float:
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        fn(calls)
        return (time.perf_counter() - started) / calls * 1e9
    finally:
        gc.enable()


def loop(call: Callable[[], None]) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            call()

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    calls, rounds = (5_000, 3) if args.quick else (50_000, 9)

    prometheus_client.disable_created_metrics()
    prom = prometheus_client.Counter(
        "fleet_gitjobs_created_success", "x", ("name", "namespace"), registry=prometheus_client.CollectorRegistry()
    )
    lc = Lifecycle()
    provider = MeterProvider(
        metric_readers=[LifecyclePrometheusReader(lc, prometheus_client.CollectorRegistry())], views=lc.views()
    )
    gitjob = GitJobMetrics(provider, lifecycle=lc)
    for i in range(1000):
        prom.labels("repo-%d" % i, NS).inc()
        gitjob.job_created((NS, "repo-%d" % i))
    counter = gitjob._created_success
    attrs = {"namespace": NS, "name": NAME}
    child = prom.labels(NAME, NS)
    handle = lc.bind(counter, (NS, NAME))
    repo_handle = gitjob.bind(RAW)

    variants: dict[str, Callable[[int], None]] = {
        "prometheus_client `labels(ns, name).inc()`": loop(lambda: prom.labels(NAME, NS).inc()),
        "prometheus_client pre-bound child `.inc()`": loop(child.inc),
        "bare OTel `counter.add(1, attrs)`": loop(lambda: counter.add(1, attrs)),
        "`lifecycle.bind(counter, repo)` handle `.add(1)`": loop(lambda: handle.add(1)),
        "`gitjob.bind(repo).job_created()`": loop(repo_handle.job_created),
    }
    for shape, obj in SHAPES.items():
        created = gitjob.job_created
        variants["`job_created(%s)`" % shape] = loop(lambda obj=obj, created=created: created(obj))

    samples: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds):
        for name, fn in variants.items() if r % 2 == 0 else list(variants.items())[::-1]:
            samples[name].append(timed(fn, calls))
    drops = lc.drops.counts()
    provider.shutdown()
    lc.shutdown()

    prom_base = samples["prometheus_client `labels(ns, name).inc()`"]
    sdk_base = samples["bare OTel `counter.add(1, attrs)`"]
    print(
        "opentelemetry-sdk %s, Python %s; load average %.2f %.2f %.2f; %d calls x %d rounds; 1,000 live repos\n"
        % (sdk_version, sys.version.split()[0], *os.getloadavg(), calls, rounds)
    )
    print("| call | ns (median) | vs prometheus_client `labels().inc()` | vs bare SDK `counter.add` |")
    print("|---|---:|---:|---:|")
    for name, s in samples.items():
        print(
            "| %s | %.0f | %.2f× | %.2f× |"
            % (
                name,
                statistics.median(s),
                statistics.median(a / b for a, b in zip(s, prom_base, strict=True)),
                statistics.median(a / b for a, b in zip(s, sdk_base, strict=True)),
            )
        )
    print("\ndropped during the run: %s" % (drops or "none"))
    return 1 if drops else 0


if __name__ == "__main__":
    sys.exit(main())
