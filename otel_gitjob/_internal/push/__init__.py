"""OTLP staleness markers: a removed series is sent one last time, flagged ``NO_RECORDED_VALUE``.

Forgetting a repo (or expiring a transient series) stops its points at the
source, but whatever sits behind the OTLP exporter still holds the series: the
Collector's ``prometheus`` exporter keeps serving it until ``metric_expiration``
and Prometheus keeps the last sample of a remote-written series for its
5-minute lookback. OTLP's staleness marker is a data point whose ``flags`` carry
``NO_RECORDED_VALUE`` (DataPointFlags bit 1); on it the ``prometheus`` exporter
drops the series and ``prometheusremotewrite`` writes a Prometheus stale marker,
so deletion reaches the end of the pipeline with the next export.

Under delta temporality a forget first *finishes* the series (as OpenTelemetry
specification PR #4702 and Go's ``metricx.Finisher`` propose): what it recorded
since its last export is collected as it is evicted and exported, then its
marker, so nothing recorded is lost.

The SDK's data model has no flags, so they are added where the OTLP request is
encoded, and only here. One job per module:

* :mod:`.store`: the pending markers and final deltas, bounded by count and
  age, settled only when the request that carried them succeeded; the index of
  exported delta series, to mark those idle before their forget.
* :mod:`.encoding`: the shapes of the exported streams, learnt from the
  exports; each item encoded once with the exporter's own ``encode_metrics``;
  requests split to the exporter's limits.
* :mod:`.transport`: sending those requests through the exporter's own client
  (endpoint, TLS, headers, compression, timeout, retries), never inside its
  requests of live data.
* :mod:`.flusher`: the thread that sends items no export came to carry.
* :mod:`.markers`: :class:`StalenessMarkers`, which ties them together.
"""

from otel_gitjob._internal.push.encoding import NO_RECORDED_VALUE
from otel_gitjob._internal.push.markers import StalenessMarkers, staleness_markers_for

__all__ = ["NO_RECORDED_VALUE", "StalenessMarkers", "staleness_markers_for"]
