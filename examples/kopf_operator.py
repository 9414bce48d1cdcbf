"""A kopf operator whose GitJob metrics follow GitRepo and HelmOp lifecycles.

kopf already watches the objects, so no listener is needed: one call per kind
registers a kopf *event* handler that forgets an object's series when kopf
sees it DELETED, observes new objects, and serves Fleet's status gauges.

Why not ``@kopf.on.delete(optional=True)`` (what this example used to do): an
optional deletion handler runs only when *another* finalizer holds the
object, so for most GitRepos it never ran and their series stayed forever.
The DELETED event always arrives. If you need deletions to wait for the
operator (a finalizer), pass ``finalizer=True``: kopf then puts its finalizer
on every object, so a deletion is never missed even across operator restarts,
at the price that deleting any GitRepo waits until the operator is up, and
uninstalling the operator means removing its finalizer from every object.

Run: ``kopf run --standalone --all-namespaces examples/kopf_operator.py``
(/metrics on 127.0.0.1:9464; ``OTEL_EXPORTER_PROMETHEUS_PORT`` moves it).
"""

from __future__ import annotations

from typing import Any

import kopf

import otel_gitjob
import otel_gitjob.kopf
from otel_gitjob.fleet import GITREPO, HELMOP

instrumentation = otel_gitjob.setup()  # Lifecycle + MeterProvider + /metrics
lifecycle, gitjob = instrumentation.lifecycle, instrumentation.gitjob

for kind in (GITREPO, HELMOP):  # DELETED → forget, ADDED → observe, status gauges
    otel_gitjob.kopf.instrument(lifecycle, kind, meter_provider=instrumentation.meter_provider)


@kopf.on.update("fleet.cattle.io", "v1alpha1", "gitrepos", field="status.commit")
def commit_changed(body: Any, **_: Any) -> None:
    gitjob.job_created(body)  # your reconcile records its real measurements here


@kopf.on.cleanup()
def shutdown(**_: Any) -> None:
    instrumentation.shutdown()
