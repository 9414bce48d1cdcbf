"""Command line: ``otel-gitjob demo`` and ``otel-gitjob watch``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from otel_gitjob._internal.setup import setup


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otel-gitjob", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run a simulated GitJob controller serving /metrics")
    demo.add_argument("--repos", type=int, default=5, help="live repos to aim for (default 5)")
    demo.add_argument("--interval", type=float, default=1.0, help="seconds between events (default 1)")
    demo.add_argument("--gauge-ttl", type=float, default=None, help="TTL of the job-duration gauge (default 120)")
    demo.add_argument("--seed", type=int, default=None, help="random seed")
    demo.add_argument("--events", type=int, default=None, help="stop after this many events")

    watch = commands.add_parser("watch", help="watch GitRepos and serve their metrics (sidecar mode)")
    watch.add_argument("--namespace", default=None, help="watch one namespace (default: all)")
    watch.add_argument("--kubeconfig", default=None, help="kubeconfig path (default: in-cluster, then ~/.kube)")
    watch.add_argument(
        "--kinds", default="gitrepos,helmops", help="comma-separated kinds to watch (default: gitrepos,helmops)"
    )
    shard = watch.add_mutually_exclusive_group()
    shard.add_argument("--shard-id", default=None, help="handle GitRepos labelled fleet.cattle.io/shard-ref=ID")
    shard.add_argument("--all-shards", action="store_true", help="handle all GitRepos, whatever their shard")

    args = parser.parse_args(argv)
    if args.command == "watch":
        from otel_gitjob.fleet import KINDS

        wanted = [name.strip() for name in args.kinds.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in KINDS]
        if unknown or not wanted:
            parser.error("--kinds: unknown kind %s; choose from %s" % (", ".join(unknown) or "(none)", ",".join(KINDS)))
        args.kinds = [KINDS[name] for name in dict.fromkeys(wanted)]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    exit_code = 0
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    instrumentation = setup(gauge_ttl=getattr(args, "gauge_ttl", None))
    host, port = instrumentation.address or ("", 0)
    print("serving /metrics on http://%s:%d/metrics (Ctrl-C stops)" % (host, port), flush=True)
    try:
        if args.command == "demo":
            from otel_gitjob._internal.demo import DemoSettings, run_demo

            settings = DemoSettings(repos=args.repos, interval=args.interval, seed=args.seed)
            run_demo(instrumentation, settings, stop, say=lambda line: print(line, flush=True), max_events=args.events)
        else:
            from otel_gitjob.listener import run_sidecar

            exit_code = run_sidecar(
                namespace=args.namespace,
                kubeconfig=args.kubeconfig,
                shard_id=args.shard_id,
                all_shards=args.all_shards,
                lifecycle=instrumentation.lifecycle,
                meter_provider=instrumentation.meter_provider,
                stop=stop,
                kinds=args.kinds,
            )
    except KeyboardInterrupt:
        pass
    finally:
        instrumentation.shutdown()
        print("stopped", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
