"""The push seam, degraded: the OTLP exporters' public ``export()`` only. Slower and without markers, never wrong.

Forgotten and expired series never leave the process, writes made while an
object is forgotten stay dropped, and under delta temporality what was
recorded before a forget still goes out (as a final delta through the public
``export()``). Staleness markers need the OTLP point flag, which SDK data
cannot carry: they are counted as dropped. The same scenario runs healthy and
with each other seam forced degraded, where the markers do arrive.
"""

from __future__ import annotations

from typing import Any

from otlp_helpers import ATTRS_A, ATTRS_B, REPO_A, REPO_B, Sink, otlp_exporter, record_everything
from support import FakeClock

from otel_gitjob import Lifecycle
from otel_gitjob._internal.core import degraded

CREATED = "fleet_gitjobs_created_success_total"
GAUGE = "fleet_gitjob_duration_seconds_gauge"


def test_forgotten_and_expired_series_never_leave_the_process_healthy_or_degraded(
    sink: Sink,
    temporality: str,
    degraded_seam: str | None,
    clock: FakeClock,
    lifecycle: Lifecycle,
    make_pipeline: Any,
) -> None:
    pipeline = make_pipeline(otlp_exporter(sink.protocol, sink.endpoint), lifecycle, gauge_ttl=30)
    gitjob = pipeline.gitjob
    record_everything(gitjob, REPO_A)
    record_everything(gitjob, REPO_B)
    pipeline.flush()
    sink.wait_requests(1)

    for _ in range(3):
        gitjob.job_created(REPO_A)  # recorded after the export, forgotten before the next
    lifecycle.forget(REPO_A)
    gitjob.job_created(REPO_A)  # a late write while forgotten: dropped
    clock.advance(31)  # repo-b's transient gauge expires
    gitjob.job_created(REPO_B)
    pipeline.flush()
    gitjob.job_created(REPO_B)
    pipeline.flush()

    points = sink.wait_for(
        lambda points: len([p for p in points if p.metric == CREATED and p.attributes == ATTRS_B]) == 3
    )
    staleness = pipeline.exporter.staleness

    a_after = [p for p in points if p.attributes == ATTRS_A and p.request > 0 and not p.stale]
    created_a = [p.value for p in points if p.metric == CREATED and p.attributes == ATTRS_A and not p.stale]
    if temporality == "delta" and degraded_seam != "sdk":
        # The three writes before the forget go out once, as the final delta; the late write never does.
        assert [(p.metric, p.value) for p in a_after] == [(CREATED, 3)]
        assert created_a == [1, 3]
    else:
        # Cumulative: the first export carried everything. The degraded SDK seam cannot read a final delta out of
        # the SDK's storage, so under delta the writes since the last export are lost with the forget (as
        # docs/compatibility.md says); nothing of the repo is exported after it either way.
        assert a_after == []
        assert created_a == [1]
    gauge_b = [p for p in points if p.metric == GAUGE and p.attributes == ATTRS_B and not p.stale]
    assert [p.request for p in gauge_b] == [0]  # expired: never exported again

    stale = [p for p in points if p.stale]
    if degraded_seam != "push":
        # repo-a's seven series and repo-b's expired gauge.
        assert len(stale) == 8 and {(p.metric, p.attributes) for p in stale} >= {(CREATED, ATTRS_A), (GAUGE, ATTRS_B)}
        assert staleness.store.dropped_total == 0
    else:
        assert stale == []
        # Every marker the healthy path sends (the same eight) is counted as dropped.
        assert staleness.store.dropped_total == 8 and staleness.store.pending() == 0
    assert degraded.seam_states()["push"] == (None if degraded_seam != "push" else "forced by OTEL_GITJOB_DEGRADED")
