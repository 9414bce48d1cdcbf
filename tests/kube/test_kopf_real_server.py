"""The kopf example operator, run as a user runs it (``kopf run``), against the real kube-apiserver.

The operator is a subprocess (``python -m kopf run ... examples/kopf_operator.py``) with
``KUBECONFIG`` at the fixture's admin kubeconfig and its own /metrics port: that is how the example
is meant to run, it keeps kopf's global registry and the example's module-level ``setup()`` out of
the test process, and killing it by PID is the same as a user stopping the operator (which the
finalizer test needs). Everything is read where a user reads it: the series through an HTTP GET of
the operator's /metrics, the objects (finalizers, deletion) through the API server.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kube_helpers import REPO
from prometheus_client.parser import text_string_to_metric_families
from real_apiserver import KubeApiServer
from support import free_port, stop_process, wait_until

EXAMPLE = REPO / "examples" / "kopf_operator.py"
KOPF_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"  # kopf's default (settings.persistence.finalizer)
GITREPO_LABELS = {"name", "namespace", "repo", "branch", "paths"}  # Fleet's, per the metric contract
HELMOP_LABELS = {"name", "namespace", "repo", "chart", "version"}
CREATED = "fleet_gitjobs_created_success_total"
GIT_SPEC = {"repo": "https://example.test/%s.git", "branch": "main", "paths": ["a", "b"]}
GIT_STATUS = {"readyClusters": 2, "desiredReadyClusters": 3, "resourceCounts": {"ready": 4, "missing": 1}}
HELM_STATUS = {"readyClusters": 1, "desiredReadyClusters": 1, "version": "1.2.3"}
HANDLED = "[%s/%s] Handler 'otel-gitjob-gitrepos-finalizer' succeeded"  # kopf's log line
DELETION_BOUND = 10.0  # seconds from DELETE to the series gone; measured well under 1 s
SAMPLE = tuple[str, tuple[tuple[str, str], ...]]


@dataclass
class Operator:
    """A running ``kopf run`` of the example."""

    process: subprocess.Popen[str]
    port: int
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def metrics(self) -> str:
        """The operator's /metrics ("" while it does not answer yet)."""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.port, timeout=5) as response:
                return str(response.read().decode())
        except (urllib.error.URLError, OSError) as error:
            if self.process.poll() is not None:
                exited = "the operator exited with %s:\n%s" % (self.process.returncode, self.output)
                raise AssertionError(exited) from error
            return ""


