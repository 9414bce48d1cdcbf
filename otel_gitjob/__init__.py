"""Fleet's GitJob metrics on OpenTelemetry, with series that die with their GitRepo.

The OpenTelemetry metrics API cannot delete a series: a deleted GitRepo's
series would be exported forever and eventually push new repos into
``otel_metric_overflow``. otel-gitjob indexes each series by the object it
belongs to, evicts them from the SDK's storage when the object is forgotten,
blocks late writes, and expires transient gauges after a TTL.

Usage
-----

.. code:: python

    import otel_gitjob

    instrumentation = otel_gitjob.setup()          # /metrics on 127.0.0.1:9464
    gitjob = instrumentation.gitjob

    gitjob.job_created(("fleet-local", "my-repo"))
    repo = gitjob.bind(("fleet-local", "my-repo"))   # a handle: the same calls, cheaper
    repo.job_created()
    gitjob.job_succeeded(("fleet-local", "my-repo"), duration_seconds=42.0)
    with gitjob.time_commit_fetch(("fleet-local", "my-repo")):
        poll_latest_commit()

    # when the GitRepo is deleted:
    instrumentation.lifecycle.forget(("fleet-local", "my-repo"))

Or wire it into your own MeterProvider:

.. code:: python

    lifecycle = otel_gitjob.Lifecycle()
    provider = MeterProvider(
        metric_readers=[otel_gitjob.LifecyclePrometheusReader(lifecycle)],
        views=lifecycle.views(),
    )
    gitjob = otel_gitjob.GitJobMetrics(provider, lifecycle=lifecycle)
"""

from otel_gitjob._internal.app.deprecated import aliases
from otel_gitjob._internal.app.setup import Instrumentation, setup
from otel_gitjob._internal.core.errors import ConfigurationError
from otel_gitjob._internal.core.handles import BoundCounter, BoundGauge, BoundHistogram, BoundUpDownCounter
from otel_gitjob._internal.core.identity import ObjectRef
from otel_gitjob._internal.core.lifecycle import Lifecycle
from otel_gitjob._internal.fleet.gitjob import GITJOB_INSTRUMENTS, GitJobHandle, GitJobMetrics, InstrumentSpec
from otel_gitjob._internal.prometheus.reader import LifecyclePrometheusReader
from otel_gitjob._internal.push.exporter import LifecycleExporter
from otel_gitjob.version import __version__

__all__ = [
    "GITJOB_INSTRUMENTS",
    "BoundCounter",
    "BoundGauge",
    "BoundHistogram",
    "BoundUpDownCounter",
    "ConfigurationError",
    "GitJobHandle",
    "GitJobMetrics",
    "InstrumentSpec",
    "Instrumentation",
    "Lifecycle",
    "LifecycleExporter",
    "LifecyclePrometheusReader",
    "ObjectRef",
    "__version__",
    "setup",
]

__getattr__ = aliases(__name__)  # RepoRef: deprecated, see _internal/app/deprecated.py
