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


# Earlier than ~0.2 s the interpreter itself is still starting: it exits 1, silently, before any code of ours runs.
@pytest.mark.parametrize("delay", [0.3, 0.6, 1.0])
def test_ctrl_c_during_start_up_exits_130_without_a_traceback(delay: float) -> None:
    process = subprocess.Popen(
        [str(COMMAND), "demo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
