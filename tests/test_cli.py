"""``otel-gitjob`` as a person runs it: the installed command, its help, and one clear line per mistake.

Each test runs the real console script (``.venv/bin/otel-gitjob``) as a subprocess, killed by PID in
a ``finally``; the missing ``[kube]`` extra is simulated by blocking the ``kubernetes`` import
(``sys.modules['kubernetes'] = None``) in the child, since the test environment has it installed.
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import socket
import subprocess
import sys

import pytest
from support import free_port

import otel_gitjob
from otel_gitjob.__main__ import EXIT_CODES

COMMAND = pathlib.Path(sys.executable).with_name("otel-gitjob")
DOCS = pathlib.Path(__file__).parents[1] / "docs" / "troubleshooting.md"


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run a command to its end (killed by PID if it outlives ``timeout``)."""
    process = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env if env is not None else dict(os.environ),
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    # No KUBECONFIG (and HOME without ~/.kube/config where a test says so): a machine without a cluster.
    unset = ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "OTEL_GITJOB_GAUGE_TTL", "OTEL_EXPORTER_PROMETHEUS_HOST")
    base = {k: v for k, v in os.environ.items() if k not in unset}
    return run([str(COMMAND), *args], env={**base, **env})


def assert_one_clear_line(result: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("otel-gitjob: ")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def empty_home(tmp_path: pathlib.Path) -> str:
    home = tmp_path / "home"
    home.mkdir()
    return str(home)


def kubeconfig_for(tmp_path: pathlib.Path, server: str) -> pathlib.Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: '%s'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n" % server
    )
    return path


def test_the_console_script_is_installed_and_prints_its_version():
    result = cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "otel-gitjob %s" % otel_gitjob.__version__


def test_help_lists_flags_environment_variables_and_exit_codes_in_plain_text():
    top = cli("--help")
    watch = cli("watch", "--help")
    demo = cli("demo", "--help")
    for result in (top, watch, demo):
        assert result.returncode == 0, result.stderr
        assert "``" not in result.stdout and ":class:" not in result.stdout and ".. " not in result.stdout
    for needle in ("OTEL_EXPORTER_PROMETHEUS_HOST", "OTEL_EXPORTER_PROMETHEUS_PORT", "exit codes:", "130"):
        assert needle in top.stdout
    for result in (watch, demo):
        assert "--host" in result.stdout and "--port" in result.stdout
        assert "OTEL_EXPORTER_PROMETHEUS_PORT" in result.stdout
    assert "--gauge-ttl" in demo.stdout and "simulated" in demo.stdout


def test_every_exit_code_is_distinct_and_documented_in_troubleshooting():
    documented = DOCS.read_text()
    for code in EXIT_CODES:
        assert re.search(r"^\| %d \|" % code, documented, re.M), "exit code %d is not in %s" % (code, DOCS)


def test_watch_without_any_cluster_configuration_says_how_to_give_one(empty_home):
    result = cli("watch", HOME=empty_home)
    assert_one_clear_line(result, 5, "no Kubernetes configuration found", "--kubeconfig")


def test_watch_with_a_kubeconfig_that_does_not_exist_names_the_path(tmp_path):
    missing = tmp_path / "nonexistent"
    result = cli("watch", "--kubeconfig", str(missing))
    assert_one_clear_line(result, 6, "no kubeconfig at %s" % missing)


def test_watch_with_a_kubeconfig_that_is_not_one_says_so(tmp_path):
    broken = tmp_path / "config"
    broken.write_text("this: is not a kubeconfig\n")
    result = cli("watch", "--kubeconfig", str(broken))
    assert_one_clear_line(result, 6, "cannot use the kubeconfig %s" % broken)


def test_watch_with_a_cluster_that_is_down_says_so_at_once(tmp_path):
    kubeconfig = kubeconfig_for(tmp_path, "http://127.0.0.1:%d" % free_port())
    result = cli("watch", "--kubeconfig", str(kubeconfig))
    line = assert_one_clear_line(
        result, 9, "cannot reach the Kubernetes API at http://127.0.0.1:", "Connection refused"
    )
    assert "WARNING" not in result.stderr, result.stderr  # no urllib3 retry noise around the one line
    assert line


