"""The HTTP server under ``/metrics``, ``/healthz`` and ``/readyz``: a fixed number of threads, whatever the clients do.

prometheus_client's server spends a thread per connection and listens with a backlog of 5. This one
reads every request header on the accept thread, non-blocking, with a deadline and a size cap (a slow
client costs a socket, never a thread); hands complete requests to :data:`WORKERS` threads; and holds at
most :data:`MAX_CONNECTIONS` connections, closing the oldest one still without a header or leaving new ones
in the kernel's queue. One request per connection (HTTP/1.0, as prometheus_client's server).
"""

from __future__ import annotations

import collections
import io
import logging
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler

from otel_gitjob._internal.core.locks import join, ranked_lock

__all__ = [
    "HEADER_TIMEOUT",
    "LISTEN_BACKLOG",
    "MAX_CONNECTIONS",
    "WORKERS",
    "WRITE_TIMEOUT",
    "BoundedWSGIServer",
]

_logger = logging.getLogger(__name__)

# Threads answering requests. A scrape's collection is shared by every scrape that arrives while it runs
# and a render is serialised anyway, so more threads would only wait on the same lock; probes answer at
# once from any of them.
WORKERS = 4

# Seconds a client has, from the accept, to send its whole request header. Prometheus and the kubelet send
# theirs in one packet.
HEADER_TIMEOUT = 10.0

# Seconds one blocked write of the answer may wait for the client to read.
WRITE_TIMEOUT = 30.0

# Connections held at once (waiting for their header, queued for a worker, or being answered).
MAX_CONNECTIONS = 1024

# The listen(2) backlog: room for a Prometheus HA pair, probes and bursts while the accept thread is busy.
# The kernel caps it at net.core.somaxconn (4096 on current kernels).
LISTEN_BACKLOG = 1024

# Longest request header accepted (prometheus_client reads lines of up to 64 KiB).
MAX_HEADER_BYTES = 65536

_HEADER_END = (b"\r\n\r\n", b"\n\n")

# After an answer this large, freed memory goes back to the OS (see release_freed_memory).
RELEASE_AFTER_BYTES = 1 << 20


def _malloc_trim() -> Callable[[int], Any] | None:
    try:
        import ctypes

        trim = ctypes.CDLL(None).malloc_trim  # glibc only: musl and macOS have none
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
        return trim  # type: ignore[no-any-return]
    except Exception:
        return None


_TRIM = _malloc_trim()


def release_freed_memory() -> bool:
    """Give the C allocator's free memory back to the OS, where it can (glibc); whether it could.

    glibc keeps what each thread freed in that thread's arena: every worker that answered a scrape
    would keep that scrape's buffers resident, WORKERS expositions in all (tens of MB at 10,000 objects).
    """
    if _TRIM is None:
        return False
    try:
        _TRIM(0)
    except Exception:  # pragma: no cover - a libc that refuses
        return False
    return True


class _Pending:
    __slots__ = ("address", "buffer", "deadline")

    def __init__(self, address: Any, deadline: float) -> None:
        self.address = address
        self.deadline = deadline
        self.buffer = bytearray()


class _Handler(WSGIRequestHandler):
    """wsgiref's request handler, fed the header the accept thread already read; logs nothing per request."""

    sent = 0  # bytes of the body answered

    def __init__(self, sock: socket.socket, address: Any, server: BoundedWSGIServer, header: bytes) -> None:
        self._header = header
        super().__init__(sock, address, server)  # type: ignore[arg-type]

    def setup(self) -> None:
        super().setup()  # its wfile writes with sendall (wbufsize 0)
        self.rfile.close()
        self.rfile = io.BytesIO(self._header)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        """Keep the size of the body wsgiref sent (its handler reports it here when it closes); log nothing."""
        if isinstance(size, int):
            self.sent = size

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's parameter name
        """Silent, like prometheus_client's handler."""


def best_family(address: str, port: int) -> tuple[socket.AddressFamily, str]:
    """The address family and address to bind, as ``getaddrinfo`` resolves them (IPv6 when that comes first)."""
    infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]
    return family, str(sockaddr[0])


