"""``run_sidecar``: the listener as ``otel-gitjob watch``."""

from __future__ import annotations

import threading

import kmock
import pytest

from otel_gitjob._internal.listener import ListenerSettings, run_sidecar
from otel_gitjob._internal.listener.sidecar import load_configuration


def test_sidecar_watches_its_shard_until_stopped(emulator, sink, wait_for):
    emulator.create("mine", namespace="ns1", labels={"fleet.cattle.io/shard-ref": "s1"})
    emulator.create("other-shard", namespace="ns1", labels={"fleet.cattle.io/shard-ref": "s2"})
    emulator.create("other-namespace", namespace="ns2", labels={"fleet.cattle.io/shard-ref": "s1"})
    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(
            run_sidecar(
                "ns1",
                None,
                "s1",
                False,
                lifecycle=sink,
                stop=stop,
                configuration=emulator.configuration,
                settings=ListenerSettings(backoff_base=0.02, backoff_cap=0.1),
            )
        )
    )
    thread.start()
    try:
        wait_for(lambda: sink.names("observe") == ["mine"])
        watch = wait_for(lambda: emulator.requests(kmock.action.WATCH))[0]
        assert watch.params["labelSelector"] == "fleet.cattle.io/shard-ref=s1"
        assert watch.url.path.endswith("/namespaces/ns1/gitrepos")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive() and result == [0]


def test_sidecar_rejects_shard_id_with_all_shards(emulator, sink):
    with pytest.raises(ValueError):
        run_sidecar(
            None, None, "s1", True, lifecycle=sink, stop=threading.Event(), configuration=emulator.configuration
        )


def test_load_configuration_reads_a_kubeconfig(tmp_path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:6443'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    assert load_configuration(str(kubeconfig)).host == "http://127.0.0.1:6443"
