"""A test kit for controller authors: an in-memory lifecycle and reader, sample assertions, watch events.

Everything is the real thing except the cluster: a real :class:`Lifecycle`, a real ``MeterProvider``
with the lifecycle's views, the lifecycle's Prometheus reader on a private ``CollectorRegistry``
(nothing is served), and, for the Kubernetes side, the shipped :class:`ResourceListener` or kopf
handlers, fed watch events by hand instead of by an API server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry
from prometheus_client.samples import Sample

from otel_gitjob._internal.core.identity import coerce_object
from otel_gitjob._internal.core.lifecycle import Lifecycle
from otel_gitjob._internal.fleet.gitjob import GitJobMetrics
from otel_gitjob._internal.prometheus.reader import LifecyclePrometheusReader

__all__ = ["MetricsKit", "watch_event"]

_EVENT_TYPES = ("ADDED", "MODIFIED", "DELETED", "BOOKMARK")


def watch_event(event_type: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    """A watch event as the API server streams it: ``{"type": event_type, "object": obj}``.

    Raises:
        ValueError: ``event_type`` is not one of ADDED, MODIFIED, DELETED, BOOKMARK.
    """
    if event_type not in _EVENT_TYPES:
        raise ValueError("event_type must be one of %s, got %r" % (", ".join(_EVENT_TYPES), event_type))
    return {"type": event_type, "object": dict(obj)}


class MetricsKit:
    """An in-memory metrics stack to assert on, the way ``prometheus_client.REGISTRY`` is asserted on.

    Samples are read by name as Prometheus shows them (``fleet_gitjobs_created_success_total``,
    ``fleet_gitjob_duration_seconds_count``, ``fleet_gitrepo_ready_clusters``), through the
    lifecycle's own exposition, so a forgotten object's series are absent exactly as on ``/metrics``.

    Args:
        prefix: Metric prefix of :attr:`gitjob` (Fleet's ``fleet``).
        gauge_ttl: TTL of the transient job-duration gauge, in seconds.
        **lifecycle_options: Passed to :class:`Lifecycle` (e.g. ``clock=`` to move time by hand).

    Attributes:
        lifecycle: Give it to your controller (``lifecycle.forget(obj)`` on deletion).
        meter_provider: For your own instruments; their per-object series are managed too.
        registry: The ``CollectorRegistry`` the reader is registered in (never served).
        gitjob: Fleet's GitJob instruments on :attr:`meter_provider`.
    """

    def __init__(self, *, prefix: str = "fleet", gauge_ttl: float = 120.0, **lifecycle_options: Any) -> None:
        self.lifecycle = Lifecycle(**lifecycle_options)
        self.registry = CollectorRegistry()
        self._reader = LifecyclePrometheusReader(self.lifecycle, self.registry)
        self.meter_provider = MeterProvider(
            metric_readers=[self._reader],
            views=self.lifecycle.views(),
            resource=Resource({"service.name": "otel-gitjob-test"}),
        )
        self.gitjob = GitJobMetrics(self.meter_provider, lifecycle=self.lifecycle, prefix=prefix, gauge_ttl=gauge_ttl)
        self._listeners: list[Any] = []

    # ------------------------------------------------------------------ assertions

    def get_sample_value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """The value of the sample ``name`` with exactly ``labels``, or None (``REGISTRY.get_sample_value``)."""
        return self.registry.get_sample_value(name, dict(labels or {}))

    def samples(self, name: str | None = None) -> list[Sample]:
        """Every sample of one collection (of ``name`` only, when given)."""
        return [
            sample
            for family in self.registry.collect()
            for sample in family.samples
            if name is None or sample.name == name
        ]

    def series_of(self, obj: Any, *, include_self_metrics: bool = False) -> list[Sample]:
        """The samples that carry an object's ``namespace`` and ``name`` labels.

        Args:
            obj: A ``(namespace, name)`` pair, or an object with ``metadata.namespace`` and
                ``metadata.name`` (a dict or a client model).
            include_self_metrics: Also look at ``otel_gitjob_*`` (they never carry an object).
        """
        namespace, name = _identity(obj)
        return [
            sample
            for sample in self.samples()
            if sample.labels.get("namespace") == namespace
            and sample.labels.get("name") == name
            and (include_self_metrics or not sample.name.startswith("otel_gitjob_"))
        ]

    def assert_forgotten(self, obj: Any) -> None:
        """Fail with the samples left when an object still has any series.

        Raises:
            AssertionError: Some series of ``obj`` are still exported.
        """
        left = self.series_of(obj)
        if left:
            raise AssertionError(
                "%s/%s still has %d series: %s"
                % (*_identity(obj), len(left), ", ".join("%s%s" % (s.name, dict(s.labels)) for s in left[:5]))
            )

    # ------------------------------------------------------------------ watch events

    def listener(self, kind: Any = None, **settings: Any) -> Any:
        """The shipped :class:`ResourceListener` for ``kind`` (default GitRepos) on this kit; not started.

        Feed it with :meth:`feed`. Needs the ``[kube]`` extra (the listener imports the client).

        Args:
            kind: A ``KindSpec`` (``otel_gitjob.fleet.GITREPO``, ``HELMOP``, or your own).
            **settings: ``ListenerSettings`` fields (``namespace=``, ``shard_id=``...).
        """
        from kubernetes import client as k8s_client

        from otel_gitjob._internal.fleet.presets import GITREPO
        from otel_gitjob._internal.kube.listener import ResourceListener
        from otel_gitjob._internal.kube.settings import ListenerSettings

        listener = ResourceListener(
            self.lifecycle,
            kind if kind is not None else GITREPO,
            # Never called: events come from feed(), not from an API server.
            api=k8s_client.CustomObjectsApi(k8s_client.ApiClient(k8s_client.Configuration())),
            meter_provider=self.meter_provider,
            settings=ListenerSettings(**settings),
        )
        self._listeners.append(listener)
        return listener

    def kopf(self, kind: Any = None) -> Any:
        """The kopf handlers ``otel_gitjob.kopf.instrument`` registers for ``kind``, in a private kopf registry.

        Feed the returned ``KopfInstrumentation`` with :meth:`feed`. Needs the ``[kopf]`` extra.
        """
        import kopf

        from otel_gitjob._internal.fleet.presets import GITREPO
        from otel_gitjob._internal.kube.kopf_integration import instrument

        return instrument(
            self.lifecycle,
            kind if kind is not None else GITREPO,
            meter_provider=self.meter_provider,
            registry=kopf.OperatorRegistry(),
        )

    def feed(self, target: Any, events: Iterable[Mapping[str, Any]]) -> None:
        """Deliver watch events (:func:`watch_event` dicts) to a listener or kopf instrumentation.

        A :class:`ResourceListener` takes them through its watch path (:meth:`ResourceListener.apply_event`);
        kopf's event handler is called the way kopf calls it (``event=``, ``body=``). Either way the
        lifecycle's ``forget``/``observe`` have run when this returns.
        """
        handlers = getattr(target, "handlers", None)
        for event in events:
            if handlers is not None:
                for handler in handlers[:1]:  # the event handler; a finalizer's on.delete is kopf's business
                    handler(event=dict(event), body=dict(event.get("object") or {}))
            else:
                target.apply_event(event)

    def shutdown(self) -> None:
        """Stop what the kit started (listeners, the MeterProvider, the lifecycle)."""
        for listener in self._listeners:
            listener.stop()
        self.meter_provider.shutdown()
        self.lifecycle.shutdown()


def _identity(obj: Any) -> tuple[str, str]:
    """``(namespace, name)`` as the lifecycle reads them; an object it cannot identify matches no series."""
    ref, _reason = coerce_object(obj)
    return (ref.namespace, ref.name) if ref is not None else ("", "")
