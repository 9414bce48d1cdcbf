"""/metrics under load on loopback: 1,000 concurrent scrapes and 300 slow clients, with a bounded thread count.

One client thread drives every socket through a selector, so the test itself adds no threads; it is
bounded in count (1,300 sockets) and time (a 120 s deadline). The figures are printed (``-s``).
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import otel_gitjob
from otel_gitjob._internal.prometheus.server import WORKERS, BoundedWSGIServer

REQUEST = b"GET /metrics HTTP/1.1\r\nHost: load\r\nAccept-Encoding: identity\r\n\r\n"


@pytest.fixture
def served() -> Iterator[Any]:
    instrumentation = otel_gitjob.setup(port=0)
    try:
        for i in range(50):
            instrumentation.gitjob.job_created(("ns", "repo-%d" % i))
        yield instrumentation
    finally:
        instrumentation.shutdown()


def slow_clients(address: tuple[str, int], count: int) -> list[socket.socket]:
    """Clients that send half a request line and then nothing."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(address, timeout=10)
        sock.sendall(b"GET /metrics HT")
        sockets.append(sock)
    return sockets


def closed_by_server(sock: socket.socket) -> bool:
    """EOF, or a reset (the server closed before reading what the client sent)."""
    try:
        return sock.recv(10) == b""
    except ConnectionResetError:
        return True


def scrape_all(address: tuple[str, int], count: int, deadline: float, threads: list[int]) -> list[bytes]:
    """``count`` concurrent GETs; returns each answer's status line (b"" when none came)."""
    selector = selectors.DefaultSelector()
    answers: dict[socket.socket, bytearray] = {}
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(address)
        answers[sock] = bytearray()
        selector.register(sock, selectors.EVENT_WRITE)
    open_count = count
    while open_count and time.monotonic() < deadline:
        threads.append(threading.active_count())
        for key, events in selector.select(1.0):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if events & selectors.EVENT_WRITE:
                sock.sendall(REQUEST)
                selector.modify(sock, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(1 << 16)
            except OSError:
                data = b""
            if data:
                answers[sock] += data
            else:
                selector.unregister(sock)
                sock.close()
                open_count -= 1
    for sock in list(selector.get_map().values()):
        selector.unregister(sock.fileobj)
        sock.fileobj.close()  # type: ignore[union-attr]
    selector.close()
    return [bytes(answer.split(b"\r\n", 1)[0]) for answer in answers.values()]


def test_a_thousand_scrapes_beside_three_hundred_slow_clients(served: Any) -> None:
    address = served.address
    before = threading.active_count()
    started = time.monotonic()
    slow = slow_clients(address, 300)
    threads: list[int] = []
    try:
        statuses = scrape_all(address, 1000, started + 120, threads)
        elapsed = time.monotonic() - started
    finally:
        for sock in slow:
            sock.close()
    served_ok = sum(status.startswith(b"HTTP/1.0 200") for status in statuses)
    print(
        "\n1,000 concurrent GETs beside 300 slow clients: %d served 200 in %.1f s; threads %d before, at most %d"
        % (served_ok, elapsed, before, max(threads))
    )
    assert served_ok == 1000, sorted(set(statuses))
    assert max(threads) <= before  # the server's threads were all started by setup(): none per connection


def test_slow_clients_are_closed_after_the_header_timeout_and_never_hold_a_worker() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"fine\n"]

    server = BoundedWSGIServer("127.0.0.1", 0, app, header_timeout=0.5, max_connections=100)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        before = threading.active_count()
        slow = slow_clients(server.server_address, 150)  # more than max_connections: the oldest are evicted
        try:
            statuses = scrape_all(server.server_address, 20, time.monotonic() + 30, [])
            assert statuses == [b"HTTP/1.0 200 OK"] * 20
            assert threading.active_count() == before
            assert len(server.threads()) == WORKERS
            deadline = time.monotonic() + 10
            while server.held() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.held() == 0
            assert server.timed_out + server.evicted >= 150
            assert all(closed_by_server(sock) for sock in slow)
        finally:
            for sock in slow:
                sock.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_a_connection_evicted_in_the_round_that_reported_it_readable_does_not_stop_the_server() -> None:
    # One select() round can report the oldest pending connection readable and a new connection to
    # accept; accepting at the limit evicts the oldest, so its read event then names a dropped socket.
    server = BoundedWSGIServer("127.0.0.1", 0, lambda environ, start_response: [], max_connections=1)
    evicted, peer = socket.socketpair()
    try:
        peer.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        with selectors.DefaultSelector() as selector:
            server._read(selector, evicted)  # no longer pending: skipped, not a KeyError in the accept thread
        assert server.held() == 0 and server.timed_out == 0
    finally:
        evicted.close()
        peer.close()
        server.server_close()


def test_after_a_large_answer_freed_memory_goes_back_to_the_os_and_not_after_a_probe(
    served: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import platform
    import urllib.request

    from otel_gitjob._internal.prometheus import server as server_module

    assert server_module.release_freed_memory() is (platform.libc_ver()[0] == "glibc")
    released: list[int] = []
    monkeypatch.setattr(server_module, "RELEASE_AFTER_BYTES", 2000)
    monkeypatch.setattr(server_module, "release_freed_memory", lambda: released.append(1) or True)
    for i in range(20):
        served.gitjob.job_succeeded(("ns", "repo-%d" % i), 1.0)
    base = "http://%s:%d" % served._server.server_address[:2]
    assert len(urllib.request.urlopen(base + "/metrics", timeout=30).read()) > 2000
    deadline = time.monotonic() + 10
    while not released and time.monotonic() < deadline:  # the worker releases after it closed the connection
        time.sleep(0.01)
    assert released == [1]
    urllib.request.urlopen(base + "/healthz", timeout=30).read()
    time.sleep(0.2)
    assert released == [1]
