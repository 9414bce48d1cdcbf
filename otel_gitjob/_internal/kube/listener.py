"""Watch one Kubernetes kind and turn its objects' lifecycle into metric lifecycle actions.

A list/watch loop shaped like client-go's reflector. Not ``kubernetes.informer.SharedInformer`` (37.x):
it reads ``CustomObjectsApi`` lists as empty, retries without backoff, sets no request timeout, runs
handlers on the watch thread and keys its relist diff on the name alone.

List every page (replace the cache, queue the diff, ``retain`` the live set: the watch cache is
authoritative), then watch from the newest resourceVersion seen. A stream that ends or breaks keeping
its position resumes from there (the API server replays what happened since); only an expired position
(410), a malformed line or a failed list relists. Every failure waits a jittered backoff. A bad object
is dropped and counted; a kind the API server does not serve (404) is retried every ``missing_kind_retry``.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines
from opentelemetry import metrics
from urllib3.exceptions import HTTPError, ProtocolError, ReadTimeoutError

from otel_gitjob._internal.core.locks import join, ranked_lock
from otel_gitjob._internal.core.selfmetrics import Source
from otel_gitjob._internal.kube._types import ObjectKey, Sink
from otel_gitjob._internal.kube.backoff import Backoff
from otel_gitjob._internal.kube.cache import ObjectCache
from otel_gitjob._internal.kube.config import load_configuration
from otel_gitjob._internal.kube.events import (
    BOOKMARK,
    DELETED,
    MalformedEventError,
    WatchErrorEvent,
    parse_event_line,
)
from otel_gitjob._internal.kube.gauges import serve_kind
from otel_gitjob._internal.kube.kind import REASON_BAD_OBJECT, KindSpec, ObjectState, check_kind
from otel_gitjob._internal.kube.settings import ListenerSettings, shard_selector
from otel_gitjob._internal.kube.workqueue import WorkQueue

__all__ = ["REASON_WRONG_KIND", "ResourceListener", "describe_failure", "loses_position"]

logger = logging.getLogger(__name__)

REASON_WRONG_KIND = "wrong_kind"
"""Drop reason of an object whose ``kind`` or ``apiVersion`` is not the watched kind's."""

_RETAIN_KEY: ObjectKey = ("", "\x00retain")
"""Work-queue key of the relist's ``retain`` call (no object has an empty namespace and this name)."""


class _Stopped(Exception):
    """The listener is stopping; unwind the loop quietly."""


class StreamClosedEarly(Exception):
    """The server closed the watch cleanly before the ``timeoutSeconds`` we asked for."""


class MalformedListError(ValueError):
    """A list response that is not a Kubernetes list."""


def describe_failure(exc: BaseException, settings: ListenerSettings, phase: str) -> str:
    """One-line reason for a failed ``phase`` (``"list"`` or ``"watch"``), for the log."""
    if isinstance(exc, ApiException):
        if exc.status == 410:
            return "HTTP 410 Gone (resource version expired)"
        return "HTTP %s %s" % (exc.status, exc.reason or "")
    if isinstance(exc, WatchErrorEvent):
        if exc.code == 410:
            return "ERROR event 410 (resource version expired): %s" % exc.message
        return str(exc)
    if isinstance(exc, ReadTimeoutError):
        if phase == "list":
            return "no answer from the API server for %ss (list timeout)" % settings.list_timeout
        return "no data from the API server for %ss (inactivity timeout)" % settings.watch_read_timeout
    if isinstance(exc, ProtocolError):
        return "connection dropped mid-stream: %s" % (exc,)
    if isinstance(exc, (MalformedEventError, MalformedListError, StreamClosedEarly)):
        return str(exc)
    if isinstance(exc, HTTPError):
        return "connection failed: %s" % (exc,)
    return "%s: %s" % (type(exc).__name__, exc)


def loses_position(exc: BaseException) -> bool:
    """Whether a watch failure means the stream position cannot be resumed from.

    410 Gone and "too old resource version": the server no longer holds the history since our
    resourceVersion; a malformed line: an event may have been lost; a 404: the kind went away.
    Everything else (dropped connection, timeout, 5xx, 403, an early close) leaves the position
    valid, as client-go's reflector treats it.
    """
    if isinstance(exc, ApiException):
        # 404: the kind is no longer served (its CRD was removed): relist, which reports it.
        return exc.status in (404, 410) or "too old resource version" in str(exc.body or "")
    if isinstance(exc, WatchErrorEvent):
        return exc.code == 410 or "too old resource version" in exc.message
    return isinstance(exc, (MalformedEventError, MalformedListError))


