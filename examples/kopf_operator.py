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

Run: ``kopf run --standalone --all-namespaces examples/kopf_operator.py``
(/metrics on 127.0.0.1:9464; ``OTEL_EXPORTER_PROMETHEUS_PORT`` moves it).
With the finalizer, prefer ``--namespace NS``: every object the operator
sees gets it.
"""

from __future__ import annotations

import os
from typing import Any

import kopf

import otel_gitjob
import otel_gitjob.kopf
from otel_gitjob.fleet import GITREPO, HELMOP

instrumentation = otel_gitjob.setup()  # Lifecycle + MeterProvider + /metrics
lifecycle, gitjob = instrumentation.lifecycle, instrumentation.gitjob
FINALIZER = os.environ.get("KOPF_EXAMPLE_FINALIZER", "").lower() in ("1", "true", "yes")

for kind in (GITREPO, HELMOP):  # DELETED → forget, ADDED → observe, status gauges
    otel_gitjob.kopf.instrument(lifecycle, kind, meter_provider=instrumentation.meter_provider, finalizer=FINALIZER)


# on.field, not on.update: a GitRepo is created without status.commit, so kopf
# stores no diff base then and sees the first commit as a *creation*, which an
# update handler never gets; on.field runs on every change of the field, the
# first commit included (and adds no finalizer).
@kopf.on.field("fleet.cattle.io", "v1alpha1", "gitrepos", field="status.commit")
def commit_changed(body: Any, **_: Any) -> None:
    gitjob.job_created(body)  # your reconcile records its real measurements here


@kopf.on.cleanup()
def shutdown(**_: Any) -> None:
    instrumentation.shutdown()
