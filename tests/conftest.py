"""Shared fixtures: a fresh registry, lifecycle and provider per test, and exact-sample helpers.

Also the suite's guard against hanging: a session fixture fails the run loudly when a child
process or a non-daemon thread outlives the session (a leftover non-daemon thread would keep
pytest alive after its summary, forever), kills the leftover processes by PID, and
``pytest_unconfigure`` ends the interpreter if such a thread still runs.

Every test runs under the lock-order check (``OTEL_GITJOB_LOCK_CHECK=1``, set before the package is
imported, and inherited by the processes tests start): an inversion fails the test that caused it, even
when a never-raise path swallowed the error.
"""

from __future__ import annotations

import os

os.environ["OTEL_GITJOB_LOCK_CHECK"] = "1"

import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry
from support import FakeClock
from tiers import tier_of

from otel_gitjob import GitJobMetrics, Lifecycle, LifecyclePrometheusReader
from otel_gitjob._internal.core import locks  # noqa: E402

# The testing kit's pytest plugin (an entry point) may import the package before this file runs: every
# lock created from here on checks the order; the few module-level ones made at that import do not.
locks.CHECK = True
from otel_gitjob._internal.core import degraded  # noqa: E402

# The seams whose degraded path the export-correctness tests also run on. A test module opts in with
# ``pytestmark = pytest.mark.usefixtures("degraded_seam")``: each of its tests then runs once healthy and once per
# seam below, forced degraded through OTEL_GITJOB_DEGRADED. A seam's helper adds its name here once its degraded
# path exists. A test that checks a seam's own machinery (the SDK storage being freed, an eviction hook) and so
# cannot hold on that seam's degraded path says so with ``@pytest.mark.seam_internals("sdk", ...)``.
DEGRADED_SEAMS: tuple[str, ...] = ("sdk", "prometheus", "push")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def lifecycle(clock: FakeClock) -> Iterator[Lifecycle]:
    lifecycle = Lifecycle(clock=clock)
    yield lifecycle
    lifecycle.shutdown()


@pytest.fixture
def memory_reader(lifecycle: Lifecycle) -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def provider(
    lifecycle: Lifecycle, registry: CollectorRegistry, memory_reader: InMemoryMetricReader
) -> Iterator[MeterProvider]:
    provider = MeterProvider(
        metric_readers=[LifecyclePrometheusReader(lifecycle, registry), memory_reader], views=lifecycle.views()
    )
    yield provider
    provider.shutdown()


@pytest.fixture
def gitjob(provider: MeterProvider, lifecycle: Lifecycle) -> GitJobMetrics:
    return GitJobMetrics(provider, lifecycle=lifecycle)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "seam_internals(*seams): the test checks these seams' own machinery; it does not run with them forced "
        "degraded (tests/conftest.py, DEGRADED_SEAMS)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "degraded_seam" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("seam_internals")
    internal = set(marker.args) if marker is not None else set()
    seams = [None] + [seam for seam in DEGRADED_SEAMS if seam not in internal]
    metafunc.parametrize(
        "degraded_seam", seams, indirect=True, ids=["degraded-%s" % s if s else "healthy" for s in seams]
    )


@pytest.fixture
def degraded_seam(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """The seam forced degraded for this run of the test (None: every seam as its self-check found it).

    Requested before the test's other fixtures (by ``usefixtures``), so that every Lifecycle the test builds
    sees the setting; the process-wide record of seam states is fresh for each run.
    """
    seam: str | None = getattr(request, "param", None)
    monkeypatch.setattr(degraded, "_checked", {})
    if seam is None:
        monkeypatch.delenv(degraded.FORCE_ENV, raising=False)
    else:
        monkeypatch.setenv(degraded.FORCE_ENV, seam)
    return seam


@pytest.fixture(autouse=True)
def lock_order_holds() -> Iterator[None]:
    """No lock of ours was taken out of order (core/locks.RANKS) during the test."""
    assert locks.CHECK
    seen = len(locks.violations)
    yield
    inversions = locks.violations[seen:]
    del locks.violations[seen:]
    assert not inversions, "lock order violated: %s" % "; ".join(inversions)


@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    """Every test stops the threads it started (sweepers, servers, listeners)."""
    before = set(threading.enumerate())
    yield
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=5)
    leaked = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not leaked, "threads left running: %s" % leaked


def _descendants(pid: int) -> dict[int, str]:
    """{pid: command line} of the live (non-zombie) descendants of ``pid``, read from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                stat = handle.read()
        except OSError:  # it exited while we looked
            continue
        # The command name is in parentheses and may contain spaces: the fields after it are fixed.
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z":
            parents.setdefault(int(ppid), []).append(int(entry))
    found: dict[int, str] = {}
    pending = list(parents.get(pid, []))
    while pending:
        child = pending.pop()
        try:
            with open("/proc/%d/cmdline" % child, "rb") as handle:
                found[child] = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        pending.extend(parents.get(child, []))
    return found


def _live_non_daemon_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.is_alive() and not t.daemon and t is not threading.main_thread()]


@pytest.fixture(scope="session", autouse=True)
def nothing_outlives_the_session() -> Iterator[None]:
    """Fail loudly if a child process or a non-daemon thread is still running after the last test."""
    before = set(_descendants(os.getpid()))
    yield
    deadline = time.monotonic() + 5  # processes being reaped and threads finishing their last step
    while time.monotonic() < deadline:
        processes = {pid: cmd for pid, cmd in _descendants(os.getpid()).items() if pid not in before}
        threads = _live_non_daemon_threads()
        if not processes and not threads:
            return
        time.sleep(0.1)
    for pid in processes:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    problems = ["child process %d (%s), now killed" % item for item in sorted(processes.items())]
    problems += ["non-daemon thread %r" % thread.name for thread in threads]
    pytest.fail("left running after the session: %s" % "; ".join(problems), pytrace=False)


def pytest_unconfigure(config: pytest.Config) -> None:
    """A non-daemon thread still running would keep pytest alive forever after its summary: exit instead."""
    threads = _live_non_daemon_threads()
    if threads:
        sys.stderr.write(
            "\npytest: non-daemon threads still running at exit, ending the process: %s\n"
            % ", ".join(repr(t.name) for t in threads)
        )
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(3)


# -- tiers (tests/tiers.py) -------------------------------------------------------------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(tier_of(item.path).marker)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A tier whose component is missing: skipped with one line (the same place and reason for all its tests).

    Runs before any fixture, so that a session fixture of the tier never tries to start what is missing.
    Under ``CI=true`` the tier fails instead: CI installs every component.
    """
    tier = tier_of(item.path)
    missing = tier.missing()
    if missing:
        reason = "%s tier needs %s" % (tier.marker, "; and ".join(missing))
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
