"""The same Custom Resource State config through kube-state-metrics and ``otel-gitjob watch``: same series.

Both run against the real kube-apiserver of this tier, over the same ``Foo`` and ``Widget``
objects; their expositions are parsed and compared family by family (names, label names and
values, values, HELP and TYPE; ordering and number formatting aside). kube-state-metrics is
built from its Go module by ``./scripts/kube-state-metrics`` (``KSM_BIN`` names another build).

Left out of the comparison, by design: kube-state-metrics writes HELP and TYPE for a family that
has no series while any object of the kind exists (we write none); the OpenTelemetry exposition
writes ``label=""`` for each label key of a family that a series lacks, which Prometheus reads as
no label (so empty values are dropped on both sides); ``otel-gitjob`` adds its own
``otel_gitjob_*`` self-metrics and ``target_info``.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crs_examples import CONFIGS, FOO, FOO_CONDITIONS, WIDGET, widget
from kube_helpers import REPO, watch_sidecar
from prometheus_client.parser import text_string_to_metric_families
from real_apiserver import KubeApiServer, crd
from support import free_port, scrape, stop_process, wait_until

from otel_gitjob.listener import kinds_from_crs_config

NAMESPACE = "crs"
Families = dict[str, tuple[str, str, dict[tuple[tuple[str, str], ...], float]]]


def ksm_binary() -> str:
    """The kube-state-metrics binary: ``KSM_BIN``, else the cache ``scripts/kube-state-metrics`` fills."""
    named = os.environ.get("KSM_BIN")
    if named:
        return named
    script = (REPO / "scripts" / "kube-state-metrics").read_text()
    version = next(line.split("=", 1)[1] for line in script.splitlines() if line.startswith("VERSION="))
    cache = Path(os.environ.get("OTEL_GITJOB_CACHE", Path.home() / ".cache" / "otel-gitjob"))
    return str(cache / ("kube-state-metrics-%s" % version) / "kube-state-metrics")


@pytest.fixture(scope="module")
def ksm() -> str:
    binary = ksm_binary()
    if not os.access(binary, os.X_OK):
        message = "no kube-state-metrics at %s: run ./scripts/kube-state-metrics (needs Go) or set KSM_BIN" % binary
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return binary


def create(server: KubeApiServer, group: str, version: str, plural: str, obj: dict[str, Any]) -> None:
    path = "/apis/%s/%s/namespaces/%s/%s" % (group, version, obj["metadata"]["namespace"], plural)
    body = {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "namespace"}}
    status, answer = server.request("POST", path, body)
    if status not in (201, 409):
        raise RuntimeError("creating %s answered %s: %s" % (obj["metadata"]["name"], status, answer))


def delete(server: KubeApiServer, group: str, version: str, plural: str, name: str) -> None:
    status, answer = server.request(
        "DELETE", "/apis/%s/%s/namespaces/%s/%s/%s" % (group, version, NAMESPACE, plural, name)
    )
    assert status == 200, answer


@pytest.fixture(scope="module")
def objects(kube_apiserver: KubeApiServer) -> KubeApiServer:
    """The Foo and Widget CRDs, KSM's documented Foo, a Foo with conditions and two Widgets."""
    for spec in (crd("myteam.io", "v1", "Foo", "foos"), crd("example.com", "v1alpha1", "Widget", "widgets")):
        status, body = kube_apiserver.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", spec)
        assert status in (201, 409), body
    for path in ("/apis/myteam.io/v1/foos", "/apis/example.com/v1alpha1/widgets"):
        wait_until(lambda p=path: kube_apiserver.request("GET", p)[0] == 200, what="%s served" % path)  # type: ignore[misc]
    kube_apiserver.ensure_namespace(NAMESPACE)
    for foo in (FOO, FOO_CONDITIONS):
        create(kube_apiserver, "myteam.io", "v1", "foos", foo)
    for name in ("w1", "w2"):
        create(kube_apiserver, "example.com", "v1alpha1", "widgets", widget(name))
    return kube_apiserver


def families(exposition: str, names: set[str]) -> Families:
    """``{family: (help, type, {sorted labels: value})}`` of the named families that have series."""
    found: Families = {}
    for family in text_string_to_metric_families(exposition):
        if family.name not in names or not family.samples:
            continue
        # An empty label value is no label to Prometheus; the OpenTelemetry exposition writes one for
        # every label key of the family that a series lacks.
        samples = {
            tuple(sorted((k, v) for k, v in sample.labels.items() if v != "")): sample.value
            for sample in family.samples
        }
        found[family.name] = (family.documentation, family.type, samples)
    return found


