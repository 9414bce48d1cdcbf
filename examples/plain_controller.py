"""A plain ``kubernetes``-client controller whose GitRepo metrics follow GitRepo lifecycles.

The listener watches GitRepos and calls ``lifecycle.forget`` on deletion and
``lifecycle.observe`` on creation, and serves Fleet's ``fleet_gitrepo_*``
status gauges; the controller only records its own measurements.

Run: ``python examples/plain_controller.py [--kubeconfig PATH] [--shard-id ID]``.
"""

from __future__ import annotations

import argparse
import signal
import threading

import otel_gitjob
from otel_gitjob.listener import GitRepoListener, ListenerSettings, load_configuration


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig")
    parser.add_argument("--namespace")
    parser.add_argument("--shard-id")
    args = parser.parse_args()

    instrumentation = otel_gitjob.setup()  # /metrics on 127.0.0.1:9464
    listener = GitRepoListener(
        instrumentation.lifecycle,
        configuration=load_configuration(args.kubeconfig),
        settings=ListenerSettings(namespace=args.namespace, shard_id=args.shard_id),
        meter_provider=instrumentation.meter_provider,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    listener.start()
    try:
        listener.wait_synced(60)
        # Your reconcile loop goes here; it records, the listener forgets:
        #     instrumentation.gitjob.job_created(("fleet-local", "my-repo"))
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()
        instrumentation.shutdown()


if __name__ == "__main__":
    main()
