"""Watch bookmarks from a real kube-apiserver: the listener resumes from them, and that spares a relist.

What kube-apiserver v1.37.2 does (``k8s.io/apiserver/pkg/storage/cacher``, read and observed here):

* Bookmarks come only from the watch cache; ``--watch-cache=false`` sends none.
* A watch with ``timeoutSeconds`` gets its bookmark 2 s before its deadline (otherwise once a
  minute), on a timer that ticks every second.
* The bookmark carries the cache's newest resourceVersion for the *kind*, and it is sent only when
  that is newer than the watch's own position. With no GitRepo written anywhere, that
  resourceVersion moves only on an etcd progress notification. The API server asks etcd for one
  when a consistent read (a list without a resourceVersion) of any kind has to wait for the cache
  to catch up, and etcd answers every cache on that watch stream. Otherwise etcd sends one every
  10 minutes. So a short idle watch gets no bookmark (4 s and 12 s watches were seen to get none),
  and ConfigMap writes alone do not change that. A 75 s idle watch did get one 2 s before its
  deadline, moved on by the server's own reads at an unpredictable moment. The tests write
  ConfigMaps, then make one consistent GitRepo list. After that the cache, and so the next
  bookmark, sits at or past every ConfigMap write, and no GitRepo event carries such a
  resourceVersion.

Why a bookmark matters: with it, the listener's position follows the kind's newest resourceVersion
and not just its own last event, so history older than the bookmark may go (etcd compaction, a
watch-cache window that slid on) without forcing a relist. The second test makes that happen:
etcd is compacted between the listener's last event and its bookmark, and the API server is
restarted with ``--watch-cache=false``, so the resumed watch is served by etcd, which answers 410
for any position older than the compaction. A position taken from the list (what a listener that
ignored bookmarks would hold) gets 410, checked in the same test. The listener's bookmark position
resumes with no 410 and no relist.

The session's kube-apiserver is shared: these tests restart it with its default flags when an earlier
test left the watch cache off, and restore the default flags after the module.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kube_helpers import WatchedGitRepos, gitrepo_watcher
from kubernetes import client as k8s_client
from real_apiserver import GROUP, VERSION, KubeApiServer
from support import wait_until

SPEC = {"repo": "https://example.test/bookmarks.git", "branch": "main"}
STATUS = {"readyClusters": 1, "desiredReadyClusters": 1}
NO_WATCH_CACHE = "--watch-cache=false"
# 4 s streams: the server's bookmark comes 2 s into each, so one arrives within about 4 s of a change.
WATCH_SECONDS = 4
# Short backoff: a restart costs a few failed attempts, not seconds of waiting.
FAST = {"backoff_base": 0.1, "backoff_cap": 0.5, "connect_timeout": 2.0, "watch_timeout_seconds": WATCH_SECONDS}


class RecordingApi(k8s_client.CustomObjectsApi):
    """The real ``CustomObjectsApi``, noting the ``resourceVersion`` of every watch request it sends."""

    def __init__(self, api_client: k8s_client.ApiClient) -> None:
        super().__init__(api_client)
        self.watched_from: list[str | None] = []

    def list_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("watch"):
            self.watched_from.append(kwargs.get("resource_version"))
        return super().list_namespaced_custom_object(*args, **kwargs)


@pytest.fixture
def watch(kube_apiserver: KubeApiServer) -> Iterator[Any]:
    """``watch(namespace, **settings)`` → a started watcher with 4 s streams (``api`` records its watches).

    After the test every listener is stopped and every GitRepo in the watched namespaces deleted:
    the session's server is shared, and later tests watch GitRepos cluster-wide.
    """
    made: list[WatchedGitRepos] = []

    def make(namespace: str, **settings: Any) -> WatchedGitRepos:
        configuration = kube_apiserver.configuration()
        configuration.retries = False  # as the listener's own client: its backoff, not urllib3's, retries
        watched = gitrepo_watcher(
            namespace, api=RecordingApi(k8s_client.ApiClient(configuration)), **{**FAST, **settings}
        )
        made.append(watched)
        watched.start()
        return watched

    try:
        yield make
    finally:
        for watched in made:
            try:
                watched.close()
            finally:
                watched.api.api_client.close()
                for name in _gitrepo_versions(kube_apiserver, watched.namespace):
                    kube_apiserver.delete("gitrepos", watched.namespace, name)


def _watch_cache_on(server: KubeApiServer) -> bool:
    """Whether the running kube-apiserver was started without ``--watch-cache=false``."""
    assert server.apiserver is not None
    return NO_WATCH_CACHE not in [str(arg) for arg in server.apiserver.args]


@pytest.fixture(scope="module")
def default_flags(kube_apiserver: KubeApiServer) -> Iterator[KubeApiServer]:
    """The session's server with its watch cache on, now and again after this module."""
    if not _watch_cache_on(kube_apiserver):  # left so by an earlier test: no bookmarks from it
        kube_apiserver.restart_apiserver()
    try:
        yield kube_apiserver
    finally:
        if not _watch_cache_on(kube_apiserver):
            kube_apiserver.restart_apiserver()


