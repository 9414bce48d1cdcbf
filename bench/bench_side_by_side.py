"""Every figure of the recording-path and memory goals, each beside its baseline, in one run.

    python bench/bench_side_by_side.py              # full size: 10–20 min on 2 shared cores
    python bench/bench_side_by_side.py --quick      # smoke run: 1,000 repos, 3 rounds
    python bench/bench_side_by_side.py --only recording --only markers

* **recording**: one call on a live repo (1,000 live repos on every side), each variant timed back to
  back in every round (the order alternates), ratios the median of the per-round ratios against
  prometheus_client's ``labels(name, ns).inc()`` and against a bare SDK ``counter.add(1, attrs)``.
  ``job_created`` takes each shape a controller holds; a row whose API this checkout lacks says so.
* **memory**, **scrape**: servers in processes of their own (``bench_scale.measure_servers``), three
  processes per variant: RSS per live repo after three scrapes for the GitJob set and the full set;
  the first scrape's server CPU and the steady scrape's (text) for the full set.
* **markers**: ``bench_otlp.py --only outage``: the CPU of flushing 50,000 staleness markers left
  pending by an outage of the OTLP receiver, beside the bare exporter sending as many points.

Prints markdown tables and a ``**Goals:** n/m met`` line; exits 1 when a goal is missed (not with
``--quick`` or ``--no-fail``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
sys.path.insert(0, os.path.dirname(BENCH))

import prometheus_client  # noqa: E402
from _common import goals_summary, load, log, median, paired, stamp, table, timed  # noqa: E402
from _fleet import gitrepo  # noqa: E402
from bench_core import BareSetup, LifecycleSetup  # noqa: E402
from bench_scale import LABELS, measure_servers, memory_table  # noqa: E402

from otel_gitjob import GitJobMetrics, Lifecycle, ObjectRef  # noqa: E402

PROM = "prometheus_client `labels(ns, name).inc()`"
BARE = "bare OTel `counter.add(1, attrs)`"
SERVERS = ["prometheus_client", "bare_sdk", "gitjob_fast"]
MARKERS = 50_000
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
    text = "### Scrape at %s repos, full set (server CPU; %d processes per variant, ratios per round; load %s)\n\n"
    return text % (f"{repos:,}", processes, load()) + table(
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


def bench_markers(rounds: int, markers: int, goals: list[tuple[str, bool]]) -> str:
    """bench_otlp.py's outage benchmark (``--only outage``) in a process of its own; its table as printed."""
    log("markers: bench_otlp.py --only outage, %d markers, %d rounds" % (markers, rounds))
    command = [sys.executable, os.path.join(BENCH, "bench_otlp.py"), "--only", "outage"]
    command += ["--markers", str(markers), "--rounds", str(rounds)]
    environment = dict(os.environ, PYTHONPATH=os.path.dirname(BENCH))  # this checkout, installed or not
    output = subprocess.run(command, capture_output=True, text=True, check=True, env=environment).stdout
    first = re.search(r"^\| first flush once the endpoint is back \| ([0-9.]+) s \|", output, re.MULTILINE)
    pending = re.search(r"^## Flushing (\d+) staleness markers", output, re.MULTILINE)
    if first is None or pending is None:
        raise SystemExit("bench_otlp.py --only outage printed no first-flush figure:\n" + output)
    seconds = float(first.group(1))
    count = f"{int(pending.group(1)):,}"
    goals.append(("%s markers flushed in ≤ 0.5 s of CPU (%.2f s)" % (count, seconds), seconds <= 0.5))
    heading, rest = output[pending.start() :].split("\n", 1)
    return "#%s; load %s\n%s\n" % (heading, load(), rest.split("\n**Goal:**")[0].rstrip())


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
    args = parser.parse_args(argv)
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