class _KindMissing(Exception):
    """The list answered 404: the API server does not serve the kind (its CRD is not installed)."""


class ResourceListener:
    """Keeps a cache of one kind's objects and the lifecycle's metric lifecycle in step.

    DELETED → ``lifecycle.forget(ref, kind=...)``; ADDED → ``observe``; MODIFIED → the status gauges
    (read from the cache at collection time) change; a uid change under the same name is a forget plus
    an observe; objects that vanish between two lists are forgotten after the second. The watch thread
    never waits on the lifecycle, which a second thread calls.

    Args:
        lifecycle: ``otel_gitjob.Lifecycle`` (or another :class:`~._types.Sink`).
        kind: What to watch (a :class:`~.kind.KindSpec`).
        configuration: Client configuration (kubeconfig or in-cluster); the default configuration
            when omitted. The listener's client uses a copy with urllib3 retries off: the listener
            owns retrying, and urllib3's three immediate retries would hide failures from its backoff
            and quadruple the inactivity timeout.
        api: A ready ``CustomObjectsApi`` to use instead (tests, custom clients); ``configuration``
            is then ignored.
        settings: Namespace, shard, backoff and timeouts.
        meter_provider: Where the kind's status gauges are created; the global provider when omitted.
        status_gauges: Set ``False`` to not create the gauges at all.

    Attributes:
        relists: Lists completed (the first one included).
        watches: Watch requests made.
        requests: List-page and watch requests made.
        failures: Lists or watches that failed.
        resumes: Watch streams that ended at the server's timeout and were resumed.
        bookmarks: BOOKMARK events received (their resourceVersion becomes :attr:`resource_version`).
        last_relist_seconds: How long the latest full list took.
        gauges: The kind's status gauges (empty with ``status_gauges=False``).

    Example:
        >>> listener = ResourceListener(lifecycle, kind, meter_provider=provider)  # doctest: +SKIP
        >>> listener.start(); listener.wait_synced(30)  # doctest: +SKIP
    """

    def __init__(
        self,
        lifecycle: Sink,
        kind: KindSpec,
        *,
        configuration: k8s_client.Configuration | None = None,
        api: k8s_client.CustomObjectsApi | None = None,
        settings: ListenerSettings | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        status_gauges: bool = True,
    ) -> None:
        check_kind(kind)
        self.kind = kind
        self.settings = settings or ListenerSettings()
        self._api = api or k8s_client.CustomObjectsApi(k8s_client.ApiClient(_without_retries(configuration)))
        self._sink = lifecycle
        self._drop = lifecycle.drops.drop
        self._cache = ObjectCache()
        self._work = WorkQueue(lifecycle, kind.kind)
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._response_lock = ranked_lock("kube.response")
        self._response: Any = None
        self._threads: list[threading.Thread] = []
        self._position: str | None = None
        self._missing_reported = False
        self._missing = False  # the latest list answered 404
        self._watch_open = False
        self.relists = self.watches = self.requests = self.failures = self.resumes = self.bookmarks = 0
        self.last_relist_seconds = 0.0
        self._add_self_metric_sources(lifecycle)
        self.gauges: list[metrics.ObservableGauge] = serve_kind(
            lifecycle,
            kind,
            self._cache,
            meter_provider=meter_provider,
            status_gauges=status_gauges,
            user="ResourceListener",
            scope="otel_gitjob.listener",
        )

    # ------------------------------------------------------------------ lifecycle

    @property
    def cache(self) -> ObjectCache:
        """The watch cache (read-only use)."""
        return self._cache

    @property
    def label_selector(self) -> str | None:
        """The selector sent to the API server: the kind's own, and the shard's when the kind is sharded."""
        terms = [self.kind.label_selector]
        if self.kind.shard_label:
            terms.append(shard_selector(self.kind.shard_label, self.settings.shard_id, self.settings.all_shards))
        return ",".join(term for term in terms if term) or None

    def start(self) -> None:
        """Start the watch thread and the lifecycle worker thread.

        Raises:
            RuntimeError: When already started.
        """
        if self._threads:
            raise RuntimeError("listener already started")
        self._stop.clear()
        plural = self.kind.plural
        self._threads = [
            threading.Thread(target=self._work.run, name="otel-gitjob-%s-sink" % plural, daemon=True),
            threading.Thread(target=self._run, name="otel-gitjob-%s-watch" % plural, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop watching, apply what is already queued, and join both threads.

        Args:
            timeout: Seconds to wait per thread (default ``settings.stop_timeout``).

        Returns:
            ``True`` when both threads have ended.
        """
        timeout = self.settings.stop_timeout if timeout is None else timeout
        self._stop.set()
        self._abort_response()
        if not self._threads:
            return True
        sink_thread, watch_thread = self._threads
        join(watch_thread, timeout)
        self._work.stop()
        join(sink_thread, timeout)
        stopped = not (watch_thread.is_alive() or sink_thread.is_alive())
        if stopped:
            self._threads = []
        return stopped

    def _add_self_metric_sources(self, lifecycle: Sink) -> None:
        """Report watch restarts, relists and the work queue in the lifecycle's ``otel_gitjob_*`` self-metrics."""
        kind = {"kind": self.kind.kind}
        sources: dict[str, Source] = {
            "otel_gitjob_watch_restarts": lambda: [
                (self.resumes, {**kind, "reason": "stream_end"}),
                (self.failures, {**kind, "reason": "error"}),
            ],
            "otel_gitjob_relists": lambda: [(self.relists, kind)],
            "otel_gitjob_relist_duration_seconds": lambda: [(self.last_relist_seconds, kind)],
            "otel_gitjob_workqueue_depth": lambda: [(self._work.depth(), kind)],
            "otel_gitjob_workqueue_latency_seconds": lambda: [(self._work.oldest_age(), kind)],
        }
        # For the listener's lifetime; two listeners of one kind in a process add up.
        for name, source in sources.items():
            lifecycle.self_metrics.add(name, source)

    def __enter__(self) -> ResourceListener:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Wait for the first successful list to be in the cache."""
        return self._synced.wait(timeout)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every action queued so far has reached the lifecycle."""
        return self._work.wait_idle(timeout)

    def apply_event(self, event: Mapping[str, Any]) -> None:
        """Apply one watch event as if it had arrived on the stream: no API server needed.

        For unit tests of what a controller's metrics do on ``ADDED``/``MODIFIED``/``DELETED``
        (``otel_gitjob.testing`` feeds events through here). The event takes the watch's own path:
        the same parsing, projection, cache and drops. On a listener that was not started, its
        lifecycle calls (``forget``/``observe``) have run when this returns; on a started one its
        worker applies them (:meth:`wait_idle`).

        Args:
            event: ``{"type": "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK", "object": {...}}``, as a
                watch stream carries it.
        """
        self._handle_line(json.dumps(event))
        if not self._threads:
            self._work.run_pending()

    @property
    def resource_version(self) -> str | None:
        """The newest resourceVersion seen (the list's, an event's or a bookmark's): where a watch resumes."""
        return self._position

    @property
    def alive(self) -> bool:
        """Whether any of the listener's threads still runs."""
        return any(thread.is_alive() for thread in self._threads)

    def health(self) -> tuple[bool, str]:
        """Readiness: listed once (or the list said the kind is not served) and the watch open now."""
        if self._missing:
            return True, "not served by the API server (list answered 404): nothing to watch"
        if not self._synced.is_set():
            return False, "not listed yet"
        if not self._watch_open:
            return False, "listed; watch not open (reconnecting)"
        return True, "listed, watching"

    def liveness(self) -> tuple[bool, str]:
        """Liveness: both threads run (after :meth:`start`, until :meth:`stop`)."""
        if not self._threads:
            return False, "not started"
        dead = [thread.name for thread in self._threads if not thread.is_alive()]
        if dead:
            return False, "thread ended: %s" % ", ".join(dead)
        return True, "running"

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        backoff = Backoff(
            base=self.settings.backoff_base,
            cap=self.settings.backoff_cap,
            factor=self.settings.backoff_factor,
            jitter=self.settings.backoff_jitter,
            reset_after=self.settings.backoff_reset_after,
        )
        position: str | None = None
        while not self._stop.is_set():
            phase = "list"
            try:
                if position is None:
                    position = self._relist()
                phase = "watch"
                position = self._watch(position)
                self.resumes += 1
                continue  # closed at our timeoutSeconds: resume at once
            except _Stopped:
                return
            except _KindMissing:
                self._report_missing()
                self._forget_all()
                position, delay = None, self.settings.missing_kind_retry
            except Exception as exc:  # every failure is retried; the reason is logged once
                if self._stop.is_set():
                    return
                self.failures += 1
                delay = backoff.failure()
                if phase == "watch" and not loses_position(exc) and self._position is not None:
                    position, next_step = self._position, "resuming the watch"
                else:
                    position, next_step = None, "relisting"
                expected = isinstance(exc, (ApiException, WatchErrorEvent, HTTPError, ValueError, StreamClosedEarly))
                logger.warning(
                    "%s %s failed: %s; %s in %.2fs",
                    self.kind.kind,
                    phase,
                    describe_failure(exc, self.settings, phase),
                    next_step,
                    delay,
                    exc_info=not expected,
                )
            if self._stop.wait(delay):
                return

    def _report_missing(self) -> None:
        level = logging.DEBUG if self._missing_reported else logging.WARNING
        logger.log(
            level,
            "%s: the API server does not serve %s/%s (list answered 404: is its CRD installed?); "
            "the other kinds go on, retrying this one every %ss",
            self.kind.kind,
            self.kind.resource,
            self.kind.version,
            self.settings.missing_kind_retry,
        )
        self._missing_reported = True

    def _forget_all(self) -> None:
        """The kind is not served: every object of it the cache holds is gone (as a list of none would say)."""
        first = not self._missing
        self._missing = True
        if first or len(self._cache):
            self._replace({})

    def _replace(self, listed: Mapping[ObjectKey, ObjectState]) -> None:
        """Replace the cache, queue the diff, then ``retain`` the live set (the watch cache is authoritative)."""
        self._work.submit(self._cache.replace(listed))
        live = [state.ref for state in listed.values()]
        self._work.submit_call(_RETAIN_KEY, lambda: self._sink.retain(live, kind=self.kind.kind))

    def _relist(self) -> str | None:
        """List every object into the cache (:meth:`_replace`); return the list's resourceVersion."""
        started = time.monotonic()
        listed, resource_version = self._list_all()
        self.last_relist_seconds = time.monotonic() - started
        self._check_stop()
        self._replace(listed)
        self.relists += 1
        self._missing = False
        if self._missing_reported:
            logger.info("%s: %s is served now", self.kind.kind, self.kind.resource)
            self._missing_reported = False
        self._synced.set()
        self._position = resource_version
        logger.debug("%s relist: %d objects, resourceVersion %s", self.kind.kind, len(listed), resource_version)
        return resource_version

    def _list_all(self) -> tuple[dict[ObjectKey, ObjectState], str | None]:
        listed: dict[ObjectKey, ObjectState] = {}
        resource_version: str | None = None
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "limit": self.settings.page_size,
                "_request_timeout": (self.settings.connect_timeout, self.settings.list_timeout),
            }
            if token:
                kwargs["_continue"] = token
            try:
                response = self._call(**kwargs)
            except ApiException as exc:
                if exc.status == 404 and not token:
                    raise _KindMissing() from exc
                raise
            page = _parse_list(self._read_body(response))
            for item in page["items"]:
                if not isinstance(item, dict):
                    self._drop(REASON_BAD_OBJECT, "%s list item %r" % (self.kind.kind, item))
                    continue
                state = None if self._foreign(item) else self.kind.project_or_drop(item, self._drop)
                if state is not None:
                    listed[state.key] = state
            meta = page.get("metadata")
            meta = meta if isinstance(meta, dict) else {}
            resource_version = _str_or_none(meta.get("resourceVersion")) or resource_version
            token = _str_or_none(meta.get("continue"))
            if not token:
                return listed, resource_version
            self._check_stop()

    def _watch(self, resource_version: str | None) -> str | None:
        """Stream events into the cache and the work queue until the stream ends.

        Returns the resourceVersion to resume from when the server closed the stream at (about) our
        ``timeoutSeconds``; raises for any other ending (``self._position`` holds the newest one seen).
        """
        kwargs: dict[str, Any] = {
            "watch": True,
            "allow_watch_bookmarks": True,
            "timeout_seconds": self.settings.watch_timeout_seconds,
            "_request_timeout": (self.settings.connect_timeout, self.settings.watch_read_timeout),
        }
        if resource_version:
            kwargs["resource_version"] = resource_version
        self._position = resource_version
        started = time.monotonic()
        self.watches += 1
        response = self._call(**kwargs)
        self._watch_open = True
        try:
            for line in self._lines(response):
                self._check_stop()
                self._handle_line(line)
        finally:
            self._watch_open = False
        self._check_stop()
        elapsed = time.monotonic() - started
        if elapsed < self.settings.watch_timeout_seconds * 0.9:
            raise StreamClosedEarly("watch closed by the server after %.1fs" % elapsed)
        return self._position

    def _handle_line(self, line: str) -> None:
        event = parse_event_line(line)
        if event is None:
            return
        if event.type == BOOKMARK:
            self.bookmarks += 1
        elif self._foreign(event.object):
            pass  # counted by _foreign; its resourceVersion still moves the position
        else:
            state = self.kind.project_or_drop(dict(event.object), self._drop, deleted=event.type == DELETED)
            if state is not None:
                self._work.submit(self._cache.apply_event(event.type, state))
        # Advance only after the event is in the cache: resuming from here must not skip it.
        self._position = event.resource_version or self._position

    def _foreign(self, obj: Any) -> bool:
        """Whether ``obj`` declares another kind or apiVersion than the watched one (dropped and counted).

        An object without the fields (some clients and fakes leave them out of list items) is taken as ours.
        """
        kind = obj.get("kind")
        api_version = obj.get("apiVersion")
        if (kind is None or kind == self.kind.kind) and (api_version is None or api_version == self.kind.api_version):
            return False
        self._drop(
            REASON_WRONG_KIND,
            "%s stream: an object of kind %.60r, apiVersion %.60r" % (self.kind.kind, kind, api_version),
        )
        return True

    # ------------------------------------------------------------------ I/O

    def _call(self, **kwargs: Any) -> Any:
        """One list or watch request; returns the raw urllib3 response."""
        self._check_stop()
        selector = self.label_selector
        if selector:
            kwargs["label_selector"] = selector
        kwargs["_preload_content"] = False
        kind = self.kind
        namespace = self.settings.namespace if kind.namespaced else None
        self.requests += 1
        if namespace:
            response = self._api.list_namespaced_custom_object(
                kind.group, kind.version, namespace, kind.plural, **kwargs
            )
        else:
            response = self._api.list_cluster_custom_object(kind.group, kind.version, kind.plural, **kwargs)
        with self._response_lock:
            self._response = response
        if self._stop.is_set():  # stop() ran between the request and the assignment
            self._abort_response()
        return response

    def _read_body(self, response: Any) -> bytes:
        try:
            return response.read()
        finally:
            self._release(response)

    def _lines(self, response: Any) -> Iterator[str]:
        try:
            yield from iter_resp_lines(response)
        finally:
            self._release(response)

    def _release(self, response: Any) -> None:
        with self._response_lock:
            if self._response is response:
                self._response = None
        response.close()
        response.release_conn()

    def _abort_response(self) -> None:
        """Unblock a read in progress (stop() from another thread)."""
        with self._response_lock:
            response = self._response
        if response is None:
            return
        shutdown = getattr(response, "shutdown", None)
        try:
            if shutdown is not None:
                shutdown()
            else:  # pragma: no cover - urllib3 < 2.3
                response.close()
        except Exception:  # pragma: no cover - best effort on a dying socket
            logger.debug("closing the %s stream failed", self.kind.kind, exc_info=True)

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise _Stopped()


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _without_retries(configuration: k8s_client.Configuration | None) -> k8s_client.Configuration:
    if configuration is None:
        # A default someone installed (kubernetes.config.load_kube_config() in the app, as kopf users
        # often do) wins; otherwise find the cluster as kubectl does. Without one, get_default_copy() is a
        # fresh Configuration, whose host is the client's placeholder.
        default = k8s_client.Configuration.get_default_copy()
        configuration = default if default.host != k8s_client.Configuration().host else load_configuration()
    configuration = copy.deepcopy(configuration)
    configuration.retries = False
    return configuration


def _parse_list(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise MalformedListError("list response is not JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise MalformedListError("list response has no items")
    return data
