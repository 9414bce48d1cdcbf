"""Soak: the demo controller at 1,000 repos with continuous create/delete churn, scraped by a real Prometheus.

Reports, every sample period, the process RSS, the Python heap (tracemalloc
off: RSS only, to not slow the controller), the SDK attribute-set count, the
number of live fleet_* series Prometheus sees, scrape health, and whether any
``otel_metric_overflow`` series ever appeared.

    python bench/soak_prometheus.py                 # 10 minutes, 1,000 repos
    python bench/soak_prometheus.py --minutes 1     # a quick look
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))

from prometheus_server import PrometheusServer  # noqa: E402

import otel_gitjob  # noqa: E402
from otel_gitjob._internal.app.demo import DemoSettings, run_demo  # noqa: E402
from otel_gitjob._internal.core import _sdk  # noqa: E402
from otel_gitjob._internal.core.lifecycle import hooks_of


def rss_mib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--sample-seconds", type=float, default=30.0)
    parser.add_argument("--scrape-interval", type=float, default=5.0, help="Prometheus scrape interval (s)")
    args = parser.parse_args()

    # 1,000 live repos stay under the SDK's 2,000 attribute sets per instrument; the churn alone would pass
    # that limit within seconds if deleted repos were not evicted.
    instrumentation = otel_gitjob.setup(port=0)
    prometheus = PrometheusServer(["%s:%d" % instrumentation.address], scrape_interval=args.scrape_interval)
    prometheus.wait_scraping()
    stop = threading.Event()
    settings = DemoSettings(repos=args.repos, interval=0.0005, failure_rate=0.1, delete_rate=0.1, seed=1)
    events: list[int] = []
    controller = threading.Thread(
        target=lambda: events.append(run_demo(instrumentation, settings, stop, say=lambda line: None))
    )
    overflow_seen = False
    rows = []
    started = time.monotonic()
    controller.start()
    try:
        while time.monotonic() - started < args.minutes * 60:
            time.sleep(args.sample_seconds)
            series = prometheus.query('count({__name__=~"fleet_.*"})')
            overflow = prometheus.query('count({otel_metric_overflow="true"})')
            overflow_seen = overflow_seen or bool(overflow)
            (target,) = prometheus.scrape_health()
            rows.append(
                (
                    time.monotonic() - started,
                    rss_mib(),
                    _sdk.series_count(instrumentation.meter_provider),
                    int(float(series[0]["value"][1])) if series else 0,
                    hooks_of(instrumentation.lifecycle).registry.tracked_objects(),
                    hooks_of(instrumentation.lifecycle).registry.blocked_objects(),
                    target["health"],
                    target.get("lastError", ""),
                )
            )
            print("%6.0fs rss=%.1f MiB sdk_sets=%d prom_series=%d tracked=%d blocked=%d health=%s %s" % rows[-1])
        failed_scrapes = prometheus.query(
            'count_over_time(up{job="otel-gitjob"}[1h]) - sum_over_time(up{job="otel-gitjob"}[1h])'
        )
        scrapes = prometheus.query('count_over_time(up{job="otel-gitjob"}[1h])')
        durations = {
            stat: prometheus.query('%s_over_time(scrape_duration_seconds{job="otel-gitjob"}[1h])' % stat)
            for stat in ("avg", "max")
        }
    finally:
        stop.set()
        controller.join()
        prometheus.stop()
        instrumentation.shutdown()

    print()
    print(
        "| t (s) | RSS (MiB) | SDK attribute sets | fleet_* series in Prometheus | tracked repos | blocked | scrape |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        print("| %.0f | %.1f | %d | %d | %d | %d | %s |" % row[:7])
    print()
    print(
        "events simulated: %d; overflow series ever seen: %s; failed scrapes: %s"
        % (events[0] if events else 0, overflow_seen, failed_scrapes[0]["value"][1] if failed_scrapes else "0")
    )
    print(
        "scrapes: %s; scrape duration avg %s s, max %s s (timeout %.2f s)"
        % (
            scrapes[0]["value"][1] if scrapes else "0",
            *(("%.3f" % float(d[0]["value"][1])) if d else "?" for d in durations.values()),
            0.9 * args.scrape_interval,
        )
    )
    half = len(rows) // 2
    if half:
        first, last = rows[half][1], rows[-1][1]
        print("RSS second half: %.1f -> %.1f MiB (%+.1f%%)" % (first, last, 100 * (last - first) / first))
    return 0 if not overflow_seen else 1


if __name__ == "__main__":
    sys.exit(main())
