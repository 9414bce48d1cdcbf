"""Every figure of the recording-path and memory goals, each beside its baseline, in one run.

    python bench/bench_side_by_side.py              # full size: ~15 min on 2 shared cores
    python bench/bench_side_by_side.py --quick      # smoke run: 1,000 repos, 3 rounds
    python bench/bench_side_by_side.py --only recording --only markers

* **recording**: one call on a live repo (1,000 live repos on every side), each variant timed back to
  back in every round (the order alternates), ratios the median of the per-round ratios against
  prometheus_client's ``labels(name, ns).inc()`` and against a bare SDK ``counter.add(1, attrs)``.
  ``job_created`` takes each shape a controller holds; a row whose API this checkout lacks says so.
* **memory**, **scrape**: servers in processes of their own (``bench_scale.measure_servers``), three
  processes per variant: RSS per live repo after three scrapes for the GitJob set and the full set;
  the first scrape's server CPU and the steady scrape's (text) for the full set.
* **markers**: the CPU of flushing 50,000 pending staleness markers after an outage of the OTLP
  receiver (a sink in a child process answering 400 during the outage).

Prints markdown tables and a ``**Goals:** n/m met`` line; exits 1 when a goal is missed (not with
``--quick`` or ``--no-fail``).
"""

from __future__ import annotations

import argparse
import http.server
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import prometheus_client  # noqa: E402
from _common import goals_summary, load, log, median, paired, stamp, table, timed  # noqa: E402
from _fleet import gitrepo  # noqa: E402
from bench_core import BareSetup, LifecycleSetup  # noqa: E402
from bench_scale import LABELS, measure_servers  # noqa: E402

from otel_gitjob import GitJobMetrics, Lifecycle, ObjectRef  # noqa: E402

PROM = "prometheus_client `labels(ns, name).inc()`"
BARE = "bare OTel `counter.add(1, attrs)`"
SERVERS = ["prometheus_client", "bare_sdk", "gitjob_fast"]
MARKERS = 50_000
SERIES_PER_REPO = 7
UNAVAILABLE = "not available on this commit"


# -- recording ---------------------------------------------------------------------------------------------


def shapes(index: int) -> dict[str, Any]:
    """The one GitRepo in every shape a controller holds it (the live repo ``index``)."""
    import kopf
    import kubernetes.client as k8s
    from kubernetes.dynamic.resource import ResourceInstance

    body = {"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo", **gitrepo(index)}
    meta = body["metadata"]
    return {
        "`(ns, name)` tuple": (meta["namespace"], meta["name"]),
        "`ObjectRef` (`RepoRef`)": ObjectRef(meta["namespace"], meta["name"]),
        "dict body": body,
        "`kopf.Body`": kopf.Body(body),
        "kopf `meta`": kopf.Body(body).meta,
        "kubernetes client model (`V1ObjectMeta`)": k8s.V1ConfigMap(
            metadata=k8s.V1ObjectMeta(namespace=meta["namespace"], name=meta["name"], uid=meta["uid"])
        ),
        "dynamic-client `ResourceInstance`": ResourceInstance(None, body),
    }


def loop(call: Callable[..., Any], *args: Any) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            call(*args)

    return run


def recording_variants(repos: int) -> tuple[dict[str, Callable[[int], None] | str], Callable[[], None]]:
    """name → a loop of ``n`` calls on a live repo, or why the row cannot be measured; and a cleanup."""
    prometheus_client.disable_created_metrics()
    registry = prometheus_client.CollectorRegistry()
    prom = prometheus_client.Counter("fleet_gitjobs_created_success", "x", ("name", "namespace"), registry=registry)
    bare, ours = BareSetup(), LifecycleSetup()
    user_counter = ours.provider.get_meter("bench").create_counter("bench_user_total")
    for i in range(repos):
        obj = gitrepo(i)
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        prom.labels(ns, name).inc()
        bare.instruments["created_success"].add(1, {"namespace": ns, "name": name})
        ours.gitjob.job_created(obj)
        user_counter.add(1, {"namespace": ns, "name": name})
    target = shapes(7)
    body = target["dict body"]
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    variants: dict[str, Callable[[int], None] | str] = {
        PROM: loop(lambda: prom.labels(ns, name).inc()),
        "prometheus_client pre-bound child `.inc()`": loop(prom.labels(ns, name).inc),
        BARE: loop(bare.instruments["created_success"].add, 1, {"namespace": ns, "name": name}),
    }
    for shape, obj in target.items():
        variants["`job_created(x)`, x = %s" % shape] = loop(ours.gitjob.job_created, obj)
    variants["bound handle `gitjob.bind(body).job_created()`"] = _bound(
        lambda: getattr(GitJobMetrics, "bind", None) and ours.gitjob.bind(body).job_created  # type: ignore[attr-defined]
    )
    variants["`Lifecycle.bind(counter, body).add(1)`"] = _bound(
        lambda: getattr(Lifecycle, "bind", None) and ours.lc.bind(user_counter, body).add,  # type: ignore[attr-defined]
        1,
    )

    def cleanup() -> None:
        bare.shutdown()
        ours.shutdown()
        ours.lc.shutdown()

    return variants, cleanup


