"""The ``/metrics`` endpoint that :func:`otel_gitjob.setup` starts.

It answers like prometheus_client's ``start_http_server`` (same content
negotiation, same headers, ``OPTIONS``, ``405``, ``/favicon.ico``, ``name[]``
filtering), plus ``/healthz`` and ``/readyz`` (:mod:`.health`, never a collection), but renders the
reader's collection with
:class:`~otel_gitjob._internal.prometheus.renderer.FastExposition` whenever the registry
holds nothing but that reader, and compresses at :data:`DEFAULT_GZIP_LEVEL`.
Anything else (a registry with other collectors or ``target_info``, a reader with
scope labels or ``target_info``, a ``name[]`` filter) is served the old way, by
prometheus_client from the registry. Either way a series that cannot be encoded is left out and
counted, and long label values are cut (:mod:`.sanitize`); the server is :mod:`.server`'s bounded one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import zlib
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry
from prometheus_client import exposition as _text

from otel_gitjob._internal.core.errors import ConfigurationError
from otel_gitjob._internal.core.locks import ranked_condition
from otel_gitjob._internal.prometheus import _seam
from otel_gitjob._internal.prometheus.health import HealthChecks
from otel_gitjob._internal.prometheus.renderer import FastExposition, Format
from otel_gitjob._internal.prometheus.sanitize import CleanRegistry, ScrapeCounts
from otel_gitjob._internal.prometheus.server import BoundedWSGIServer
from otel_gitjob.environment_variables import OTEL_GITJOB_COLLECT_TIMEOUT

__all__ = [
    "DEFAULT_COLLECT_TIMEOUT",
    "DEFAULT_GZIP_LEVEL",
    "MIN_COLLECT_TIMEOUT",
    "MetricsEndpoint",
    "collect_timeout_from_env",
    "start_http_server",
]

_logger = logging.getLogger(__name__)

# Measured on the 10,000-repo Fleet exposition (47 MB; docs/performance.md, "gzip level"): level 1
# takes about a tenth of level 9's CPU for a body about 1.4x as large; level 9 (prometheus_client's
# default) is the single most expensive step of a compressed scrape.
DEFAULT_GZIP_LEVEL = 1

# Seconds a collection may take before the SDK gives up (its own default is 10 s). The SDK checks the deadline
# only between observable instruments, so a deadline shorter than the work saves nothing: it throws a nearly
# finished collection away and fails the scrape (a first collection of 30,000 repos takes longer than 10 s).
# Prometheus's scrape_timeout still bounds its wait; a collection that outlives it makes the next scrape cheap,
# and scrapes arriving meanwhile share the one in flight.
DEFAULT_COLLECT_TIMEOUT = 300.0

# Below this a collection of even a handful of series can miss its deadline on a busy machine.
MIN_COLLECT_TIMEOUT = 0.5


def check_collect_timeout(value: float, source: str = "collect_timeout") -> float:
    """``value`` when it is a usable collection deadline in seconds.

    Raises:
        ConfigurationError: When it is not a number of at least :data:`MIN_COLLECT_TIMEOUT` (inf is allowed).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= MIN_COLLECT_TIMEOUT:
        raise ConfigurationError(
            "%s must be a number of seconds of at least %g (default %g), got %r"
            % (source, MIN_COLLECT_TIMEOUT, DEFAULT_COLLECT_TIMEOUT, value)
        )
    return float(value)


def collect_timeout_from_env() -> float:
    """``OTEL_GITJOB_COLLECT_TIMEOUT`` in seconds, or :data:`DEFAULT_COLLECT_TIMEOUT` when unset.

    Raises:
        ConfigurationError: When it is set to anything but a number of at least :data:`MIN_COLLECT_TIMEOUT`.
    """
    raw = os.environ.get(OTEL_GITJOB_COLLECT_TIMEOUT)
    if not raw:
        return DEFAULT_COLLECT_TIMEOUT
    value: Any = raw  # refused below when it does not parse
    with contextlib.suppress(ValueError):
        value = float(raw)
    return check_collect_timeout(value, OTEL_GITJOB_COLLECT_TIMEOUT)


_PLAIN_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"


def choose_encoder(accept: str) -> tuple[Callable[..., bytes], str]:
    """prometheus_client's content negotiation; an ``Accept`` header it cannot parse gets Prometheus text."""
    try:
        return _text.choose_encoder(accept)  # type: ignore[no-any-return]
    except Exception:  # e.g. a malformed OpenMetrics version: answer in the format every scraper reads
        return _text.generate_latest, _PLAIN_0_0_4


