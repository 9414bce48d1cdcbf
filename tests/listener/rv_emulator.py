"""kmock's emulator with resourceVersions: resume, compaction (410), bookmarks, and any kind.

kmock 0.8 ignores ``resourceVersion``: every watch replays every object as
ADDED and a missed event is lost for good. The listener resumes watches like
client-go, so its tests need the API server's semantics for that, and this
module adds the minimum (``tests/kube/`` runs a real kube-apiserver for the
rest):

* every event gets the next ``metadata.resourceVersion`` and is kept in a
  history; a list reports the newest one;
* a watch with a numeric ``resourceVersion`` replays the history after it,
  then streams live events; one older than the last :meth:`compact` gets an
  ``ERROR`` event 410, as after an etcd compaction;
* :meth:`ListenerEmulator.bookmark` sends a ``BOOKMARK`` to watches that
  asked for them;
* kinds other than GitRepo are served when registered (a kind not registered
  answers 404 on list, like a missing CRD).
"""

from __future__ import annotations

import asyncio
import copy
from collections import defaultdict
from typing import Any

import kmock
from kmock import Server
from kmock._internal import aiobus
from kube_emulator import _DROP, _END, GITREPOS, Emulator, FleetEmulator, _labels, parse_selector

HELMOPS = kmock.resource("fleet.cattle.io", "v1alpha1", "helmops")
WIDGETS = kmock.resource("example.com", "v1", "widgets")
NAMESPACES = kmock.resource("", "v1", "namespaces")
_OBJECT_EVENTS = ("ADDED", "MODIFIED", "DELETED")


class _StampingBus(aiobus.Bus):  # type: ignore[type-arg]
    """A kmock bus that stamps each object event with the next resourceVersion and records it."""

    def __init__(self, owner: ResumableEmulator, resource: Any) -> None:
        super().__init__()
        self.owner, self.resource = owner, resource

    async def put(self, item: Any) -> None:  # type: ignore[override]
        if isinstance(item, dict) and item.get("type") in _OBJECT_EVENTS:
            item = self.owner.stamp(self.resource, item)
        await super().put(item)


class ResumableEmulator(FleetEmulator):
    """:class:`FleetEmulator` plus resourceVersions, history, compaction and bookmarks."""

    def install(self) -> None:
        """Call once on the loop before serving: replaces the buses with stamping ones."""
        self.rv = 0
        self.compacted = 0
        self.history: list[tuple[int, Any, dict[str, Any]]] = []
        self.object_rv: dict[tuple[Any, Any, Any], int] = {}
        self.watch_params: list[dict[str, str]] = []
        owner = self

        class Buses(defaultdict):  # type: ignore[type-arg]
            def __missing__(self, resource: Any) -> Any:
                bus = self[resource] = _StampingBus(owner, resource)
                return bus

        self._buses = Buses()

    def stamp(self, resource: Any, event: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        obj = copy.deepcopy(event.get("object") or {})
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self.rv)
        stamped = {"type": event["type"], "object": obj}
        self.history.append((self.rv, resource, stamped))
        key = (resource, meta.get("namespace"), meta.get("name"))
        self.object_rv[key] = self.rv
        stored = self._objects[key] if event["type"] != "DELETED" and key in self._objects else None
        if stored is not None and not stored.deleted:
            # Stored too: kopf's JSON patches test metadata.resourceVersion.
            stored.patch({"metadata": {"resourceVersion": str(self.rv)}})
        return stamped

    async def _serve_list(self, request: kmock.Request) -> Any:
        result = await super()._serve_list(request)
        items = []
        for item in result["items"]:
            item = copy.deepcopy(item)
            meta = item.setdefault("metadata", {})
            rv = self.object_rv.get((request.resource, meta.get("namespace"), meta.get("name")))
            if rv is not None:
                meta["resourceVersion"] = str(rv)
            items.append(item)
        result["items"] = items
        result["metadata"] = {"resourceVersion": str(self.rv)}
        return result

    async def _serve_watch(self, request: kmock.Request) -> Any:
        yield b""
        self.watch_params.append(dict(request.params))
        resource = request.resource
        bus = self._buses[resource]
        marker = await bus.mark()
        try:
            match = parse_selector(request.params.get("labelSelector"))
            bookmarks = request.params.get("allowWatchBookmarks") == "true"
            since = request.params.get("resourceVersion") or ""
            visible: set[tuple[Any, Any]] = set()
            if since.isdigit():
                if int(since) < self.compacted:
                    yield {
                        "type": "ERROR",
                        "object": {
                            "kind": "Status",
                            "code": 410,
                            "reason": "Expired",
                            "message": "too old resource version: %s (%d)" % (since, self.compacted),
                        },
                    }
                    return
                replay = [event for rv, res, event in self.history if res == resource and rv > int(since)]
                # Objects the watcher saw at `since` may be deleted or leave the selector: deliver those
                # (those listed now, and any the history names).
                visible = {_key(event["object"]) for rv, res, event in self.history if res == resource}
                visible |= {_key(obj) for obj in (await super()._serve_list(request))["items"]}
            else:
                replay = []
                for obj in (await super()._serve_list(request))["items"]:
                    meta = obj.get("metadata") or {}
                    rv = self.object_rv.get((resource, meta.get("namespace"), meta.get("name")))
                    obj = copy.deepcopy(obj)
                    if rv is not None:
                        obj["metadata"]["resourceVersion"] = str(rv)
                    replay.append({"type": "ADDED", "object": obj})
            newest = self.rv
            for event in replay:
                out = self._filter(request, match, visible, event)
                if out is not None:
                    yield out
            async for item in marker:
                if not isinstance(item, dict):
                    yield item
                    continue
                kind = item.get("type")
                if kind == _END:
                    return
                if kind == _DROP:
                    transport = request._raw_request.transport if request._raw_request is not None else None
                    if transport is not None:
                        transport.abort()
                    return
                if kind == "BOOKMARK":
                    if bookmarks:
                        yield item
                    continue
                if kind in _OBJECT_EVENTS:
                    rv = int(((item.get("object") or {}).get("metadata") or {}).get("resourceVersion") or 0)
                    if rv and rv <= newest:
                        continue  # already replayed
                    out = self._filter(request, match, visible, item)
                    if out is not None:
                        yield out
                    continue
                yield item
        finally:
            await bus.unmark(marker)

    @staticmethod
    def _filter(request: kmock.Request, match: Any, visible: set[Any], event: dict[str, Any]) -> Any:
        obj = event.get("object") or {}
        key = _key(obj)
        if request.namespace and key[0] != request.namespace:
            return None
        kind = event["type"]
        if kind == "DELETED":
            if key in visible:
                visible.discard(key)
                return event
            return None
        if match(_labels(obj)):
            out = {"type": kind if key in visible else "ADDED", "object": obj}
            visible.add(key)
            return out
        if key in visible:  # left the selector: the API server says DELETED
            visible.discard(key)
            return {"type": "DELETED", "object": obj}
        return None