def _bound(make: Callable[[], Any], *args: Any) -> Callable[[int], None] | str:
    """A loop over a bound handle's method, or UNAVAILABLE when the API is not on this checkout."""
    method = make()
    return loop(method, *args) if method else UNAVAILABLE


def bench_recording(repos: int, rounds: int, calls: int, goals: list[tuple[str, bool]]) -> str:
    log("recording: %d live repos, %d rounds of %d calls" % (repos, rounds, calls))
    variants, cleanup = recording_variants(repos)
    runnable = {name: run for name, run in variants.items() if not isinstance(run, str)}
    try:
        for run in runnable.values():
            run(100)  # warm-up: the first write of a handle, caches
        ns: dict[str, list[float]] = {name: [] for name in runnable}
        loads = [load()]
        for r in range(rounds):
            order = list(runnable.items())
            for name, run in order if r % 2 == 0 else order[::-1]:
                ns[name].append(timed(lambda run=run: run(calls)) / calls * 1e9)
            loads.append(load())
        log("  recording done (load %s)" % load())
    finally:
        cleanup()
    rows = []
    for name, run in variants.items():
        if isinstance(run, str):
            rows.append([name, run, "–", "–", "–"])
            continue
        rows.append(
            [
                name,
                "%.0f" % median(ns[name]),
                "%.0f–%.0f" % (min(ns[name]), max(ns[name])),
                "%.2f×" % paired(ns[name], ns[PROM]),
                "%.2f×" % paired(ns[name], ns[BARE]),
            ]
        )
    text = "### Recording on a live repo (%s live repos, %d rounds × %s calls; load %s … %s)\n\n" % (
        f"{repos:,}",
        rounds,
        f"{calls:,}",
        loads[0],
        loads[-1],
    )
    text += table(
        ["call", "ns (median)", "rounds min–max", "vs prometheus_client `labels().inc()`", "vs bare `counter.add`"],
        rows,
    )
    handle = "bound handle `gitjob.bind(body).job_created()`"
    if handle in ns:
        ratio = paired(ns[handle], ns[PROM])
        child = paired(ns[handle], ns["prometheus_client pre-bound child `.inc()`"])
        goals.append(("bound handle ≤ 1.5× prometheus_client `labels().inc()` (%.2f×)" % ratio, ratio <= 1.5))
        text += "\nMoonshot, the handle ≤ prometheus_client's pre-bound child: %.2f× (%s).\n" % (
            child,
            "met" if child <= 1.0 else "not met",
        )
    else:
        goals.append(("bound handle ≤ 1.5× prometheus_client `labels().inc()` (%s)" % UNAVAILABLE, False))
    typed = {name: paired(ns[name], ns[BARE]) for name in ns if name.startswith("`job_created(x)`")}
    worst = max(typed, key=typed.__getitem__)
    goals.append(
        (
            "every typed call ≤ 1.10× bare `counter.add` (worst: %s %.2f×)" % (worst, typed[worst]),
            typed[worst] <= 1.10,
        )
    )
    return text


# -- memory and scrape (servers in processes of their own) ---------------------------------------------------


