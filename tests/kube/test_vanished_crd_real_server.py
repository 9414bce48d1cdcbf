"""A CRD deleted while the listener's connection is down: its objects are forgotten, and it is relisted until back.

Against the real kube-apiserver. The listener reaches it through a loopback TCP forwarder the test can
cut (the TLS session passes through untouched), so the deletion happens while its watch is down and it
never sees the objects' DELETED events: only the list's 404 can tell it. The CRDs are reinstalled after.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

from kube_helpers import gitrepo_watcher
from real_apiserver import KubeApiServer
from support import wait_until

CRD = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gitrepos.fleet.cattle.io"
NAMESPACE = "vanishing-crd"
SPEC = {"repo": "https://example.test/r.git", "branch": "main"}


class Forwarder:
    """127.0.0.1:port → target, byte for byte; :meth:`cut` drops every connection and refuses new ones."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target, timeout=10)
            upstream.settimeout(None)
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                pump = threading.Thread(target=self._pump, args=(source, sink), daemon=True)
                self.threads.append(pump)
                pump.start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open.clear()
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.cut()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (closing alone does not)
        self.listener.close()
        for thread in self.threads:
            thread.join(10)


@contextlib.contextmanager
def forwarder_to(server: KubeApiServer) -> Iterator[Forwarder]:
    host, port = server.base_url.removeprefix("https://").rsplit(":", 1)
    forwarder = Forwarder((host, int(port)))
    try:
        yield forwarder
    finally:
        forwarder.close()


def test_a_crd_removed_while_the_watch_was_down_forgets_its_objects_and_is_relisted_until_back(
    kube_apiserver: KubeApiServer,
) -> None:
    server = kube_apiserver
    server.ensure_namespace(NAMESPACE)
    server.create("gitrepos", NAMESPACE, "a", SPEC, {"readyClusters": 1})
    server.create("gitrepos", NAMESPACE, "b", SPEC, {"readyClusters": 1})
    with forwarder_to(server) as forwarder:
        configuration = server.configuration()
        configuration.host = "https://127.0.0.1:%d" % forwarder.port
        watched = gitrepo_watcher(
            NAMESPACE,
            configuration=configuration,
            backoff_base=0.05,
            backoff_cap=0.5,
            missing_kind_retry=0.5,
        )
        try:
            watched.start()
            wait_until(lambda: watched.sees({"a", "b"}), what="both GitRepos tracked")
            wait_until(lambda: watched.listener.health()[0], what="the watch open")
            forwarder.cut()
            wait_until(lambda: not watched.listener.health()[0], what="the watch seen down")
            status, body = server.request("DELETE", CRD)
            assert status == 200, body
            wait_until(lambda: server.request("GET", "/apis/fleet.cattle.io/v1alpha1/gitrepos")[0] == 404, timeout=60)
            assert watched.tracked() == {"a", "b"}  # it saw nothing of the deletion
            forwarder.restore()
            wait_until(lambda: watched.sees(set()), timeout=30, what="the vanished kind's objects forgotten")
            ready, detail = watched.listener.health()
            assert ready and "404" in detail, detail
            relists = watched.listener.relists
            server.install_crds()  # the CRD is back (its objects went with it)
            wait_until(lambda: watched.listener.relists > relists, timeout=30, what="a relist once it is served")
            server.create("gitrepos", NAMESPACE, "c", SPEC, {"readyClusters": 1})
            wait_until(lambda: watched.sees({"c"}), timeout=30, what="the new GitRepo tracked")
            assert watched.listener.health() == (True, "listed, watching")
        finally:
            watched.close()
            server.install_crds()
            with contextlib.suppress(Exception):
                server.delete("gitrepos", NAMESPACE, "c")
