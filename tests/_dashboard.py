"""The Grafana dashboard's queries and Fleet's own, for the direct (tests/e2e) and Collector (tests/collector) runs."""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Callable

DASHBOARD = pathlib.Path(__file__).parent.parent / "examples" / "grafana" / "fleet-gitjob.json"
# The GitRepo status the tests give their repos: every status gauge has a value.
STATUS = {
    "desiredReadyClusters": 2,
    "readyClusters": 1,
    "resourceCounts": {
        k: 1 for k in ("desiredReady", "ready", "notReady", "missing", "modified", "orphaned", "unknown", "waitApplied")
    },
}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


# The row of panels about otel-gitjob itself: not per repo, so checked on their own.
SELF_PANEL_PREFIX = "otel-gitjob: "


def panel_expressions() -> list[str]:
    """The per-repo panels' expressions."""
    return [
        target["expr"]
        for panel in dashboard()["panels"]
        if panel["type"] != "row" and not panel["title"].startswith(SELF_PANEL_PREFIX)
        for target in panel["targets"]
    ]


def self_panel_expressions() -> list[str]:
    return [
        target["expr"]
        for panel in dashboard()["panels"]
        if panel["title"].startswith(SELF_PANEL_PREFIX)
        for target in panel["targets"]
    ]


def substitute(expr: str, namespace: str, name: str, rate_interval: str) -> str:
    return expr.replace("$namespace", namespace).replace("$name", name).replace("$__rate_interval", rate_interval)


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


def variable_values(query: Callable[[str], list[dict]], variable: dict, namespace: str, rate_interval: str) -> set[str]:
    """A ``query_result`` variable's options, as Grafana computes them.

    Grafana runs the PromQL as an instant query, formats each sample as
    ``name{label="value",...} value timestamp`` and keeps the regex's first group of each.
    """
    match = re.fullmatch(r"query_result\((.+)\)", variable["query"])
    assert match, variable["query"]
    result = query(substitute(match.group(1), namespace, ".*", rate_interval))
    texts = [
        "%s{%s} %s %d"
        % (
            sample["metric"].get("__name__", ""),
            ",".join('%s="%s"' % (k, v) for k, v in sample["metric"].items() if k != "__name__"),
            sample["value"][1],
            int(float(sample["value"][0]) * 1000),
        )
        for sample in result
    ]
    regex = re.compile(variable["regex"].strip("/"))
    return {found.group(1) for text in texts if (found := regex.search(text))}