def _format_of(encoder: Callable[..., bytes]) -> Format | None:
    """The :class:`Format` prometheus_client's ``choose_encoder`` picked, or None for one we do not know."""
    negotiated = _seam.format_of(encoder)
    if negotiated is None:
        return None
    openmetrics, escaping, version = negotiated
    return Format(openmetrics=openmetrics, escaping=escaping, version=version)


class MetricsEndpoint:
    """Bakes ``/metrics`` responses for one registry and the reader registered in it.

    Args:
        registry: The prometheus_client registry to serve.
        reader: The ``PrometheusMetricReader`` registered in ``registry`` (None: always the old way).
        gzip_level: Compression level when the client accepts gzip.
        health: The checks ``/healthz`` and ``/readyz`` answer from (none: both answer ok).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        reader: Any = None,
        *,
        gzip_level: int = DEFAULT_GZIP_LEVEL,
        health: HealthChecks | None = None,
    ) -> None:
        self.registry = registry
        self.reader = reader
        self.gzip_level = gzip_level
        self.health = health if health is not None else HealthChecks()
        counts = getattr(reader, "scrape_counts", None)
        self.counts: ScrapeCounts = counts if isinstance(counts, ScrapeCounts) else ScrapeCounts()
        collector = _seam.collector_of(reader)
        self._fast = FastExposition(collector, self.counts) if collector is not None else None
        # One collection at a time; scrapes that arrive while it runs wait for it and render its result.
        self._flight = ranked_condition("endpoint.flight")
        self._collecting = False
        self._generation = 0
        self._waiting = 0
        self._result: tuple[Any, BaseException | None] | None = None

    def fast_path(self) -> bool:
        """Whether a scrape of the whole registry can be rendered from the reader's collection."""
        if self._fast is None or not self._fast.supported():
            return False
        return _seam.registry_serves_only(self.registry, _seam.collector_of(self.reader))

    def cached_series(self, *, own: bool = True) -> int:
        """Label strings the fast path holds (0 when it is not used); ``own=False`` leaves out the self-metrics."""
        return self._fast.cached_series(own=own) if self._fast is not None else 0

    def render(self, fmt: Format) -> bytes:
        """Collect and render the reader's metrics (the fast path)."""
        return b"".join(self.render_parts(fmt))

    def render_parts(self, fmt: Format) -> list[bytes]:
        """Collect and render the reader's metrics (the fast path), in parts of a few thousand lines."""
        assert self._fast is not None
        data, error = self._collect_shared()
        if error is not None:
            raise error
        return self._fast.render_parts(data, fmt)

    def _collect_shared(self) -> tuple[Any, BaseException | None]:
        """The result of one collection: a new one, or the one in flight when this scrape arrived.

        A slow collection (the first one at 30,000 repos) must not be repeated by every scrape that
        queued up behind it: those scrapes take its result instead.
        """
        shared = False
        with self._flight:
            if self._collecting:
                generation = self._generation
                self._waiting += 1
                try:
                    while self._generation == generation:
                        self._flight.wait()
                    assert self._result is not None
                    data, error = self._result
                    shared = True
                finally:
                    self._waiting -= 1
                    if not self._waiting:
                        self._result = None  # release the collection once every waiter has it
            else:
                self._collecting = True
        if shared:
            # That collection was filtered before this scrape arrived: an object forgotten in between
            # (forget() returned before this scrape started) must not show. Outside the lock: the filter
            # takes the registry's.
            return (self._refilter(data) if data is not None else data), error
        data, error = None, None
        try:
            data = self._collect()
        except Exception as exc:  # the waiters fail like this scrape (HTTP 500), not with empty output
            error = exc
        with self._flight:
            self._collecting = False
            self._generation += 1
            self._result = (data, error) if self._waiting else None
            self._flight.notify_all()
        return data, error

    def _refilter(self, data: Any) -> Any:
        refilter = getattr(self.reader, "filter_collection", None)
        return refilter(data) if refilter is not None else data

    def _collect(self) -> Any:
        # The reader's own collect: lifecycle housekeeping, the SDK's collection (with the reader's deadline),
        # the lifecycle's filter; it queues the result on the collector. Collections queued by other callers
        # (MeterProvider.force_flush collects every reader) are older than this one: only the newest is rendered.
        self.reader.collect()
        return _seam.take_latest(_seam.collector_of(self.reader))

    def bake(
        self, accept: str | None, accept_encoding: str | None, params: dict[str, list[str]]
    ) -> tuple[str, list[tuple[str, str]], list[bytes]]:
        """Status, headers and body (in parts) for a GET, as prometheus_client's ``_bake_output`` would give."""
        encoder, content_type = choose_encoder(accept or "")
        fmt = _format_of(encoder)
        if fmt is not None and "name[]" not in params and self.fast_path():
            parts = self.render_parts(fmt)
        else:
            registry: Any = self.registry
            if "name[]" in params:
                registry = registry.restricted_registry(params["name[]"])
            parts = [encoder(CleanRegistry(registry, self.counts))]
        headers = [("Content-Type", content_type)]
        if _text.gzip_accepted(accept_encoding or ""):
            parts = _gzip(parts, self.gzip_level)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(sum(map(len, parts)))))
        return "200 OK", headers, parts

    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """A WSGI application with prometheus_client's ``make_wsgi_app`` behaviour."""
        method = environ["REQUEST_METHOD"]
        if method == "OPTIONS":
            status, headers, output = "200 OK", [("Allow", "OPTIONS,GET")], b""
        elif method != "GET":
            status = "405 Method Not Allowed"
            headers = [("Allow", "OPTIONS,GET")]
            output = f"# HTTP {status}: {method}; use OPTIONS or GET\n".encode()
        elif environ["PATH_INFO"] == "/favicon.ico":
            status, headers, output = "200 OK", [], b""
        elif environ["PATH_INFO"] in _PROBES:
            ok, detail = _PROBES[environ["PATH_INFO"]](self.health)
            status = "200 OK" if ok else "503 Service Unavailable"
            headers = [("Content-Type", "text/plain; charset=utf-8")]
            output = ("%s\n%s" % ("ok" if ok else "not ok", detail + "\n" if detail else "")).encode("utf-8", "replace")
        else:
            status, headers, parts = self.bake(
                environ.get("HTTP_ACCEPT"),
                environ.get("HTTP_ACCEPT_ENCODING"),
                parse_qs(environ.get("QUERY_STRING", "")),
            )
            start_response(status, headers)
            return parts
        start_response(status, headers)
        return [output]


