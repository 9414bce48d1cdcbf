"""The sidecar's /readyz and /healthz: ready once every kind is listed and watched, never by running a collection."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from typing import Any

import kmock
import pytest

import otel_gitjob
from otel_gitjob.fleet import GITREPO, HELMOP
from otel_gitjob.listener import ListenerSettings, run_sidecar


def probe(address: tuple[str, int], path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen("http://%s:%d%s" % (*address, path), timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.kinds({})  # no HelmOp CRD: its list answers 404, which counts as ready (nothing to watch)
def test_readyz_waits_for_every_kind_listed_and_watched(emulator: Any, wait_for: Any) -> None:
    emulator.create("a")
    instrumentation = otel_gitjob.setup(port=0)
    address = instrumentation.address
    assert address is not None
    # Before the listeners start, nothing registered: the library's "ready = serving".
    assert probe(address, "/readyz")[0] == 200
    stop = threading.Event()
    hold = emulator.react(kmock.action.LIST, emulator.hang(), times=1)  # the first list hangs
    thread = threading.Thread(
        target=run_sidecar,
        args=(None, None, None, True),
        kwargs=dict(
            lifecycle=instrumentation.lifecycle,
            meter_provider=instrumentation.meter_provider,
            stop=stop,
            configuration=emulator.configuration,
            settings=ListenerSettings(backoff_base=0.02, backoff_cap=0.1, list_timeout=1.0, missing_kind_retry=0.5),
            kinds=(GITREPO, HELMOP),
            health=instrumentation.health,
        ),
    )
    thread.start()
    try:
        wait_for(lambda: "listener-gitrepos" in probe(address, "/readyz")[1])
        status, body = probe(address, "/readyz")
        assert status == 503 and "FAIL listener-gitrepos: not listed yet" in body, body
        wait_for(lambda: probe(address, "/readyz")[0] == 200, timeout=10)
        status, body = probe(address, "/readyz")
        assert "ok listener-gitrepos: listed, watching" in body, body
        assert "ok listener-helmops: not served by the API server (list answered 404)" in body, body
        assert hold.served == 1
        status, body = probe(address, "/healthz")
        assert status == 200
        assert {"ok listener-gitrepos: running", "ok listener-helmops: running"} <= set(body.splitlines())
    finally:
        stop.set()
        thread.join(20)
        instrumentation.shutdown()
    assert not thread.is_alive()
