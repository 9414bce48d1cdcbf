"""The fixture's own helpers, which the resume/410/bookmark tests build on: restart and compaction."""

from __future__ import annotations

import json

from real_apiserver import GROUP, VERSION


def watch_events(server, resource_version: str) -> list[dict]:
    """The events of a one-second GitRepo watch from ``resource_version``."""
    path = "/apis/%s/%s/namespaces/fleet-fixture/gitrepos?watch=1&timeoutSeconds=1&resourceVersion=%s" % (
        GROUP,
        VERSION,
        resource_version,
    )
    status, body = server.request("GET", path)
    assert status == 200, body
    text = body if isinstance(body, str) else json.dumps(body)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_restart_keeps_etcd_state_and_compaction_expires_older_resource_versions(kube_apiserver):
    created = kube_apiserver.create("gitrepos", "fleet-fixture", "fixture-repo", {"repo": "https://example.test/f"})
    before = created["metadata"]["resourceVersion"]
    kube_apiserver.patch_labels("gitrepos", "fleet-fixture", "fixture-repo", {"edited": "yes"})
    # Not yet compacted: the edit is replayed from the old resourceVersion.
    assert [event["type"] for event in watch_events(kube_apiserver, before)] == ["MODIFIED"]

    compacted = kube_apiserver.compact_etcd()
    assert compacted > int(before)
    try:
        # Without the watch cache every watch is served by etcd, so the compaction shows at once.
        seconds = kube_apiserver.restart_apiserver(["--watch-cache=false"])
        print("kube-apiserver restarted in %.2f s" % seconds)
        status, body = kube_apiserver.request("GET", kube_apiserver._path("gitrepos", "fleet-fixture", "fixture-repo"))
        assert status == 200 and body["metadata"]["labels"] == {"edited": "yes"}
        (event,) = watch_events(kube_apiserver, before)
        assert event["type"] == "ERROR" and event["object"]["code"] == 410, json.dumps(event)
    finally:
        kube_apiserver.restart_apiserver()
    kube_apiserver.delete("gitrepos", "fleet-fixture", "fixture-repo")