@contextlib.contextmanager
def kopf_operator(server: KubeApiServer, *args: str, finalizer: bool = False) -> Iterator[Operator]:
    """``python -m kopf run --standalone ARGS examples/kopf_operator.py``; SIGTERM (then SIGKILL) by PID on exit.

    Asserts on exit that the operator printed no traceback, error or warning.
    """
    port = free_port()
    env = dict(
        os.environ,
        KUBECONFIG=server.kubeconfig,
        OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
        KOPF_EXAMPLE_FINALIZER="true" if finalizer else "",
        PYTHONUNBUFFERED="1",
    )
    command = [sys.executable, "-m", "kopf", "run", "--standalone", *args, str(EXAMPLE)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, env=env
    )
    operator = Operator(process, port)
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: operator.lines.extend(iter(process.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()
    try:
        yield operator
    finally:
        stop_process(process, 20)
        reader.join(timeout=5)
    assert "Traceback" not in operator.output, operator.output[-4000:]
    # kopf logs a failed handler, patch or event post as an error or a warning; a clean run has none.
    complaints = [line for line in operator.lines if "[ERROR" in line or "[WARNING" in line]
    assert not complaints, "".join(complaints)[-4000:]


def samples(exposition: str, namespace: str) -> dict[SAMPLE, float]:
    """``{(sample name, sorted labels): value}`` of every sample labelled with ``namespace``."""
    found: dict[SAMPLE, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.labels.get("namespace") == namespace:
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def of(found: dict[SAMPLE, float], name: str, prefix: str = "fleet_") -> dict[SAMPLE, float]:
    """The samples of object ``name`` among ``found`` whose metric starts with ``prefix``."""
    return {key: value for key, value in found.items() if dict(key[1])["name"] == name and key[0].startswith(prefix)}


def of_kind(found: dict[SAMPLE, float], plural: str, name: str) -> dict[SAMPLE, float]:
    """The samples of the GitRepo (its status gauges and GitJob metrics) or the HelmOp called ``name``."""
    helmop = {key: value for key, value in of(found, name).items() if key[0].startswith("fleet_helmop_")}
    if plural == "helmops":
        return helmop
    return {key: value for key, value in of(found, name).items() if key not in helmop}


def labels_of(found: dict[SAMPLE, float], metric: str, name: str) -> dict[str, str]:
    """The label set of ``metric``'s only sample for object ``name``."""
    (labels,) = [dict(key[1]) for key in found if key[0] == metric and dict(key[1])["name"] == name]
    return labels


def get(server: KubeApiServer, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    """The object as the server has it, ``None`` once it is gone (404)."""
    status, body = server.request("GET", server._path(plural, namespace, name))
    if status == 404:
        return None
    assert status == 200 and isinstance(body, dict), (status, body)
    return body


def set_commit(server: KubeApiServer, plural: str, namespace: str, name: str, commit: str) -> None:
    """Write ``status.commit`` through the status subresource, as Fleet's controller does."""
    body = get(server, plural, namespace, name)
    assert body is not None
    body.setdefault("status", {})["commit"] = commit
    status, answer = server.request("PUT", server._path(plural, namespace, name) + "/status", body)
    assert status == 200, answer


def remove_leftovers(server: KubeApiServer, namespace: str) -> None:
    """Strip finalizers from and delete whatever a failed run left in ``namespace`` (the server is shared)."""
    for plural in ("gitrepos", "helmops"):
        status, body = server.request("GET", server._path(plural, namespace))
        for item in body.get("items", []) if status == 200 and isinstance(body, dict) else []:
            path = server._path(plural, namespace, item["metadata"]["name"])
            if item["metadata"].get("finalizers"):
                item["metadata"]["finalizers"] = []
                server.request("PUT", path, item)
            server.request("DELETE", path)


def delete_and_time(
    server: KubeApiServer, operator: Operator, namespace: str, doomed: dict[str, str]
) -> tuple[float, float]:
    """Delete ``{name: plural}`` through the API server.

    Returns:
        When the deletes started (``time.monotonic()``) and the seconds until none of their series
        is on /metrics.
    """
    started = time.monotonic()
    for name, plural in doomed.items():
        server.delete(plural, namespace, name)
    wait_until(
        lambda: not any(of_kind(samples(operator.metrics(), namespace), p, name) for name, p in doomed.items()),
        timeout=DELETION_BOUND,
        what="the series of %s gone from /metrics" % sorted(doomed),
    )
    return started, time.monotonic() - started


def test_kopf_example_forgets_deleted_objects_from_the_deleted_event(kube_apiserver):
    """Default mode, run exactly as the example's docstring says: no finalizer, deletions seen as DELETED events."""
    server, namespace = kube_apiserver, "kopf-events"
    # Before the operator starts: kopf's initial listing must observe it too.
    server.create("gitrepos", namespace, "early", {**GIT_SPEC, "repo": GIT_SPEC["repo"] % "early"}, GIT_STATUS)
    started = time.monotonic()
    try:
        with kopf_operator(server, "--all-namespaces") as operator:
            wait_until(lambda: of(samples(operator.metrics(), namespace), "early"), timeout=30, what="kopf up")
            up = time.monotonic() - started
            for name in ("doomed", "kept"):
                server.create("gitrepos", namespace, name, {**GIT_SPEC, "repo": GIT_SPEC["repo"] % name}, GIT_STATUS)
            helm_spec = {"helm": {"repo": "https://charts.example.test", "chart": "web"}}
            server.create("helmops", namespace, "chart", helm_spec, HELM_STATUS)
            # A HelmOp under the same name as the doomed GitRepo: deleting the GitRepo must not touch it.
            server.create("helmops", namespace, "doomed", helm_spec, HELM_STATUS)
            for name in ("doomed", "kept"):
                set_commit(server, "gitrepos", namespace, name, "c0ffee")  # what the example's event handler counts

            def recorded() -> dict[SAMPLE, float]:
                found = samples(operator.metrics(), namespace)
                ready = {dict(key[1])["name"] for key in found if key[0] == "fleet_gitrepo_ready_clusters"}
                helm = {dict(key[1])["name"] for key in found if key[0] == "fleet_helmop_ready_clusters"}
                jobs = {dict(key[1])["name"] for key in found if key[0] == CREATED}
                wanted = ready == {"early", "doomed", "kept"} and helm == {"chart", "doomed"}
                return found if wanted and jobs == {"doomed", "kept"} else {}

            found = wait_until(recorded, timeout=15, what="the GitRepos', HelmOps' and jobs' series")
            assert labels_of(found, "fleet_gitrepo_ready_clusters", "kept") == {
                "name": "kept",
                "namespace": namespace,
                "repo": "https://example.test/kept.git",
                "branch": "main",
                "paths": "a;b",
            }
            assert labels_of(found, "fleet_helmop_ready_clusters", "chart") == {
                "name": "chart",
                "namespace": namespace,
                "repo": "https://charts.example.test",
                "chart": "web",
                "version": "1.2.3",
            }
            assert labels_of(found, CREATED, "kept") == {"name": "kept", "namespace": namespace}
            for key in found:
                labels = set(dict(key[1]))
                if key[0].startswith("fleet_gitrepo_"):
                    assert labels == GITREPO_LABELS, key
                elif key[0].startswith("fleet_helmop_"):
                    assert labels == HELMOP_LABELS, key
            kept_ready = [v for k, v in of(found, "kept").items() if k[0] == "fleet_gitrepo_ready_clusters"]
            assert kept_ready == [2.0]
            assert [v for k, v in of(found, "kept").items() if k[0] == CREATED] == [1.0]
            assert len(of(found, "kept", "fleet_gitrepo_")) == 10 and len(of(found, "chart", "fleet_helmop_")) == 10
            # Default mode puts no finalizer on anything (a stopped operator never blocks a delete).
            for plural, name in (("gitrepos", "doomed"), ("gitrepos", "kept"), ("helmops", "chart")):
                body = get(server, plural, namespace, name)
                assert body is not None and not body["metadata"].get("finalizers"), body
                # Nor any of kopf's annotations (diff-base, progress): the example never writes to Fleet's objects.
                annotations = body["metadata"].get("annotations") or {}
                assert not [key for key in annotations if "kopf.zalando.org" in key], annotations

            _, seconds = delete_and_time(server, operator, namespace, {"doomed": "gitrepos", "chart": "helmops"})
            assert get(server, "gitrepos", namespace, "doomed") is None  # nothing held it
            after = samples(operator.metrics(), namespace)
            for name in ("early", "kept"):
                assert of(after, name, "fleet_gitrepo_") == of(found, name, "fleet_gitrepo_"), name
            assert of(after, "kept", CREATED) == of(found, "kept", CREATED)
            # The HelmOp "doomed" keeps all of its series: the GitRepo's deletion was kind-aware.
            assert of(after, "doomed") == of(found, "doomed", "fleet_helmop_")
            assert not of(after, "chart")
            print("\nkopf example (DELETED event): up in %.2f s, deletion to series gone %.3f s" % (up, seconds))
    finally:
        remove_leftovers(server, namespace)


def test_kopf_example_with_the_finalizer_forgets_and_releases_even_a_deletion_made_while_it_was_down(
    kube_apiserver,
):
    """Opt-in finalizer mode: the object waits for the operator, which forgets it and then lets it go.

    Scoped with ``--namespace``: on the shared server a cluster-wide run would put kopf's finalizer on
    every other test's objects, whose deletes would then hang once this operator is gone.
    """
    server, namespace = kube_apiserver, "kopf-finalizer"
    server.create("gitrepos", namespace, "first", {**GIT_SPEC, "repo": GIT_SPEC["repo"] % "first"}, GIT_STATUS)
    server.create("gitrepos", namespace, "second", {**GIT_SPEC, "repo": GIT_SPEC["repo"] % "second"}, GIT_STATUS)
    helm_spec = {"helm": {"repo": "https://charts.example.test", "chart": "db"}}
    server.create("helmops", namespace, "chart", helm_spec, HELM_STATUS)
    objects = (("gitrepos", "first"), ("gitrepos", "second"), ("helmops", "chart"))

    def finalized() -> bool:
        bodies = [get(server, plural, namespace, name) for plural, name in objects]
        return all(body and KOPF_FINALIZER in body["metadata"].get("finalizers", []) for body in bodies)

    try:
        with kopf_operator(server, "--namespace", namespace, finalizer=True) as operator:
            wait_until(finalized, timeout=30, what="kopf's finalizer on every object")
            set_commit(server, "gitrepos", namespace, "first", "c0ffee")
            wait_until(
                lambda: of(samples(operator.metrics(), namespace), "first", CREATED),
                what="the first GitRepo's job counter",
            )
            found = samples(operator.metrics(), namespace)
            assert {dict(key[1])["name"] for key in found if key[0].startswith("fleet_")} == {
                "first",
                "second",
                "chart",
            }
            deleted, seconds = delete_and_time(server, operator, namespace, {"first": "gitrepos"})
            # The operator forgot, then released its finalizer, and the server removed the object.
            wait_until(lambda: get(server, "gitrepos", namespace, "first") is None, timeout=DELETION_BOUND)
            released = time.monotonic() - deleted
            # kopf ran the integration's deletion handler (the finalizer's), not only the DELETED event.
            wait_until(lambda: HANDLED % (namespace, "first") in operator.output, what="the deletion handler's log")
            after = samples(operator.metrics(), namespace)
            assert of(after, "second") == of(found, "second") and of(after, "chart") == of(found, "chart")

        # The operator is down: a deletion now waits for it (the finalizer's trade-off).
        server.delete("gitrepos", namespace, "second")
        time.sleep(1.0)
        held = get(server, "gitrepos", namespace, "second")
        assert held is not None and held["metadata"].get("deletionTimestamp"), held
        assert KOPF_FINALIZER in held["metadata"]["finalizers"]

        with kopf_operator(server, "--namespace", namespace, finalizer=True) as restarted:
            # Back up, it sees the pending deletion, forgets the object and releases it.
            wait_until(lambda: get(server, "gitrepos", namespace, "second") is None, timeout=30, what="release")
            wait_until(lambda: of(samples(restarted.metrics(), namespace), "chart"), what="the HelmOp observed again")
            wait_until(lambda: HANDLED % (namespace, "second") in restarted.output, what="the deletion handler's log")
            final = samples(restarted.metrics(), namespace)
            assert not of(final, "second") and not of(final, "first")
            assert labels_of(final, "fleet_helmop_ready_clusters", "chart")["chart"] == "db"
        print(
            "\nkopf example (finalizer): deletion to series gone %.3f s, object removed by the server %.3f s"
            % (seconds, released)
        )
    finally:
        remove_leftovers(server, namespace)
