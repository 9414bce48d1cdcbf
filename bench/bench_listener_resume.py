"""Resume vs relist, and event → forget, for the generic listener (a script, not a test).

Against kmock's emulator with resourceVersions (``tests/listener/rv_emulator.py``,
run in this process on its own thread), with the real ``otel_gitjob.Lifecycle``:

* **Stream ends.** A real API server closes every watch at ``timeoutSeconds``
  (5-10 min) and proxies cut idle ones. The listener is taken through S stream
  ends (default 30) with N GitRepos (default 2,000) twice per round: once as
  shipped (resume from the last resourceVersion) and once as the baseline,
  the previous behaviour (a full relist after every stream end). Reported:
  API requests and seconds from each stream end until the new watch receives
  events, medians over the rounds, and the ratio against the baseline.
  kmock ignores ``limit``, so a relist here is one request; against a real
  server it is ``ceil(N / 500)`` pages plus the watch.
* **Event → forget.** D deletions (default 300) out of M GitRepos (default
  500, a fresh emulator: kmock scans every stored object on each DELETE, so
  at thousands its own handling dominates): from sending the DELETE
  until ``forget`` returned (the series is gone from the next collection),
  and from the listener reading the DELETED line until ``forget`` returned
  (the listener's own share). p50 and p99.

Run: ``python bench/bench_listener_resume.py [--repos N] [--stream-ends S] [--rounds R] [--deletes D]
[--delete-repos M]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "listener")]

from kube_emulator import GITREPOS  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from rv_emulator import ListenerEmulator  # noqa: E402

import otel_gitjob  # noqa: E402
from otel_gitjob.fleet import GITREPO  # noqa: E402
from otel_gitjob.listener import ListenerSettings, ResourceListener  # noqa: E402

# kmock ends a stream before the timeoutSeconds asked for, which the listener answers with its backoff;
# a 1-2 ms backoff keeps that from dominating either mode (a real server's timeout end has none).
SETTINGS = ListenerSettings(
    all_shards=True, backoff_base=0.001, backoff_cap=0.002, backoff_jitter=0.0, inactivity_timeout=30.0
)


class RelistEveryTime(ResourceListener):
    """The baseline: the previous behaviour, a full relist after every stream end."""

    def _watch(self, resource_version: str | None) -> str | None:
        try:
            super()._watch(resource_version)
        finally:
            self._position = None  # however the stream ended: relist
        return None


class TimingSink:
    """The real Lifecycle, recording when each ``forget`` returned."""

    def __init__(self, lifecycle: Any) -> None:
        self.lifecycle = lifecycle
        self.forgotten: dict[str, float] = {}

    def forget(self, ref: Any, *, kind: str | None = None) -> int:
        removed = self.lifecycle.forget(ref, kind=kind)
        self.forgotten[ref.name] = time.perf_counter()
        return removed

    def observe(self, ref: Any, *, kind: str | None = None) -> None:
        self.lifecycle.observe(ref, kind=kind)

    # The rest of the listener's Sink, as the lifecycle does it.
    def retain(self, live: Any, *, kind: str | None = None) -> int:
        return int(self.lifecycle.retain(live, kind=kind))

    def forget_series(self, instrument_name: str, attributes: Any, *, kind: str | None = None) -> int:
        return int(self.lifecycle.forget_series(instrument_name, attributes, kind=kind))

    def declare_kind(self, kind: str, *instrument_names: str, owner: Any = None) -> None:
        self.lifecycle.declare_kind(kind, *instrument_names, owner=owner)

    def provider_for(self, meter_provider: Any, user: str) -> Any:
        return self.lifecycle.provider_for(meter_provider, user)

    @property
    def drops(self) -> Any:
        return self.lifecycle.drops

    @property
    def self_metrics(self) -> Any:
        return self.lifecycle.self_metrics


def wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.001)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def stack() -> tuple[Any, Any, Any]:
    lifecycle = otel_gitjob.Lifecycle()
    reader = InMemoryMetricReader()
    return lifecycle, MeterProvider(metric_readers=[reader], views=lifecycle.views()), reader


def stream_ends(emulator: Any, cls: type[ResourceListener], count: int) -> dict[str, float]:
    """Take one listener through ``count`` stream ends; requests and seconds."""
    lifecycle, provider, _ = stack()
    listener = cls(lifecycle, GITREPO, configuration=emulator.configuration, settings=SETTINGS, meter_provider=provider)
    listener.start()
    try:
        wait_for(lambda: listener.wait_synced(0) and listener.watches == 1)
        emulator.wait_watching(1, timeout=60)
        wait_for(lambda: listener.wait_idle(0))
        requests, seconds = listener.requests, []
        for i in range(count):
            started = time.perf_counter()
            emulator.end_watches()
            wait_for(lambda i=i: listener.watches == i + 2)
            emulator.wait_watching(1, timeout=60)
            wait_for(lambda: listener.wait_idle(0))
            seconds.append(time.perf_counter() - started)
        return {
            "requests": listener.requests - requests,
            "relists": listener.relists - 1,
            "seconds": sum(seconds),
            "median_ms": statistics.median(seconds) * 1000,
        }
    finally:
        listener.stop()
        provider.shutdown()
        lifecycle.shutdown()


def deletions(emulator: Any, names: list[str]) -> dict[str, float]:
    lifecycle, provider, reader = stack()
    sink = TimingSink(lifecycle)
    listener = ResourceListener(
        sink, GITREPO, configuration=emulator.configuration, settings=SETTINGS, meter_provider=provider
    )
    read_at: dict[str, float] = {}
    handle_line = listener._handle_line

    def timed(line: str) -> None:
        now = time.perf_counter()
        if '"DELETED"' in line[:40]:
            read_at[json.loads(line)["object"]["metadata"]["name"]] = now
        handle_line(line)

    listener._handle_line = timed  # type: ignore[method-assign]
    listener.start()
    try:
        wait_for(lambda: listener.wait_synced(0) and listener.wait_idle(0))
        emulator.wait_watching(1, timeout=60)
        reader.get_metrics_data()  # the status gauges' series exist
        end_to_end, share = [], []
        for name in names:
            sent = time.perf_counter()
            emulator.delete(name, namespace="bench")
            wait_for(lambda name=name: name in sink.forgotten)
            end_to_end.append(sink.forgotten[name] - sent)
            share.append(sink.forgotten[name] - read_at[name])
        data = reader.get_metrics_data()
        left = {
            p.attributes["name"]
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            for p in m.data.data_points
        } & set(names)
        assert not left, left
        return {
            "p50_ms": percentile(end_to_end, 50) * 1000,
            "p99_ms": percentile(end_to_end, 99) * 1000,
            "share_p50_ms": percentile(share, 50) * 1000,
            "share_p99_ms": percentile(share, 99) * 1000,
        }
    finally:
        listener.stop()
        provider.shutdown()
        lifecycle.shutdown()


def store(emulator: Any, repos: int) -> None:
    """Put ``repos`` GitRepos straight into the emulator's storage (through kmock's API it takes minutes)."""
    print("storing %d GitRepos..." % repos, file=sys.stderr)
    bodies = [emulator.gitrepo("repo-%05d" % i, "bench", status={"readyClusters": 1}) for i in range(repos)]

    def put() -> None:
        for body in bodies:
            emulator.kmock._objects[GITREPOS, "bench", body["metadata"]["name"]] = body

    emulator.call(put)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=2000)
    parser.add_argument("--stream-ends", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--deletes", type=int, default=300)
    parser.add_argument("--delete-repos", type=int, default=500)
    parser.add_argument("--only", choices=("stream-ends", "deletes"), help="run one of the two measurements")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.only != "deletes":
        bench_stream_ends(args)
    if args.only != "stream-ends":
        bench_deletes(args)


def bench_stream_ends(args: argparse.Namespace) -> None:
    emulator = ListenerEmulator()
    try:
        store(emulator, args.repos)
        results: dict[str, list[dict[str, float]]] = {"resume": [], "relist": []}
        for round_ in range(args.rounds):  # interleaved, so a noisy neighbour slows both alike
            for mode, cls in (("relist", RelistEveryTime), ("resume", ResourceListener)):
                print("round %d: %s" % (round_ + 1, mode), file=sys.stderr)
                results[mode].append(stream_ends(emulator, cls, args.stream_ends))

        def med(mode: str, key: str) -> float:
            return statistics.median(r[key] for r in results[mode])

        print("\n%d GitRepos, %d stream ends, medians of %d rounds\n" % (args.repos, args.stream_ends, args.rounds))
        print("| after each stream end | API requests | relists | seconds (total) | per stream end | ratio |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        base = med("relist", "seconds")
        for mode, label in (("relist", "relist (before; baseline)"), ("resume", "resume (now)")):
            print(
                "| %s | %d | %d | %.3f s | %.1f ms | %.3f× |"
                % (
                    label,
                    med(mode, "requests"),
                    med(mode, "relists"),
                    med(mode, "seconds"),
                    med(mode, "median_ms"),
                    med(mode, "seconds") / base,
                )
            )
    finally:
        emulator.close()


def bench_deletes(args: argparse.Namespace) -> None:
    emulator = ListenerEmulator()
    try:
        store(emulator, args.delete_repos)
        names = ["repo-%05d" % i for i in range(min(args.deletes, args.delete_repos))]
        print("deleting %d..." % len(names), file=sys.stderr)
        latency = deletions(emulator, names)
        print("\n| event → forget over %d deletions (%d GitRepos) | p50 | p99 |" % (len(names), args.delete_repos))
        print("| --- | ---: | ---: |")
        print("| DELETE sent → `forget` returned | %.2f ms | %.2f ms |" % (latency["p50_ms"], latency["p99_ms"]))
        print(
            "| DELETED line read → `forget` returned (the listener's share) | %.2f ms | %.2f ms |"
            % (latency["share_p50_ms"], latency["share_p99_ms"])
        )
    finally:
        emulator.close()


if __name__ == "__main__":
    main()
