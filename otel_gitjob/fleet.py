"""Fleet's kinds as listener presets (needs ``pip install 'otel-gitjob[kube]'``).

.. code:: python

    from otel_gitjob.fleet import GITREPO, HELMOP
    from otel_gitjob.listener import ResourceListener

    for kind in (GITREPO, HELMOP):
        ResourceListener(instrumentation.lifecycle, kind, meter_provider=instrumentation.meter_provider).start()

``GITREPO`` serves Fleet's ten ``fleet_gitrepo_*`` status gauges (labels
``name, namespace, repo, branch, paths``), ``HELMOP`` the ten ``fleet_helmop_*``
gauges (labels ``name, namespace, repo, chart, version``; ``repo`` is
``spec.helm.repo``, ``chart`` ``spec.helm.chart``, ``version`` ``status.version``).
``repo`` never carries credentials (:func:`sanitize_repo_url`).
"""

from otel_gitjob._internal.fleet.presets import GITREPO, HELMOP, KINDS, sanitize_repo_url
from otel_gitjob._internal.kube.kind import GaugeSpec, KindSpec

__all__ = ["GITREPO", "HELMOP", "KINDS", "GaugeSpec", "KindSpec", "sanitize_repo_url"]
