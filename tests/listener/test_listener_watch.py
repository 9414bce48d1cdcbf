"""The listener against kmock's Kubernetes emulator, over HTTP, with the real ``kubernetes`` client.

These tests use :class:`conftest.RecordingSink` to assert on the exact
``forget``/``observe`` calls; ``test_listener_lifecycle_e2e.py`` drives the real
``otel_gitjob.Lifecycle``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import kmock
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_gitjob._internal.core.lifecycle import hooks_of

LOGGER = "otel_gitjob._internal.kube.listener"
ERROR_410 = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}}


def failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def synced(listener: Any) -> Any:
    """Wait until the listener has listed, applied the list, and its watch receives live events."""
    assert listener.wait_synced(5), "listener never listed"
    listener.test_emulator.wait_watching()
    assert listener.wait_idle(5)
    return listener


def gauge_points(reader: InMemoryMetricReader) -> dict[str, dict[str, Any]]:
    """{metric name: {repo name: (value, attributes)}} from one collection."""
    out: dict[str, dict[str, Any]] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name.startswith("fleet_gitrepo_"):
                    out[metric.name] = {
                        p.attributes["name"]: (p.value, dict(p.attributes)) for p in metric.data.data_points
                    }
    return out


# ---------------------------------------------------------------- lifecycle events


def test_initial_list_observes_every_existing_repo(emulator, make_listener, sink, wait_for):
    emulator.create("a")
    emulator.create("b", namespace="other")
    listener = synced(make_listener(sink, all_shards=True))
    assert sorted(sink.names("observe")) == ["a", "b"]
    assert sink.names("forget") == []
    assert listener.relists == 1


def test_added_repo_is_observed_with_its_uid(emulator, make_listener, sink, wait_for):
    synced(make_listener(sink))
    emulator.create("a", uid="uid-a")
    wait_for(lambda: sink.refs("observe"))
    ref = sink.refs("observe")[0]
    assert (ref.namespace, ref.name, ref.uid) == ("fleet-local", "a", "uid-a")


def test_deleted_repo_is_forgotten(emulator, make_listener, sink, wait_for):
    emulator.create("a", uid="uid-a")
    emulator.create("b")
    synced(make_listener(sink))
    emulator.delete("a")
    wait_for(lambda: sink.names("forget") == ["a"])
    assert sink.refs("forget")[0].uid == "uid-a"


def test_status_change_refreshes_gauges_without_sink_calls(emulator, make_listener, sink, wait_for):
    emulator.create("a", status={"readyClusters": 1})
    reader = InMemoryMetricReader()
    listener = synced(make_listener(sink, meter_provider=MeterProvider(metric_readers=[reader])))
    assert gauge_points(reader)["fleet_gitrepo_ready_clusters"]["a"][0] == 1
    emulator.patch("a", {"status": {"readyClusters": 4, "resourceCounts": {"notReady": 2}}})
    wait_for(lambda: listener.cache.get(("fleet-local", "a")).values[1] == 4)
    points = gauge_points(reader)
    assert points["fleet_gitrepo_ready_clusters"]["a"][0] == 4
    assert points["fleet_gitrepo_resources_not_ready"]["a"][0] == 2
    assert sink.calls == [("observe", sink.refs("observe")[0])]


def test_gauges_carry_fleets_labels_without_credentials(emulator, make_listener, sink):
    emulator.create("a", repo="https://bot:s3cret@git.example.com/org/a", branch="dev", paths=["x", "y/z"])
    reader = InMemoryMetricReader()
    synced(make_listener(sink, meter_provider=MeterProvider(metric_readers=[reader])))
    points = gauge_points(reader)
    assert len(points) == 10
    for metric in points.values():
        assert metric["a"][1] == {
            "name": "a",
            "namespace": "fleet-local",
            "repo": "https://git.example.com/org/a",
            "branch": "dev",
            "paths": "x;y/z",
        }


def test_deleted_repo_leaves_the_gauges(emulator, make_listener, sink, wait_for):
    emulator.create("a")
    emulator.create("b")
    reader = InMemoryMetricReader()
    synced(make_listener(sink, meter_provider=MeterProvider(metric_readers=[reader])))
    assert set(gauge_points(reader)["fleet_gitrepo_ready_clusters"]) == {"a", "b"}
    emulator.delete("a")
    wait_for(lambda: sink.names("forget") == ["a"])
    assert all(set(metric) == {"b"} for metric in gauge_points(reader).values())


def test_uid_change_in_an_event_is_a_forget_then_an_observe(emulator, make_listener, sink, wait_for):
    emulator.create("a", uid="old")
    synced(make_listener(sink))
    emulator.send_to_watches({"type": "MODIFIED", "object": emulator.gitrepo("a", uid="new")})
    wait_for(lambda: len(sink.calls) == 3)
    assert [(kind, ref.uid) for kind, ref in sink.calls] == [("observe", "old"), ("forget", "old"), ("observe", "new")]


def watch_outage(emulator: Any) -> Any:
    """Refuse every watch with 503 from now on, and break the live one: the listener is disconnected."""
    outage = emulator.react(kmock.action.WATCH, emulator.status_error(503, "ServiceUnavailable"), times=10**6)
    emulator.drop_watches()
    return outage


def test_repo_recreated_during_disconnect_is_forgotten_and_observed_on_resume(emulator, make_listener, sink, wait_for):
    emulator.create("a", uid="old")
    listener = synced(make_listener(sink))
    outage = watch_outage(emulator)
    wait_for(lambda: outage.served >= 1)
    emulator.delete("a")  # nobody is watching
    emulator.create("a", uid="new")
    outage.cancel()
    wait_for(lambda: len(sink.calls) == 3)
    assert [(kind, ref.uid) for kind, ref in sink.calls] == [("observe", "old"), ("forget", "old"), ("observe", "new")]
    assert listener.relists == 1  # the server replayed what happened since our resourceVersion


# ---------------------------------------------------------------- resume, don't relist


def test_repo_deleted_during_disconnect_is_forgotten_on_resume_without_a_relist(
    emulator, make_listener, sink, wait_for
):
    emulator.create("a")
    emulator.create("b")
    listener = synced(make_listener(sink))
    seen = emulator.resource_version
    outage = watch_outage(emulator)
    wait_for(lambda: outage.served >= 2)
    emulator.delete("b")  # through the API, while no watch is open
    assert sink.names("forget") == []
    outage.cancel()
    wait_for(lambda: sink.names("forget") == ["b"])
    assert listener.relists == 1 and len(emulator.requests(kmock.action.LIST)) == 1
    assert emulator.watch_params()[-1]["resourceVersion"] == str(seen)


@pytest.mark.parametrize("ending", ["clean close", "dropped connection", "500 ERROR event"])
def test_stream_endings_that_keep_the_position_resume_from_it(emulator, make_listener, sink, wait_for, ending):
    emulator.create("a")
    listener = synced(make_listener(sink))
    emulator.create("b")
    wait_for(lambda: sink.names("observe") == ["a", "b"])
    position = emulator.resource_version
    if ending == "clean close":
        emulator.end_watches()
    elif ending == "dropped connection":
        emulator.drop_watches()
    else:
        emulator.send_to_watches({"type": "ERROR", "object": {"code": 500, "reason": "InternalError"}})
    wait_for(lambda: len(emulator.watch_params()) == 2)
    emulator.wait_watching()
    assert emulator.watch_params()[1]["resourceVersion"] == str(position)
    emulator.delete("a")
    wait_for(lambda: sink.names("forget") == ["a"])
    assert listener.relists == 1 and len(emulator.requests(kmock.action.LIST)) == 1
    assert sink.names("observe") == ["a", "b"]  # nothing replayed twice


@pytest.mark.parametrize("ending", ["410 ERROR event", "410 after compaction", "malformed line"])
def test_stream_endings_that_lose_the_position_relist_and_forget_missed_deletions(
    emulator, make_listener, sink, wait_for, ending
):
    emulator.create("a")
    emulator.create("b")
    listener = synced(make_listener(sink))
    emulator.delete_unseen("b")  # its DELETED event was compacted away
    if ending == "410 ERROR event":
        emulator.send_to_watches(ERROR_410)
    elif ending == "410 after compaction":
        emulator.compact()
        emulator.end_watches()  # the resumed watch asks for a compacted resourceVersion
    else:
        emulator.send_to_watches(b"{not json}\n")  # type: ignore[arg-type]
    wait_for(lambda: sink.names("forget") == ["b"])
    assert listener.relists == 2


def test_bookmarks_advance_the_resume_position(emulator, make_listener, sink, wait_for):
    emulator.create("a")
    synced(make_listener(sink))
    emulator.create("elsewhere", namespace="not-watched-but-counted")
    emulator.bookmark()
    newest = emulator.resource_version
    emulator.end_watches()
    wait_for(lambda: len(emulator.watch_params()) == 2)
    first, second = emulator.watch_params()
    assert first["allowWatchBookmarks"] == "true"
    assert second["resourceVersion"] == str(newest)


def test_relist_retains_only_the_live_set_in_the_lifecycle(emulator, make_listener, wait_for):
    """A series revived by a late write after its block expired is forgotten by the next relist."""
    import otel_gitjob

    lifecycle = otel_gitjob.Lifecycle(max_blocks=0)  # blocks gone at once: as if an hour had passed
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=lifecycle.views())
    gitjob = otel_gitjob.GitJobMetrics(provider, lifecycle=lifecycle)
    emulator.create("a")
    emulator.create("b")
    listener = synced(make_listener(lifecycle, meter_provider=provider))
    gitjob.job_created(("fleet-local", "a"))
    emulator.delete("b")
    wait_for(lambda: listener.cache.get(("fleet-local", "b")) is None and listener.wait_idle(5))
    gitjob.job_created(("fleet-local", "b"))  # a very late write: b's series are back

    def tracked() -> list:
        return hooks_of(lifecycle).registry.objects_of_kind("GitRepo")

    assert ("GitRepo", ("fleet-local", "b")) in tracked()
    emulator.send_to_watches(ERROR_410)
    wait_for(
        lambda: listener.relists == 2 and listener.wait_idle(5) and ("GitRepo", ("fleet-local", "b")) not in tracked()
    )
    assert ("GitRepo", ("fleet-local", "a")) in tracked()
    provider.shutdown()
    lifecycle.shutdown()


# ---------------------------------------------------------------- faults are recovered


def partial_then_drop(request: kmock.Request) -> Any:
    """A watch that sends half an event line, then drops the TCP connection."""
    return (b"", b'{"type": "ADDED", "object": {"metad', lambda req: req._raw_request.transport.abort())


FAULTS = {
    "410 status on list": (kmock.action.LIST, lambda emu: emu.status_error(410, "Gone"), "HTTP 410"),
    "500 on list": (kmock.action.LIST, lambda emu: emu.status_error(500, "InternalError"), "HTTP 500"),
    "403 on list": (kmock.action.LIST, lambda emu: emu.status_error(403, "Forbidden"), "HTTP 403"),
    "500 on watch": (kmock.action.WATCH, lambda emu: emu.status_error(500, "InternalError"), "HTTP 500"),
    "403 on watch": (kmock.action.WATCH, lambda emu: emu.status_error(403, "Forbidden"), "HTTP 403"),
    "410 status on watch": (kmock.action.WATCH, lambda emu: emu.status_error(410, "Gone"), "HTTP 410"),
    "410 ERROR event": (kmock.action.WATCH, lambda emu: (b"", ERROR_410), "ERROR event 410"),
    "malformed line": (kmock.action.WATCH, lambda emu: (b"", b"{not json}\n"), "not JSON"),
    "dropped mid-stream": (kmock.action.WATCH, lambda emu: partial_then_drop, "connection dropped"),
    "list hangs": (kmock.action.LIST, lambda emu: emu.hang(), "no answer from the API server for 0.3s (list timeout)"),
    "watch hangs": (kmock.action.WATCH, lambda emu: (b"", emu.hang()), "no data from the API server for 0.3s"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_is_recovered_and_logged_once(emulator, make_listener, sink, wait_for, caplog, fault):
    action, payload, reason = FAULTS[fault]
    emulator.create("a")
    injected = emulator.react(action, payload(emulator), times=2)
    # A short timeout only where the fault needs one to be noticed: elsewhere a loaded machine's quiet stream or
    # slow list would be a third failure of its own.
    timeouts = {"list hangs": {"list_timeout": 0.3}, "watch hangs": {"inactivity_timeout": 0.3}}.get(fault, {})
    listener = make_listener(sink, **timeouts)
    wait_for(lambda: injected.served == 2)
    synced(listener)
    emulator.create("b")  # the listener is watching again
    wait_for(lambda: sink.names("observe") == ["a", "b"])
    emulator.delete("a")
    wait_for(lambda: sink.names("forget") == ["a"])
    messages = failures(caplog)
    assert len(messages) == 2 == listener.failures, messages
    assert all(reason in message for message in messages), messages
    assert all(
        message.startswith("GitRepo list failed" if action == kmock.action.LIST else "GitRepo watch failed")
        for message in messages
    )


def test_persistent_403_does_not_spin(emulator, make_listener, sink, caplog, wait_for):
    forbidden = emulator.react(kmock.action.LIST, emulator.status_error(403, "Forbidden"), times=10**6)
    listener = make_listener(sink, backoff_base=0.05, backoff_cap=0.2)
    wait_for(lambda: forbidden.served >= 6)
    listener.stop()
    lists = forbidden.served
    # Each retry waits its backoff: 0.05, 0.1, 0.2, 0.2, ... s less up to half of it (the jitter). A spin
    # would send the next list at once.
    gaps = [later - earlier for earlier, later in zip(forbidden.served_at, forbidden.served_at[1:], strict=False)]
    assert all(gap >= 0.5 * min(0.2, 0.05 * 2**step) for step, gap in enumerate(gaps)), gaps
    # One log line per failure, each with its reason (a request in flight at stop() is not logged).
    assert lists - 1 <= len(failures(caplog)) <= lists
    assert all("HTTP 403 Forbidden" in message for message in failures(caplog))


def test_watch_is_requested_from_the_lists_resource_version_with_a_server_timeout(emulator, make_listener, sink):
    synced(make_listener(sink, watch_timeout_seconds=123))
    watch = emulator.requests(kmock.action.WATCH)[0]
    assert watch.params["resourceVersion"] == str(emulator.resource_version)  # the list's
    assert watch.params["timeoutSeconds"] == "123"
    assert watch.params["allowWatchBookmarks"] == "true"
    assert emulator.requests(kmock.action.LIST)[0].params["limit"] == "500"


def test_list_follows_continue_tokens(emulator, make_listener, sink):
    emulator.create("a")
    emulator.create("b")
    page1 = {"metadata": {"resourceVersion": "5", "continue": "tok"}, "items": [emulator.gitrepo("p1")]}
    emulator.react(kmock.action.LIST, page1)
    synced(make_listener(sink))
    lists = emulator.requests(kmock.action.LIST)
    assert lists[1].params["continue"] == "tok"
    assert sorted(sink.names("observe")) == ["a", "b", "p1"]


# ---------------------------------------------------------------- the watch never waits on the sink


def test_slow_sink_does_not_stall_the_watch(emulator, make_listener, sink, wait_for):
    listener = synced(make_listener(sink))
    sink.gate.clear()  # the sink is stuck in its first call until the gate opens
    for i in range(10):
        emulator.create("r%d" % i)
    # The cache (and so the gauges) gets all ten while the sink has not finished one call.
    wait_for(lambda: len(listener.cache) == 10)
    assert sink.calls == []
    sink.gate.set()
    assert listener.wait_idle(10)
    assert sorted(sink.names("observe")) == ["r%d" % i for i in range(10)]


# ---------------------------------------------------------------- sharding, as Fleet does it


def shard(name: str | None) -> dict[str, str] | None:
    return {"fleet.cattle.io/shard-ref": name} if name else None


@pytest.mark.parametrize(
    ("settings", "selector", "expected"),
    [
        ({"shard_id": "s1"}, "fleet.cattle.io/shard-ref=s1", ["in-s1"]),
        ({}, "!fleet.cattle.io/shard-ref", ["unsharded"]),
        ({"all_shards": True}, None, ["in-s1", "in-s2", "unsharded"]),
    ],
)
def test_shard_selects_like_fleet(emulator, make_listener, sink, settings, selector, expected):
    emulator.create("in-s1", labels=shard("s1"))
    emulator.create("in-s2", labels=shard("s2"))
    emulator.create("unsharded")
    synced(make_listener(sink, **settings))
    assert sorted(sink.names("observe")) == expected
    for action in (kmock.action.LIST, kmock.action.WATCH):
        assert emulator.requests(action)[0].params.get("labelSelector") == selector


def test_repo_relabelled_to_another_shard_is_forgotten(emulator, make_listener, sink, wait_for):
    emulator.create("a", labels=shard("s1"))
    emulator.create("b", labels=shard("s1"))
    reader = InMemoryMetricReader()
    synced(make_listener(sink, shard_id="s1", meter_provider=MeterProvider(metric_readers=[reader])))
    emulator.patch("a", {"metadata": {"labels": {"fleet.cattle.io/shard-ref": "s2"}}})
    wait_for(lambda: sink.names("forget") == ["a"])
    assert set(gauge_points(reader)["fleet_gitrepo_ready_clusters"]) == {"b"}
    emulator.patch("a", {"metadata": {"labels": {"fleet.cattle.io/shard-ref": "s1"}}})  # and back
    wait_for(lambda: sink.names("observe").count("a") == 2)


def test_repo_relabelled_during_disconnect_is_forgotten_on_resume(emulator, make_listener, sink, wait_for):
    emulator.create("a", labels=shard("s1"))
    listener = synced(make_listener(sink, shard_id="s1"))
    outage = watch_outage(emulator)
    wait_for(lambda: outage.served >= 1)
    emulator.patch("a", {"metadata": {"labels": {"fleet.cattle.io/shard-ref": "s2"}}})
    outage.cancel()
    wait_for(lambda: sink.names("forget") == ["a"])
    assert listener.relists == 1


def test_namespace_limits_the_watch(emulator, make_listener, sink):
    emulator.create("mine", namespace="ns1")
    emulator.create("theirs", namespace="ns2")
    synced(make_listener(sink, namespace="ns1"))
    assert sink.names("observe") == ["mine"]
    assert emulator.requests(kmock.action.WATCH)[0].url.path == "/apis/fleet.cattle.io/v1alpha1/namespaces/ns1/gitrepos"


# ---------------------------------------------------------------- threads


def test_stop_is_prompt_while_the_watch_blocks_on_a_quiet_stream(emulator, make_listener, sink):
    listener = synced(make_listener(sink, inactivity_timeout=30.0))
    time.sleep(0.1)  # the watch thread is now blocked reading the stream
    started = time.monotonic()
    assert listener.stop(timeout=5)
    assert time.monotonic() - started < 1.0
    assert not [t for t in threading.enumerate() if t.name.startswith("otel-gitjob")]


def test_stop_is_prompt_during_backoff(emulator, make_listener, sink, wait_for):
    failing = emulator.react(kmock.action.LIST, emulator.status_error(500, "InternalError"), times=10**6)
    listener = make_listener(sink, backoff_base=30.0, backoff_cap=30.0)
    wait_for(lambda: failing.served == 1)
    started = time.monotonic()
    assert listener.stop(timeout=5)
    assert time.monotonic() - started < 1.0


def test_listener_cannot_start_twice(emulator, make_listener, sink):
    listener = make_listener(sink)
    with pytest.raises(RuntimeError):
        listener.start()
