"""The generic listener's watch against a real kube-apiserver: stream ends, restart, 410 after compaction.

kmock ignores resourceVersions, so it can only pretend a resume worked; here the API server replays
what happened since the listener's resourceVersion (or answers 410 when etcd no longer holds it),
and the listener is wired to a real ``otel_gitjob.Lifecycle`` and ``MeterProvider``.

Bookmarks, and what makes the server send one, are in ``test_bookmarks_real_server.py``.

Some tests restart the session's kube-apiserver with ``--watch-cache=false``; the ``server_flags``
fixture restarts it with its default flags after the module, so later tests see the usual server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kube_helpers import WatchedGitRepos, gitrepo_watcher
from real_apiserver import KubeApiServer
from support import wait_until

SPEC = {"repo": "https://example.test/watch.git", "branch": "main"}
STATUS = {"readyClusters": 1, "desiredReadyClusters": 1}
# Short backoff: an API-server restart costs a few failed attempts, not 30 s of waiting.
FAST = {"backoff_base": 0.1, "backoff_cap": 0.5, "connect_timeout": 2.0}


@pytest.fixture
def watch(kube_apiserver: KubeApiServer) -> Iterator[Any]:
    """``watch(namespace, configuration=None, **settings)`` → a started watcher; all stopped after."""
    made: list[WatchedGitRepos] = []

    def make(namespace: str, configuration: Any = None, **settings: Any) -> WatchedGitRepos:
        watched = gitrepo_watcher(
            namespace, configuration=configuration or kube_apiserver.configuration(), **{**FAST, **settings}
        )
        made.append(watched)
        watched.start()
        return watched

    try:
        yield make
    finally:
        for watched in made:
            watched.close()


NO_WATCH_CACHE = ["--watch-cache=false"]


class ServerFlags:
    """The flags the session's kube-apiserver runs with, as far as this module changed them."""

    def __init__(self, server: KubeApiServer) -> None:
        self.server = server
        self.current: list[str] = []

    def restart(self, flags: list[str]) -> float:
        """Restart kube-apiserver with ``flags``; returns the seconds until it serves the CRDs."""
        self.current = list(flags)
        return self.server.restart_apiserver(flags)

    def ensure(self, flags: list[str]) -> None:
        if self.current != flags:
            self.restart(flags)


@pytest.fixture(scope="module")
def server_flags(kube_apiserver: KubeApiServer) -> Iterator[ServerFlags]:
    """Restarts kube-apiserver with its default flags after this module when a test changed them."""
    flags = ServerFlags(kube_apiserver)
    try:
        yield flags
    finally:
        flags.ensure([])


def test_stream_ends_resume_without_relisting_and_cost_one_request_each(kube_apiserver, watch, server_flags):
    """Every stream end at ``timeoutSeconds`` is one watch request and no list (the figure is printed).

    The listener asks for 1 s streams for about 10 s; the server ends each one, and every end
    is resumed: requests = 1 list page + one watch per stream, ``relists`` stays 1, no failure.
    """
    server_flags.ensure([])
    namespace = "watch-stream-ends"
    for index in range(50):
        kube_apiserver.create("gitrepos", namespace, "repo-%02d" % index, SPEC, status=STATUS)
    watched = watch(namespace, watch_timeout_seconds=1)
    listener = watched.listener
    started = time.monotonic()
    wait_until(lambda: listener.resumes >= 8, timeout=25, what="8 stream ends")
    elapsed = time.monotonic() - started
    # The listener goes on while we look: read until two readings agree.
    reading: tuple[int, ...] = ()
    while reading != (reading := (listener.resumes, listener.requests, listener.watches, listener.relists)):
        time.sleep(0.01)
    resumes, requests, watches, relists = reading
    failures = listener.failures
    assert relists == 1
    assert failures == 0
    assert requests == 1 + watches  # one list page (50 repos < page_size), then watches only
    assert resumes <= watches <= resumes + 1  # one watch per ended stream, and maybe the open one
    assert watched.sees({"repo-%02d" % index for index in range(50)})
    print(
        "\nstream ends: %d resumes in %.1f s, %d requests (1 list page + watches), %d relist(s); "
        "one relist of 50 repos took %.3f s" % (resumes, elapsed, requests, relists, listener.last_relist_seconds)
    )


