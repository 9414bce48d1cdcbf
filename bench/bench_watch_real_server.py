"""Resume vs relist, and event → forget, against a real kube-apiserver (a script, not a test).

The script starts its own etcd and kube-apiserver on 127.0.0.1 with ``tests/kube/real_apiserver.py``
(the binaries ``scripts/kube-apiserver`` builds; ``KUBE_APISERVER_BIN``/``ETCD_BIN`` override),
creates N GitRepos (default 1,000) through the API, and kills both processes by PID in a
``finally``. Nothing in the measured path is emulated: the listener is the shipped
``ResourceListener`` on ``otel_gitjob.fleet.GITREPO`` with the real ``otel_gitjob.Lifecycle``.

**Stream ends.** A real API server ends every watch at the ``timeoutSeconds`` the client asked for
(the listener asks for ``watch_timeout_seconds``, 300 s by default), so 30 minutes of watching one
kind is 6 stream ends. The benchmark compresses the timeout so that the server ends the streams
sooner, and takes the listener through:

* ``30min``: 6 stream ends (what 30 minutes at the default 300 s give) at a 2 s timeout;
* ``stress``: 60 stream ends at a 1 s timeout (the smallest ``timeoutSeconds`` there is);

each once as shipped (``resume``: watch again from the newest resourceVersion) and once as the
baseline ``relist`` (the old behaviour: a full paginated list after every stream end, forced by a
subclass in this script; the library is unchanged). Counted from the first watch being open until
the watch after the last stream end is open: list pages and watch requests (the listener's own
counters, cross-checked against the server's ``apiserver_request_total``), response-body bytes
received (counted by wrapping the listener's body reads), seconds spent in lists, seconds with no
watch open (stream end → next watch request sent), the kube-apiserver's and etcd's CPU seconds
(``/proc/<pid>/stat``), and the benchmark process's CPU seconds. Modes are interleaved and their
order alternates between rounds; medians over rounds; the ratio is relist / resume in the same run.

**Event → forget.** Every repo has series (the seven GitJob series recorded through
``GitJobMetrics``, plus the ten status gauges the listener serves); D repos (default 200) are
deleted through the API: half one at a time (each waited for), half in bursts (default 20
DELETEs back to back on one keep-alive connection). A removal listener on the lifecycle's registry
(``Lifecycle.registry.add_removal_listener``) stamps when a deleted repo's series are evicted from
SDK storage (and nothing of it is left in the registry). Reported: p50/p99/max/min from the
DELETE's response (negative when the watch event was handled before the response arrived), from
sending it, and from the listener reading the DELETED line (its own share). Afterwards one
collection checks that no series of a deleted repo is left and every surviving repo still has its
series. One round per ``--rounds``, each with a fresh lifecycle and listener, the deleted repos
created again in between; the table gives the median of the rounds' figures and, in brackets,
the figures over all rounds pooled.

Run (from the repository root, several minutes on 2 shared cores)::

    nice -n 10 .venv/bin/python bench/bench_watch_real_server.py [--repos N] [--rounds R]
        [--only stream-ends|deletes] [--json PATH]
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import re
import ssl
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "kube")]

import bench_listener  # noqa: E402  (bench/ is on sys.path: this script's folder)
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from real_apiserver import GROUP, VERSION, KubeApiServer, find_binaries  # noqa: E402

import otel_gitjob  # noqa: E402
from otel_gitjob._internal.core.lifecycle import hooks_of  # noqa: E402
from otel_gitjob.fleet import GITREPO  # noqa: E402
from otel_gitjob.listener import ListenerSettings, ResourceListener  # noqa: E402

NAMESPACE = "bench"
PATH = "/apis/%s/%s/namespaces/%s/gitrepos" % (GROUP, VERSION, NAMESPACE)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------- the objects


def gitrepo(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A GitRepo of realistic size (``bench_listener.py``'s, in this namespace): the object and its status.

    What the server sets (uid, resourceVersion) is left to it; the status goes through its subresource.
    """
    body = bench_listener.gitrepo(i)
    status = body.pop("status")
    metadata = body["metadata"]
    del metadata["uid"], metadata["resourceVersion"]
    metadata["namespace"] = NAMESPACE
    body["spec"]["repo"] = "https://git.example.com/org/%s.git" % metadata["name"]  # as measured: no userinfo
    return body, status