def _move_the_cache_past_other_writes(server: KubeApiServer, namespace: str, count: int = 3) -> int:
    """Write ``count`` ConfigMaps, then make the GitRepo watch cache catch up with etcd.

    The consistent list makes kube-apiserver request an etcd progress notification, which moves
    the GitRepo cache's resourceVersion (what its next bookmark carries) to etcd's current revision.

    Returns:
        The last ConfigMap's resourceVersion: a bookmark at or past it can only come from that move.
    """
    last = 0
    for index in range(count):
        status, body = server.request(
            "POST", "/api/v1/namespaces/%s/configmaps" % namespace, {"metadata": {"generateName": "tick-%d-" % index}}
        )
        assert status == 201 and isinstance(body, dict), body
        last = int(body["metadata"]["resourceVersion"])
    status, body = server.request("GET", "/apis/%s/%s/gitrepos" % (GROUP, VERSION))
    assert status == 200 and isinstance(body, dict), body
    assert int(body["metadata"]["resourceVersion"]) >= last, "the consistent list did not read past the ConfigMaps"
    return last


def _listed_at(watched: WatchedGitRepos) -> int:
    """The list's resourceVersion: where the first watch started (a bookmark may already have moved on)."""
    wait_until(lambda: watched.api.watched_from, what="the first watch request")
    return int(watched.api.watched_from[0] or 0)


def _gitrepo_versions(server: KubeApiServer, namespace: str) -> dict[str, int]:
    """``{name: resourceVersion}`` of the GitRepos in ``namespace``."""
    status, body = server.request("GET", "/apis/%s/%s/namespaces/%s/gitrepos" % (GROUP, VERSION, namespace))
    assert status == 200 and isinstance(body, dict), body
    return {item["metadata"]["name"]: int(item["metadata"]["resourceVersion"]) for item in body["items"]}