def _key(obj: dict[str, Any]) -> tuple[Any, Any]:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace"), meta.get("name"))


class ListenerEmulator(Emulator):
    """:class:`Emulator` on a :class:`ResumableEmulator`, serving GitRepos and the kinds asked for.

    Args:
        kinds: ``{kmock.resource: kind name}`` of further kinds to serve
            (e.g. ``{HELMOPS: "HelmOp"}``); any other resource answers 404.
    """

    def __init__(self, kinds: dict[Any, str] | None = None) -> None:
        self._extra_kinds = dict(kinds or {})
        super().__init__()

    async def _main(self) -> None:
        self._stopping, self._release = asyncio.Event(), asyncio.Event()
        async with ResumableEmulator() as emulator, Server(emulator) as server:
            emulator.install()
            verbs = {"get", "list", "watch", "create", "update", "patch", "delete"}  # kopf serves watchable kinds only
            emulator.resources[GITREPOS] = kmock.ResourceInfo(kind="GitRepo", namespaced=True, verbs=verbs)
            # kopf waits for core/v1 namespaces in discovery before it watches anything.
            emulator.resources[NAMESPACES] = kmock.ResourceInfo(kind="Namespace", namespaced=False, verbs=verbs)
            for resource, kind in self._extra_kinds.items():
                emulator.resources[resource] = kmock.ResourceInfo(kind=kind, namespaced=True, verbs=verbs)
            self.kmock, self.port = emulator, server.port
            self._ready.set()
            await self._stopping.wait()
            self._release.set()
            for bus in list(emulator._buses.values()):
                await bus.put({"type": _END})
            await asyncio.sleep(0.05)

    # -- any kind

    def create_object(self, resource: Any, body: dict[str, Any]) -> Any:
        """Create an object of ``resource`` (a ``kmock.resource``) through the API."""
        meta = body["metadata"]
        meta.setdefault("uid", "uid-%d" % next(self._uids))
        return self.api.create_namespaced_custom_object(
            resource.group, resource.version, meta["namespace"], resource.plural, body
        )

    def patch_object(self, resource: Any, namespace: str, name: str, body: dict[str, Any]) -> Any:
        return self.api.patch_namespaced_custom_object(
            resource.group, resource.version, namespace, resource.plural, name, body
        )

    def delete_object(self, resource: Any, namespace: str, name: str) -> Any:
        return self.api.delete_namespaced_custom_object(
            resource.group, resource.version, namespace, resource.plural, name
        )

    def delete_unseen(self, name: str, namespace: str = "fleet-local", resource: Any = GITREPOS) -> None:
        """Delete from storage without any event (compacted away before a watcher could see it)."""
        self.call(lambda: self.kmock.objects[resource, namespace, name].delete())

    def wait_watching_resource(self, resource: Any, count: int = 1) -> None:
        """Wait until ``count`` watch streams of ``resource`` receive live events."""
        from support import wait_until

        wait_until(lambda: self.call(lambda: self.kmock._buses[resource].consumer_count) >= count)

    # -- resourceVersions

    @property
    def resource_version(self) -> int:
        """The newest resourceVersion handed out."""
        return self.call(lambda: self.kmock.rv)

    def compact(self) -> None:
        """Forget the history: watches from an older resourceVersion get 410."""

        def run() -> None:
            self.kmock.compacted = self.kmock.rv + 1
            self.kmock.history.clear()

        self.call(run)

    def bookmark(self, resource: Any = GITREPOS) -> None:
        """Send a BOOKMARK at the newest resourceVersion to watches that asked for them."""
        rv = self.resource_version
        self._await(
            self.kmock._buses[resource].put({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": str(rv)}}})
        )

    def watch_params(self) -> list[dict[str, str]]:
        """Query parameters of every watch served, in order."""
        return self.call(lambda: list(self.kmock.watch_params))