class Connection:
    """One keep-alive HTTPS connection to the API server with the admin token (one per thread)."""

    def __init__(self, server: KubeApiServer) -> None:
        host, port = server.base_url.removeprefix("https://").split(":")
        context = ssl.create_default_context(cafile=server.ca_file)
        self._conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=30)
        self._token = server.ADMIN_TOKEN

    def call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> int:
        headers = {"Authorization": "Bearer %s" % self._token, "Content-Type": content_type}
        self._conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = self._conn.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError("%s %s answered %s: %r" % (method, path, response.status, data[:300]))
        return response.status

    def close(self) -> None:
        self._conn.close()


def populate(server: KubeApiServer, indexes: list[int], threads: int = 4) -> float:
    """Create GitRepos ``repo-<index>`` and set their status, through the API; returns the seconds taken.

    Every object goes through kube-apiserver (admission, validation, etcd), as ``kubectl apply``
    would; what makes it fast is keep-alive connections and a few threads instead of a new TLS
    connection per request (``KubeApiServer.create`` opens one per call, three calls per object).
    """
    server.ensure_namespace(NAMESPACE)
    started = time.perf_counter()
    errors: list[BaseException] = []

    def work(share: list[int]) -> None:
        connection = Connection(server)
        try:
            for i in share:
                body, status = gitrepo(i)
                connection.call("POST", PATH, body)
                # The status subresource ignores status on create, as Fleet's CRD does: set it apart.
                connection.call(
                    "PATCH",
                    "%s/%s/status" % (PATH, body["metadata"]["name"]),
                    {"status": status},
                    "application/merge-patch+json",
                )
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=work, args=(indexes[t::threads],)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------------- measuring


class MeasuredListener(ResourceListener):
    """The shipped listener, with counters around its own I/O steps (nothing else overridden).

    ``relist_each_end=True`` is the baseline, the previous behaviour: the position is dropped
    after every stream end, however the stream ended, so the next step is a full relist.
    """

    relist_each_end = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pages = 0
        self.list_bytes = 0
        self.watch_bytes = 0
        self.list_seconds = 0.0
        self.not_watching_seconds = 0.0
        self.deleted_read: dict[str, float] = {}
        self._ended_at: float | None = None

    def _relist(self) -> str | None:
        started = time.perf_counter()
        try:
            return super()._relist()
        finally:
            self.list_seconds += time.perf_counter() - started

    def _read_body(self, response: Any) -> bytes:
        body = super()._read_body(response)
        self.pages += 1
        self.list_bytes += len(body)
        return body

    def _lines(self, response: Any) -> Iterator[str]:
        for line in super()._lines(response):
            self.watch_bytes += len(line.encode()) + 1  # the newline iter_resp_lines strips
            yield line

    def _handle_line(self, line: str) -> None:
        if line.startswith('{"type":"DELETED"'):
            name = json.loads(line)["object"]["metadata"]["name"]
            self.deleted_read.setdefault(name, time.perf_counter())
        super()._handle_line(line)

    def _watch(self, resource_version: str | None) -> str | None:
        if self._ended_at is not None:
            self.not_watching_seconds += time.perf_counter() - self._ended_at
        try:
            position = super()._watch(resource_version)
        finally:
            self._ended_at = time.perf_counter()
            if self.relist_each_end:
                self._position = None
        return None if self.relist_each_end else position


class RelistEveryTime(MeasuredListener):
    """The baseline: a full relist after every stream end."""

    relist_each_end = True


