"""A kopf operator whose GitJob metrics follow GitRepo and HelmOp lifecycles.

kopf already watches the objects, so no listener is needed: one call per kind
registers a kopf *event* handler that forgets an object's series when kopf
sees it DELETED, observes new objects, and serves Fleet's status gauges.

Why not ``@kopf.on.delete(optional=True)`` (what this example used to do): an
optional deletion handler runs only when *another* finalizer holds the
object, so for most GitRepos it never ran and their series stayed forever.
The DELETED event always arrives. If you need deletions to wait for the
operator (a finalizer), opt in with ``KOPF_EXAMPLE_FINALIZER=true`` (read
by this example only; in your operator, pass ``finalizer=True``): kopf then
puts its finalizer on every object, so a deletion is never missed even across
operator restarts, at the price that deleting any GitRepo waits until the
operator is up, and uninstalling the operator means removing its finalizer
from every object.

It never writes to the objects it watches (they are Fleet's): only kopf *event*
handlers observe them, and those store nothing on the object. A change-detecting
handler (``@kopf.on.field``, ``on.update``, ``on.create``...) would make kopf
patch its diff-base and progress annotations onto every GitRepo, which needs
``patch`` rights on another controller's objects. The commit seen last per
object is kept in memory instead; after a restart, the commits already there
are not counted again. The server binds its port in kopf's startup handler,
not when the module is imported.

Run: ``kopf run --standalone --all-namespaces examples/kopf_operator.py``
(/metrics on 127.0.0.1:9464; ``OTEL_EXPORTER_PROMETHEUS_PORT`` moves it).
With the finalizer, prefer ``--namespace NS``: every object the operator
sees gets it.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import kopf

import otel_gitjob
import otel_gitjob.kopf
from otel_gitjob.fleet import GITREPO, HELMOP

# Lifecycle + MeterProvider now (the kopf handlers below need them); /metrics when the operator starts.
instrumentation = otel_gitjob.setup(serve=False)
lifecycle, gitjob = instrumentation.lifecycle, instrumentation.gitjob
FINALIZER = os.environ.get("KOPF_EXAMPLE_FINALIZER", "").lower() in ("1", "true", "yes")

for kind in (GITREPO, HELMOP):  # DELETED → forget, ADDED → observe, status gauges
    otel_gitjob.kopf.instrument(lifecycle, kind, meter_provider=instrumentation.meter_provider, finalizer=FINALIZER)


@kopf.on.startup()
def serve_metrics(logger: Any, **_: Any) -> None:
    host, port = instrumentation.serve()  # OTEL_EXPORTER_PROMETHEUS_HOST / _PORT, or 127.0.0.1:9464
    logger.info("serving /metrics on http://%s:%d/metrics", host, port)


_commits: dict[str, str] = {}  # uid -> the status.commit seen last
_commits_lock = threading.Lock()


@kopf.on.event("fleet.cattle.io", "v1alpha1", "gitrepos")
def commit_changed(type: str | None, body: Any, **_: Any) -> None:  # noqa: A002 - kopf's keyword
    """Count a job when a GitRepo's ``status.commit`` changes; an event handler, so kopf writes nothing back."""
    uid = body.get("metadata", {}).get("uid") or ""
    commit = (body.get("status") or {}).get("commit")
    with _commits_lock:
        if type == "DELETED":
            _commits.pop(uid, None)
            return
        previous = _commits.get(uid)
        if commit:
            _commits[uid] = commit
    # type None: the listing at start-up, which shows commits that were already there before this process.
    if commit and commit != previous and type is not None:
        gitjob.job_created(body)  # your reconcile records its real measurements here


@kopf.on.cleanup()
def shutdown(**_: Any) -> None:
    instrumentation.shutdown()
