"""Unit-test a controller's metrics without a cluster.

Installing otel-gitjob registers a pytest plugin (entry point ``pytest11``) with one fixture,
``otel_gitjob_metrics``: a fresh :class:`MetricsKit` per test, shut down after it.

.. code:: python

    from otel_gitjob.testing import watch_event

    def test_a_deleted_repo_is_forgotten(otel_gitjob_metrics):
        kit = otel_gitjob_metrics                 # the fixture: a fresh MetricsKit per test
        listener = kit.listener()                 # the shipped GitRepo listener, fed by hand
        repo = {"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo",
                "metadata": {"namespace": "fleet-local", "name": "app", "uid": "u1"},
                "status": {"readyClusters": 2}}
        kit.feed(listener, [watch_event("ADDED", repo)])
        my_controller_reconciles(repo, kit.lifecycle, kit.gitjob)   # your code under test
        assert kit.get_sample_value("fleet_gitrepo_ready_clusters", {...labels...}) == 2

        kit.feed(listener, [watch_event("DELETED", repo)])
        kit.assert_forgotten(repo)                # no series of fleet-local/app is left

``MetricsKit.kopf()`` gives the kopf handlers of ``otel_gitjob.kopf.instrument`` in a private kopf
registry, fed the same way. Outside pytest, build a ``MetricsKit()`` yourself and ``shutdown()`` it.
"""

from otel_gitjob._internal.app.testing import MetricsKit, watch_event

__all__ = ["MetricsKit", "watch_event"]
