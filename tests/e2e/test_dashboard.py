"""Fleet's dashboard queries and our Grafana dashboard, against a real Prometheus.

Every PromQL expression of ``examples/grafana/fleet-gitjob.json`` (panels and
template variables) must parse and return data for a live repo, and return
nothing for a deleted one, with the Prometheus Operator's relabelling
(``exported_namespace``).
"""

from __future__ import annotations

import json
import math
import pathlib
import random
import re
import threading
import time

from conftest import Stack
from prometheus_server import SCRAPE_INTERVAL

DASHBOARD = pathlib.Path(__file__).parents[2] / "examples" / "grafana" / "fleet-gitjob.json"
# Grafana's $__rate_interval is at least four scrape intervals.
RATE_INTERVAL = "%ds" % int(4 * SCRAPE_INTERVAL)
STATUS = {
    "desiredReadyClusters": 2,
    "readyClusters": 1,
    "resourceCounts": {
        k: 1 for k in ("desiredReady", "ready", "notReady", "missing", "modified", "orphaned", "unknown", "waitApplied")
    },
}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panel_expressions() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel["targets"]]


def substitute(expr: str, namespace: str, name: str) -> str:
    return expr.replace("$namespace", namespace).replace("$name", name).replace("$__rate_interval", RATE_INTERVAL)


def fleets_own_queries() -> list[str]:
    """The queries of rancher/fleet-dashboards, as ../shared/fleet-metrics.md records them."""
    selector = '{exported_namespace=~"$namespace", name=~"$name"}'
    return [
        "histogram_quantile(%s, sum(increase(fleet_gitrepo_fetch_latest_commit_duration_seconds_bucket%s"
        "[$__rate_interval])) by (le, namespace, name))" % (q, selector)
        for q in ("0.99", "0.90", "0.50")
    ] + [
        "sum(fleet_gitrepo_%s%s) by (exported_namespace, name)" % (gauge, selector)
        for gauge in ("ready_clusters", "desired_ready_clusters", "resources_ready", "resources_not_ready")
    ]


class Controller:
    """Keeps recording for some repos, like a busy GitJob controller, until told to stop for one."""

    def __init__(self, stack: Stack, names: list[str]) -> None:
        self.stack = stack
        self.names = set(names)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        rng = random.Random(3)
        gitjob = self.stack.gitjob
        while not self._stop.wait(0.1):
            with self._lock:
                names = sorted(self.names)
            for name in names:
                repo = ("fleet-local", name)
                gitjob.job_created(repo)
                gitjob.job_creation_failed(repo)
                gitjob.job_succeeded(repo, rng.uniform(1, 100))
                gitjob.commit_fetched(repo, rng.uniform(0.05, 3))
                gitjob.commit_fetch_failed(repo)

    def drop(self, name: str) -> None:
        with self._lock:
            self.names.discard(name)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def test_dashboard_has_every_panel_kind_the_issue_asks_for():
    exprs = " ".join(panel_expressions())
    for needle in (
        "histogram_quantile(0.99",
        "fleet_gitjob_duration_seconds_bucket",
        "fleet_gitrepo_fetch_latest_commit_duration_seconds_bucket",
        "fleet_gitjobs_created_failure_total",
        "fleet_gitrepo_fetch_latest_commit_failure_total",
        "fleet_gitjob_duration_seconds_gauge",
        "fleet_gitrepo_ready_clusters",
        "fleet_gitrepo_resources_wait_applied",
    ):
        assert needle in exprs


def test_every_dashboard_query_returns_data_for_a_live_repo_and_nothing_for_a_deleted_one(stack):
    for name in ("live", "doomed"):
        stack.emulator.create(name, status=STATUS)
    controller = Controller(stack, ["live", "doomed"])
    try:
        queries = panel_expressions() + fleets_own_queries()
        time.sleep(6 * SCRAPE_INTERVAL)
        for name in ("live", "doomed"):
            for expr in queries:
                query = substitute(expr, "fleet-local", name)
                result = stack.prometheus.wait_for(
                    query,
                    lambda r: r and all(math.isfinite(float(s["value"][1])) for s in r),
                    timeout=10,
                )
                assert {s["metric"].get("name") for s in result} == {name}, query

        for variable in dashboard()["templating"]["list"]:
            if variable["type"] != "query":
                continue
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"])
            assert match, variable["query"]
            selector, label = match.groups()
            data = stack.prometheus.api(
                "label/%s/values" % label, **{"match[]": substitute(selector, "fleet-local", ".*")}
            )
            assert ("fleet-local" if label == "exported_namespace" else "live") in data

        controller.drop("doomed")
        stack.emulator.delete("doomed")
        for expr in queries:
            stack.prometheus.wait_for(
                substitute(expr, "fleet-local", "doomed"), lambda r: not r, timeout=4 * SCRAPE_INTERVAL + 10
            )
            assert stack.prometheus.query(substitute(expr, "fleet-local", "live")), expr
    finally:
        controller.stop()


def test_every_dashboard_expression_parses(stack):
    # The query API answers a parse error with status "error", which api() turns into a failure.
    for expr in panel_expressions():
        stack.prometheus.query(substitute(expr, ".*", ".*"))
