"""OTLP staleness markers: a removed series is sent one last time, flagged ``NO_RECORDED_VALUE``.

Forgetting a repo stops its points at the source, but the Collector's
``prometheus`` exporter keeps serving the series until ``metric_expiration`` and
Prometheus keeps a remote-written one for its lookback. On a point flagged
``NO_RECORDED_VALUE`` (DataPointFlags bit 1) the ``prometheus`` exporter drops the
series and ``prometheusremotewrite`` writes a stale marker. Under delta temporality
a forget first *finishes* the series (OpenTelemetry specification PR #4702): what
it recorded since its last export goes out, then its marker.

The SDK's data model has no flags, so they are added where the OTLP request is
encoded, and only here: :mod:`.store` (pending items, bounded, settled on
success; the index of exported delta series), :mod:`.encoding` (shapes learnt
from the exports, requests within the exporter's limits), :mod:`._seam` (sending
through the exporter's own client), :mod:`.flusher` (sends items no export came
to carry) and :mod:`.markers` (:class:`StalenessMarkers` ties them together).
"""

from otel_gitjob._internal.push.encoding import NO_RECORDED_VALUE
from otel_gitjob._internal.push.markers import StalenessMarkers, staleness_markers_for

__all__ = ["NO_RECORDED_VALUE", "StalenessMarkers", "staleness_markers_for"]