def wait_for(condition: Callable[[], Any], timeout: float = 120.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("timed out waiting for %s" % what)
        time.sleep(0.001)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all threads), from ``/proc/<pid>/stat``."""
    fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


_REQUEST_TOTAL = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$", re.M)


def server_requests(server: KubeApiServer) -> dict[str, float]:
    """The server's own ``apiserver_request_total`` for gitrepos, summed by verb (LIST, WATCH, ...)."""
    status, text = server.request("GET", "/metrics")
    if status != 200 or not isinstance(text, str):
        raise RuntimeError("/metrics answered %s" % status)
    totals: dict[str, float] = {}
    for labels, value in _REQUEST_TOTAL.findall(text):
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if pairs.get("resource") == "gitrepos" and pairs.get("group") == GROUP:
            totals[pairs["verb"]] = totals.get(pairs["verb"], 0.0) + float(value)
    return totals


def stack() -> tuple[otel_gitjob.Lifecycle, MeterProvider, InMemoryMetricReader]:
    lifecycle = otel_gitjob.Lifecycle()
    reader = InMemoryMetricReader()
    return lifecycle, MeterProvider(metric_readers=[reader], views=lifecycle.views()), reader


def settings(**overrides: Any) -> ListenerSettings:
    return ListenerSettings(namespace=NAMESPACE, all_shards=True, **overrides)


@dataclass
class Reading:
    pages: int
    watches: int
    list_bytes: int
    watch_bytes: int
    list_seconds: float
    not_watching: float
    wall: float
    apiserver_cpu: float
    etcd_cpu: float
    client_cpu: float

    @classmethod
    def take(cls, server: KubeApiServer, listener: MeasuredListener) -> Reading:
        assert server.apiserver is not None and server.etcd is not None
        return cls(
            listener.pages,
            listener.watches,
            listener.list_bytes,
            listener.watch_bytes,
            listener.list_seconds,
            listener.not_watching_seconds,
            time.perf_counter(),
            cpu_seconds(server.apiserver.pid),
            cpu_seconds(server.etcd.pid),
            time.process_time(),
        )

    def minus(self, other: Reading) -> dict[str, float]:
        return {key: value - getattr(other, key) for key, value in vars(self).items()}


def stream_ends(server: KubeApiServer, cls: type[MeasuredListener], ends: int, timeout: int) -> dict[str, float]:
    """Take one listener through ``ends`` stream ends; what re-establishing the watch cost after each."""
    lifecycle, provider, _ = stack()
    listener = cls(
        lifecycle,
        GITREPO,
        configuration=server.configuration(),
        settings=settings(watch_timeout_seconds=timeout),
        meter_provider=provider,
    )
    before = server_requests(server)
    listener.start()
    try:
        wait_for(lambda: listener.watches >= 1, what="the first watch")
        # Counters read right after the first watch request: the next stream end is `timeout` s away.
        first = Reading.take(server, listener)
        if listener.watches != 1 or listener.resumes:
            raise RuntimeError("a stream ended before the first reading; use a longer timeout")
        wait_for(lambda: listener.watches >= ends + 1, timeout=ends * (timeout + 30), what="%d stream ends" % ends)
        last = Reading.take(server, listener)
        if listener.watches != ends + 1:
            raise RuntimeError("missed the reading after the last stream end")
    finally:
        listener.stop()
        provider.shutdown()
        lifecycle.shutdown()
    result = last.minus(first)
    result.update(
        failures=listener.failures,
        total_pages=listener.pages,
        total_watches=listener.watches,
        initial_pages=first.pages,
    )
    # The server counts a watch when it ends, and stop() ended the last one just now: wait for it.
    deadline = time.monotonic() + 10
    while True:
        after = server_requests(server)
        server_lists = after.get("LIST", 0.0) - before.get("LIST", 0.0)
        server_watches = after.get("WATCH", 0.0) - before.get("WATCH", 0.0)
        if (server_lists, server_watches) == (listener.pages, listener.watches) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    result.update(server_lists=server_lists, server_watches=server_watches)
    return result


