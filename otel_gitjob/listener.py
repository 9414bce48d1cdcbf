"""The Kubernetes listener (needs ``pip install 'otel-gitjob[kube]'``).

Usage
-----

.. code:: python

    import otel_gitjob
    from otel_gitjob.fleet import GITREPO, HELMOP
    from otel_gitjob.listener import ListenerSettings, ResourceListener

    instrumentation = otel_gitjob.setup()
    for kind in (GITREPO, HELMOP):
        ResourceListener(
            instrumentation.lifecycle,
            kind,
            meter_provider=instrumentation.meter_provider,
            settings=ListenerSettings(shard_id=None),  # Fleet's default shard, cluster-wide
        ).start()

A :class:`KindSpec` describes any other kind (your own CRD). Without a
``configuration``, the client configuration is loaded as kubectl does
(:func:`load_configuration`).

``kinds_from_crs_config(yaml_text)`` reads a kube-state-metrics Custom Resource
State config (``kind: CustomResourceStateMetrics``) into one ``KindSpec`` per
resource, whose gauges expose the series kube-state-metrics would.

Kept out of ``otel_gitjob`` itself so that recording needs no ``kubernetes`` client.
"""

from otel_gitjob._internal.app.deprecated import aliases
from otel_gitjob._internal.app.sidecar import run_sidecar
from otel_gitjob._internal.kube import (
    GaugeSpec,
    KindSpec,
    ListenerSettings,
    ResourceListener,
)
from otel_gitjob._internal.kube.config import load_configuration
from otel_gitjob._internal.kube.crs import kinds_from_crs_config

__all__ = [
    "GaugeSpec",
    "KindSpec",
    "ListenerSettings",
    "ResourceListener",
    "kinds_from_crs_config",
    "load_configuration",
    "run_sidecar",
]

__getattr__ = aliases(__name__)  # GitRepoListener: deprecated, see _internal/app/deprecated.py