def bench_servers(repos: int, processes: int, steady: int, only: set[str], goals: list[tuple[str, bool]]) -> str:
    from bench_scale import memory_table

    sections = []
    per_set: dict[bool, dict[str, list[dict[str, Any]]]] = {}
    if "memory" in only:
        log("memory: GitJob set, %d repos, %d processes per variant" % (repos, processes))
        per_set[False] = measure_servers(SERVERS, repos, False, processes)
    log("memory/scrape: full set, %d repos, %d processes per variant" % (repos, processes))
    steady_variants = ("prometheus_client", "gitjob_fast") if "scrape" in only else ()
    full = measure_servers(SERVERS, repos, True, processes, steady if steady_variants else 0, steady_variants)
    if "memory" in only:
        per_set[True] = full
        sections.append(
            "### RSS per live repo at %s repos (after 3 scrapes; %d processes per variant; load %s)\n\n"
            % (f"{repos:,}", processes, load())
            + memory_table(per_set, {variant: LABELS[variant] for variant in SERVERS})
        )
        for full_set, name in ((False, "GitJob set"), (True, "full set")):
            per_repo = {v: median(run["bytes_per_repo"] for run in per_set[full_set][v]) for v in SERVERS}
            ours, bare, prom = per_repo["gitjob_fast"], per_repo["bare_sdk"], per_repo["prometheus_client"]
            goals.append(("memory, %s ≤ 1.0× bare SDK (%.2f×)" % (name, ours / bare), ours <= bare))
            if not full_set:
                sections[-1] += "\nMoonshot, the GitJob set ≤ prometheus_client: %.2f× (%s).\n" % (
                    ours / prom,
                    "met" if ours <= prom else "not met",
                )
    if "scrape" in only:
        sections.append(scrape_section(full, repos, processes, goals))
    return "\n".join(sections)


def scrape_section(
    full: dict[str, list[dict[str, Any]]], repos: int, processes: int, goals: list[tuple[str, bool]]
) -> str:
    first = {v: [run["first_cpu"] for run in full[v]] for v in SERVERS}
    steady = {v: [median(run["steady_cpu"]) for run in full[v] if run["steady_cpu"]] for v in SERVERS}
    rows = []
    for variant in SERVERS:
        status = ", ".join(
            "%d%s" % (run["first_status"], " (%d failed)" % run["failed"] if run["failed"] else "")
            for run in full[variant]
        )
        row = [
            LABELS[variant],
            status,
            "%.2f" % median(first[variant]),
            "%.2f×" % paired(first[variant], first["prometheus_client"]),
        ]
        if steady[variant]:
            row += [
                "%.0f" % (1e3 * median(steady[variant])),
                "%.2f×" % paired(steady[variant], steady["prometheus_client"]),
            ]
        else:
            row += ["–", "–"]
        rows.append(row)
    first_ratio = paired(first["gitjob_fast"], first["prometheus_client"])
    goals.append(("first scrape ≤ prometheus_client (%.2f×)" % first_ratio, first_ratio <= 1.0))
    steady_ratio = paired(steady["gitjob_fast"], steady["prometheus_client"])
    goals.append(("steady scrape as text ≤ 0.5× prometheus_client (%.2f×)" % steady_ratio, steady_ratio <= 0.5))
    text = (
        "### Scrape at %s repos, full set (server CPU; %d processes per variant, ratios per process round; load %s)\n\n"
        % (
            f"{repos:,}",
            processes,
            load(),
        )
    )
    return text + table(
        [
            "server",
            "first scrape status",
            "first scrape CPU s (median)",
            "vs prometheus_client",
            "steady scrape CPU ms, text (median)",
            "vs prometheus_client",
        ],
        rows,
    )


# -- staleness markers after an outage -----------------------------------------------------------------------


def serve_sink(port_file: str) -> None:
    """Child process: an OTLP/HTTP sink; ``POST /outage/on`` makes it answer 400 until ``/outage/off``."""
    state = {"down": False}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path.startswith("/outage/"):
                state["down"] = self.path == "/outage/on"
            self.send_response(400 if state["down"] and self.path == "/v1/metrics" else 200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file, "w") as file:
        file.write(str(server.server_address[1]))
    server.serve_forever()


