"""Bad input is dropped, logged once per kind, counted; configuration mistakes raise at once."""

from __future__ import annotations

import logging
import math

import pytest
from _helpers import samples
from opentelemetry.sdk.metrics import MeterProvider

from otel_gitjob import ConfigurationError, GitJobMetrics, Lifecycle

# The export-correctness tests run healthy and with each seam forced degraded (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("degraded_seam")


@pytest.mark.parametrize(
    ("repo", "reason"),
    [
        (None, "bad_repo"),
        (("ns",), "bad_repo"),
        (("", "name"), "bad_repo"),
        ({"metadata": {"name": "only-a-name"}}, "bad_repo"),
        (("ns", 42), "bad_identity_value"),
        ({"metadata": {"namespace": ["ns"], "name": "x"}}, "bad_identity_value"),
        (object(), "bad_repo"),
    ],
)
def test_unusable_repo_is_dropped_counted_and_never_raises(gitjob, lifecycle, registry, repo, reason):
    gitjob.job_created(repo)
    gitjob.job_succeeded(repo, 1.0)
    with gitjob.time_commit_fetch(repo):
        pass

    assert lifecycle.drops.counts() == {reason: 3}
    got = samples(registry)
    assert got[("otel_gitjob_dropped_measurements_total", (("reason", reason),))] == 3
    assert not [key for key in got if key[0].startswith("fleet_")]


@pytest.mark.parametrize("duration", [math.nan, math.inf, -math.inf, -1.0, "3", None, True])
def test_bad_duration_is_dropped_and_counted(gitjob, lifecycle, registry, duration):
    gitjob.job_succeeded(("ns", "r"), duration)
    gitjob.commit_fetched(("ns", "r"), duration)

    assert lifecycle.drops.counts() == {"bad_duration": 2}
    assert not [key for key in samples(registry) if key[0].startswith("fleet_")]


def test_each_kind_of_drop_is_logged_once_per_interval(gitjob, clock, caplog):
    with caplog.at_level(logging.WARNING, logger="otel_gitjob"):
        for _ in range(100):
            gitjob.job_created(None)
            gitjob.job_succeeded(("ns", "r"), math.nan)
        assert len(caplog.records) == 2

        clock.advance(61)
        gitjob.job_created(None)

    assert len(caplog.records) == 3
    assert "99 more dropped" in caplog.records[-1].getMessage()


def test_zero_duration_is_a_valid_measurement(gitjob, registry):
    gitjob.job_succeeded(("ns", "r"), 0)
    assert samples(registry)[("fleet_gitjob_duration_seconds_count", (("name", "r"), ("namespace", "ns")))] == 1


@pytest.mark.parametrize("ttl", [0, -1, math.nan, math.inf, "120", None, True])
def test_bad_gauge_ttl_raises_with_a_clear_message(provider, lifecycle, ttl):
    with pytest.raises(ConfigurationError, match="TTL .* must be a finite number of seconds > 0"):
        GitJobMetrics(provider, lifecycle=lifecycle, gauge_ttl=ttl)


def test_lifecycle_is_required_and_checked():
    with pytest.raises(ConfigurationError, match="lifecycle=Lifecycle"):
        GitJobMetrics(MeterProvider(), lifecycle=None)  # type: ignore[arg-type]


def test_gitjob_metrics_needs_two_identity_keys():
    lifecycle = Lifecycle(identity_keys=("name",))
    with pytest.raises(ConfigurationError, match="two keys"):
        GitJobMetrics(MeterProvider(), lifecycle=lifecycle)


@pytest.mark.parametrize(("option", "value"), [("max_blocks", -1), ("max_blocks", 1.5), ("block_seconds", 0)])
def test_bad_lifecycle_options_raise(option, value):
    with pytest.raises(ConfigurationError, match=option):
        Lifecycle(**{option: value})


def test_unknown_instrument_raises_with_the_known_ones(provider, lifecycle):
    with pytest.raises(ConfigurationError, match="unknown instrument 'created_sucess'.*created_success"):
        GitJobMetrics(provider, lifecycle=lifecycle, instruments=["created_sucess"])


def test_a_subset_of_instruments_can_be_enabled(provider, lifecycle, registry):
    gitjob = GitJobMetrics(provider, lifecycle=lifecycle, instruments=["created_success"])
    gitjob.job_created(("ns", "r"))
    gitjob.job_succeeded(("ns", "r"), 1.0)
    assert {key[0] for key in samples(registry) if key[0].startswith("fleet_")} == {
        "fleet_gitjobs_created_success_total"
    }


def test_forget_of_garbage_returns_zero_and_logs(lifecycle, caplog):
    with caplog.at_level(logging.WARNING, logger="otel_gitjob"):
        assert lifecycle.forget(None) == 0
    assert "reason=bad_repo" in caplog.text
    assert lifecycle.drops.counts() == {"bad_repo": 1}