def bench_stream_ends(server: KubeApiServer, args: argparse.Namespace) -> dict[str, Any]:
    scenarios = [
        ("30min", "6 stream ends (30 min at the default 300 s timeout), timeout 2 s", 6, 2),
        ("stress", "%d stream ends, timeout 1 s (stress)" % args.stress_ends, args.stress_ends, 1),
    ]
    modes: list[tuple[str, type[MeasuredListener]]] = [("relist", RelistEveryTime), ("resume", MeasuredListener)]
    out: dict[str, Any] = {}
    for key, label, ends, timeout in scenarios:
        runs: dict[str, list[dict[str, float]]] = {"relist": [], "resume": []}
        for round_ in range(args.rounds):
            order = modes if round_ % 2 == 0 else modes[::-1]  # interleaved, order alternating
            for mode, cls in order:
                print("%s round %d: %s" % (key, round_ + 1, mode), file=sys.stderr, flush=True)
                runs[mode].append(stream_ends(server, cls, ends, timeout))
        medians = {mode: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for mode, rs in runs.items()}
        out[key] = {"label": label, "ends": ends, "timeout": timeout, "runs": runs, "medians": medians}
        print_stream_table(label, args, medians)
    return out


def print_stream_table(label: str, args: argparse.Namespace, medians: dict[str, dict[str, float]]) -> None:
    rows = [
        ("list pages", "pages", "{:.0f}"),
        ("watch requests", "watches", "{:.0f}"),
        ("requests (server's count: LIST + WATCH)", None, "{:.0f}"),
        ("bytes received (list bodies)", "list_bytes", "{:,.0f}"),
        ("bytes received (watch streams)", "watch_bytes", "{:,.0f}"),
        ("seconds in lists", "list_seconds", "{:.3f}"),
        ("ms with no watch open (stream end → next watch sent)", "not_watching", "ms"),
        ("kube-apiserver CPU s", "apiserver_cpu", "{:.2f}"),
        ("etcd CPU s", "etcd_cpu", "{:.2f}"),
        ("benchmark process CPU s", "client_cpu", "{:.2f}"),
        ("wall s", "wall", "{:.2f}"),
    ]
    relist, resume = medians["relist"], medians["resume"]
    print("\n%d GitRepos, %s; medians of %d rounds, after the first sync\n" % (args.repos, label, args.rounds))
    print("| | relist at every end (before) | resume (now) | relist / resume |")
    print("| --- | ---: | ---: | ---: |")
    for title, key, fmt in rows:
        if key is None:
            a = relist["server_lists"] + relist["server_watches"] - relist["initial_pages"] - 1
            b = resume["server_lists"] + resume["server_watches"] - resume["initial_pages"] - 1
        else:
            a, b = relist[key], resume[key]
        if fmt == "ms":
            a, b, fmt = a * 1000, b * 1000, "{:.3f}"
        # A ratio against (next to) nothing says nothing more than the two figures beside it.
        ratio = "–" if not b else "> 1,000×" if a / b > 1000 else "%.1f×" % (a / b)
        print("| %s | %s | %s | %s |" % (title, fmt.format(a), fmt.format(b), ratio))
    print(
        "\nfailures: relist %d, resume %d; server-counted LIST/WATCH over each whole run (first list included): "
        "relist %d/%d, resume %d/%d"
        % (
            relist["failures"],
            resume["failures"],
            relist["server_lists"],
            relist["server_watches"],
            resume["server_lists"],
            resume["server_watches"],
        )
    )