def test_watch_resumes_across_an_apiserver_restart_without_relisting(kube_apiserver, watch, server_flags):
    """Restarted with ``--watch-cache=false``, the server resumes the watch from our resourceVersion.

    With the watch cache on (the default flags) the restarted server answers this resume with
    410 ("too old resource version: 221 (224)", seen here): its new cache starts at etcd's revision
    at its start, newer than our position, so the listener must relist, as client-go's reflector
    does. Served from etcd directly, the old position is valid until a compaction. The stream
    breaks when kube-apiserver goes down; the listener keeps its position through the failed
    attempts and resumes the watch there once the new process serves. An object created
    and one deleted after the restart are seen through that resumed watch alone: ``relists`` stays 1.
    """
    server_flags.ensure([])  # the listener's first watch is served by the watch cache
    namespace = "watch-restart"
    kube_apiserver.create("gitrepos", namespace, "before", SPEC, status=STATUS)
    kube_apiserver.create("gitrepos", namespace, "doomed", SPEC, status=STATUS)
    watched = watch(namespace)
    wait_until(lambda: watched.sees({"before", "doomed"}), what="the listed repos' series")
    assert watched.listener.relists == 1

    restart_seconds = server_flags.restart(NO_WATCH_CACHE)
    failures_at_restart = watched.listener.failures
    kube_apiserver.create("gitrepos", namespace, "after", SPEC, status=STATUS)
    kube_apiserver.delete("gitrepos", namespace, "doomed")

    wait_until(lambda: watched.sees({"before", "after"}), what="the new repo seen and the deleted one forgotten")
    listener = watched.listener
    assert listener.relists == 1, "the listener relisted instead of resuming its watch"
    assert listener.failures >= 1, "the restart never broke the stream: this test tested nothing"
    assert listener.watches >= 2
    print(
        "\nrestart: kube-apiserver back in %.1f s, %d failed attempts meanwhile, %d watch requests, 1 list"
        % (restart_seconds, failures_at_restart, listener.watches)
    )


def _forbid_watch(kube_apiserver: KubeApiServer, namespace: str, verbs: list[str]) -> None:
    """(Re)write the Role the test's ServiceAccount is bound to: ``verbs`` on gitrepos."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "watcher", "namespace": namespace},
        "rules": [{"apiGroups": ["fleet.cattle.io"], "resources": ["gitrepos"], "verbs": verbs}],
    }
    path = "/apis/rbac.authorization.k8s.io/v1/namespaces/%s/roles" % namespace
    status, body = kube_apiserver.request("PUT", path + "/watcher", role)
    if status == 404:
        status, body = kube_apiserver.request("POST", path, role)
    assert status in (200, 201), body


def _service_account_configuration(kube_apiserver: KubeApiServer, namespace: str) -> Any:
    kube_apiserver.ensure_namespace(namespace)
    for path, body in (
        ("/api/v1/namespaces/%s/serviceaccounts" % namespace, {"metadata": {"name": "watcher"}}),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/%s/rolebindings" % namespace,
            {
                "metadata": {"name": "watcher"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "watcher"},
                "subjects": [{"kind": "ServiceAccount", "name": "watcher", "namespace": namespace}],
            },
        ),
    ):
        status, answer = kube_apiserver.request("POST", path, body)
        assert status in (201, 409), answer
    _forbid_watch(kube_apiserver, namespace, ["list", "watch"])
    return kube_apiserver.configuration(kube_apiserver.service_account_token(namespace, "watcher"))


def test_410_after_a_compaction_relists_and_forgets_what_was_deleted_meanwhile(kube_apiserver, watch, server_flags):
    """A watch that resumes from a compacted resourceVersion gets 410; the relist forgets the deleted repo.

    kube-apiserver runs with ``--watch-cache=false`` (watches served by etcd directly: with the
    watch cache its history window would still cover the old position and no 410 would come). To
    keep the listener from seeing the deletion, its ServiceAccount loses ``watch`` (its
    ``timeoutSeconds`` is 2 s, so its stream ends and each resume answers 403, which keeps the
    position); meanwhile a repo is deleted, another created, and etcd compacted; then ``watch``
    is granted again and the resume from the old position answers 410.
    """
    namespace = "watch-compaction"
    configuration = _service_account_configuration(kube_apiserver, namespace)
    server_flags.ensure(NO_WATCH_CACHE)
    kube_apiserver.create("gitrepos", namespace, "kept", SPEC, status=STATUS)
    kube_apiserver.create("gitrepos", namespace, "deleted-unseen", SPEC, status=STATUS)
    watched = watch(namespace, configuration, watch_timeout_seconds=2)
    listener = watched.listener
    wait_until(lambda: watched.sees({"kept", "deleted-unseen"}), what="the listed repos' series")

    _forbid_watch(kube_apiserver, namespace, ["list"])
    failures = listener.failures
    wait_until(lambda: listener.failures >= failures + 2, what="the resumed watch to be refused (403)")
    kube_apiserver.delete("gitrepos", namespace, "deleted-unseen")
    kube_apiserver.create("gitrepos", namespace, "created-unseen", SPEC, status=STATUS)
    kube_apiserver.compact_etcd()
    # Still refused: the listener has seen neither change, and has not relisted.
    assert watched.sees({"kept", "deleted-unseen"})
    assert listener.relists == 1

    _forbid_watch(kube_apiserver, namespace, ["list", "watch"])
    wait_until(lambda: listener.relists == 2, what="the relist after 410 Gone")
    wait_until(lambda: watched.sees({"kept", "created-unseen"}), what="the deleted repo forgotten after the relist")