def test_watch_without_the_kube_extra_says_which_extra_to_install():
    shim = "import sys; sys.modules['kubernetes'] = None; from otel_gitjob.__main__ import main; sys.exit(main())"
    result = run([sys.executable, "-c", shim, "watch"])
    assert_one_clear_line(result, 4, "pip install 'otel-gitjob[kube]'")


def test_a_port_in_use_says_which_variable_or_flag_moves_it():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        by_flag = cli("demo", "--port", str(port), "--events", "1")
        by_env = cli("demo", "--events", "1", OTEL_EXPORTER_PROMETHEUS_PORT=str(port))
    for result in (by_flag, by_env):
        assert_one_clear_line(result, 7, "port %d is in use" % port, "OTEL_EXPORTER_PROMETHEUS_PORT", "--port")


def test_a_host_that_is_not_ours_says_which_variable_or_flag_sets_it():
    # 192.0.2.1 (TEST-NET-1) is on no interface here: binding fails at once, nothing is sent anywhere.
    result = cli("demo", "--host", "192.0.2.1", "--port", "0", "--events", "1")
    assert_one_clear_line(result, 8, "cannot listen on host '192.0.2.1'", "--host", "OTEL_EXPORTER_PROMETHEUS_HOST")


def test_a_configuration_error_is_shown_under_its_public_name_and_debug_adds_the_traceback():
    plain = cli("demo", "--events", "1", OTEL_EXPORTER_PROMETHEUS_PORT="ninety")
    assert_one_clear_line(
        plain, 3, "otel_gitjob.ConfigurationError: OTEL_EXPORTER_PROMETHEUS_PORT must be a port number"
    )
    assert "_internal" not in plain.stderr

    debug = cli("demo", "--debug", "--events", "1", OTEL_EXPORTER_PROMETHEUS_PORT="ninety")
    assert debug.returncode == 3
    assert "Traceback" in debug.stderr and "otel_gitjob.ConfigurationError" in debug.stderr


def test_a_bad_gauge_ttl_is_a_configuration_error():
    result = cli("demo", "--port", "0", "--events", "1", "--gauge-ttl", "-1")
    assert_one_clear_line(result, 3, "otel_gitjob.ConfigurationError", "TTL")


def test_flags_win_over_environment_variables():
    result = cli(
        "demo", "--host", "127.0.0.1", "--port", "0", "--events", "2", OTEL_EXPORTER_PROMETHEUS_HOST="192.0.2.1"
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"serving /metrics on http://127\.0\.0\.1:\d+/metrics", result.stdout)
    assert result.stdout.splitlines()[-1] == "stopped"


def test_the_demo_takes_its_gauge_ttl_from_the_flag_else_the_variable_else_10_seconds():
    banners = {
        "flag": cli("demo", "--port", "0", "--events", "1", "--gauge-ttl", "7", OTEL_GITJOB_GAUGE_TTL="30"),
        "variable": cli("demo", "--port", "0", "--events", "1", OTEL_GITJOB_GAUGE_TTL="30"),
        "default": cli("demo", "--port", "0", "--events", "1"),
    }
    for result in banners.values():
        assert result.returncode == 0, result.stderr
    expires = {k: re.search(r"gauge expires (\S+) s after its last set", r.stdout).group(1) for k, r in banners.items()}
    assert expires == {"flag": "7", "variable": "30", "default": "10"}


def test_the_demo_piped_into_head_stops_quietly():
    base = {k: v for k, v in os.environ.items() if k != "OTEL_EXPORTER_PROMETHEUS_PORT"}
    process = subprocess.Popen(
        [str(COMMAND), "demo", "--port", "0", "--interval", "0.01"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=base,
    )
    try:
        first = process.stdout.readline()
        process.stdout.close()  # what `| head -1` does once it has its line
        assert process.wait(timeout=20) == 0
        stderr = process.stderr.read().decode()
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    assert first.startswith(b"serving /metrics on ")
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
