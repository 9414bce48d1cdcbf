"""The Prometheus output is Fleet's: names, types, buckets, labels."""

from __future__ import annotations

from typing import Any

import pytest
import support
from prometheus_client import generate_latest
from support import sample_names_for, samples

from otel_gitjob import ObjectRef
from otel_gitjob._internal.prometheus.endpoint import MetricsEndpoint
from otel_gitjob._internal.prometheus.renderer import EXPORTER_SUPPORTED

REPO = ObjectRef("fleet-local", "simple")
LABELS = (("name", "simple"), ("namespace", "fleet-local"))


@pytest.fixture(autouse=True)
def scrape_through_the_endpoint(degraded_seam: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs healthy and with each seam forced degraded, its scrapes served by the ``/metrics`` endpoint.

    The prometheus seam healthy: the fast renderer (the exporter's own path on exporters before 0.66).
    Degraded: prometheus_client's own rendering of the registry, through public API only.
    """

    def scrape(registry: Any) -> bytes:
        # The reader behind the registry's collector (test-only reach into the exporter's collector).
        readers = [c._callback.__self__ for c in registry._collector_to_names if getattr(c, "_callback", None)]
        endpoint = MetricsEndpoint(registry, readers[0])
        assert endpoint.fast_path() is (degraded_seam != "prometheus" and EXPORTER_SUPPORTED)
        return b"".join(endpoint.bake(None, None, {})[2])

    monkeypatch.setattr(support, "generate_latest", scrape)


def test_healthy_repo_exports_the_five_non_failure_metrics_and_no_failure_series(gitjob, registry):
    gitjob.job_created(REPO)
    gitjob.job_succeeded(REPO, 12.5)
    gitjob.commit_fetched(REPO, 0.3)

    names = {n for n in sample_names_for(registry, name="simple") if not n.endswith(("_bucket", "_sum", "_count"))}
    histogram_names = {n for n in sample_names_for(registry, name="simple") if n.endswith("_count")}
    assert names == {
        "fleet_gitjobs_created_success_total",
        "fleet_gitjob_duration_seconds_gauge",
        "fleet_gitrepo_fetch_latest_commit_success_total",
    }
    assert histogram_names == {
        "fleet_gitjob_duration_seconds_count",
        "fleet_gitrepo_fetch_latest_commit_duration_seconds_count",
    }
    text = generate_latest(registry).decode()
    assert "failure" not in text


def test_labels_are_exactly_name_and_namespace_without_scope_or_target_info(gitjob, registry):
    gitjob.job_created(REPO)
    gitjob.job_creation_failed(REPO)

    text = generate_latest(registry).decode()
    assert "otel_scope" not in text
    assert "target_info" not in text
    got = samples(registry)
    assert got[("fleet_gitjobs_created_success_total", LABELS)] == 1.0
    assert got[("fleet_gitjobs_created_failure_total", LABELS)] == 1.0


def test_histogram_buckets_are_fleets_with_whole_numbers_as_le_1(gitjob, registry):
    gitjob.job_succeeded(REPO, 4)
    gitjob.commit_fetched(REPO, 0.15)
    text = generate_latest(registry).decode()

    def bounds(metric: str) -> list[str]:
        prefix = metric + '_bucket{le="'
        return [line[len(prefix) :].split('"', 1)[0] for line in text.splitlines() if line.startswith(prefix)]

    assert bounds("fleet_gitjob_duration_seconds") == [
        "1", "2", "5", "10", "30", "60", "180", "300", "600", "1200", "1800", "3600", "+Inf",
    ]  # fmt: skip
    assert bounds("fleet_gitrepo_fetch_latest_commit_duration_seconds") == [
        "0.1", "0.2", "0.5", "1", "2", "5", "10", "30", "+Inf",
    ]  # fmt: skip
    got = samples(registry)
    assert got[("fleet_gitjob_duration_seconds_bucket", (("le", "2"), *LABELS))] == 0
    assert got[("fleet_gitjob_duration_seconds_bucket", (("le", "5"), *LABELS))] == 1
    assert got[("fleet_gitjob_duration_seconds_sum", LABELS)] == 4
    assert got[("fleet_gitrepo_fetch_latest_commit_duration_seconds_bucket", (("le", "0.2"), *LABELS))] == 1


def test_failures_appear_on_first_failure_with_exact_counts(gitjob, registry):
    gitjob.job_created(REPO)
    assert not [k for k in samples(registry) if "failure" in k[0]]

    gitjob.job_creation_failed(REPO)
    gitjob.job_creation_failed(REPO)
    gitjob.commit_fetch_failed(REPO)

    got = samples(registry)
    assert got[("fleet_gitjobs_created_failure_total", LABELS)] == 2
    assert got[("fleet_gitrepo_fetch_latest_commit_failure_total", LABELS)] == 1


def test_commit_fetch_timer_records_success_and_duration_or_failure_and_reraises(gitjob, registry):
    with gitjob.time_commit_fetch(REPO):
        pass
    try:
        with gitjob.time_commit_fetch(REPO):
            raise TimeoutError("git host unreachable")
    except TimeoutError:
        pass
    else:
        raise AssertionError("the timer swallowed the exception")

    got = samples(registry)
    assert got[("fleet_gitrepo_fetch_latest_commit_success_total", LABELS)] == 1
    assert got[("fleet_gitrepo_fetch_latest_commit_failure_total", LABELS)] == 1
    assert got[("fleet_gitrepo_fetch_latest_commit_duration_seconds_count", LABELS)] == 1


def test_repo_forms_a_controller_holds_all_land_on_the_same_series(gitjob, registry):
    from kubernetes.client import V1ObjectMeta

    class Model:
        metadata = V1ObjectMeta(namespace="fleet-local", name="simple", uid="u1")

    gitjob.job_created(REPO)
    gitjob.job_created(("fleet-local", "simple"))
    gitjob.job_created({"metadata": {"namespace": "fleet-local", "name": "simple"}})
    gitjob.job_created({"type": "MODIFIED", "object": {"metadata": {"namespace": "fleet-local", "name": "simple"}}})
    gitjob.job_created(Model())

    assert samples(registry)[("fleet_gitjobs_created_success_total", LABELS)] == 5


def test_prefix_is_configurable(provider, lifecycle, registry):
    from otel_gitjob import GitJobMetrics

    metrics = GitJobMetrics(provider, lifecycle=lifecycle, prefix="acme")
    metrics.job_created(REPO)
    assert ("acme_gitjobs_created_success_total", LABELS) in samples(registry)


def test_every_row_of_the_instrument_table_is_a_declared_attribute():
    from otel_gitjob import GITJOB_INSTRUMENTS, GitJobMetrics

    declared = {name for name in GitJobMetrics.__annotations__ if name.startswith("_")}
    assert {"_" + spec.key for spec in GITJOB_INSTRUMENTS} == declared
    assert len({spec.suffix for spec in GITJOB_INSTRUMENTS}) == len(GITJOB_INSTRUMENTS) == 7