# ---------------------------------------------------------------------------------------------- deletions


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def delete_round(server: KubeApiServer, args: argparse.Namespace) -> dict[str, Any]:
    """One round: a fresh lifecycle and listener, series for every repo, ``--deletes`` repos deleted."""
    lifecycle, provider, reader = stack()
    metrics = otel_gitjob.GitJobMetrics(provider, lifecycle=lifecycle)
    listener = MeasuredListener(
        lifecycle, GITREPO, configuration=server.configuration(), settings=settings(), meter_provider=provider
    )
    gone: dict[str, float] = {}
    sent: dict[str, float] = {}
    answered: dict[str, float] = {}

    def on_removed(obj: Any, series: list[Any], finals: list[Any]) -> None:
        now = time.perf_counter()
        # Only a deleted repo's removal with nothing of it left counts (not, say, the 120 s expiry of one gauge).
        if obj is not None and obj[0] == "GitRepo" and obj[1][0] == NAMESPACE and obj[1][1] in sent:
            if obj not in hooks_of(lifecycle).registry.objects_of_kind("GitRepo"):
                gone.setdefault(obj[1][1], now)

    names = ["repo-%05d" % i for i in range(args.repos)]
    doomed = names[: args.deletes]
    singles, bursts = doomed[: len(doomed) // 2], doomed[len(doomed) // 2 :]
    listener.start()
    connection = Connection(server)
    try:
        wait_for(lambda: listener.wait_synced(0) and listener.wait_idle(0), what="the first list")
        for name in names:  # the seven GitJob series of each repo
            repo = {"metadata": {"namespace": NAMESPACE, "name": name}}
            metrics.job_created(repo)
            metrics.job_creation_failed(repo)
            metrics.job_succeeded(repo, 12.5)
            metrics.commit_fetched(repo, 0.4)
            metrics.commit_fetch_failed(repo)
        missing = set(names) - series_names(reader)
        if missing:
            raise RuntimeError("%d repos have no series before the deletions" % len(missing))
        hooks_of(lifecycle).registry.add_removal_listener(on_removed)

        def delete(name: str) -> None:
            sent[name] = time.perf_counter()
            connection.call("DELETE", "%s/%s" % (PATH, name))
            answered[name] = time.perf_counter()

        print("  deleting %d one at a time..." % len(singles), file=sys.stderr, flush=True)
        for name in singles:
            delete(name)
            wait_for(lambda name=name: name in gone, timeout=30, what="%s forgotten" % name)  # type: ignore[misc]
            time.sleep(0.02)
        print("  deleting %d in bursts of %d..." % (len(bursts), args.burst), file=sys.stderr, flush=True)
        for start in range(0, len(bursts), args.burst):
            burst = bursts[start : start + args.burst]
            for name in burst:
                delete(name)
            wait_for(lambda burst=burst: all(n in gone for n in burst), timeout=60, what="a burst")  # type: ignore[misc]
            time.sleep(0.2)

        listener.wait_idle(10)
        after = series_names(reader)
        left = after & set(doomed)
        if left:
            raise RuntimeError("series of deleted repos left: %s" % sorted(left)[:5])
        if after != set(names) - set(doomed):
            raise RuntimeError("a surviving repo lost its series")
    finally:
        connection.close()
        hooks_of(lifecycle).registry.remove_removal_listener(on_removed)
        listener.stop()
        provider.shutdown()
        lifecycle.shutdown()

    def ms(group: list[str], start: dict[str, float]) -> list[float]:
        return [(gone[n] - start[n]) * 1000 for n in group]

    return {
        "response_to_gone": ms(doomed, answered),
        "response_to_gone_singles": ms(singles, answered),
        "response_to_gone_bursts": ms(bursts, answered),
        "sent_to_gone": ms(doomed, sent),
        "read_to_gone": ms(doomed, listener.deleted_read),
        "delete_round_trip": [(answered[n] - sent[n]) * 1000 for n in doomed],
    }


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": percentile(values, 50),
        "p99_ms": percentile(values, 99),
        "max_ms": max(values),
        "min_ms": min(values),
    }


