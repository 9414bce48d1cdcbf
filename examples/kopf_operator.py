"""A kopf operator that keeps GitJob metrics in step with GitRepo lifecycles.

kopf already watches GitRepos, so no listener is needed: its handlers call the
lifecycle directly. Run with ``kopf run examples/kopf_operator.py --all-namespaces``.
"""

from __future__ import annotations

from typing import Any

import kopf

import otel_gitjob

instrumentation = otel_gitjob.setup()  # Lifecycle + MeterProvider + /metrics on :9464
lifecycle, gitjob = instrumentation.lifecycle, instrumentation.gitjob


def ref(meta: Any) -> otel_gitjob.RepoRef:
    return otel_gitjob.RepoRef(meta["namespace"], meta["name"], meta.get("uid"))


@kopf.on.create("fleet.cattle.io", "v1alpha1", "gitrepos")
@kopf.on.resume("fleet.cattle.io", "v1alpha1", "gitrepos")
def gitrepo_alive(meta: Any, **_: Any) -> None:
    lifecycle.observe(ref(meta))  # a recreated repo is measured again


@kopf.on.update("fleet.cattle.io", "v1alpha1", "gitrepos", field="status.commit")
def commit_changed(meta: Any, **_: Any) -> None:
    gitjob.job_created(ref(meta))  # your reconcile would record its real measurements here


@kopf.on.delete("fleet.cattle.io", "v1alpha1", "gitrepos", optional=True)
def gitrepo_deleted(meta: Any, logger: Any, **_: Any) -> None:
    # optional=True: no finalizer; the series go when kopf sees the deletion.
    removed = lifecycle.forget(ref(meta))
    logger.info("forgot %d series of %s/%s", removed, meta["namespace"], meta["name"])


@kopf.on.cleanup()
def shutdown(**_: Any) -> None:
    instrumentation.shutdown()