class BoundedWSGIServer:
    """Serves a WSGI application with a fixed pool of worker threads.

    Args:
        address: Listen address (a host name is resolved; IPv6 addresses work).
        port: Listen port (0 picks a free one).
        app: The WSGI application.
        workers: Worker threads.
        header_timeout: Seconds a client has to send its request header.
        write_timeout: Seconds a blocked write of the answer may wait.
        max_connections: Connections held at once.
        backlog: The listen backlog.

    Raises:
        OSError: When the address cannot be bound.
    """

    def __init__(
        self,
        address: str,
        port: int,
        app: Callable[..., Any],
        *,
        workers: int = WORKERS,
        header_timeout: float = HEADER_TIMEOUT,
        write_timeout: float = WRITE_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        backlog: int = LISTEN_BACKLOG,
    ) -> None:
        self.application = app
        self.header_timeout = header_timeout
        self.write_timeout = write_timeout
        self.max_connections = max_connections
        family, address = best_family(address, port)
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind((address, port))
            self.socket.listen(backlog)
            self.socket.setblocking(False)
        except BaseException:
            self.socket.close()
            raise
        self.server_address = self.socket.getsockname()[:2]
        self.server_name = str(self.server_address[0])
        self.server_port = self.server_address[1]
        self.base_environ = {
            "SERVER_NAME": self.server_name,
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PORT": str(self.server_port),
            "REMOTE_HOST": "",
            "CONTENT_LENGTH": "",
            "SCRIPT_NAME": "",
        }
        self._ready: queue.Queue[tuple[socket.socket, Any, bytes] | None] = queue.Queue()
        # The accept thread's own (serve_forever): connections still without their header, oldest first.
        self._pending: collections.OrderedDict[socket.socket, _Pending] = collections.OrderedDict()
        self._lock = ranked_lock("server.held")  # guards _held
        self._held = 0
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._workers = [
            threading.Thread(target=self._work, name="otel-gitjob-http-%d" % i, daemon=True) for i in range(workers)
        ]
        for worker in self._workers:
            worker.start()
        self.accepted = 0
        """Connections accepted."""
        self.timed_out = 0
        """Connections closed because their header did not arrive in time (or was too large)."""
        self.evicted = 0
        """Connections closed, header incomplete, to make room for new ones."""

    # -- what callers use ---------------------------------------------------------------------------------

    def get_app(self) -> Callable[..., Any]:
        """The WSGI application (wsgiref's handler asks for it)."""
        return self.application

    def threads(self) -> list[threading.Thread]:
        """The worker threads (the accept thread is the caller's, the one running :meth:`serve_forever`)."""
        return list(self._workers)

    def workers_alive(self) -> bool:
        """Whether every worker thread runs."""
        return all(worker.is_alive() for worker in self._workers)

    def held(self) -> int:
        """Connections held now."""
        with self._lock:
            return self._held

    def serve_forever(self) -> None:
        """Accept connections and read their headers until :meth:`shutdown`."""
        self._stopped.clear()
        try:
            self._serve()
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` and wait for it to return."""
        self._stopping.set()
        self._wake()
        self._stopped.wait()

    def server_close(self) -> None:
        """Close the listening socket and stop the workers (requests being answered finish first)."""
        self._stopping.set()
        self._wake()
        self.socket.close()
        for _ in self._workers:
            self._ready.put(None)
        for worker in self._workers:
            if worker is not threading.current_thread():
                join(worker, self.write_timeout)
        self._wake_r.close()
        self._wake_w.close()

    # -- the accept thread --------------------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:  # already full (a wake is pending) or closed
            pass

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        pending = self._pending
        listening = False
        try:
            selector.register(self._wake_r, selectors.EVENT_READ, "wake")
            while not self._stopping.is_set():
                room = self.held() < self.max_connections or bool(pending)
                if room and not listening:
                    selector.register(self.socket, selectors.EVENT_READ, "accept")
                    listening = True
                elif not room and listening:
                    selector.unregister(self.socket)  # the kernel queues new ones until a worker frees a slot
                    listening = False
                timeout = None
                if pending:
                    timeout = max(0.0, next(iter(pending.values())).deadline - time.monotonic())
                for key, _ in selector.select(timeout):
                    if key.data == "wake":
                        self._drain_wake()
                    elif key.data == "accept":
                        self._accept(selector)
                    else:
                        self._read(selector, key.fileobj)  # type: ignore[arg-type]
                now = time.monotonic()
                while pending:  # every header has the same timeout: the oldest expires first
                    sock, state = next(iter(pending.items()))
                    if state.deadline > now:
                        break
                    self.timed_out += 1
                    self._drop(selector, sock)
        finally:
            for sock in list(pending):
                self._drop(selector, sock)
            selector.close()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def _accept(self, selector: selectors.BaseSelector) -> None:
        pending = self._pending
        deadline = time.monotonic() + self.header_timeout
        while True:
            with self._lock:
                full = self._held >= self.max_connections
            if full:
                if not pending:
                    return
                self.evicted += 1
                self._drop(selector, next(iter(pending)))
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # EMFILE and the like: try again at the next wake-up
                _logger.warning("otel-gitjob: /metrics cannot accept a connection: %s", error)
                time.sleep(0.05)
                return
            self.accepted += 1
            sock.setblocking(False)
            with self._lock:
                self._held += 1
            pending[sock] = _Pending(address, deadline)
            selector.register(sock, selectors.EVENT_READ, "read")

    def _read(self, selector: selectors.BaseSelector, sock: socket.socket) -> None:
        state = self._pending.get(sock)
        if state is None:  # evicted earlier in this round of events, after select() reported it readable
            return
        try:
            data = sock.recv(MAX_HEADER_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away
            self._drop(selector, sock)
            return
        state.buffer += data
        if any(end in state.buffer for end in _HEADER_END):
            selector.unregister(sock)
            del self._pending[sock]
            self._ready.put((sock, state.address, bytes(state.buffer)))
        elif len(state.buffer) > MAX_HEADER_BYTES:
            self.timed_out += 1
            self._drop(selector, sock)

    def _drop(self, selector: selectors.BaseSelector, sock: socket.socket) -> None:
        del self._pending[sock]
        selector.unregister(sock)
        self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        try:
            sock.close()
        finally:
            with self._lock:
                self._held -= 1
            self._wake()  # a slot is free: the accept thread may listen again

    # -- the workers --------------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._ready.get()
            if item is None:
                return
            sock, address, header = item
            written = 0
            try:
                sock.setblocking(True)
                sock.settimeout(self.write_timeout)
                written = _Handler(sock, address, self, header).sent
                sock.shutdown(socket.SHUT_WR)
            except Exception:  # a client that went away mid-answer, a write timeout: that connection only
                _logger.debug("otel-gitjob: answering %s failed", address, exc_info=True)
            finally:
                self._close(sock)
            if written >= RELEASE_AFTER_BYTES:  # the answer's buffers are freed by now
                release_freed_memory()
