"""A kind whose CRD goes away is relisted until it returns and its objects are forgotten; foreign events are dropped.

kmock's emulator (tests/listener/rv_emulator.py) answers 404 for a resource it does not serve, as the
API server does for a kind whose CRD is removed.
"""

from __future__ import annotations

from typing import Any

import kmock
from test_listener_watch import synced

from otel_gitjob._internal.kube.listener import REASON_WRONG_KIND


def test_objects_of_a_kind_whose_crd_was_removed_while_the_watch_was_down_are_forgotten(
    emulator: Any, make_listener: Any, sink: Any, wait_for: Any
) -> None:
    emulator.create("a")
    emulator.create("b")
    listener = synced(make_listener(sink, missing_kind_retry=0.25))
    assert sorted(sink.names("observe")) == ["a", "b"]
    wait_for(lambda: listener.health()[0])  # the watch open
    # The CRD is deleted while the watch is down: every list and watch answers 404 until it is back.
    gone = emulator.status_error(404, "NotFound", "the server could not find the requested resource")
    reactions = [emulator.react(action, gone, times=1_000) for action in (kmock.action.LIST, kmock.action.WATCH)]
    emulator.drop_watches()
    wait_for(lambda: sorted(sink.names("forget")) == ["a", "b"], timeout=10)
    assert listener.cache.refs() == []
    ready, detail = listener.health()
    assert ready and "404" in detail
    relists = listener.relists
    for reaction in reactions:  # the CRD is back
        reaction.cancel()
    wait_for(lambda: listener.relists > relists and len(listener.cache.refs()) == 2, timeout=10)
    wait_for(lambda: sorted(sink.names("observe")) == ["a", "a", "b", "b"])  # observed again, once each


def test_an_event_of_another_kind_in_the_stream_is_dropped_and_counted(
    emulator: Any, make_listener: Any, sink: Any, wait_for: Any
) -> None:
    listener = synced(make_listener(sink))
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "fleet-local", "uid": "u"}}
    emulator.send_to_watches({"type": "ADDED", "object": secret})
    wrong_version = {
        "apiVersion": "fleet.cattle.io/v2",
        "kind": "GitRepo",
        "metadata": {"name": "v2", "namespace": "fleet-local", "uid": "u2"},
    }
    emulator.send_to_watches({"type": "ADDED", "object": wrong_version})
    emulator.create("after")
    wait_for(lambda: sink.names("observe") == ["after"])
    assert listener.cache.get(("fleet-local", "s")) is None
    assert listener.cache.get(("fleet-local", "v2")) is None
    assert sink.drops.counts()[REASON_WRONG_KIND] == 2
