"""The package observes itself: otel_gitjob_* metrics on the same provider, exempt from the lifecycle."""

from __future__ import annotations

import re

from support import samples

from otel_gitjob import GitJobMetrics
from otel_gitjob._internal.core.selfmetrics import SELF_METRICS


def test_self_metrics_report_objects_series_blocks_forgets_and_expiries(gitjob, lifecycle, registry, clock):
    gitjob.job_created(("ns", "a"))
    gitjob.job_succeeded(("ns", "b"), 3.0)  # histogram + transient gauge
    lifecycle.forget(("ns", "a"))
    clock.advance(121)  # past the gauge's TTL
    got = samples(registry)
    assert got[("otel_gitjob_degraded", (("seam", "sdk"),))] == 0
    assert got[("otel_gitjob_unchecked_providers", ())] == 0
    assert got[("otel_gitjob_forgets_total", ())] == 1
    assert got[("otel_gitjob_blocked_objects", ())] == 1
    assert got[("otel_gitjob_expired_series_total", ())] == 1  # the scrape expired the due gauge first
    assert got[("otel_gitjob_objects", (("kind", "GitRepo"),))] == 1  # ns/b, by its histogram
    assert got[("otel_gitjob_series", (("kind", "GitRepo"),))] == 1
    assert got[("otel_gitjob_expiry_lag_seconds", ())] == 0


def test_self_metric_series_are_never_forgotten_with_an_object(provider, lifecycle, registry):
    GitJobMetrics(provider, lifecycle=lifecycle).job_created(("ns", "a"))
    lifecycle.forget({"namespace": "ns", "name": "a"})
    names = {name for name, _labels in samples(registry)}
    assert {"otel_gitjob_forgets_total", "otel_gitjob_objects"} <= names


def test_every_row_is_named_and_documented_the_prometheus_way():
    for row in SELF_METRICS:
        assert row.name.startswith("otel_gitjob_") and not row.name.endswith("_total")
        assert row.kind in ("gauge", "counter") and row.description.endswith(".")


def test_the_self_metrics_page_documents_every_row_under_its_exposed_name(gitjob, lifecycle, registry):
    from pathlib import Path

    page = (Path(__file__).parent.parent / "docs" / "self-metrics.md").read_text()
    documented = set(re.findall(r"^\| `(otel_gitjob_[a-z_]+)` \|", page, flags=re.M))
    exposed = {row.name + ("_total" if row.kind == "counter" else "") for row in SELF_METRICS}
    assert exposed | {"otel_gitjob_dropped_measurements_total"} == documented
    gitjob.job_created(None)  # one drop, so that the dropped-measurements counter is exported too
    scraped = {name for name, _labels in samples(registry) if name.startswith("otel_gitjob_")}
    assert scraped and scraped <= documented
