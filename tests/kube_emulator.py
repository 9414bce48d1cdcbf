"""A Kubernetes API emulator (kmock) on 127.0.0.1 for the tests, driven from synchronous code.

kmock's ``KubernetesEmulator`` is asyncio-based: it runs here on its own event
loop in a background thread, and tests talk to it over real HTTP with the real
``kubernetes`` client. :class:`FleetEmulator` adds what the listener's tests
need and kmock 0.8 lacks: label selectors on list and watch (with the API
server's behaviour of sending DELETED when an object stops matching a watch's
selector, and ADDED when it starts to), and a way to end or drop live watch
streams from the test.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import kmock
import kubernetes
from kmock import KubernetesEmulator, KubernetesError, Server
from support import wait_until

GROUP, VERSION, PLURAL = "fleet.cattle.io", "v1alpha1", "gitrepos"
GITREPOS = kmock.resource(GROUP, VERSION, PLURAL)

_END, _DROP = "__END_STREAM__", "__DROP_CONNECTION__"


def parse_selector(selector: str | None) -> Callable[[dict[str, str]], bool]:
    """Equality-based label selector (``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, comma = and)."""
    terms: list[Callable[[dict[str, str]], bool]] = []
    for raw in (selector or "").split(","):
        term = raw.strip()
        if not term:
            continue
        if "!=" in term:
            k, v = (s.strip() for s in term.split("!=", 1))
            terms.append(lambda labels, k=k, v=v: labels.get(k) != v)
        elif "=" in term:
            k, v = (s.strip() for s in term.replace("==", "=").split("=", 1))
            terms.append(lambda labels, k=k, v=v: labels.get(k) == v)
        elif term.startswith("!"):
            absent = term[1:].strip()
            terms.append(lambda labels, k=absent: k not in labels)
        else:
            terms.append(lambda labels, k=term: k in labels)
    return lambda labels: all(term(labels) for term in terms)


def _labels(obj: Any) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {}) if isinstance(obj, dict) else {}


class FleetEmulator(KubernetesEmulator):
    """kmock's emulator plus label selectors and stream control."""

    async def _serve_list(self, request: kmock.Request) -> Any:
        result = await super()._serve_list(request)
        match = parse_selector(request.params.get("labelSelector"))
        result["items"] = [item for item in result["items"] if match(_labels(item))]
        return result

    async def _serve_watch(self, request: kmock.Request) -> Any:
        match = parse_selector(request.params.get("labelSelector"))
        visible: set[tuple[Any, Any]] = set()
        async for item in super()._serve_watch(request):
            if not isinstance(item, dict):
                yield item
                continue
            kind, obj = item.get("type"), item.get("object") or {}
            if kind == _END:
                return
            if kind == _DROP:
                transport = request._raw_request.transport if request._raw_request is not None else None
                if transport is not None:
                    transport.abort()
                return
            if kind not in ("ADDED", "MODIFIED", "DELETED"):
                yield item
                continue
            meta = obj.get("metadata") or {}
            key = (meta.get("namespace"), meta.get("name"))
            if kind == "DELETED":
                if key in visible:
                    visible.discard(key)
                    yield item
            elif match(_labels(obj)):
                yield {"type": kind if key in visible else "ADDED", "object": obj}
                visible.add(key)
            elif key in visible:  # left the selector: the API server says DELETED
                visible.discard(key)
                yield {"type": "DELETED", "object": obj}


class Reaction:
    """A fault injected with :meth:`Emulator.react`."""

    def __init__(self, times: int) -> None:
        self.left = times
        self.served = 0
        self.served_at: list[float] = []  # time.monotonic() of each request it answered

    def cancel(self) -> None:
        """Serve normally from the next request on."""
        self.left = 0