class Sink:
    def __init__(self) -> None:
        with tempfile.NamedTemporaryFile("r", suffix=".port", delete=False) as file:
            port_file = file.name
        self.process = subprocess.Popen([sys.executable, __file__, "--sink", port_file])
        deadline = time.monotonic() + 30
        port = ""
        while not port and time.monotonic() < deadline:
            time.sleep(0.05)
            with open(port_file) as file:
                port = file.read().strip()
        os.unlink(port_file)
        if not port:
            self.process.kill()
            raise SystemExit("the OTLP sink did not start")
        self.url = "http://127.0.0.1:%s" % port

    def outage(self, down: bool) -> None:
        urllib.request.urlopen(urllib.request.Request(self.url + "/outage/" + ("on" if down else "off"), data=b""))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def flush_round(sink: Sink, repos: int) -> tuple[int, float, float, int, float]:
    """Forget ``repos`` repos during an outage; the flush once the sink is back.

    Returns the markers pending, the CPU and wall seconds of the export that flushes them, the
    markers left after it, and the CPU seconds of the next export (same live series, nothing pending).
    """
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    from otel_gitjob import LifecycleExporter

    lifecycle = Lifecycle()
    exporter = LifecycleExporter(lifecycle, OTLPMetricExporter(endpoint=sink.url + "/v1/metrics", timeout=60))
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=math.inf)
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views(cardinality_limit=repos + 1000))
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle)
    try:
        steady = [
            ("steady", "repo-%d" % i) for i in range(100)
        ]  # live beside the deleted ones: the export is not empty
        deleted = [("ns-%d" % (i % 50), "repo-%d" % i) for i in range(repos)]
        for repo in steady + deleted:
            gitjob.job_created(repo)
            gitjob.job_creation_failed(repo)
            gitjob.job_succeeded(repo, 12.0)
            gitjob.commit_fetched(repo, 0.3)
            gitjob.commit_fetch_failed(repo)
        reader.collect()
        sink.outage(True)
        for repo in deleted:
            lifecycle.forget(repo)
        reader.collect()  # fails: the markers wait
        staleness = exporter.staleness
        assert staleness is not None
        pending = staleness.pending()
        sink.outage(False)
        cpu, wall = time.process_time(), time.perf_counter()
        reader.collect()  # the next export after the outage carries them
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        left = staleness.pending()
        plain = time.process_time()
        reader.collect()  # the same live series, nothing pending: the baseline
        plain = time.process_time() - plain
    finally:
        provider.shutdown()
        lifecycle.shutdown()
    return pending, cpu, wall, left, plain


def bench_markers(rounds: int, markers: int, goals: list[tuple[str, bool]]) -> str:
    repos = markers // SERIES_PER_REPO  # at most the default bound of pending markers: none dropped
    log("markers: %d repos forgotten during an outage, %d rounds" % (repos, rounds))
    sink = Sink()
    try:
        runs = [flush_round(sink, repos) for _ in range(rounds)]
    finally:
        sink.stop()
    pending, left = runs[-1][0], max(run[3] for run in runs)
    cpu, wall, plain = ([run[i] for run in runs] for i in (1, 2, 4))
    text = "### Flushing %s pending staleness markers after an outage (%d rounds; load %s)\n\n" % (
        f"{pending:,}",
        rounds,
        load(),
    )
    text += table(
        ["measure", "median", "rounds min–max"],
        [
            [
                "CPU of the first export after the outage (100 live repos + the markers; the goal's figure)",
                "%.2f s" % median(cpu),
                "%.2f–%.2f" % (min(cpu), max(cpu)),
            ],
            ["wall time of that export", "%.2f s" % median(wall), "%.2f–%.2f" % (min(wall), max(wall))],
            [
                "CPU of the next export (same live repos, nothing pending)",
                "%.2f s" % median(plain),
                "%.2f–%.2f" % (min(plain), max(plain)),
            ],
            ["markers left pending after it", str(left), "–"],
        ],
    )
    goals.append(
        (
            "%s markers flushed in ≤ 0.5 s of CPU (%.2f s)" % (f"{pending:,}", median(cpu)),
            median(cpu) <= 0.5 and left == 0,
        )
    )
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 repos, 3 rounds, 1 process per variant")
    parser.add_argument("--only", action="append", choices=["recording", "memory", "scrape", "markers"])
    parser.add_argument("--repos", type=int, default=10_000, help="live repos of the servers")
    parser.add_argument("--processes", type=int, default=3, help="server processes per variant")
    parser.add_argument("--rounds", type=int, default=15, help="recording rounds")
    parser.add_argument("--calls", type=int, default=50_000, help="calls per recording round")
    parser.add_argument("--steady", type=int, default=4, help="steady scrapes per server process")
    parser.add_argument("--no-fail", action="store_true")
    parser.add_argument("--sink", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sink:
        serve_sink(args.sink)
        return 0
    if args.quick:
        args.repos, args.processes, args.rounds, args.calls, args.steady = 1000, 1, 3, 5_000, 2
    only = set(args.only or ["recording", "memory", "scrape", "markers"])
    goals: list[tuple[str, bool]] = []
    sections = ["%s · load at start %s\n" % (stamp(), load())]
    if "recording" in only:
        sections.append(bench_recording(1000, args.rounds, args.calls, goals))
    if only & {"memory", "scrape"}:
        sections.append(bench_servers(args.repos, args.processes, args.steady, only, goals))
    if "markers" in only:
        sections.append(bench_markers(1 if args.quick else 3, 5_000 if args.quick else MARKERS, goals))
    print("\n".join(sections))
    print(goals_summary(goals))
    return 0 if args.no_fail or args.quick or all(ok for _, ok in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