class Ksm:
    """A running kube-state-metrics serving only the custom resources of one config."""

    def __init__(self, binary: str, config_file: Path, kubeconfig: str, log: Path) -> None:
        port, telemetry = free_port(), free_port()
        self.url = "http://127.0.0.1:%d/metrics" % port
        self._log = log
        self.process = subprocess.Popen(
            [
                binary,
                "--custom-resource-state-only",
                "--custom-resource-state-config-file=%s" % config_file,
                "--kubeconfig=%s" % kubeconfig,
                "--host=127.0.0.1",
                "--port=%d" % port,
                "--telemetry-host=127.0.0.1",
                "--telemetry-port=%d" % telemetry,
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def metrics(self) -> str:
        if self.process.poll() is not None:
            raise AssertionError("kube-state-metrics exited %s:\n%s" % (self.process.returncode, self.log()))
        try:
            return scrape(self.url)
        except OSError:
            return ""

    def log(self) -> str:
        return self._log.read_text(errors="replace")[-4000:]


@pytest.fixture
def run_both(objects: KubeApiServer, ksm: str, tmp_path: Path) -> Iterator[Any]:
    """``run_both(config)`` starts KSM and ``otel-gitjob watch`` on one config file; both stop after the test."""
    stack: list[Any] = []

    def run(config: str) -> tuple[Ksm, Any]:
        config_file = tmp_path / ("crs-%d.yaml" % len(stack))
        config_file.write_text(config)
        kubeconfig = str(objects.kubeconfig)
        theirs = Ksm(ksm, config_file, kubeconfig, tmp_path / ("ksm-%d.log" % len(stack)))
        stack.append(theirs)
        sidecar_context = watch_sidecar(
            "--kubeconfig", kubeconfig, "--custom-resource-state-config-file", str(config_file)
        )
        ours = sidecar_context.__enter__()
        stack.append(sidecar_context)
        return theirs, ours

    yield run
    for item in reversed(stack):
        if isinstance(item, Ksm):
            stop_process(item.process, 15)
        else:
            item.__exit__(None, None, None)


def family_names(config: str) -> set[str]:
    return {gauge.name for kind in kinds_from_crs_config(config) for gauge in kind.gauges}


def assert_same(theirs: Ksm, ours: Any, config: str) -> Families:
    """Wait until both expose the config's families, then require them equal; returns KSM's."""
    names = family_names(config)
    last: dict[str, Any] = {}

    def same() -> bool:
        last["ksm"] = families(theirs.metrics(), names)
        last["ours"] = families(ours.metrics(), names)
        return bool(last["ksm"]) and last["ksm"] == last["ours"]

    try:
        wait_until(same, timeout=60, what="the same families from kube-state-metrics and otel-gitjob")
    except AssertionError:
        diff = []
        for name in sorted(set(last["ksm"]) | set(last["ours"])):
            if last["ksm"].get(name) != last["ours"].get(name):
                diff.append("%s\n  ksm:  %s\n  ours: %s" % (name, last["ksm"].get(name), last["ours"].get(name)))
        raise AssertionError(
            "expositions differ:\n%s\n--- ksm log:\n%s\n--- our output:\n%s"
            % ("\n".join(diff), theirs.log(), ours.output)
        ) from None
    return last["ksm"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "example",
    ["single_value", "kitchen_sink", "non_map_arrays", "status_conditions", "stateset", "info", "prefix", "paths"],
)
def test_documented_example_matches_kube_state_metrics(run_both: Any, example: str) -> None:
    config, _obj = CONFIGS[example]
    theirs, ours = run_both(config)
    found = assert_same(theirs, ours, config)
    assert found, "no series at all: the comparison would be empty"


def test_widget_arrays_maps_and_conversions_match_kube_state_metrics(run_both: Any) -> None:
    theirs, ours = run_both(WIDGET)
    found = assert_same(theirs, ours, WIDGET)
    # Every family of the config has series for both widgets: the comparison covers all of them.
    assert set(found) == family_names(WIDGET)


def test_a_deleted_foo_leaves_our_metrics_at_once(run_both: Any, objects: KubeApiServer) -> None:
    # KSM's StateSet example, with a name label so that each Foo has series of its own.
    config = CONFIGS["stateset"][0].replace(
        "      metrics:", "      labelsFromPath:\n        name: [metadata, name]\n      metrics:"
    )
    doomed_config = config
    doomed = {**FOO, "metadata": {"name": "doomed", "namespace": NAMESPACE}}
    theirs, ours = run_both(config)
    create(objects, "myteam.io", "v1", "foos", doomed)
    assert_same(theirs, ours, doomed_config)
    assert 'name="doomed"' in ours.metrics()
    delete(objects, "myteam.io", "v1", "foos", "doomed")
    started = time.monotonic()
    wait_until(lambda: 'name="doomed"' not in ours.metrics(), timeout=5, what="the deleted Foo's series to go")
    gone_after = time.monotonic() - started
    wait_until(lambda: 'name="doomed"' not in theirs.metrics(), timeout=30, what="KSM to drop the deleted Foo")
    assert gone_after < 5
    assert_same(theirs, ours, doomed_config)
