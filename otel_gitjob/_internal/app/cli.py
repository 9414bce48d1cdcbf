"""Command line: ``otel-gitjob demo`` and ``otel-gitjob watch``.

Every failure a person can cause (no cluster, a missing extra, a port in use...) ends in one line
on stderr saying what is wrong and what to do, and an exit code of its own (``EXIT_CODES``);
``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import math
import os
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import Any

from otel_gitjob._internal.app.exporters import exporters_from_environment
from otel_gitjob._internal.app.setup import DEFAULT_HOST, DEFAULT_PORT, listen_address, setup
from otel_gitjob._internal.core.errors import ConfigurationError
from otel_gitjob.environment_variables import (
    OTEL_EXPORTER_PROMETHEUS_HOST,
    OTEL_EXPORTER_PROMETHEUS_PORT,
    OTEL_GITJOB_GAUGE_TTL,
)
from otel_gitjob.version import __version__

__all__ = ["EXIT_CODES", "main"]

# One code per thing a person can get wrong, so that scripts and the kubelet's logs can tell them
# apart; docs/troubleshooting.md explains each. 2 is argparse's own usage error.
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_CONFIGURATION = 3
EXIT_MISSING_EXTRA = 4
EXIT_NO_CLUSTER = 5
EXIT_NO_KUBECONFIG = 6
EXIT_PORT_IN_USE = 7
EXIT_BAD_HOST = 8
EXIT_CLUSTER_UNREACHABLE = 9
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells expect after Ctrl-C

EXIT_CODES = {
    EXIT_OK: "stopped cleanly (also after SIGTERM)",
    EXIT_INTERNAL: "unexpected error (a bug: run with --debug and report the traceback)",
    EXIT_USAGE: "bad command line",
    EXIT_CONFIGURATION: "a setting is wrong (otel_gitjob.ConfigurationError)",
    EXIT_MISSING_EXTRA: "watch needs the [kube] extra: pip install 'otel-gitjob[kube]'",
    EXIT_NO_CLUSTER: "no Kubernetes configuration found (not in a pod, no KUBECONFIG, no ~/.kube/config)",
    EXIT_NO_KUBECONFIG: "the kubeconfig given does not exist or cannot be read",
    EXIT_PORT_IN_USE: "the /metrics port is in use",
    EXIT_BAD_HOST: "the /metrics host is not an address of this machine",
    EXIT_CLUSTER_UNREACHABLE: "the Kubernetes API server did not answer",
    EXIT_INTERRUPTED: "interrupted by Ctrl-C (SIGINT)",
}

DEFAULT_DEMO_GAUGE_TTL = 10.0

DESCRIPTION = """\
Fleet's GitJob metrics on OpenTelemetry, with series that die with their GitRepo.

  otel-gitjob demo    a simulated GitJob controller serving /metrics
  otel-gitjob watch   watch GitRepos in a cluster and serve their metrics (sidecar)
