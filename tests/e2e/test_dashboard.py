"""Fleet's dashboard queries and our Grafana dashboard, against a real Prometheus.

Every PromQL expression of ``examples/grafana/fleet-gitjob.json`` (panels and
template variables) must parse and return data for a live repo, and return
nothing for a deleted one, both with the Prometheus Operator's relabelling (the
repo's namespace in ``exported_namespace``) and with a plain scrape (in
``namespace``). The template variables are evaluated as Grafana does a
``query_result(...)`` variable: the PromQL's result formatted as text, then the
variable's regex.
"""

from __future__ import annotations

import math
import random
import re
import threading
from typing import Any

import _dashboard
import pytest
from _dashboard import STATUS, dashboard, fleets_own_queries, panel_expressions, self_panel_expressions
from prometheus_server import OPERATOR, SCRAPE_INTERVAL, SCRAPE_MODES

# Grafana's $__rate_interval is at least four scrape intervals.
RATE_INTERVAL = "%ds" % int(4 * SCRAPE_INTERVAL)


def substitute(expr: str, namespace: str, name: str) -> str:
    return _dashboard.substitute(expr, namespace, name, RATE_INTERVAL)


def variable_values(stack: Any, variable: dict, namespace: str) -> set[str]:
    return _dashboard.variable_values(stack.prometheus.query, variable, namespace, RATE_INTERVAL)


class Controller:
    """Keeps recording for some repos, like a busy GitJob controller, until told to stop for one."""

    def __init__(self, stack: Any, names: list[str]) -> None:
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


def test_no_dashboard_query_depends_on_the_operator_alone():
    variables = [v["query"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    for expr in panel_expressions() + variables:
        assert 'exported_namespace=""' in expr and "label_values" not in expr, expr


@pytest.mark.parametrize("stack", SCRAPE_MODES, indirect=True)
def test_every_dashboard_query_returns_data_for_a_live_repo_and_nothing_for_a_deleted_one(stack):
    for name in ("live", "doomed"):
        stack.emulator.create(name, status=STATUS)
    controller = Controller(stack, ["live", "doomed"])
    try:
        # Fleet's own dashboards exist for the Operator's relabelling only.
        queries = panel_expressions() + (fleets_own_queries() if stack.prometheus.mode == OPERATOR else [])
        stack.prometheus.wait_scrapes(6)
        for name in ("live", "doomed"):
            for expr in queries:
                query = substitute(expr, "fleet-local", name)
                result = stack.prometheus.wait_for(
                    query,
                    lambda r: r and all(math.isfinite(float(s["value"][1])) for s in r),
                    timeout=10,
                )
                assert {s["metric"].get("name") for s in result} == {name}, query
                if expr in panel_expressions():  # the legend's {{exported_namespace}} is the repo's, either way
                    assert {s["metric"].get("exported_namespace") for s in result} == {"fleet-local"}, query
            # Another namespace selects nothing: the namespace filter works in this setup.
            for expr in panel_expressions():
                assert not stack.prometheus.query(substitute(expr, "cattle-fleet-system", name)), expr

        variables = {v["name"]: v for v in dashboard()["templating"]["list"] if v["type"] == "query"}
        assert variable_values(stack, variables["namespace"], ".*") == {"fleet-local"}
        assert variable_values(stack, variables["name"], "fleet-local") == {"live", "doomed"}
        assert variable_values(stack, variables["name"], "elsewhere") == set()

        controller.drop("doomed")
        stack.emulator.delete("doomed")
        for expr in queries:
            stack.prometheus.wait_for(
                substitute(expr, "fleet-local", "doomed"), lambda r: not r, timeout=4 * SCRAPE_INTERVAL + 10
            )
            assert stack.prometheus.query(substitute(expr, "fleet-local", "live")), expr
    finally:
        controller.stop()


@pytest.mark.parametrize("stack", SCRAPE_MODES, indirect=True)
def test_the_self_metric_panels_show_the_package_at_work(stack):
    exprs = self_panel_expressions()
    assert len(exprs) >= 8
    stack.emulator.create("watched", status=STATUS)
    controller = Controller(stack, ["watched"])
    try:
        stack.prometheus.wait_scrapes(6)
        # Shown from the first scrape on: the state gauges (also at 0) and the listener's figures.
        always = [e for e in exprs if "dropped" not in e and "staleness" not in e]
        for expr in always:
            assert stack.prometheus.query(substitute(expr, ".*", ".*")), expr
        objects = {r["metric"]["kind"]: float(r["value"][1]) for r in stack.prometheus.query("otel_gitjob_objects")}
        assert objects.get("GitRepo", 0) >= 1
        assert float(stack.prometheus.query('max(otel_gitjob_degraded{seam="sdk"})')[0]["value"][1]) == 0
    finally:
        controller.stop()


def test_every_dashboard_expression_parses(stack):
    # The query API answers a parse error with status "error", which api() turns into a failure.
    variables = [v["query"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    for expr in (
        panel_expressions()
        + self_panel_expressions()
        + [re.fullmatch(r"query_result\((.+)\)", v).group(1) for v in variables]
    ):
        stack.prometheus.query(substitute(expr, ".*", ".*"))
