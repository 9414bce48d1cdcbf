"""The sidecar that ``examples/k8s/deployment.yaml`` runs can start.

The manifest's structure is checked against the kubelet's rules (a numeric non-root ``runAsUser``,
an image that this repository builds, no install step at start-up). The image itself is built by
``scripts/build-image`` with Debian's buildah (root, no Docker engine) and started as the
manifest's user: ``otel-gitjob --version`` and then ``watch`` against kmock's Kubernetes API
emulator through a kubeconfig, until it serves the GitRepo's status gauge. buildah runs it with
chroot isolation, so the container shares the host's loopback network, where the emulator is.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest
import yaml
from kube_emulator import Emulator
from support import free_port

from otel_gitjob import __version__

ROOT = pathlib.Path(__file__).parents[1]
DEPLOYMENT = ROOT / "examples" / "k8s" / "deployment.yaml"
RBAC = ROOT / "examples" / "k8s" / "rbac.yaml"
BUILD_IMAGE = ROOT / "scripts" / "build-image"
BUILDAH = ["buildah", "--storage-driver", "vfs"]
# Chroot isolation: no OCI runtime or user namespaces needed, and the host's loopback network.
RUN = [*BUILDAH, "run", "--isolation", "chroot"]


def deployment() -> dict:
    return yaml.safe_load(DEPLOYMENT.read_text())


def image_uid() -> int:
    match = re.search(r"^UID_NUMBER=(\d+)", BUILD_IMAGE.read_text(), re.M)
    assert match, "scripts/build-image must set UID_NUMBER"
    return int(match.group(1))


def test_the_manifest_runs_the_image_this_repository_builds_as_a_numeric_non_root_user():
    pod = deployment()["spec"]["template"]["spec"]
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    # The kubelet refuses runAsNonRoot for an image whose user it cannot tell is non-root: a numeric uid.
    assert isinstance(security["runAsUser"], int) and security["runAsUser"] > 0
    assert security["runAsUser"] == image_uid()
    (container,) = pod["containers"]
    image = container["image"]
    assert image == "otel-gitjob:%s" % __version__, image
    assert "example" not in image and not image.endswith(":latest")
    assert container.get("imagePullPolicy") == "IfNotPresent"
    # Nothing is installed at start-up: the command is the image's entry point with arguments only.
    assert "command" not in container
    assert container["args"][0] == "watch"
    assert "pip" not in json.dumps(container)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    accounts = [doc for doc in yaml.safe_load_all(RBAC.read_text()) if doc["kind"] == "ServiceAccount"]
    assert pod["serviceAccountName"] in {a["metadata"]["name"] for a in accounts}


def run(args: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """Run to the end; killed by PID if it outlives ``timeout``."""
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    return subprocess.CompletedProcess(args, process.returncode, output, "")


@pytest.fixture(scope="module")
def image() -> str:
    # Root, buildah and debootstrap are there: tests/tiers.py skipped (or, in CI, failed) the tier otherwise.
    # The first build runs debootstrap (a few minutes); later ones reuse its cached root filesystem.
    result = run([str(BUILD_IMAGE)], timeout=1200, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-4000:]
    name = result.stdout.strip().splitlines()[-1]
    assert name == deployment()["spec"]["template"]["spec"]["containers"][0]["image"]
    return name


@pytest.fixture
def container(image: str) -> Iterator[str]:
    result = run([*BUILDAH, "from", "--pull-never", image], timeout=300)
    assert result.returncode == 0, result.stdout
    name = result.stdout.strip().splitlines()[-1]
    try:
        yield name
    finally:
        run([*BUILDAH, "rm", name], timeout=120)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator()
    try:
        yield emu
    finally:
        emu.close()


def test_the_image_is_configured_to_run_the_cli_as_the_manifests_user(image):
    result = run([*BUILDAH, "inspect", "--type", "image", image], timeout=120)
    assert result.returncode == 0, result.stdout
    config = json.loads(result.stdout)["OCIv1"]["config"]
    assert config["User"] == "%d:%d" % (image_uid(), image_uid())
    assert config["Entrypoint"] == ["/opt/otel-gitjob/bin/otel-gitjob"]
    assert "OTEL_EXPORTER_PROMETHEUS_HOST=0.0.0.0" in config["Env"]


def test_the_sidecar_starts_as_uid_65532_and_serves_a_gitrepos_gauge(container, emulator, tmp_path):
    uid = image_uid()
    version = run([*RUN, "--user", "%d:%d" % (uid, uid), container, "--", "otel-gitjob", "--version"], 120)
    assert version.returncode == 0 and version.stdout.strip() == "otel-gitjob %s" % __version__, version.stdout
    whoami = run([*RUN, "--user", "%d:%d" % (uid, uid), container, "--", "/usr/bin/id", "-u"], 120)
    assert whoami.stdout.strip() == str(uid), whoami.stdout

    # The kubeconfig goes into the container's filesystem, readable by its user.
    kubeconfig = (
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:%d'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n" % emulator.port
    )
    source = tmp_path / "kubeconfig"
    source.write_text(kubeconfig)
    source.chmod(0o644)
    copied = run([*BUILDAH, "copy", container, str(source), "/tmp/kubeconfig"], 120)
    assert copied.returncode == 0, copied.stdout
    emulator.create("image-repo", status={"readyClusters": 3})

    port = free_port()
    process = subprocess.Popen(
        [
            *RUN,
            "--user",
            "%d:%d" % (uid, uid),
            "--env",
            "OTEL_EXPORTER_PROMETHEUS_HOST=127.0.0.1",
            container,
            "--",
            "otel-gitjob",
            "watch",
            "--all-shards",
            "--kubeconfig",
            "/tmp/kubeconfig",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # buildah run forks the container's process: signal the whole group
    )
    try:
        wanted = 'fleet_gitrepo_ready_clusters{branch="main",name="image-repo",namespace="fleet-local"'
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline and wanted not in text:
            assert process.poll() is None, process.stdout.read()
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2) as response:
                    text = response.read().decode()
            except OSError:
                time.sleep(0.2)
        assert wanted in text
        # SIGTERM to the sidecar itself, as the kubelet does; buildah then exits with its status.
        os.kill(sidecar_pid(process.pid), signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    output = process.stdout.read()
    assert "Traceback" not in output, output


def sidecar_pid(session: int) -> int:
    """The ``otel-gitjob watch`` process that ``buildah run`` started in the session ``session``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                argv = handle.read().split(b"\0")
            if os.getsid(int(entry)) != session:
                continue
        except OSError:  # gone meanwhile
            continue
        if (
            any(arg.endswith(b"otel-gitjob") for arg in argv)
            and b"watch" in argv
            and not os.path.basename(argv[0]).startswith(b"buildah")
        ):
            return int(entry)
    raise AssertionError("no otel-gitjob watch process in session %d" % session)