"""


def _epilog() -> str:
    codes = "\n".join("  %3d  %s" % item for item in sorted(EXIT_CODES.items()))
    return (
        "environment variables:\n"
        "  %s  host of /metrics (--host; default %s)\n"
        "  %s  port of /metrics (--port; default %d, 0 picks a free port)\n"
        "  %s          TTL in seconds of the job-duration gauge (default 120)\n"
        "  KUBECONFIG                     kubeconfig of watch when --kubeconfig is not given\n"
        "  OTEL_GITJOB_CARDINALITY_LIMIT  series per instrument (default 10000): above the objects of one kind\n"
        "  OTEL_METRICS_EXPORTER          watch: prometheus (default), otlp, or both (prometheus,otlp);\n"
        "                                 OTLP is configured by the OTEL_EXPORTER_OTLP_* variables\n"
        "\nexit codes:\n%s\n"
        % (
            OTEL_EXPORTER_PROMETHEUS_HOST,
            DEFAULT_HOST,
            OTEL_EXPORTER_PROMETHEUS_PORT,
            DEFAULT_PORT,
            OTEL_GITJOB_GAUGE_TTL,
            codes,
        )
    )


class _Exit(Exception):
    """A failure the user can fix: one line on stderr and an exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    """The ``otel-gitjob`` argument parser (its help is plain text, shown as is)."""
    parser = argparse.ArgumentParser(
        prog="otel-gitjob",
        description=DESCRIPTION,
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version="otel-gitjob %s" % __version__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--host",
        help="address of /metrics (env %s; default %s; 0.0.0.0 in a pod)"
        % (OTEL_EXPORTER_PROMETHEUS_HOST, DEFAULT_HOST),
    )
    common.add_argument(
        "--port",
        type=int,
        help="port of /metrics (env %s; default %d; 0 picks a free port)"
        % (OTEL_EXPORTER_PROMETHEUS_PORT, DEFAULT_PORT),
    )
    common.add_argument("--debug", action="store_true", help="debug logging, and tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{demo,watch}")

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="run a simulated GitJob controller serving /metrics",
        description="A simulated GitJob controller. Durations are simulated: nothing waits for a real job.",
    )
    demo.add_argument("--repos", type=int, default=5, help="live repos to aim for (default 5)")
    demo.add_argument("--interval", type=_seconds, default=1.0, help="seconds between events (default 1)")
    demo.add_argument(
        "--gauge-ttl",
        type=float,
        help="seconds the job-duration gauge stays after its last set (env %s; default %g here, so that one "
        "expires within the first minute; Fleet's is 120)" % (OTEL_GITJOB_GAUGE_TTL, DEFAULT_DEMO_GAUGE_TTL),
    )
    demo.add_argument("--seed", type=int, help="random seed")
    demo.add_argument("--events", type=int, help="stop after this many events")

    watch = commands.add_parser(
        "watch",
        parents=[common],
        help="watch GitRepos and serve their metrics (sidecar mode)",
        description="Watch Fleet GitRepos; forget the series of deleted ones and serve the fleet_gitrepo_* gauges.",
    )
    watch.add_argument("--namespace", help="watch one namespace (default: all)")
    watch.add_argument(
        "--kinds",
        help="comma-separated kinds to watch (default: gitrepos,helmops; none with a custom resource state config)",
    )
    watch.add_argument(
        "--custom-resource-state-config-file",
        metavar="FILE",
        help="also serve the metrics of a kube-state-metrics Custom Resource State config (YAML file)",
    )
    watch.add_argument(
        "--custom-resource-state-config",
        metavar="YAML",
        help="the same config inline; wins over the file, as in kube-state-metrics",
    )
    watch.add_argument(
        "--kubeconfig",
        help="kubeconfig path (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)",
    )
    shard = watch.add_mutually_exclusive_group()
    shard.add_argument("--shard-id", help="handle GitRepos labelled fleet.cattle.io/shard-ref=ID")
    shard.add_argument("--all-shards", action="store_true", help="handle all GitRepos, whatever their shard")
    return parser


def _seconds(text: str) -> float:
    """A finite, non-negative number of seconds (argparse type): ``inf`` or ``nan`` would crash later."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number of seconds: %r" % text) from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError("must be a finite number of seconds, at least 0: %r" % text)
    return value


class _Signals:
    """SIGINT and SIGTERM set ``stop``, even when the parent started us with SIGINT ignored."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.received: int | None = None

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.received is None:
            self.received = signum
        self.stop.set()

    def exit_code(self, code: int) -> int:
        return EXIT_INTERRUPTED if self.received == signal.SIGINT else code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "watch":
        try:
            from otel_gitjob._internal.fleet.presets import KINDS
        except ImportError:  # no [kube] extra: _prepare_watch says so, with its own exit code
            pass
        else:
            crs = args.custom_resource_state_config is not None or args.custom_resource_state_config_file is not None
            kinds = args.kinds if args.kinds is not None else ("" if crs else "gitrepos,helmops")
            wanted = [name.strip() for name in kinds.split(",") if name.strip()]
            unknown = [name for name in wanted if name not in KINDS]
            if unknown or not (wanted or crs):
                parser.error(
                    "--kinds: unknown kind %s; choose from %s" % (", ".join(unknown) or "(none)", ",".join(KINDS))
                )
            args.kinds = [KINDS[name] for name in dict.fromkeys(wanted)]
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    signals = _Signals()
    if threading.current_thread() is threading.main_thread():
        signals.install()
    try:
        return signals.exit_code(_run(args, signals.stop))
    except (_Exit, ConfigurationError) as failure:  # ConfigurationError: raised later than setup()
        if args.debug:
            traceback.print_exc()
        if isinstance(failure, _Exit):
            print("otel-gitjob: error: %s" % failure, file=sys.stderr, flush=True)
            return failure.code
        print("otel-gitjob: error: %s: %s" % (_qualname(failure), failure), file=sys.stderr, flush=True)
        return EXIT_CONFIGURATION
    except KeyboardInterrupt:  # a SIGINT that arrived before our handler was installed
        return EXIT_INTERRUPTED
    except Exception as error:
        traceback.print_exc()
        print("otel-gitjob: unexpected error %s: %s" % (_qualname(error), error), file=sys.stderr, flush=True)
        return EXIT_INTERNAL