def _gzip(parts: list[bytes], level: int) -> list[bytes]:
    """``parts`` as one gzip stream in parts, each raw part dropped once compressed."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: a gzip header and trailer
    parts.reverse()
    compressed = []
    while parts:
        chunk = compressor.compress(parts.pop())
        if chunk:
            compressed.append(chunk)
    compressed.append(compressor.flush())
    return compressed


_PROBES: dict[str, Callable[[HealthChecks], tuple[bool, str]]] = {
    "/healthz": HealthChecks.live,
    "/readyz": HealthChecks.ready,
}


def start_http_server(
    port: int,
    addr: str = "0.0.0.0",
    registry: CollectorRegistry | None = None,
    *,
    reader: Any = None,
    gzip_level: int = DEFAULT_GZIP_LEVEL,
    health: HealthChecks | None = None,
) -> tuple[BoundedWSGIServer, threading.Thread]:
    """Serve ``registry`` on ``addr:port`` in a daemon thread, like prometheus_client's ``start_http_server``.

    Args:
        port: Listen port (0 picks a free one).
        addr: Listen address.
        registry: What to serve.
        reader: The ``PrometheusMetricReader`` registered in ``registry``, for the fast path.
        gzip_level: Compression level when the client accepts gzip.
        health: The checks behind ``/healthz`` and ``/readyz``; the server's own threads are added to the
            liveness checks.

    Returns:
        The server (``shutdown()``, ``server_close()``, ``server_address``, ``endpoint``) and its accept thread.
    """
    health = health if health is not None else HealthChecks()
    endpoint = MetricsEndpoint(
        registry if registry is not None else CollectorRegistry(), reader, gzip_level=gzip_level, health=health
    )
    httpd = BoundedWSGIServer(addr, port, endpoint.wsgi_app)
    httpd.endpoint = endpoint  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, name="otel-gitjob-metrics", daemon=True)
    thread.start()
    health.add(
        "http-server",
        live=lambda: (
            (True, "accepting, %d workers" % len(httpd.threads()))
            if thread.is_alive() and httpd.workers_alive()
            else (False, "a server thread has died")
        ),
    )
    return httpd, thread
