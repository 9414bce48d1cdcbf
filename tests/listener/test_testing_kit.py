"""``otel_gitjob.testing``: the kit a controller author unit-tests with, and its pytest plugin.

The plugin is tested as users meet it: pytester runs a test file in a subprocess, where pytest loads
it from the installed distribution's ``pytest11`` entry point.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from otel_gitjob.testing import MetricsKit, watch_event

pytest_plugins = ("pytester",)

REPO = {
    "apiVersion": "fleet.cattle.io/v1alpha1",
    "kind": "GitRepo",
    "metadata": {"namespace": "fleet-local", "name": "app", "uid": "uid-1", "resourceVersion": "1"},
    "spec": {"repo": "https://example.test/app", "branch": "main", "paths": ["a", "b"]},
    "status": {"readyClusters": 2, "desiredReadyClusters": 3},
}
IDENTITY = {"namespace": "fleet-local", "name": "app"}
LABELS = {**IDENTITY, "repo": "https://example.test/app", "branch": "main", "paths": "a;b"}

USER_TESTS = """
from otel_gitjob.testing import watch_event

REPO = {"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo",
        "metadata": {"namespace": "fleet-local", "name": "app", "uid": "u1"},
        "spec": {"repo": "https://example.test/app"}, "status": {"readyClusters": 2}}


def reconcile(repo, gitjob):            # the controller under test: records a job for the repo
    gitjob.job_created(repo)


def test_created_then_forgotten(otel_gitjob_metrics):
    kit = otel_gitjob_metrics
    listener = kit.listener()
    kit.feed(listener, [watch_event("ADDED", REPO)])
    reconcile(REPO, kit.gitjob)
    assert kit.get_sample_value(
        "fleet_gitjobs_created_success_total", {"namespace": "fleet-local", "name": "app"}
    ) == 1
    kit.feed(listener, [watch_event("DELETED", REPO)])
    kit.assert_forgotten(REPO)


def test_a_controller_that_records_after_the_deletion(otel_gitjob_metrics):
    kit = otel_gitjob_metrics
    reconcile(REPO, kit.gitjob)
    kit.lifecycle.forget(REPO)
    kit.lifecycle.observe(REPO)          # the bug: the deleted repo is brought back to life ...
    reconcile(REPO, kit.gitjob)          # ... and recorded again
    kit.assert_forgotten(REPO)
"""


def test_the_plugin_is_loaded_from_the_entry_point_and_can_fail(pytester):
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*AssertionError: fleet-local/app still has 1 series: fleet_gitjobs_created_success_total*"]
    )


def test_get_sample_value_reads_what_prometheus_would_scrape():
    kit = MetricsKit()
    try:
        assert kit.get_sample_value("fleet_gitjobs_created_success_total", IDENTITY) is None
        kit.gitjob.job_created(REPO)
        kit.gitjob.job_created(REPO)
        kit.gitjob.job_succeeded(REPO, 12.0)
        assert kit.get_sample_value("fleet_gitjobs_created_success_total", IDENTITY) == 2
        assert kit.get_sample_value("fleet_gitjob_duration_seconds_count", IDENTITY) == 1
        assert kit.get_sample_value("fleet_gitjob_duration_seconds_bucket", {**IDENTITY, "le": "30"}) == 1
        assert {s.name for s in kit.series_of(("fleet-local", "app"))} >= {"fleet_gitjobs_created_success_total"}
        kit.lifecycle.forget(REPO)
        assert kit.get_sample_value("fleet_gitjobs_created_success_total", IDENTITY) is None
        kit.assert_forgotten(REPO)
    finally:
        kit.shutdown()


def test_listener_events_added_modified_deleted():
    kit = MetricsKit()
    try:
        listener = kit.listener()
        kit.feed(listener, [watch_event("ADDED", REPO)])
        assert kit.get_sample_value("fleet_gitrepo_ready_clusters", LABELS) == 2
        assert kit.get_sample_value("fleet_gitrepo_desired_ready_clusters", LABELS) == 3
        kit.gitjob.job_created(REPO)  # the controller's own series of the same object

        modified = {**REPO, "status": {"readyClusters": 3, "desiredReadyClusters": 3}}
        kit.feed(listener, [watch_event("MODIFIED", modified)])
        assert kit.get_sample_value("fleet_gitrepo_ready_clusters", LABELS) == 3

        other = {**REPO, "metadata": {**REPO["metadata"], "name": "other", "uid": "uid-2"}}
        kit.feed(listener, [watch_event("ADDED", other), watch_event("DELETED", modified)])
        kit.assert_forgotten(REPO)  # the status gauges and the GitJob counter
        assert kit.get_sample_value("fleet_gitrepo_ready_clusters", {**LABELS, "name": "other"}) == 2
        with pytest.raises(AssertionError, match="fleet-local/other still has"):
            kit.assert_forgotten(other)
    finally:
        kit.shutdown()


def test_kopf_handlers_fed_by_hand():
    kit = MetricsKit()
    try:
        instrumentation = kit.kopf()
        kit.feed(instrumentation, [{"type": None, "object": REPO}])  # kopf's initial listing has no type
        assert kit.get_sample_value("fleet_gitrepo_ready_clusters", LABELS) == 2
        kit.feed(instrumentation, [watch_event("DELETED", REPO)])
        kit.assert_forgotten(REPO)
    finally:
        kit.shutdown()


def test_watch_event_refuses_an_unknown_type():
    with pytest.raises(ValueError, match="ADDED, MODIFIED, DELETED, BOOKMARK"):
        watch_event("REMOVED", REPO)


def test_the_documented_examples_pass(pytester):
    """The Python blocks of docs/testing.md, run as a user's test file."""
    page = (Path(__file__).parents[2] / "docs" / "testing.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.DOTALL)
    assert len(blocks) == 2, blocks
    pytester.makepyfile(test_documented="\n\n".join(blocks))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
