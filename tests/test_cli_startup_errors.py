"""Mistakes that used to end in a traceback and exit 1: each gets its documented one line and exit code.

Real subprocesses of the installed console script, as in tests/test_cli.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from test_cli import COMMAND, assert_one_clear_line, cli

from otel_gitjob.__main__ import EXIT_CODES


def code(meaning: str) -> int:
    return next(number for number, text in EXIT_CODES.items() if text.startswith(meaning))


def test_a_kubeconfig_that_is_some_other_file_is_a_kubeconfig_error() -> None:
    result = cli("watch", "--port", "0", "--kubeconfig", "/etc/passwd")
    assert_one_clear_line(result, code("the kubeconfig given"), "/etc/passwd", "not a kubeconfig")


@pytest.mark.parametrize("interval", ["inf", "nan", "-1"])
def test_a_demo_interval_that_is_not_a_finite_number_is_a_usage_error(interval: str) -> None:
    result = cli("demo", "--port", "0", "--interval", interval)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "--interval" in result.stderr and "finite number of seconds" in result.stderr


def test_an_unknown_exemplar_filter_is_a_configuration_error() -> None:
    result = cli("demo", "--port", "0", "--events", "1", OTEL_METRICS_EXEMPLAR_FILTER="junk")
    assert_one_clear_line(result, code("a setting is wrong"), "OTEL_METRICS_EXEMPLAR_FILTER", "junk", "trace_based")


def test_a_collect_timeout_below_the_minimum_is_a_configuration_error() -> None:
    result = cli("demo", "--port", "0", "--events", "1", OTEL_GITJOB_COLLECT_TIMEOUT="1e-9")
    assert_one_clear_line(result, code("a setting is wrong"), "OTEL_GITJOB_COLLECT_TIMEOUT", "at least 0.5")


def _interrupt_when(process: subprocess.Popen[str], stream_name: str, marker: str) -> None:
    """Send SIGINT once ``marker`` appears on the process's stream: a point of its start-up, not a wall-clock guess."""
    stream = getattr(process, stream_name)
    deadline = time.monotonic() + 60
    for line in stream:
        if marker in line:
            process.send_signal(signal.SIGINT)
            return
        assert time.monotonic() < deadline, "%r never appeared" % marker
    raise AssertionError("the process ended before %r appeared" % marker)


# -X importtime reports each module as its import finishes: the first opentelemetry line comes while
# otel_gitjob is still being imported, before the command's own signal handling exists.
@pytest.mark.parametrize(
    ("stage", "stream_name", "marker"),
    [
        ("while importing the package", "stderr", "opentelemetry"),
        ("once the demo runs", "stdout", "GitRepo"),
    ],
)
def test_ctrl_c_during_start_up_exits_130_without_a_traceback(stage: str, stream_name: str, marker: str) -> None:
    process = subprocess.Popen(
        [str(COMMAND), "demo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        # Only the import stage reads stderr; elsewhere the import report would fill the unread pipe.
        env={
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            **({"PYTHONPROFILEIMPORTTIME": "1"} if stream_name == "stderr" else {}),
        },
    )
    try:
        _interrupt_when(process, stream_name, marker)
        _stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    assert process.returncode == 130, (stage, stderr[-2000:])
    assert "Traceback" not in stderr, stage