class Emulator:
    """Synchronous handle on a :class:`FleetEmulator` running in a background thread.

    Attributes:
        kmock: The emulator (touch its DSL only through :meth:`call`).
        port: The port it listens on, on 127.0.0.1.
        configuration: A ``kubernetes`` client configuration pointing at it.
        api: A ``CustomObjectsApi`` the test uses to create/patch/delete GitRepos.
    """

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stopping: asyncio.Event | None = None
        self._release: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._uids = itertools.count(1)
        self._thread = threading.Thread(target=self._run, name="kmock-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("emulator did not start: %r" % (self._error,))
        self.configuration = kubernetes.client.Configuration(host="http://127.0.0.1:%d" % self.port)
        self.api = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(self.configuration))

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced by __init__ / close
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stopping, self._release = asyncio.Event(), asyncio.Event()
        async with FleetEmulator() as emulator, Server(emulator) as server:
            emulator.resources[GITREPOS] = kmock.ResourceInfo(kind="GitRepo", namespaced=True)
            self.kmock, self.port = emulator, server.port
            self._ready.set()
            await self._stopping.wait()
            # End every live stream so the server can shut down without waiting for them.
            self._release.set()
            await emulator._buses[GITREPOS].put({"type": _END})
            await asyncio.sleep(0.05)

    def close(self) -> None:
        """Stop the server and its loop; raises if the thread does not end."""
        if self._stopping is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(15)
        assert not self._thread.is_alive(), "emulator thread did not stop"

    # -- running things on the emulator's loop

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn()`` on the emulator's loop (for kmock's DSL) and return its result."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(5)

    def _await(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(5)

    # -- objects

    def gitrepo(
        self,
        name: str,
        namespace: str = "fleet-local",
        *,
        uid: str | None = None,
        labels: dict[str, str] | None = None,
        repo: str = "https://github.com/rancher/fleet-examples",
        branch: str = "main",
        paths: list[str] | None = None,
        status: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A GitRepo body (not created)."""
        meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": uid or "uid-%d" % next(self._uids)}
        if labels:
            meta["labels"] = labels
        return {
            "apiVersion": "%s/%s" % (GROUP, VERSION),
            "kind": "GitRepo",
            "metadata": meta,
            "spec": {"repo": repo, "branch": branch, "paths": paths or ["simple"]},
            "status": status or {},
        }

    def create(self, name: str, namespace: str = "fleet-local", **kwargs: Any) -> dict[str, Any]:
        """Create a GitRepo through the API (watchers get ADDED)."""
        body = self.gitrepo(name, namespace, **kwargs)
        return self.api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

    def patch(self, name: str, body: dict[str, Any], namespace: str = "fleet-local") -> Any:
        """Merge-patch a GitRepo through the API (watchers get MODIFIED)."""
        return self.api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, body)

    def delete(self, name: str, namespace: str = "fleet-local") -> Any:
        """Delete a GitRepo through the API (watchers get DELETED)."""
        return self.api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def delete_unseen(self, name: str, namespace: str = "fleet-local") -> None:
        """Delete a GitRepo from storage without telling any watcher (a missed event)."""
        self.call(lambda: self.kmock.objects[GITREPOS, namespace, name].delete())

    # -- streams and faults

    def watchers(self) -> int:
        """How many watch streams are subscribed to live events."""
        return self.call(lambda: self.kmock._buses[GITREPOS].consumer_count)

    def wait_watching(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until ``count`` watch streams receive live events.

        kmock (unlike an API server with resourceVersions) loses events sent
        between a watch's request and its subscription, so tests that change
        objects right after a listener started wait for this first.
        """
        wait_until(lambda: self.watchers() >= count, timeout)

    def send_to_watches(self, event: dict[str, Any]) -> None:
        """Write one event line to every live (fallback-served) watch stream."""
        self._await(self.kmock._buses[GITREPOS].put(event))

    def end_watches(self) -> None:
        """Close every live watch stream cleanly (as at the server's timeout)."""
        self.send_to_watches({"type": _END})

    def drop_watches(self) -> None:
        """Abort the TCP connection of every live watch stream."""
        self.send_to_watches({"type": _DROP})

    def requests(self, action: kmock.action) -> list[kmock.Request]:
        """GitRepo requests of one kind (LIST or WATCH) received so far."""
        return self.call(lambda: [r for r in self.kmock if r.resource == GITREPOS and r.action == action])

    def react(self, action: kmock.action, payload: Any, times: int = 1) -> Reaction:
        """Answer the next ``times`` requests of ``action`` on gitrepos with ``payload``.

        ``payload`` is any kmock payload (an exception, a tuple streamed line by
        line, ...) or a callable taking the request and returning one; after
        ``times`` requests (or :meth:`Reaction.cancel`) the emulator serves
        normally again.
        """
        reaction = Reaction(times)

        def respond(request: kmock.Request) -> Any:
            if reaction.left <= 0:
                return NotImplemented  # kmock: skip this reaction from now on
            reaction.left -= 1
            reaction.served += 1
            reaction.served_at.append(time.monotonic())
            return payload(request) if callable(payload) else payload

        self.call(lambda: self.kmock[action, GITREPOS] << respond)
        return reaction

    def hang(self) -> Callable[[], Any]:
        """A payload item that blocks until teardown (a hung API server)."""
        release = self._release
        assert release is not None
        return lambda *_: release.wait()

    @staticmethod
    def status_error(code: int, reason: str, message: str = "injected by the test") -> KubernetesError:
        """A Kubernetes ``Status`` error response."""
        return KubernetesError(status=code, reason=reason, message=message)
