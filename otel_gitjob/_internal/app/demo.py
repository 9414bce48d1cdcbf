"""A simulated GitJob controller, so a newcomer can watch series appear and vanish.

Repos appear, their git jobs run and sometimes fail, commits are polled, and repos get deleted (every
series gone from the next scrape: ``-`` lines) and recreated (counts from zero); ``~`` lines are the
transient job-duration gauge expiring a TTL after its last set. Durations are simulated: nothing waits.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from otel_gitjob._internal.app.setup import Instrumentation
from otel_gitjob._internal.core.identity import ObjectRef

__all__ = ["DemoSettings", "run_demo"]


@dataclass(frozen=True)
class DemoSettings:
    """Knobs of the simulation.

    Attributes:
        repos: Live repos the controller aims for; a handful keeps /metrics readable.
        interval: Seconds between two simulated events; one per second is slow enough to follow.
        failure_rate: Share of jobs and polls that fail, so failure series show up.
        delete_rate: Share of events that delete a repo, so deletions are frequent enough to see.
        seed: Random seed, for a reproducible run.
    """

    repos: int = 5
    interval: float = 1.0
    failure_rate: float = 0.15
    delete_rate: float = 0.1
    seed: int | None = None


def run_demo(
    instrumentation: Instrumentation,
    settings: DemoSettings,
    stop: threading.Event,
    say: Callable[[str], None] = print,
    max_events: int | None = None,
) -> int:
    """Simulate until ``stop`` is set (or ``max_events`` happened); returns the number of events."""
    rng = random.Random(settings.seed)
    gitjob, lifecycle = instrumentation.gitjob, instrumentation.lifecycle
    gauges = _GaugeWatch(instrumentation.registry, gitjob.names["duration_gauge"])
    live: dict[str, ObjectRef] = {}
    generation = 0
    events = 0
    while not stop.is_set() and (max_events is None or events < max_events):
        events += 1
        roll = rng.random()
        if len(live) < settings.repos and (not live or roll < 0.3):
            generation += 1
            name = "repo-%d" % rng.randrange(settings.repos * 2)
            if name in live:
                continue
            repo = ObjectRef("fleet-demo", name, uid="uid-%d" % generation)
            live[name] = repo
            lifecycle.observe(repo)
            say("+ GitRepo %s/%s created" % (repo.namespace, repo.name))
        elif live and roll < settings.delete_rate:
            repo = live.pop(rng.choice(sorted(live)))
            removed = lifecycle.forget(repo)
            gauges.forget(repo)
            say("- GitRepo %s/%s deleted: %d series removed" % (repo.namespace, repo.name, removed))
        elif live:
            repo = live[rng.choice(sorted(live))]
            failed = rng.random() < settings.failure_rate
            if rng.random() < 0.5:
                if failed:
                    gitjob.job_creation_failed(repo)
                    say("  %s: creating the git job failed" % repo.name)
                else:
                    gitjob.job_created(repo)
                    duration = round(rng.lognormvariate(2.5, 1.0), 1)
                    gitjob.job_succeeded(repo, duration)
                    gauges.set(repo)
                    say("  %s: git job created, succeeded in %.1fs" % (repo.name, duration))
            elif failed:
                gitjob.commit_fetch_failed(repo)
                say("  %s: polling the latest commit failed" % repo.name)
            else:
                duration = round(rng.uniform(0.05, 2.0), 2)
                gitjob.commit_fetched(repo, duration)
                say("  %s: latest commit fetched in %.2fs" % (repo.name, duration))
        for repo, age in gauges.expired():
            say("~ gauge of %s/%s expired after %.0f s" % (repo.namespace, repo.name, age))
        stop.wait(settings.interval)
    return events


class _GaugeWatch:
    """Tells when a live repo's job-duration gauge has left ``/metrics``, by reading what a scrape reads."""

    def __init__(self, registry: CollectorRegistry, gauge_name: str, clock: Callable[[], float] = time.monotonic):
        self._registry = registry
        self._name = gauge_name
        self._clock = clock
        self._set_at: dict[tuple[str, str], tuple[ObjectRef, float]] = {}

    def set(self, repo: ObjectRef) -> None:
        self._set_at[(repo.namespace, repo.name)] = (repo, self._clock())

    def forget(self, repo: ObjectRef) -> None:
        self._set_at.pop((repo.namespace, repo.name), None)

    def expired(self) -> list[tuple[ObjectRef, float]]:
        """The repos whose gauge disappeared since the last call, with seconds since their last set."""
        if not self._set_at:
            return []
        shown = {
            (sample.labels.get("namespace"), sample.labels.get("name"))
            for family in self._registry.collect()
            if family.name == self._name
            for sample in family.samples
        }
        now = self._clock()
        gone = [key for key in self._set_at if key not in shown]
        return [(repo, now - set_at) for repo, set_at in (self._set_at.pop(key) for key in gone)]
