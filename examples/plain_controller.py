"""A plain ``kubernetes``-client controller whose metrics follow GitRepo and HelmOp lifecycles.

One listener per kind watches the objects and calls ``lifecycle.forget`` on
deletion and ``lifecycle.observe`` on creation, and serves Fleet's
``fleet_gitrepo_*`` and ``fleet_helmop_*`` status gauges; the controller only
records its own measurements.

Run: ``python examples/plain_controller.py [--kubeconfig PATH] [--shard-id ID]``.
"""

from __future__ import annotations

import argparse
import signal
import threading

import otel_gitjob
from otel_gitjob.fleet import GITREPO, HELMOP
from otel_gitjob.listener import ListenerSettings, ResourceListener, load_configuration


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig")
    parser.add_argument("--namespace")
    parser.add_argument("--shard-id")
    args = parser.parse_args()

    instrumentation = otel_gitjob.setup()  # /metrics on 127.0.0.1:9464
    configuration = load_configuration(args.kubeconfig)  # in-cluster, KUBECONFIG, ~/.kube/config
    listeners = [
        ResourceListener(
            instrumentation.lifecycle,
            kind,
            configuration=configuration,
            settings=ListenerSettings(namespace=args.namespace, shard_id=args.shard_id),
            meter_provider=instrumentation.meter_provider,
        )
        for kind in (GITREPO, HELMOP)
    ]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for listener in listeners:
        listener.start()
    try:
        listeners[0].wait_synced(60)
        # Your reconcile loop goes here; it records, the listener forgets:
        #     instrumentation.gitjob.job_created(("fleet-local", "my-repo"))
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for listener in listeners:
            listener.stop()
        instrumentation.shutdown()


if __name__ == "__main__":
    main()
