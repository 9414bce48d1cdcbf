"""docs/compatibility.md's behaviour × release table is what the matrix observed.

``scripts/sdk-matrix`` runs ``tests/_compat_probe.py`` in every leg and
``scripts/test`` points ``OTEL_GITJOB_COMPAT_RESULTS`` at the results before the
full suite; ``OTEL_GITJOB_COMPAT_LEG`` names the leg a suite runs in.
"""

from __future__ import annotations

import os
from pathlib import Path

import _compat_probe
import _compat_table
import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _leg(rows: dict[str, tuple[list[str], dict[str, str]]]) -> str | None:
    """This venv's leg: named by the matrix, or the committed row with exactly these releases."""
    named = os.environ.get("OTEL_GITJOB_COMPAT_LEG")
    if named:
        return named
    here = _compat_table.version_cells(_compat_probe.versions())
    for leg, (cells, _behaviours) in rows.items():
        if cells == here and leg != _compat_table.NEWEST:
            return leg
    return None


def test_the_whole_committed_table_is_what_the_matrix_found():
    results = os.environ.get("OTEL_GITJOB_COMPAT_RESULTS")
    if not results:
        if IN_CI:
            pytest.fail("OTEL_GITJOB_COMPAT_RESULTS is unset: run the suite through ./scripts/test")
        pytest.skip("no matrix results: ./scripts/test runs scripts/sdk-matrix and sets OTEL_GITJOB_COMPAT_RESULTS")
    difference = _compat_table.diff(Path(results))
    assert not difference, "regenerate with scripts/compat-table %s --write:\n%s" % (results, difference)


def test_this_release_behaves_as_the_committed_table_says():
    rows = _compat_table.committed_rows()
    leg = _leg(rows)
    if leg is None or leg not in rows:
        if IN_CI:
            pytest.fail("leg %r has no row in docs/compatibility.md's table" % (leg,))
        pytest.skip("this venv is no leg of the matrix (set OTEL_GITJOB_COMPAT_LEG to one of %s)" % sorted(rows))
    assert _compat_probe.run() == rows[leg][1]


def test_the_table_renders_every_behaviour_of_every_leg(tmp_path):
    (tmp_path / "a.json").write_text(
        '{"leg": "sdk-1.2.3", "versions": {"python": "3.11.9", "opentelemetry-sdk": "1.2.3",'
        ' "opentelemetry-exporter-prometheus": "0.9b0", "prometheus-client": "0.20.0",'
        ' "opentelemetry-exporter-otlp-proto-http": "-", "opentelemetry-exporter-otlp-proto-grpc": "-"},'
        ' "behaviours": {"eviction": "yes", "race_guard": "no (KeyError after 3 rounds)"}}'
    )
    table = _compat_table.render(_compat_table.load(tmp_path))
    row = table.splitlines()[2]
    assert row.startswith("| `sdk-1.2.3` | 3.11 | 1.2.3 | 0.9b0 | 0.20.0 | - | yes | no (KeyError after 3 rounds) |")
    assert row.count("not probed") == 4
