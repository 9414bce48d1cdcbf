"""``run_sidecar``: the listener as ``otel-gitjob watch``."""

from __future__ import annotations

import threading

import kmock
import pytest

from otel_gitjob import ConfigurationError
from otel_gitjob.listener import ListenerSettings, load_configuration, run_sidecar


def test_sidecar_watches_its_shard_until_stopped(emulator, sink, wait_for):
    emulator.create("mine", namespace="ns1", labels={"fleet.cattle.io/shard-ref": "s1"})
    emulator.create("other-shard", namespace="ns1", labels={"fleet.cattle.io/shard-ref": "s2"})
    emulator.create("other-namespace", namespace="ns2", labels={"fleet.cattle.io/shard-ref": "s1"})
    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(
            run_sidecar(
                "ns1",
                None,
                "s1",
                False,
                lifecycle=sink,
                stop=stop,
                configuration=emulator.configuration,
                settings=ListenerSettings(backoff_base=0.02, backoff_cap=0.1),
            )
        )
    )
    thread.start()
    try:
        wait_for(lambda: sink.names("observe") == ["mine"])
        watch = wait_for(lambda: emulator.requests(kmock.action.WATCH))[0]
        assert watch.params["labelSelector"] == "fleet.cattle.io/shard-ref=s1"
        assert watch.url.path.endswith("/namespaces/ns1/gitrepos")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive() and result == [0]


def test_sidecar_rejects_shard_id_with_all_shards(emulator, sink):
    with pytest.raises(ConfigurationError):
        run_sidecar(
            None, None, "s1", True, lifecycle=sink, stop=threading.Event(), configuration=emulator.configuration
        )


def test_load_configuration_reads_a_kubeconfig(tmp_path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:6443'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    assert load_configuration(str(kubeconfig)).host == "http://127.0.0.1:6443"


# ---------------------------------------------------------------- finding the cluster as kubectl and kopf do

KUBECONFIG_TEXT = (
    "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
    "clusters: [{name: k, cluster: {server: '%s'}}]\n"
    "users: [{name: u, user: {token: t}}]\n"
    "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
)


@pytest.fixture()
def no_cluster(monkeypatch, tmp_path):
    """No in-cluster service account, no KUBECONFIG, an empty home; returns the home."""
    from kubernetes import client as k8s_client

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(k8s_client.Configuration, "_default", None)
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def info_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "INFO" and "configuration" in r.getMessage()]


def test_load_configuration_prefers_in_cluster(no_cluster, monkeypatch, tmp_path, caplog):
    from kubernetes.config import incluster_config

    caplog.set_level("INFO")
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text("not used over http")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    (tmp_path / "other").write_text(KUBECONFIG_TEXT % "http://127.0.0.1:1")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "other"))  # in-cluster wins, as in kopf
    configuration = load_configuration()
    assert configuration.host == "https://127.0.0.1:6443"
    assert info_lines(caplog) == ["Kubernetes configuration: in-cluster service account"]


def test_load_configuration_then_reads_kubeconfig_from_the_environment(no_cluster, monkeypatch, tmp_path, caplog):
    caplog.set_level("INFO")
    (tmp_path / "env-config").write_text(KUBECONFIG_TEXT % "http://127.0.0.1:7001")
    (no_cluster / ".kube").mkdir()
    (no_cluster / ".kube" / "config").write_text(KUBECONFIG_TEXT % "http://127.0.0.1:7002")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "env-config"))  # set after `kubernetes` was imported
    assert load_configuration().host == "http://127.0.0.1:7001"
    assert info_lines(caplog) == ["Kubernetes configuration: kubeconfig %s (KUBECONFIG)" % (tmp_path / "env-config")]


def test_load_configuration_then_reads_the_home_kubeconfig(no_cluster, caplog):
    caplog.set_level("INFO")
    (no_cluster / ".kube").mkdir()
    (no_cluster / ".kube" / "config").write_text(KUBECONFIG_TEXT % "http://127.0.0.1:7002")
    assert load_configuration().host == "http://127.0.0.1:7002"
    assert info_lines(caplog) == ["Kubernetes configuration: kubeconfig %s" % (no_cluster / ".kube" / "config")]


def test_load_configuration_says_what_is_missing(no_cluster):
    from kubernetes.config import ConfigException

    with pytest.raises(ConfigException, match="not running in a cluster, KUBECONFIG is not set and there is no"):
        load_configuration()
    with pytest.raises(ConfigException, match="no kubeconfig at /nonexistent/config"):
        load_configuration("/nonexistent/config")


def test_listener_without_configuration_finds_the_cluster_like_kubectl(
    no_cluster, monkeypatch, tmp_path, emulator, sink, wait_for
):
    from otel_gitjob.fleet import GITREPO
    from otel_gitjob.listener import ResourceListener

    (tmp_path / "config").write_text(KUBECONFIG_TEXT % ("http://127.0.0.1:%d" % emulator.port))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    emulator.create("a")
    listener = ResourceListener(sink, GITREPO, settings=ListenerSettings(backoff_base=0.02, backoff_cap=0.1))
    listener.start()
    try:
        wait_for(lambda: sink.names("observe") == ["a"])
    finally:
        assert listener.stop(5)


@pytest.mark.parametrize("installed", [True, False])
def test_a_listener_without_a_configuration_uses_the_default_the_app_installed_else_finds_one(
    installed, no_cluster, monkeypatch, tmp_path, sink
):
    from kubernetes import client as k8s_client

    from otel_gitjob.fleet import GITREPO
    from otel_gitjob.listener import ResourceListener

    (tmp_path / "env-config").write_text(KUBECONFIG_TEXT % "http://127.0.0.1:7001")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "env-config"))
    previous = k8s_client.Configuration.get_default_copy()
    if installed:  # as kubernetes.config.load_kube_config() does in the app
        default = k8s_client.Configuration()
        default.host = "http://127.0.0.1:7003"
        k8s_client.Configuration.set_default(default)
    try:
        listener = ResourceListener(sink, GITREPO, status_gauges=False)
        host = listener._api.api_client.configuration.host
    finally:
        k8s_client.Configuration.set_default(previous if previous.host != k8s_client.Configuration().host else None)
    assert host == ("http://127.0.0.1:7003" if installed else "http://127.0.0.1:7001")