def _compact_etcd_at(server: KubeApiServer, revision: int) -> None:
    """Compact etcd at ``revision`` exactly (``compact_etcd`` compacts at its newest revision instead)."""
    request = urllib.request.Request(
        server.etcd_url + "/v3/kv/compaction",
        data=json.dumps({"revision": revision, "physical": True}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _watch_answer(server: KubeApiServer, namespace: str, resource_version: int) -> list[dict[str, Any]]:
    """The events of a one-second GitRepo watch from ``resource_version`` (raw, not the listener's)."""
    path = "/apis/%s/%s/namespaces/%s/gitrepos?watch=1&timeoutSeconds=1&resourceVersion=%d" % (
        GROUP,
        VERSION,
        namespace,
        resource_version,
    )
    status, body = server.request("GET", path)
    if status == 410:
        return [{"type": "ERROR", "object": body}]
    assert status == 200, body
    text = body if isinstance(body, str) else json.dumps(body)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_bookmarks_move_the_resume_resource_version_past_the_last_event(default_flags, watch):
    """A bookmark moves the listener's position past its last event, and its next watch starts there.

    Nothing is written to the namespace's GitRepos after the list, so no GitRepo event can carry a
    resourceVersion past the ConfigMaps written after it: only a bookmark can.
    """
    server = default_flags
    namespace = "bookmarks-advance"
    server.create("gitrepos", namespace, "repo", SPEC, status=STATUS)
    started = time.monotonic()
    watched = watch(namespace)
    listener = watched.listener
    wait_until(lambda: watched.sees({"repo"}), what="the listed repo's series")
    listed = _listed_at(watched)
    assert listed >= max(_gitrepo_versions(server, namespace).values())

    after_configmaps = _move_the_cache_past_other_writes(server, namespace)
    assert after_configmaps > listed
    wait_until(
        lambda: listener.bookmarks >= 1 and int(listener.resource_version or 0) >= after_configmaps,
        timeout=3 * WATCH_SECONDS,
        what="a bookmark past the ConfigMaps",
    )
    bookmarked = int(listener.resource_version or 0)
    received = time.monotonic() - started
    # The stream in progress ends at its timeoutSeconds; the next watch must start at the bookmark.
    wait_until(
        lambda: any(int(rv or 0) >= bookmarked for rv in watched.api.watched_from),
        timeout=2 * WATCH_SECONDS,
        what="a watch resumed from the bookmark's resourceVersion",
    )
    assert max(_gitrepo_versions(server, namespace).values()) < after_configmaps, "a GitRepo event could have moved it"
    assert listener.relists == 1
    assert listener.failures == 0
    assert watched.sees({"repo"})
    print(
        "\nbookmark: resourceVersion %d -> %d (ConfigMaps up to %d) %.1f s after the listener started; "
        "%d bookmark(s), watches from %s"
        % (listed, bookmarked, after_configmaps, received, listener.bookmarks, watched.api.watched_from)
    )


def test_a_bookmark_spares_the_relist_after_a_compaction_past_the_last_event(default_flags, watch, caplog):
    """Compacted between its last event and its bookmark, the listener resumes from the bookmark: no 410, no relist.

    The position without bookmarks (the list's resourceVersion, the newest the listener's GitRepos
    ever gave it) is shown to answer 410 on the same server; the listener never gets one. A repo
    created and one deleted after the restart arrive through that resumed watch alone.
    """
    caplog.set_level(logging.WARNING, logger="otel_gitjob")
    server = default_flags
    namespace = "bookmarks-compaction"
    server.create("gitrepos", namespace, "kept", SPEC, status=STATUS)
    server.create("gitrepos", namespace, "doomed", SPEC, status=STATUS)
    started = time.monotonic()
    watched = watch(namespace)
    listener = watched.listener
    wait_until(lambda: watched.sees({"kept", "doomed"}), what="the listed repos' series")
    listed = _listed_at(watched)

    after_configmaps = _move_the_cache_past_other_writes(server, namespace)
    wait_until(
        lambda: int(listener.resource_version or 0) >= after_configmaps,
        timeout=3 * WATCH_SECONDS,
        what="a bookmark past the ConfigMaps",
    )
    bookmarked = int(listener.resource_version or 0)
    assert listener.bookmarks >= 1
    # Keep the last event's revision and its successor out of reach, the bookmark's within it: etcd
    # then serves a watch from the bookmark (it starts at bookmarked + 1) and none from the list.
    assert listed + 1 < bookmarked
    _compact_etcd_at(server, bookmarked)
    watches_before_restart = len(watched.api.watched_from)
    restart_seconds = server.restart_apiserver([NO_WATCH_CACHE])  # watches now come from etcd directly
    restarted = time.monotonic()

    (expired,) = _watch_answer(server, namespace, listed)
    assert expired["type"] == "ERROR" and expired["object"]["code"] == 410, expired
    server.delete("gitrepos", namespace, "doomed")
    server.create("gitrepos", namespace, "after", SPEC, status=STATUS)
    wait_until(lambda: watched.sees({"kept", "after"}), what="the changes seen through the resumed watch")
    resumed = time.monotonic() - restarted

    assert listener.relists == 1, "the listener relisted instead of resuming from its bookmark"
    assert listener.failures >= 1, "the restart never broke the stream: this test resumed nothing"
    after_restart = [int(rv or 0) for rv in watched.api.watched_from[watches_before_restart:]]
    assert after_restart, "no watch after the restart"
    assert min(after_restart) >= bookmarked, "a watch after the restart started before the bookmark"
    gone = [record.getMessage() for record in caplog.records if "410" in record.getMessage()]
    assert not gone, gone
    print(
        "\ncompaction: list at %d, bookmark at %d, etcd compacted at %d; kube-apiserver restarted in %.1f s; "
        "resumed and saw both changes %.1f s later; %d failed attempts, 1 list, watches from %s; %.1f s in all"
        % (
            listed,
            bookmarked,
            bookmarked,
            restart_seconds,
            resumed,
            listener.failures,
            watched.api.watched_from,
            time.monotonic() - started,
        )
    )


def test_a_quiet_stream_is_silent_until_its_deadline_so_the_default_read_timeout_outlasts_it(watch, default_flags):
    # Nothing is written to these namespaces, so the server sends no byte until it closes each 4 s
    # stream: a read timeout shorter than the stream (what 90 s against 300 s streams used to be) cuts
    # every quiet stream as a hung server, with a warning and a backoff. The default waits past the deadline.
    impatient = watch("bookmarks-quiet-1s", inactivity_timeout=1.0)
    patient = watch("bookmarks-quiet-default")
    # Two of the patient watch's streams reach their deadline; by then the impatient one has cut two.
    wait_until(
        lambda: patient.listener.resumes >= 2 and impatient.listener.failures >= 2,
        timeout=6 * WATCH_SECONDS,
        what="two stream deadlines on the patient watch, two cuts on the impatient one",
    )
    assert patient.listener.failures == 0
    assert (impatient.listener.relists, patient.listener.relists) == (1, 1)  # a read timeout keeps the position
