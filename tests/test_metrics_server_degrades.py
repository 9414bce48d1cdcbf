"""/metrics degrades per series, never wholesale, and /healthz and /readyz answer without a collection.

Real servers on loopback (setup(port=0)), real HTTP clients.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.metrics import CallbackOptions, Observation
from prometheus_client import Gauge

import otel_gitjob
from otel_gitjob._internal.prometheus.renderer import EXPORTER_SUPPORTED
from otel_gitjob._internal.prometheus.sanitize import MAX_LABEL_VALUE

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


@pytest.fixture
def served() -> Iterator[Any]:
    instrumentation = otel_gitjob.setup(port=0)
    try:
        yield instrumentation
    finally:
        instrumentation.shutdown()


def get(instrumentation: Any, path: str = "/metrics", accept: str | None = None) -> tuple[int, str]:
    host, port = instrumentation.address
    headers = {"Accept": accept} if accept else {}
    request = urllib.request.Request("http://%s:%d%s" % (host, port, path), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def force_fallback(instrumentation: Any) -> None:
    """A second collector in the registry: the endpoint serves through prometheus_client, not the fast renderer."""
    Gauge("other_collector", "another collector", registry=instrumentation.registry).set(1)
    assert not instrumentation._server.endpoint.fast_path()


@pytest.mark.parametrize("fallback", [False, True], ids=["fast", "prometheus_client"])
@pytest.mark.parametrize("accept", [None, OPENMETRICS], ids=["text", "openmetrics"])
def test_a_lone_surrogate_in_any_label_drops_that_series_only(served: Any, accept: str | None, fallback: bool) -> None:
    # A status-like field and a user's own attribute, not namespace/name.
    if fallback:
        force_fallback(served)
    # A counter: every supported SDK reports it at every collection (a synchronous gauge's last value is
    # reported only once by older ones).
    counter = served.meter_provider.get_meter("user").create_counter("my_thing")
    counter.add(1, {"namespace": "ns", "name": "bad", "field": "x\udcff"})
    counter.add(2, {"namespace": "ns", "name": "good", "field": "fine"})
    for _ in range(2):
        status, body = get(served, "/metrics", accept)
        assert status == 200, body
        assert 'name="good"' in body
        assert 'name="bad"' not in body
    assert served._server.endpoint.counts.dropped_counts()["unencodable"] >= 2
    status, body = get(served)
    assert 'otel_gitjob_scrape_series_dropped_total{reason="unencodable"}' in body


def test_a_huge_label_value_is_cut_and_counted(served: Any) -> None:
    counter = served.meter_provider.get_meter("user").create_counter("my_paths")
    counter.add(1, {"namespace": "ns", "name": "big", "paths": "p/" * 600_000})
    for fallback in (False, True):
        if fallback:
            force_fallback(served)
        status, body = get(served)
        assert status == 200
        line = next(line for line in body.splitlines() if line.startswith("my_paths_total{"))
        assert len(line) < MAX_LABEL_VALUE + 200
        assert 'paths="' + "p/" * (MAX_LABEL_VALUE // 2) + '"' in line
    assert served._server.endpoint.counts.truncated_count() >= 2


def test_a_malformed_accept_version_is_served_as_text(served: Any) -> None:
    served.gitjob.job_created(("ns", "repo"))
    for accept in ("application/openmetrics-text; version=junk", "text/plain; version=x.y"):
        status, body = get(served, accept=accept)
        assert status == 200
        assert 'fleet_gitjobs_created_success_total{name="repo",namespace="ns"}' in body


def test_probes_answer_without_a_collection(served: Any) -> None:
    calls = []

    def callback(options: CallbackOptions) -> list[Observation]:
        calls.append(1)
        return [Observation(1.0, {"namespace": "ns", "name": "a"})]

    served.meter_provider.get_meter("user").create_observable_gauge("counted", callbacks=[callback])
    for path in ("/healthz", "/readyz"):
        status, body = get(served, path)
        assert (status, body.splitlines()[0]) == (200, "ok")
    assert "http-server" in get(served, "/healthz")[1]
    assert calls == []
    get(served)
    assert calls == [1]


def test_readyz_and_healthz_follow_the_registered_checks(served: Any) -> None:
    state = {"ready": False, "live": True}
    served.health.add(
        "component",
        live=lambda: (state["live"], "threads"),
        ready=lambda: (state["ready"], "listed" if state["ready"] else "not listed yet"),
    )
    assert get(served, "/readyz") == (503, "not ok\nFAIL component: not listed yet\n")
    assert get(served, "/healthz")[0] == 200
    state["ready"] = True
    assert get(served, "/readyz")[0] == 200
    state["live"] = False
    assert get(served, "/healthz")[0] == 503


@pytest.mark.skipif(
    not EXPORTER_SUPPORTED, reason="this opentelemetry-exporter-prometheus is served the old way: no shared collection"
)
def test_a_scrape_that_starts_after_forget_never_shows_the_object(served: Any) -> None:
    served.gitjob.job_created(("ns", "doomed"))
    endpoint = served._server.endpoint
    if not endpoint.fast_path():  # OTEL_GITJOB_DEGRADED=prometheus: every scrape collects on its own
        pytest.skip("/metrics is served the old way here: no collection is shared")
    original = endpoint._collect
    filtered = threading.Event()
    release = threading.Event()

    def collect_then_linger() -> Any:
        # The in-flight collection is filtered, then delayed before it hands over its result.
        data = original()
        filtered.set()
        release.wait(30)
        return data

    endpoint._collect = collect_then_linger
    first: list[tuple[int, str]] = []
    second: list[tuple[int, str]] = []
    t1 = threading.Thread(target=lambda: first.append(get(served)))
    t1.start()
    assert filtered.wait(30)
    served.lifecycle.forget(("ns", "doomed"))
    t2 = threading.Thread(target=lambda: second.append(get(served)))
    t2.start()
    deadline = time.monotonic() + 30
    while endpoint._waiting == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert endpoint._waiting == 1  # the second scrape joined the collection in flight
    release.set()
    t1.join(30)
    t2.join(30)
    assert 'name="doomed"' in first[0][1]  # started before the forget: allowed
    assert second[0][0] == 200
    assert 'name="doomed"' not in second[0][1]
