"""Fleet's shard selector (``fleet.cattle.io/shard-ref``) evaluated by a real API server.

kmock ignores label selectors; here the server filters both the list and the watch, and turns a
label change that moves a repo out of a shard into a DELETED event for that shard's watchers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from kube_helpers import names_of
from prometheus_client import generate_latest
from real_apiserver import KubeApiServer
from support import wait_until

import otel_gitjob
from otel_gitjob.fleet import GITREPO
from otel_gitjob.listener import ListenerSettings, ResourceListener, load_configuration

NAMESPACE = "fleet-shards"
READY = "fleet_gitrepo_ready_clusters"
SHARD = "fleet.cattle.io/shard-ref"


class ShardWatcher:
    """One ``otel_gitjob.setup()`` plus a GitRepo ResourceListener for one shard selection."""

    def __init__(self, kubeconfig: str, **shard: object) -> None:
        self.instrumentation = otel_gitjob.setup(serve=False)
        self.listener = ResourceListener(
            self.instrumentation.lifecycle,
            GITREPO,
            configuration=load_configuration(kubeconfig),
            meter_provider=self.instrumentation.meter_provider,
            settings=ListenerSettings(namespace=NAMESPACE, **shard),  # type: ignore[arg-type]
        )

    def repos(self) -> set[str]:
        exposition = generate_latest(self.instrumentation.registry).decode()
        return {name for _, name in names_of(exposition, READY)}

    def close(self) -> None:
        try:
            assert self.listener.stop()
        finally:
            self.instrumentation.shutdown()


@pytest.fixture
def watchers(kube_apiserver: KubeApiServer) -> Iterator[dict[str, ShardWatcher]]:
    with ExitStack() as stack:
        found = {}
        for label, shard in {"s1": {"shard_id": "s1"}, "default": {}, "all": {"all_shards": True}}.items():
            watcher = ShardWatcher(kube_apiserver.kubeconfig, **shard)
            stack.callback(watcher.close)
            found[label] = watcher
        yield found


def test_each_shard_sees_exactly_its_repos_and_a_relabel_moves_the_series(kube_apiserver, watchers):
    spec = {"repo": "https://example.test/shards.git", "branch": "main"}
    kube_apiserver.create("gitrepos", NAMESPACE, "in-s1", spec, labels={SHARD: "s1"})
    kube_apiserver.create("gitrepos", NAMESPACE, "in-s2", spec, labels={SHARD: "s2"})
    kube_apiserver.create("gitrepos", NAMESPACE, "unsharded", spec)

    for watcher in watchers.values():
        watcher.listener.start()
    expected = {"s1": {"in-s1"}, "default": {"unsharded"}, "all": {"in-s1", "in-s2", "unsharded"}}
    for label, repos in expected.items():
        wait_until(lambda w=watchers[label], r=repos: w.repos() == r, what="shard %s to see %s" % (label, repos))

    # Created after the lists: the server filters the watch too.
    kube_apiserver.create("gitrepos", NAMESPACE, "late-s1", spec, labels={SHARD: "s1"})
    wait_until(lambda: watchers["s1"].repos() == {"in-s1", "late-s1"}, what="s1 to see late-s1")
    wait_until(lambda: "late-s1" in watchers["all"].repos(), what="all shards to see late-s1")
    assert watchers["default"].repos() == {"unsharded"}

    # Moving a repo into shard s1: the default shard's watch gets a DELETED (the server's doing,
    # the object still exists) and forgets it; s1's watch gets an ADDED.
    kube_apiserver.patch_labels("gitrepos", NAMESPACE, "unsharded", {SHARD: "s1"})
    wait_until(lambda: watchers["default"].repos() == set(), what="the default shard to forget the relabelled repo")
    wait_until(lambda: watchers["s1"].repos() == {"in-s1", "late-s1", "unsharded"}, what="s1 to gain it")
    assert watchers["all"].repos() == {"in-s1", "in-s2", "late-s1", "unsharded"}

    for name in ("in-s1", "in-s2", "late-s1", "unsharded"):
        kube_apiserver.delete("gitrepos", NAMESPACE, name)
    for label, watcher in watchers.items():
        wait_until(lambda w=watcher: w.repos() == set(), what="shard %s to forget every deleted repo" % label)
        assert watcher.listener.failures == 0
