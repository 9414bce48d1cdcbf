"""Scrape CPU and memory at Fleet scale (issue 13): prometheus_client, the bare SDK, and otel-gitjob's two paths.

Every variant is a server in its own process, populated with the same repos (the
seven GitJob series, plus the ten status gauges for the full set) and scraped
over HTTP by this process. Server CPU per GET is read from ``/proc/<pid>/stat``
around each request (utime + stime, all threads, 10 ms ticks).

    python bench/bench_scale.py                    # 10k comparison, gzip levels, scale curve 1k/10k/30k
    python bench/bench_scale.py --quick            # 1k repos, 3 rounds, curve 500/1k/2k
    python bench/bench_scale.py --only compare --only gzip --only memory --only curve
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from _common import cpu_seconds, goals_summary, load, log, median, paired, rss_kib, stamp, table  # noqa: E402
from _fleet import VARIANTS, Server  # noqa: E402

LABELS = {
    "prometheus_client": "prometheus_client",
    "bare_sdk": "bare OTel SDK + `PrometheusMetricReader`",
    "gitjob_old": "otel-gitjob, today's path (prometheus_client `generate_latest`)",
    "gitjob_fast": "otel-gitjob, fast path (`setup()`'s endpoint)",
}
# What Prometheus 3 sends by default (OpenMetrics first, gzip).
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)


# -- the server process -------------------------------------------------------------------------------------


def serve(variant: str, repos: int, full: bool) -> None:
    """Child process: build, populate, serve, report on stdout, then wait for stdin to close."""
    server = Server(variant, full)
    gc.collect()
    before = rss_kib()
    started = time.perf_counter()
    for i in range(repos):
        server.add_repo(i)
    populate = time.perf_counter() - started
    gc.collect()
    httpd, port = server.serve()
    print(json.dumps({"port": port, "rss_before_kib": before, "populate_s": populate}), flush=True)
    sys.stdin.read()  # the parent closes stdin to stop us
    httpd.shutdown()


class Child:
    """A server process of one variant."""

    def __init__(self, variant: str, repos: int, full: bool = True) -> None:
        self.variant = variant
        self.repos = repos
        args = [sys.executable, __file__, "--serve", variant, "--repos", str(repos)]
        if not full:
            args.append("--gitjob-only")
        self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("%s server did not start" % variant)
        info = json.loads(line)
        self.port = info["port"]
        self.rss_before = info["rss_before_kib"]
        self.populate_s = info["populate_s"]

    def get(self, accept: str | None = None, encoding: str | None = None) -> tuple[int, bytes, float, float]:
        """One GET /metrics: status, body (decompressed), server CPU seconds, wall seconds."""
        request = urllib.request.Request("http://127.0.0.1:%d/metrics" % self.port)
        if accept:
            request.add_header("Accept", accept)
        if encoding:
            request.add_header("Accept-Encoding", encoding)
        cpu = cpu_seconds(self.process.pid)
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                status, body = response.status, response.read()
                if response.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        wall = time.perf_counter() - started
        return status, body, cpu_seconds(self.process.pid) - cpu, wall

    def rss(self) -> int:
        return rss_kib(self.process.pid)

    def stop(self) -> None:
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- 1. the 10k comparison -------------------------------------------------------------------------------------


def bench_compare(repos: int, rounds: int, goals: list[tuple[str, bool]]) -> str:
    log("compare: starting 4 servers with %d repos (full set)" % repos)
    children = []
    try:
        for variant in VARIANTS:
            children.append(Child(variant, repos))
            log("  %s populated in %.1f s" % (variant, children[-1].populate_s))
        bodies = {}
        first = {}
        failed_first: dict[str, int] = {}
        for child in children:  # first scrape: creates the status-gauge series on the OTel variants
            status, body, cpu_s, wall_s = child.get()
            first[child.variant] = (status, cpu_s, wall_s)
            failed_first[child.variant] = 0
            # The bare SDK keeps its 10 s collection deadline: retry until a scrape succeeds.
            while status != 200 and failed_first[child.variant] < 20:
                failed_first[child.variant] += 1
                status, body, _, _ = child.get()
            bodies[child.variant] = body
            child.get()
        identical = _comparable(bodies["gitjob_fast"]) == _comparable(bodies["gitjob_old"])
        size = len(bodies["gitjob_fast"])
        modes = {"plain": (None, None), "prometheus": (PROMETHEUS_ACCEPT, "gzip")}
        cpu: dict[tuple[str, str], list[float]] = {}
        wall: dict[tuple[str, str], list[float]] = {}
        loads = [load()]
        for r in range(rounds):
            order = children if r % 2 == 0 else children[::-1]
            for mode, (accept, encoding) in modes.items():
                for child in order:
                    status, body, c, w = child.get(accept, encoding)
                    assert status == 200, (child.variant, status)
                    if mode == "prometheus" and child.variant == "gitjob_fast" and r == 0:
                        _, old_body, _, _ = children[VARIANTS.index("gitjob_old")].get(accept, encoding)
                        identical = identical and _comparable(body) == _comparable(old_body)
                    cpu.setdefault((child.variant, mode), []).append(c)
                    wall.setdefault((child.variant, mode), []).append(w)
            log("  round %d/%d done (load %s)" % (r + 1, rounds, load()))
            loads.append(load())
        rss = {child.variant: child.rss() - child.rss_before for child in children}
    finally:
        for child in children:
            child.stop()
    text = "### GET /metrics at %s repos, full Fleet set (%s series, %.1f MB of text), %d rounds\n\n" % (
        f"{repos:,}",
        f"{17 * repos:,}",
        size / 1e6,
        rounds,
    )
    text += "Load average (1/5/15 min) during the run: %s … %s. Fast path output identical to today's: %s.\n\n" % (
        loads[0],
        loads[-1],
        identical,
    )
    rows = []
    for variant in VARIANTS:
        row = [LABELS[variant]]
        for mode in modes:
            c = cpu[(variant, mode)]
            row += [
                "%.0f" % (1e3 * median(c)),
                "%.2f×" % paired(c, cpu[("prometheus_client", mode)]),
                "%.2f×" % paired(c, cpu[("gitjob_old", mode)]),
            ]
        row.append("%.1f KB (%.2f×)" % (rss[variant] / repos * 1.024, rss[variant] / rss["prometheus_client"]))
        rows.append(row)
    text += table(
        [
            "server",
            "CPU ms/GET, text, no gzip",
            "vs prometheus_client",
            "vs today's path",
            "CPU ms/GET as Prometheus 3 asks (OpenMetrics, gzip)",
            "vs prometheus_client",
            "vs today's path",
            "RSS per live repo",
        ],
        rows,
    )
    text += "\nFirst scrape after start-up (creates the status-gauge series in the OTel variants):\n\n"
    text += table(
        ["server", "status", "server CPU (s)", "wall (s)", "failed scrapes before the first 200"],
        [
            [LABELS[v], str(first[v][0]), "%.2f" % first[v][1], "%.2f" % first[v][2], str(failed_first[v])]
            for v in VARIANTS
        ],
    )
    fast_vs_prom = paired(cpu[("gitjob_fast", "plain")], cpu[("prometheus_client", "plain")])
    fast_vs_old = paired(cpu[("gitjob_fast", "plain")], cpu[("gitjob_old", "plain")])
    goals.append(("fast path ≤ 0.8× prometheus_client CPU (%.2f×)" % fast_vs_prom, fast_vs_prom <= 0.8))
    goals.append(("fast path ≤ 0.5× today's path CPU (%.2f×)" % fast_vs_old, fast_vs_old <= 0.5))
    goals.append(("fast path byte-identical to today's path", identical))
    return text


def _comparable(body: bytes) -> bytes:
    """The exposition without ``otel_gitjob_degraded``: only the fast path's process checks (and so reports) the
    prometheus seam, which the old path never uses."""
    return b"".join(line for line in body.splitlines(keepends=True) if b"otel_gitjob_degraded" not in line)


# -- 2. memory per repo: GitJob set and full set ---------------------------------------------------------------


def measure_servers(
    variants: list[str], repos: int, full: bool, processes: int = 1, steady: int = 0, steady_variants: Any = ()
) -> dict[str, list[dict[str, Any]]]:
    """Servers side by side: ``processes`` rounds, each with a fresh server process per variant.

    In a round every server is scraped in turn (the order alternates between rounds): the first
    scrape's server CPU; RSS per live repo after three successful scrapes (the bare SDK's 10 s
    deadline can fail its first ones under load; series of observable gauges exist after the first
    successful collection); then ``steady`` more scrapes of each of ``steady_variants``, as text.
    Returns, per variant, one dict per round: ``first_cpu``, ``first_status``, ``failed``,
    ``bytes_per_repo``, ``steady_cpu`` (a list).
    """
    results: dict[str, list[dict[str, Any]]] = {variant: [] for variant in variants}
    for r in range(processes):
        children: list[Child] = []
        try:
            for variant in variants:
                children.append(Child(variant, repos, full))
            order = children if r % 2 == 0 else children[::-1]
            figures = {child.variant: {"failed": 0, "steady_cpu": []} for child in children}
            for child in order:
                status, _, cpu, _ = child.get()
                figures[child.variant].update(first_cpu=cpu, first_status=status)
            for child in order:
                ok = figures[child.variant]["first_status"] == 200
                while ok < 3 and figures[child.variant]["failed"] < 20:
                    status = child.get()[0]
                    ok += status == 200
                    figures[child.variant]["failed"] += status != 200
                figures[child.variant]["bytes_per_repo"] = (child.rss() - child.rss_before) * 1024 / repos
            for _ in range(steady):
                for child in order:
                    if child.variant in steady_variants:
                        status, _, cpu, _ = child.get()
                        assert status == 200, (child.variant, status)
                        figures[child.variant]["steady_cpu"].append(cpu)
        finally:
            for child in children:
                child.stop()
        for variant in variants:
            results[variant].append(figures[variant])
        log(
            "  %s set, processes %d/%d: %s (load %s)"
            % (
                "full" if full else "GitJob",
                r + 1,
                processes,
                ", ".join("%s %.0f B/repo" % (v, figures[v]["bytes_per_repo"]) for v in variants),
                load(),
            )
        )
    return results


def memory_table(per_set: dict[bool, dict[str, list[dict[str, Any]]]], labels: dict[str, str]) -> str:
    """RSS per live repo, median over processes (min–max beside it when more than one), with its ratios."""

    def per_repo(variant: str, full: bool) -> list[float] | None:
        runs = per_set.get(full, {}).get(variant)
        return [run["bytes_per_repo"] for run in runs] if runs else None

    rows = []
    for variant in labels:
        row = [labels[variant]]
        for full in (False, True):
            values = per_repo(variant, full)
            if values is None:
                row += ["–", "–", "–"]
                continue
            cell = "%.1f KB" % (median(values) / 1000)
            if len(values) > 1:
                cell += " (%.1f–%.1f)" % (min(values) / 1000, max(values) / 1000)
            row.append(cell)
            for base in ("prometheus_client", "bare_sdk"):
                base_values = per_repo(base, full)
                row.append("%.2f×" % (median(values) / median(base_values)) if base_values else "–")
        rows.append(row)
    return table(
        [
            "server",
            "GitJob set (7 series)",
            "vs prometheus_client",
            "vs bare SDK",
            "full set (17 series)",
            "vs prometheus_client",
            "vs bare SDK",
        ],
        rows,
    )


def bench_memory(repos: int, variants: list[str], sets: list[str], processes: int) -> str:
    per_set = {
        full: measure_servers(variants, repos, full, processes)
        for full in (False, True)
        if ("full" if full else "gitjob") in sets
    }
    text = "### RSS per live repo at %s repos (after 3 scrapes; %d process(es) per variant; load %s)\n\n" % (
        f"{repos:,}",
        processes,
        load(),
    )
    return text + memory_table(per_set, {variant: LABELS[variant] for variant in variants})


# -- 3. gzip level ---------------------------------------------------------------------------------------------


def bench_gzip(repos: int, rounds: int) -> str:
    server = Server("gitjob_fast", True)
    for i in range(repos):
        server.add_repo(i)
    httpd, _ = server.serve()
    try:
        from otel_gitjob._internal.prometheus.renderer import Format

        server.endpoint.render(Format())
        body = server.endpoint.render(Format())
    finally:
        httpd.shutdown()
        httpd.server_close()
        server.inst.shutdown()
    rows = []
    times: dict[int, list[float]] = {1: [], 6: [], 9: []}
    sizes = {}
    for _ in range(rounds):
        for level in times:
            started = time.process_time()
            compressed = gzip.compress(body, compresslevel=level)
            times[level].append(time.process_time() - started)
            sizes[level] = len(compressed)
    for level in times:
        rows.append(
            [
                str(level),
                "%.0f" % (1e3 * median(times[level])),
                "%.2f×" % (median(times[level]) / median(times[9])),
                "%.2f MB" % (sizes[level] / 1e6),
                "%.1f %%" % (100 * sizes[level] / len(body)),
            ]
        )
    text = "### gzip level on the %s-repo exposition (%.1f MB), %d rounds (load %s)\n\n" % (
        f"{repos:,}",
        len(body) / 1e6,
        rounds,
        load(),
    )
    return text + table(["level", "CPU ms (median)", "vs level 9", "compressed", "of the text"], rows)


# -- 4. scale curve ---------------------------------------------------------------------------------------------


def bench_curve(sizes: list[int], variants: list[str], scrapes: int, goals: list[tuple[str, bool]]) -> str:
    rows = []
    for repos in sizes:
        for variant in variants:
            child = Child(variant, repos)
            try:
                status, _, c1, w1 = child.get()
                statuses = [status]
                while statuses[-1] != 200 and len(statuses) < 20:  # the bare SDK: until its series exist
                    statuses.append(child.get()[0])
                cpus, walls = [], []
                later = []
                for _ in range(scrapes):
                    status, _, c, w = child.get()
                    later.append(status)
                    cpus.append(c)
                    walls.append(w)
                rss = child.rss()
            finally:
                child.stop()
            log("  curve %s %d: first %s %.1fs, then %.2fs" % (variant, repos, statuses[0], w1, median(walls)))
            rows.append(
                [
                    LABELS[variant],
                    f"{repos:,}",
                    "%d (%.1f s, CPU %.1f s)" % (statuses[0], w1, c1),
                    "%d failed, then %s" % (len(statuses) - 1, ", ".join(str(s) for s in later))
                    if len(statuses) > 1
                    else ", ".join(str(s) for s in later),
                    "%.2f" % median(walls),
                    "%.2f" % median(cpus),
                    "%.1f µs" % (1e6 * median(cpus) / (17 * repos)),
                    "%.0f MiB" % (rss / 1024),
                    "%.1f KB" % ((rss - child.rss_before) * 1.024 / repos),
                ]
            )
            if variant == "gitjob_fast":
                goals.append(("%d repos: every scrape 200 from the first" % repos, set(statuses + later) == {200}))
    text = "### Scale curve (full set; %d scrapes after the first; load %s)\n\n" % (scrapes, load())
    return text + table(
        [
            "server",
            "repos",
            "first scrape: status (wall, server CPU)",
            "next scrapes",
            "wall s/scrape",
            "CPU s/scrape",
            "CPU per series",
            "RSS",
            "RSS per repo",
        ],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--repos", type=int, default=10_000)
    parser.add_argument("--gitjob-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", action="append", choices=["compare", "memory", "gzip", "curve"])
    parser.add_argument("--curve", default="1000,10000,30000", help="repo counts of the scale curve")
    parser.add_argument("--curve-variants", default="gitjob_fast,bare_sdk")
    parser.add_argument("--memory-variants", default=",".join(VARIANTS))
    parser.add_argument("--memory-sets", default="gitjob,full")
    parser.add_argument("--memory-processes", type=int, default=1, help="server processes per variant and set")
    parser.add_argument("--no-fail", action="store_true")
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.repos, not args.gitjob_only)
        return 0
    repos, rounds = (1000, 3) if args.quick else (args.repos, args.rounds)
    curve = [500, 1000, 2000] if args.quick else [int(n) for n in args.curve.split(",")]
    only = set(args.only or ["compare", "memory", "gzip", "curve"])
    goals: list[tuple[str, bool]] = []
    sections = []
    if "compare" in only:
        sections.append(bench_compare(repos, rounds, goals))
    if "gzip" in only:
        sections.append(bench_gzip(repos, rounds))
    if "memory" in only:
        sections.append(
            bench_memory(repos, args.memory_variants.split(","), args.memory_sets.split(","), args.memory_processes)
        )
    if "curve" in only:
        sections.append(bench_curve(curve, args.curve_variants.split(","), 3, goals))
    print(stamp() + "\n")
    print("\n".join(sections))
    print(goals_summary(goals))
    return 0 if args.no_fail or args.quick or all(ok for _, ok in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