def bench_deletes(server: KubeApiServer, args: argparse.Namespace) -> dict[str, Any]:
    """``--rounds`` rounds of deletions; the deleted repos are created again (through the API) in between."""
    rounds: list[dict[str, list[float]]] = []
    for round_ in range(args.rounds):
        if round_:
            populate(server, list(range(args.deletes)))
        print("deletions round %d" % (round_ + 1), file=sys.stderr, flush=True)
        rounds.append(delete_round(server, args))
    result: dict[str, Any] = {"repos": args.repos, "deletes": args.deletes, "burst": args.burst, "rounds": args.rounds}
    for key in rounds[0]:
        per_round = [summary(r[key]) for r in rounds]
        result[key] = {
            "median_of_rounds": {stat: statistics.median(s[stat] for s in per_round) for stat in per_round[0]},
            "pooled": summary([v for r in rounds for v in r[key]]),
            "per_round": per_round,
        }
    result["gone_before_response"] = [sum(1 for v in r["response_to_gone"] if v < 0) for r in rounds]
    print_delete_table(result)
    return result


def series_names(reader: InMemoryMetricReader) -> set[str]:
    """Names of the bench namespace's repos that have any series in a collection (GitJob or status gauge)."""
    data = reader.get_metrics_data()
    names: set[str] = set()
    for resource_metrics in data.resource_metrics if data else []:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    attributes = point.attributes or {}
                    if attributes.get("namespace") == NAMESPACE and "name" in attributes:
                        names.add(str(attributes["name"]))
    return names


def print_delete_table(result: dict[str, Any]) -> None:
    print(
        "\nevent → forget: %d deletions out of %d GitRepos per round (half one at a time, half in bursts of %d), "
        "%d rounds: median of the rounds' figures [all rounds pooled]\n"
        % (result["deletes"], result["repos"], result["burst"], result["rounds"])
    )
    print("| from → series evicted from the lifecycle | p50 | p99 | max | min |")
    print("| --- | ---: | ---: | ---: | ---: |")
    rows = [
        ("DELETE response received (all)", "response_to_gone"),
        ("DELETE response received (one at a time)", "response_to_gone_singles"),
        ("DELETE response received (bursts)", "response_to_gone_bursts"),
        ("DELETE request sent (all)", "sent_to_gone"),
        ("DELETED line read by the listener (its share)", "read_to_gone"),
        ("(the DELETE's own round trip)", "delete_round_trip"),
    ]
    for title, key in rows:
        median, pooled = result[key]["median_of_rounds"], result[key]["pooled"]
        cells = ["%.2f ms [%.2f]" % (median[stat], pooled[stat]) for stat in ("p50_ms", "p99_ms", "max_ms", "min_ms")]
        print("| %s | %s |" % (title, " | ".join(cells)))
    print(
        "\nrepos forgotten before their DELETE's response arrived (a negative response → evicted), per round: %s"
        % result["gone_before_response"]
    )


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stress-ends", type=int, default=60)
    parser.add_argument("--deletes", type=int, default=200)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--only", choices=("stream-ends", "deletes"), help="run one of the two measurements")
    parser.add_argument("--json", type=Path, help="also write the results (every round) to this file")
    args = parser.parse_args()
    if args.deletes > args.repos:
        parser.error("--deletes must not exceed --repos")
    logging.basicConfig(level=logging.WARNING)
    apiserver_bin, etcd_bin = find_binaries()
    server = KubeApiServer(apiserver_bin, etcd_bin)
    results: dict[str, Any] = {"repos": args.repos, "rounds": args.rounds, "load_before": os.getloadavg()}
    try:
        server.start()
        print("etcd + kube-apiserver ready in %.1f s" % server.startup_seconds, file=sys.stderr, flush=True)
        seconds = populate(server, list(range(args.repos)))
        results["populate_seconds"] = seconds
        print(
            "%d GitRepos created and their status set in %.1f s (%.0f objects/s)"
            % (args.repos, seconds, args.repos / seconds),
            file=sys.stderr,
            flush=True,
        )
        if args.only != "deletes":
            results["stream_ends"] = bench_stream_ends(server, args)
        if args.only != "stream-ends":
            results["deletes"] = bench_deletes(server, args)
    finally:
        server.stop()
    results["load_after"] = os.getloadavg()
    print(
        "\nload average before %.2f %.2f %.2f, after %.2f %.2f %.2f" % (*results["load_before"], *results["load_after"])
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
