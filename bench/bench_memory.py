"""Where the bytes of a live repo go: tracemalloc by allocation site, one process per variant.

Each variant (bench_scale.py's servers) is built in its own process with ``repos`` repos and
scraped three times (in process, no HTTP); then the heap still held is grouped by allocation
site, reported in bytes per repo. The package's own lines are grouped by the first frame in
``otel_gitjob``, the SDK's by the first frame in ``opentelemetry``, so that an allocation made
by the SDK on our behalf is charged to the SDK line that made it.

    python bench/bench_memory.py                          # 10k repos, bare SDK and gitjob_fast, both sets
    python bench/bench_memory.py --repos 2000 --top 15
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(__file__))

from _fleet import VARIANTS, Server  # noqa: E402

_ROOTS = ("otel_gitjob", "opentelemetry", "prometheus_client")


def _site(frames: tracemalloc.Traceback) -> str:
    """The allocation's innermost frame in a package of interest, else its innermost frame."""
    for frame in reversed(frames):  # innermost last with most_recent_first=False
        path = frame.filename
        for root in _ROOTS:
            at = path.rfind("/%s/" % root)
            if at >= 0:
                return "%s:%d" % (path[at + 1 :], frame.lineno)
    frame = frames[-1]
    return "%s:%d" % (os.path.basename(frame.filename), frame.lineno)


def scrape(server: Server) -> None:
    if server.variant == "gitjob_fast":
        from otel_gitjob._internal.prometheus.renderer import Format

        server.endpoint.render(Format())
    else:
        from prometheus_client import generate_latest

        for _ in range(20):  # the bare SDK keeps its 10 s collection deadline, which tracemalloc's slowness can miss
            try:
                generate_latest(server.registry)
                return
            except Exception:  # MetricsTimeoutError: the next collection has less to create
                continue


def measure(variant: str, repos: int, full: bool, top: int) -> dict[str, object]:
    """Child: build, populate, scrape three times, group what is held by site."""
    tracemalloc.start(25)
    server = Server(variant, full)
    gc.collect()
    before = tracemalloc.take_snapshot()
    for i in range(repos):
        server.add_repo(i)
    httpd = None
    if variant == "gitjob_fast":
        httpd, _ = server.serve()
    for _ in range(3):
        scrape(server)
    gc.collect()
    after = tracemalloc.take_snapshot()
    sites: dict[str, int] = {}
    for stat in after.compare_to(before, "traceback"):
        if stat.size_diff:
            site = _site(stat.traceback)
            sites[site] = sites.get(site, 0) + stat.size_diff
    if httpd is not None:
        httpd.shutdown()
    ranked = sorted(sites.items(), key=lambda item: -item[1])
    files: dict[str, int] = {}
    for site, size in sites.items():
        files[site.rsplit(":", 1)[0]] = files.get(site.rsplit(":", 1)[0], 0) + size
    return {
        "total": sum(sites.values()) / repos,
        "sites": [(s, b / repos) for s, b in ranked[:top]],
        "files": [(f, b / repos) for f, b in sorted(files.items(), key=lambda item: -item[1])[:top]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--repos", type=int, default=10_000)
    parser.add_argument("--variants", default="bare_sdk,gitjob_fast")
    parser.add_argument("--sets", default="gitjob,full")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--gitjob-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.repos, not args.gitjob_only, args.top)))
        return 0
    print("**Run:** %s · load %.2f\n" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()[0]))
    for set_name in args.sets.split(","):
        for variant in args.variants.split(","):
            command = [sys.executable, __file__, "--child", variant, "--repos", str(args.repos), "--top", str(args.top)]
            if set_name == "gitjob":
                command.append("--gitjob-only")
            result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            print(
                "### %s, %s set, %s repos: %.0f B/repo traced\n"
                % (variant, set_name, f"{args.repos:,}", result["total"])
            )
            print("| allocation site | B/repo |\n|---|---:|")
            for site, per in result["sites"]:
                print("| `%s` | %.0f |" % (site, per))
            print("\n| file | B/repo |\n|---|---:|")
            for name, per in result["files"]:
                print("| `%s` | %.0f |" % (name, per))
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
