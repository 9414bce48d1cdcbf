"""The GitRepo event listener (needs ``pip install 'otel-gitjob[kube]'``).

Usage
-----

.. code:: python

    import otel_gitjob
    from otel_gitjob.listener import GitRepoListener, ListenerSettings

    instrumentation = otel_gitjob.setup()
    listener = GitRepoListener(
        instrumentation.lifecycle,
        meter_provider=instrumentation.meter_provider,
        settings=ListenerSettings(shard_id=None),  # Fleet's default shard, cluster-wide
    )
    listener.start()

Kept out of ``otel_gitjob`` itself so that recording needs no ``kubernetes`` client.
"""

from otel_gitjob._internal.listener import GitRepoListener, ListenerSettings, run_sidecar
from otel_gitjob._internal.listener.sidecar import load_configuration

__all__ = ["GitRepoListener", "ListenerSettings", "load_configuration", "run_sidecar"]