def _printer(stop: threading.Event) -> Any:
    """``print`` to stdout; when the reader went away (``otel-gitjob demo | head``), stop quietly."""

    def say(line: str) -> None:
        try:
            print(line, flush=True)
        except BrokenPipeError:
            # Further writes (and the interpreter's final flush) go nowhere instead of raising.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            stop.set()

    return say


def _custom_resource_kinds(args: argparse.Namespace) -> list[Any]:
    """The kinds of ``--custom-resource-state-config`` (inline wins) or ``--custom-resource-state-config-file``."""
    text = args.custom_resource_state_config
    if text is None and args.custom_resource_state_config_file is not None:
        path = args.custom_resource_state_config_file
        try:
            with open(path, encoding="utf-8") as config:
                text = config.read()
        except OSError as error:
            raise _Exit(
                EXIT_CONFIGURATION,
                "unable to open Custom Resource State Metrics file %s: %s" % (path, error.strerror or error),
            ) from error
    if text is None:
        return []
    from otel_gitjob._internal.kube.crs import kinds_from_crs_config

    return kinds_from_crs_config(text)  # a ConfigurationError ends in one line, exit 3


def _run(args: argparse.Namespace, stop: threading.Event) -> int:
    say = _printer(stop)
    if args.command == "watch":
        watch = _prepare_watch(args)
        args.kinds = [*args.kinds, *_custom_resource_kinds(args)]
        if stop.is_set():
            return EXIT_OK
        instrumentation = _setup(args, gauge_ttl=None)
    else:
        # The flag, else the environment variable (setup() parses it), else the demo's short default.
        if args.gauge_ttl is None and not os.environ.get(OTEL_GITJOB_GAUGE_TTL):
            args.gauge_ttl = DEFAULT_DEMO_GAUGE_TTL
        instrumentation = _setup(args, gauge_ttl=args.gauge_ttl)
    host, port = instrumentation.address or ("", 0)
    say("serving /metrics on http://%s:%d/metrics (Ctrl-C stops)" % (host, port))
    exit_code = EXIT_OK
    try:
        if args.command == "demo":
            from otel_gitjob._internal.app.demo import DemoSettings, run_demo

            say(
                "demo: durations are simulated (nothing waits for a real job); the job-duration gauge expires "
                "%s s after its last set (Fleet: 120 s; --gauge-ttl)"
                % (os.environ[OTEL_GITJOB_GAUGE_TTL] if args.gauge_ttl is None else "%g" % args.gauge_ttl)
            )
            settings = DemoSettings(repos=args.repos, interval=args.interval, seed=args.seed)
            run_demo(instrumentation, settings, stop, say=say, max_events=args.events)
        else:
            run_sidecar, configuration = watch
            exit_code = run_sidecar(
                namespace=args.namespace,
                kubeconfig=args.kubeconfig,
                shard_id=args.shard_id,
                all_shards=args.all_shards,
                lifecycle=instrumentation.lifecycle,
                meter_provider=instrumentation.meter_provider,
                stop=stop,
                configuration=configuration,
                kinds=args.kinds,
                forget_on_stop=True,  # the last OTLP export then marks every series stale
                health=instrumentation.health,
            )
    finally:
        instrumentation.shutdown()
        say("stopped")
    return exit_code


def _setup(args: argparse.Namespace, gauge_ttl: float | None) -> Any:
    """``setup()`` with the CLI's host and port; an address it cannot listen on becomes its own exit code."""
    host, port = listen_address(args.host, args.port)
    try:
        # watch also pushes where OTEL_METRICS_EXPORTER says (the demo serves /metrics only).
        exporters = exporters_from_environment() if args.command == "watch" else []
        return setup(host=host, port=port, gauge_ttl=gauge_ttl, exporters=exporters)
    except ConfigurationError as error:
        cause = error.__cause__
        if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
            raise _Exit(
                EXIT_PORT_IN_USE,
                "port %s is in use on %s: set %s or --port (0 picks a free port)"
                % (port, host, OTEL_EXPORTER_PROMETHEUS_PORT),
            ) from error
        if isinstance(cause, socket.gaierror) or (
            isinstance(cause, OSError) and cause.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)
        ):
            raise _Exit(
                EXIT_BAD_HOST,
                "cannot listen on host %r (%s): set %s or --host to an address of this machine, "
                "such as 127.0.0.1 or 0.0.0.0" % (host, cause.strerror or cause, OTEL_EXPORTER_PROMETHEUS_HOST),
            ) from error
        raise  # one line and EXIT_CONFIGURATION, from main()


