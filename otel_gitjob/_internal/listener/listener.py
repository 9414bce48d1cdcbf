"""Watch Fleet GitRepos and turn their lifecycle into metric lifecycle actions.

Why our own list/watch loop and not ``kubernetes.informer.SharedInformer``
(kubernetes 37.x), whose shape we keep (list, watch from the list's
resourceVersion, relist diff after 410 Gone):

* it reads the list with ``getattr(resp, "items", [])``, but
  ``CustomObjectsApi`` returns dicts, so for a CRD such as GitRepo every list
  comes back empty and every relist would "delete" every repo;
* it retries a failed list after a fixed 5 s and reconnects a failed watch
  at once, with no backoff and no jitter: a persistent 403 on watch spins;
* it forwards no ``_request_timeout``, so a hung API server hangs it forever,
  and it turns a malformed line into an ``AttributeError`` on ``None``;
* its handlers run on the watch thread (a slow consumer stalls the watch), and
  its relist diff is keyed on name only, so a uid change is a MODIFIED.

What this loop does instead, one small function per step:

1. ``_relist``: list every page, build :class:`~.state.RepoState`\\ s, replace
   the cache and queue the diff (:func:`~.actions.diff_relist`): repos known
   before and absent now are forgotten.
2. ``_watch``: watch from the list's resourceVersion; each line goes through
   :func:`~.events.parse_event_line`, the cache, and
   :func:`~.actions.decide_actions` onto the :class:`~.workqueue.WorkQueue`.
3. However the stream ends (410 as an ERROR event or as a status, a dropped
   connection, a malformed line, an error status, the inactivity timeout, a
   clean close), go back to 1, after a capped, jittered backoff unless the
   server closed the stream at the ``timeoutSeconds`` we asked for. Relisting
   every time, rather than resuming from the last resourceVersion, is what
   makes "deleted while the watch was down" hold for every way a stream can
   end, including servers and proxies that do not honour resourceVersions.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines
from opentelemetry import metrics
from urllib3.exceptions import HTTPError, ProtocolError, ReadTimeoutError

from otel_gitjob._internal.listener._types import RepoKey, Sink
from otel_gitjob._internal.listener.backoff import Backoff
from otel_gitjob._internal.listener.cache import RepoCache
from otel_gitjob._internal.listener.events import BOOKMARK, MalformedEventError, WatchErrorEvent, parse_event_line
from otel_gitjob._internal.listener.gauges import register_status_gauges
from otel_gitjob._internal.listener.settings import GROUP, PLURAL, VERSION, ListenerSettings
from otel_gitjob._internal.listener.state import RepoState, repo_state
from otel_gitjob._internal.listener.workqueue import WorkQueue

__all__ = ["GitRepoListener", "describe_failure"]

logger = logging.getLogger(__name__)


class _Stopped(Exception):
    """The listener is stopping; unwind the loop quietly."""


class StreamClosedEarly(Exception):
    """The server closed the watch cleanly before the ``timeoutSeconds`` we asked for."""

    def __init__(self, elapsed: float) -> None:
        super().__init__(elapsed)
        self.elapsed = elapsed

    def __str__(self) -> str:
        return "watch closed by the server after %.1fs" % self.elapsed


class MalformedListError(ValueError):
    """A list response that is not a Kubernetes list."""


def describe_failure(exc: BaseException, settings: ListenerSettings | None = None) -> str:
    """One-line reason for a failed list or watch, for the log.

    Args:
        exc: What ended the list or the stream.
        settings: Used to name the inactivity timeout.

    Returns:
        A short human-readable reason.
    """
    if isinstance(exc, ApiException):
        if exc.status == 410:
            return "HTTP 410 Gone (resource version expired)"
        return "HTTP %s %s" % (exc.status, exc.reason or "")
    if isinstance(exc, WatchErrorEvent):
        if exc.code == 410:
            return "ERROR event 410 (resource version expired): %s" % exc.message
        return str(exc)
    if isinstance(exc, ReadTimeoutError):
        limit = settings.inactivity_timeout if settings else None
        return "no data from the API server for %ss (inactivity timeout)" % (limit,)
    if isinstance(exc, ProtocolError):
        return "connection dropped mid-stream: %s" % (exc,)
    if isinstance(exc, (MalformedEventError, MalformedListError, StreamClosedEarly)):
        return str(exc)
    if isinstance(exc, HTTPError):
        return "connection failed: %s" % (exc,)
    return "%s: %s" % (type(exc).__name__, exc)


class GitRepoListener:
    """Keeps a cache of Fleet GitRepos and the sink's metric lifecycle in step.

    DELETED → ``sink.forget(ref)``; ADDED → ``sink.observe(ref)``; MODIFIED →
    the status gauges (read from the cache at collection time) change; a uid
    change under the same name is a forget plus an observe; repos that vanish
    between two lists are forgotten after the second. The watch runs on one
    thread and never waits on the sink, which is called from a second thread.

    Args:
        sink: Receives ``forget``/``observe`` (``otel_gitjob.Lifecycle``).
        configuration: Client configuration (kubeconfig or in-cluster); the
            default configuration when omitted. The listener builds its own
            client from a copy with urllib3 retries off: it owns retrying, and
            urllib3's default of three immediate retries would both hide
            failures from its backoff and quadruple the inactivity timeout.
        api: A ready ``CustomObjectsApi`` to use instead (tests, custom
            clients); then ``configuration`` is ignored and its retry settings
            are the caller's business.
        settings: Namespace, shard, backoff and timeouts.
        meter_provider: Where the ``fleet_gitrepo_*`` gauges are created;
            the global provider when omitted.
        status_gauges: Set ``False`` to not create the gauges at all.

    Example:
        >>> listener = GitRepoListener(lifecycle, settings=ListenerSettings(shard_id="s1"))  # doctest: +SKIP
        >>> listener.start(); listener.wait_synced(30)  # doctest: +SKIP
    """

    def __init__(
        self,
        sink: Sink,
        *,
        configuration: k8s_client.Configuration | None = None,
        api: k8s_client.CustomObjectsApi | None = None,
        settings: ListenerSettings | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        status_gauges: bool = True,
    ) -> None:
        self.settings = settings or ListenerSettings()
        self._api = api or k8s_client.CustomObjectsApi(k8s_client.ApiClient(_without_retries(configuration)))
        self._cache = RepoCache()
        self._work = WorkQueue(sink)
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._response_lock = threading.Lock()
        self._response: Any = None
        self._threads: list[threading.Thread] = []
        self.relists = 0
        """How many lists have completed (first one included)."""
        self.failures = 0
        """How many lists or watches have failed."""
        self.gauges: list[metrics.ObservableGauge] = []
        """The ``fleet_gitrepo_*`` gauges (empty with ``status_gauges=False``)."""
        if status_gauges:
            provider = meter_provider or metrics.get_meter_provider()
            self.gauges = register_status_gauges(provider.get_meter("otel_gitjob.listener"), self._cache)

    # ------------------------------------------------------------------ lifecycle

    @property
    def cache(self) -> RepoCache:
        """The watch cache (read-only use)."""
        return self._cache

    def start(self) -> None:
        """Start the watch thread and the sink worker thread.

        Raises:
            RuntimeError: When already started.
        """
        if self._threads:
            raise RuntimeError("listener already started")
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._work.run, name="otel-gitjob-gitrepo-sink", daemon=True),
            threading.Thread(target=self._run, name="otel-gitjob-gitrepo-watch", daemon=True),
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
        watch_thread.join(timeout)
        self._work.stop()
        sink_thread.join(timeout)
        stopped = not (watch_thread.is_alive() or sink_thread.is_alive())
        if stopped:
            self._threads = []
        return stopped

    def __enter__(self) -> GitRepoListener:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Wait for the first successful list to be in the cache."""
        return self._synced.wait(timeout)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every action queued so far has reached the sink."""
        return self._work.wait_idle(timeout)

    @property
    def alive(self) -> bool:
        """Whether any of the listener's threads still runs."""
        return any(thread.is_alive() for thread in self._threads)

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        backoff = Backoff(
            base=self.settings.backoff_base,
            cap=self.settings.backoff_cap,
            factor=self.settings.backoff_factor,
            jitter=self.settings.backoff_jitter,
            reset_after=self.settings.backoff_reset_after,
        )
        while not self._stop.is_set():
            phase = "list"
            try:
                resource_version = self._relist()
                phase = "watch"
                self._watch(resource_version)
                continue  # closed at our timeoutSeconds: relist at once
            except _Stopped:
                return
            except Exception as exc:  # every failure is retried; the reason is logged once
                if self._stop.is_set():
                    return
                self.failures += 1
                delay = backoff.failure()
                expected = isinstance(exc, (ApiException, WatchErrorEvent, HTTPError, ValueError, StreamClosedEarly))
                logger.warning(
                    "GitRepo %s failed: %s; relisting in %.2fs",
                    phase,
                    describe_failure(exc, self.settings),
                    delay,
                    exc_info=not expected,
                )
            if self._stop.wait(delay):
                return

    def _relist(self) -> str | None:
        """List all GitRepos, replace the cache, queue the diff; return the resourceVersion."""
        listed, resource_version = self._list_all()
        self._check_stop()
        self._work.submit(self._cache.replace(listed))
        self.relists += 1
        self._synced.set()
        logger.debug("GitRepo relist: %d repos, resourceVersion %s", len(listed), resource_version)
        return resource_version

    def _list_all(self) -> tuple[dict[RepoKey, RepoState], str | None]:
        listed: dict[RepoKey, RepoState] = {}
        resource_version: str | None = None
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "limit": self.settings.page_size,
                "_request_timeout": (self.settings.connect_timeout, self.settings.list_timeout),
            }
            if token:
                kwargs["_continue"] = token
            page = _parse_list(self._read_body(self._call(**kwargs)))
            for item in page["items"]:
                try:
                    state = repo_state(item)
                except (ValueError, AttributeError) as exc:
                    logger.warning("skipping a listed GitRepo: %s", exc)
                    continue
                listed[state.key] = state
            meta = page.get("metadata") or {}
            resource_version = meta.get("resourceVersion") or resource_version
            token = meta.get("continue") or None
            if not token:
                return listed, resource_version
            self._check_stop()

    def _watch(self, resource_version: str | None) -> None:
        """Stream events into the cache and the work queue until the stream ends.

        Returns normally only when the server closed the stream at (about) the
        ``timeoutSeconds`` we asked for; raises for every other ending.
        """
        kwargs: dict[str, Any] = {
            "watch": True,
            "allow_watch_bookmarks": True,
            "timeout_seconds": self.settings.watch_timeout_seconds,
            "_request_timeout": (self.settings.connect_timeout, self.settings.inactivity_timeout),
        }
        if resource_version:
            kwargs["resource_version"] = resource_version
        started = time.monotonic()
        for line in self._lines(self._call(**kwargs)):
            self._check_stop()
            self._handle_line(line)
        self._check_stop()
        elapsed = time.monotonic() - started
        if elapsed < self.settings.watch_timeout_seconds * 0.9:
            raise StreamClosedEarly(elapsed)

    def _handle_line(self, line: str) -> None:
        event = parse_event_line(line)
        if event is None or event.type == BOOKMARK:
            return
        try:
            state = repo_state(event.object)
        except ValueError as exc:
            logger.warning("skipping a %s event: %s", event.type, exc)
            return
        self._work.submit(self._cache.apply_event(event.type, state))

    # ------------------------------------------------------------------ I/O

    def _call(self, **kwargs: Any) -> Any:
        """One list or watch request; returns the raw urllib3 response."""
        self._check_stop()
        selector = self.settings.label_selector
        if selector:
            kwargs["label_selector"] = selector
        kwargs["_preload_content"] = False
        namespace = self.settings.namespace
        if namespace:
            response = self._api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, **kwargs)
        else:
            response = self._api.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kwargs)
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
            logger.debug("closing the GitRepo stream failed", exc_info=True)

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise _Stopped()


def _without_retries(configuration: k8s_client.Configuration | None) -> k8s_client.Configuration:
    configuration = copy.deepcopy(configuration or k8s_client.Configuration.get_default_copy())
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
