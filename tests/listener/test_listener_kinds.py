"""Any kind through one listener: HelmOps, a missing CRD, gauges that follow label edits, bad objects."""

from __future__ import annotations

import json
import logging
from typing import Any

import kmock
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from rv_emulator import HELMOPS
from sinks import SinkBase
from test_listener_watch import ERROR_410, synced

import otel_gitjob
from otel_gitjob._internal.core import _sdk
from otel_gitjob.fleet import GITREPO, HELMOP
from otel_gitjob.listener import ListenerSettings, run_sidecar

LOGGER = "otel_gitjob._internal.kube.listener"


class KindSink(SinkBase):
    """Records ``forget``/``observe`` with the ``kind=`` keyword the lifecycle takes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, str | None]] = []

    def forget(self, ref: Any, *, kind: str | None = None) -> int:
        self.calls.append(("forget", ref.name, kind))
        return 1

    def observe(self, ref: Any, *, kind: str | None = None) -> None:
        self.calls.append(("observe", ref.name, kind))


def helmop(name: str, namespace: str = "fleet-local", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "HelmOp",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"helm": {"repo": "https://bot:S3CRET@charts.example.com/", "chart": "nginx", "version": "1.x"}},
        "status": {"version": "1.2.3", **status},
    }


def points(reader: InMemoryMetricReader, prefix: str) -> dict[str, list[tuple[Any, dict[str, Any]]]]:
    out: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name.startswith(prefix):
                    out[metric.name] = [(p.value, dict(p.attributes)) for p in metric.data.data_points]
    return out


# ---------------------------------------------------------------- HelmOps and kind-scoped lifecycle calls


def test_helmop_listener_serves_fleets_helmop_gauges_and_forgets_with_its_kind(emulator, make_listener, wait_for):
    sink = KindSink()
    emulator.create_object(HELMOPS, helmop("h", readyClusters=3))
    reader = InMemoryMetricReader()
    listener = make_listener(sink, kind=HELMOP, meter_provider=MeterProvider(metric_readers=[reader]))
    assert listener.wait_synced(5) and listener.wait_idle(5)
    emulator.wait_watching_resource(HELMOPS)
    gauges = points(reader, "fleet_helmop_")
    assert len(gauges) == 10
    assert gauges["fleet_helmop_ready_clusters"] == [
        (3, {"name": "h", "namespace": "fleet-local", "repo": "https://charts.example.com/", "chart": "nginx",
             "version": "1.2.3"}),
    ]  # fmt: skip
    assert not points(reader, "fleet_gitrepo_")
    emulator.delete_object(HELMOPS, "fleet-local", "h")
    wait_for(lambda: len(sink.calls) == 2)
    assert sink.calls == [("observe", "h", "HelmOp"), ("forget", "h", "HelmOp")]
    lists = [r for r in emulator.call(lambda: list(emulator.kmock)) if r.action == kmock.action.LIST]
    assert lists[0].url.path == "/apis/fleet.cattle.io/v1alpha1/helmops"


def test_a_gitrepo_and_a_helmop_of_the_same_name_are_told_apart(emulator, make_listener, wait_for):
    sink = KindSink()
    emulator.create("same")
    emulator.create_object(HELMOPS, helmop("same"))
    repos, ops = make_listener(sink), make_listener(sink, kind=HELMOP)
    assert repos.wait_synced(5) and ops.wait_synced(5) and repos.wait_idle(5) and ops.wait_idle(5)
    emulator.wait_watching()
    emulator.wait_watching_resource(HELMOPS)
    emulator.delete("same")
    wait_for(lambda: ("forget", "same", "GitRepo") in sink.calls)
    assert ops.wait_idle(5)
    assert ("forget", "same", "HelmOp") not in sink.calls
    assert ops.cache.get(("fleet-local", "same")) is not None


# ---------------------------------------------------------------- a kind whose CRD is missing


@pytest.mark.kinds({})  # no HelmOp CRD: an older Fleet
def test_missing_crd_is_reported_once_retried_slowly_and_never_stops_the_other_kinds(
    emulator, make_listener, sink, wait_for, caplog
):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    ops = make_listener(KindSink(), kind=HELMOP, missing_kind_retry=0.25)
    repos = synced(make_listener(sink))
    emulator.create("a")
    wait_for(lambda: sink.names("observe") == ["a"])

    def reports() -> list[float]:  # when each 404 of the HelmOp list was reported (once a WARNING, then DEBUG)
        return [r.created for r in list(caplog.records) if "does not serve" in r.getMessage()]

    wait_for(lambda: len(reports()) >= 4)
    gaps = [later - earlier for earlier, later in zip(reports(), reports()[1:], strict=False)]
    assert min(gaps) >= 0.24, gaps  # every 0.25 s (less the log clock's resolution), not a spin or the backoff
    warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "helmops.fleet.cattle.io/v1alpha1" in warnings[0], warnings
    assert "CRD" in warnings[0]
    assert not ops.wait_synced(0) and ops.failures == 0 and repos.relists == 1


@pytest.mark.kinds({})
def test_sidecar_watches_gitrepos_when_helmops_are_not_served(emulator, sink, wait_for):
    import threading

    emulator.create("a")
    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(
            run_sidecar(
                None,
                None,
                None,
                True,
                lifecycle=sink,
                stop=stop,
                configuration=emulator.configuration,
                settings=ListenerSettings(backoff_base=0.02, backoff_cap=0.1),
                kinds=(GITREPO, HELMOP),
            )
        )
    )
    thread.start()
    try:
        wait_for(lambda: sink.names("observe") == ["a"])
        emulator.delete("a")
        wait_for(lambda: sink.names("forget") == ["a"])
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive() and result == [0]


# ---------------------------------------------------------------- label edits leave exactly the new label set


def test_branch_edits_leave_exactly_one_series_per_gauge_and_repo(emulator, make_listener, wait_for):
    lifecycle = otel_gitjob.Lifecycle()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views(cardinality_limit=200))
    for i in range(60):
        emulator.create("r%02d" % i, branch="b0")
    listener = synced(make_listener(lifecycle, meter_provider=provider))
    assert len(points(reader, "fleet_gitrepo_")["fleet_gitrepo_ready_clusters"]) == 60
    for edit in range(1, 4):
        for i in range(60):
            emulator.patch("r%02d" % i, {"spec": {"branch": "b%d" % edit, "paths": ["p%d" % edit]}})
        wait_for(lambda edit=edit: all(s.attributes["branch"] == "b%d" % edit for s in listener.cache.snapshot()))
        collected = points(reader, "fleet_gitrepo_")
        assert _sdk.series_count(provider) == 600
        for name, series in collected.items():
            assert len(series) == 60, name
            assert {attrs["branch"] for _, attrs in series} == {"b%d" % edit}
            assert not any("otel.metric.overflow" in attrs for _, attrs in series)
    emulator.patch("r00", {"spec": {"repo": "https://u:S3CRET@other.example.com/x"}})
    wait_for(lambda: listener.cache.get(("fleet-local", "r00")).attributes["repo"] == "https://other.example.com/x")
    reader.get_metrics_data()
    assert _sdk.series_count(provider) == 600
    provider.shutdown()


# ---------------------------------------------------------------- one bad object never stops the watch

BAD_STATUS = '{"readyClusters": 1e400, "desiredReadyClusters": NaN, "resourceCounts": {"ready": -3, "missing": "7", "modified": 2}}'  # noqa: E501


def raw_gitrepo(name: str, status: str, uid: str) -> str:
    return (
        '{"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo", "metadata": {"name": "%s", '
        '"namespace": "fleet-local", "uid": "%s", "resourceVersion": "1"}, "spec": {"repo": "https://h/x"}, '
        '"status": %s}' % (name, uid, status)
    )


def test_bad_status_values_and_bad_objects_are_dropped_and_counted_on_list_and_watch(emulator, make_listener, wait_for):
    lifecycle = otel_gitjob.Lifecycle()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
    page = (
        '{"metadata": {"resourceVersion": "%d"}, "items": [%s, %s, {"metadata": {"name": 5}}, 7]}'
        % (emulator.resource_version, raw_gitrepo("bad-on-list", BAD_STATUS, "u1"), raw_gitrepo("good", "{}", "u2"))
    ).encode()
    emulator.react(kmock.action.LIST, page)
    listener = make_listener(lifecycle, meter_provider=provider)
    assert listener.wait_synced(5) and listener.wait_idle(5)
    emulator.wait_watching()
    counts = lifecycle.drops.counts()
    assert counts["bad_status_value"] == 4 and counts["bad_object"] == 2, counts
    line = '{"type": "ADDED", "object": %s}\n' % raw_gitrepo("bad-on-watch", BAD_STATUS, "u3")
    emulator.send_to_watches(line.encode())  # type: ignore[arg-type]
    wait_for(lambda: listener.cache.get(("fleet-local", "bad-on-watch")) is not None)
    assert lifecycle.drops.counts()["bad_status_value"] == 8
    gauges = points(reader, "fleet_gitrepo_")
    assert {a["name"] for _, a in gauges["fleet_gitrepo_resources_modified"]} == {"bad-on-list", "good", "bad-on-watch"}
    assert {a["name"] for _, a in gauges["fleet_gitrepo_ready_clusters"]} == {"good"}  # no made-up value
    assert {a["name"] for _, a in gauges["fleet_gitrepo_resources_ready"]} == {"good"}
    # The watch goes on: a relist (the same bad objects again) and a deletion are processed.
    emulator.create("later")
    emulator.send_to_watches(ERROR_410)
    wait_for(lambda: listener.relists == 2)
    emulator.delete("later")
    wait_for(lambda: listener.cache.get(("fleet-local", "later")) is None)
    json.dumps(lifecycle.drops.counts())
    provider.shutdown()