def _prepare_watch(args: argparse.Namespace) -> tuple[Any, Any]:
    """``(run_sidecar, configuration)``: the listener imported and the cluster reached before anything is served."""
    try:
        from kubernetes import client as k8s_client
        from kubernetes import config as k8s_config

        from otel_gitjob._internal.app.sidecar import load_configuration, run_sidecar
    except ImportError as error:
        if (error.name or "").split(".")[0] != "kubernetes":
            raise
        raise _Exit(
            EXIT_MISSING_EXTRA,
            "watch needs the Kubernetes client, which is not installed: pip install 'otel-gitjob[kube]'",
        ) from error
    if args.kubeconfig is not None and not os.path.isfile(args.kubeconfig):
        raise _Exit(
            EXIT_NO_KUBECONFIG, "no kubeconfig at %s: pass --kubeconfig PATH of an existing file" % args.kubeconfig
        )
    try:
        configuration = load_configuration(args.kubeconfig)
    except OSError as error:
        raise _Exit(
            EXIT_NO_KUBECONFIG, "cannot read the kubeconfig %s: %s" % (error.filename or "", error.strerror)
        ) from error
    except (k8s_config.ConfigException, ConfigurationError) as error:
        if args.kubeconfig is not None:
            raise _Exit(
                EXIT_NO_KUBECONFIG, "cannot use the kubeconfig %s: %s" % (args.kubeconfig, _one_line(error))
            ) from error
        raise _Exit(
            EXIT_NO_CLUSTER,
            "no Kubernetes configuration found (not in a pod, KUBECONFIG unset, no ~/.kube/config): "
            "pass --kubeconfig PATH or run where kubectl works",
        ) from error
    except Exception as error:  # the kubernetes client's loader fails with TypeError/KeyError/... on a non-kubeconfig
        raise _Exit(
            EXIT_NO_KUBECONFIG,
            "cannot use the kubeconfig %s: it is not a kubeconfig (%s)"
            % (args.kubeconfig or "(default)", _one_line(error) or type(error).__name__),
        ) from error
    # One request before serving anything: a cluster that is down is said at once, not as endless retries.
    urllib3_logger = logging.getLogger("urllib3")
    level = urllib3_logger.level
    if not args.debug:  # its retry warnings would bury the one line that says what is wrong
        urllib3_logger.setLevel(logging.ERROR)
    try:
        with k8s_client.ApiClient(configuration) as api:
            k8s_client.VersionApi(api).get_code(_request_timeout=10)
    except Exception as error:  # urllib3's connection errors, or an ApiException with the HTTP status
        status = getattr(error, "status", None)
        if status is not None and status not in (401, 403):
            return run_sidecar, configuration  # it answered: the listener reports what it cannot watch
        if status is not None:
            what = "it refused our credentials (HTTP %s): check the kubeconfig's user" % status
        else:
            what = "%s: check that the cluster is up and the kubeconfig's context is right" % _reason(error)
        raise _Exit(
            EXIT_CLUSTER_UNREACHABLE, "cannot reach the Kubernetes API at %s: %s" % (configuration.host, what)
        ) from error
    finally:
        urllib3_logger.setLevel(level)
    return run_sidecar, configuration


def _qualname(error: BaseException) -> str:
    """The class as users import it (``otel_gitjob.ConfigurationError`` says so in its ``__module__``)."""
    cls = type(error)
    return cls.__name__ if cls.__module__ == "builtins" else "%s.%s" % (cls.__module__, cls.__qualname__)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _reason(error: BaseException) -> str:
    """The innermost cause of a connection error, e.g. 'Connection refused'."""
    while True:
        inner = getattr(error, "reason", None) or error.__cause__ or error.__context__
        if not isinstance(inner, BaseException) or inner is error:
            break
        error = inner
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = _one_line(error)
    return text.rsplit(": ", 1)[-1] if ": " in text else text
