"""Configuration mistakes raise ConfigurationError at once, with the fix in the message, and leave nothing running."""

from __future__ import annotations

import math
import threading

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest
from support import ListExporter, samples

import otel_gitjob
from otel_gitjob import ConfigurationError, GitJobMetrics, Lifecycle


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


@pytest.mark.parametrize(
    ("keys", "message"),
    [(None, "identity_keys"), (("le", "name"), "'le'"), (("ns-key", "ns_key"), "ns_key")],
)
def test_bad_identity_keys_raise_a_configuration_error_with_a_message(keys, message):
    with pytest.raises(ConfigurationError, match=message):
        Lifecycle(identity_keys=keys)
    registry = CollectorRegistry()
    with pytest.raises(ConfigurationError, match=message):
        otel_gitjob.setup(serve=False, registry=registry, identity_keys=keys)
    assert generate_latest(registry) == b""


def test_a_prefix_that_is_not_a_metric_name_raises_a_configuration_error(provider, lifecycle):
    with pytest.raises(ConfigurationError, match="'9bad'"):
        GitJobMetrics(provider, lifecycle=lifecycle, prefix="9bad")


@pytest.mark.parametrize(
    "options",
    [{"port": 99999}, {"port": -1}, {"prefix": "9bad", "serve": False}, {"gauge_ttl": -1.0, "serve": False}],
    ids=["port-99999", "port--1", "prefix-9bad", "gauge-ttl"],
)
def test_setup_with_a_mistake_raises_at_once_and_leaves_nothing_running(options):
    before = set(threading.enumerate())
    registry = CollectorRegistry()
    with pytest.raises(ConfigurationError, match=r"port|prefix|TTL"):
        otel_gitjob.setup(registry=registry, exporters=[ListExporter()], export_interval_millis=60_000, **options)
    assert generate_latest(registry) == b"", "a reader is still registered: the provider was left running"
    assert not [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
