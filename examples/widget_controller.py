"""Your own CRD, not Fleet's: per-object metrics that die with their object.

A ``Widget`` (``example.com/v1``, plural ``widgets``) has ``spec.size`` and
``status.readyReplicas``. This controller serves:

* ``widget_ready_replicas{name, namespace, size}``: a status gauge read off
  each Widget by the listener (re-keyed when ``spec.size`` changes);
* ``widget_reconciles_total{name, namespace}``: a counter of its own, recorded
  wherever it reconciles.

When a Widget is deleted, the listener calls ``lifecycle.forget`` and both
series are gone from the next scrape; a reconcile still running for it is
blocked from re-creating them. The ``KindSpec`` below is all it takes.

Run: ``python examples/widget_controller.py [--kubeconfig PATH] [--namespace NS]``.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry.metrics import Counter, MeterProvider

import otel_gitjob
from otel_gitjob.listener import GaugeSpec, KindSpec, ListenerSettings, ResourceListener, load_configuration


def widget_labels(widget: Mapping[str, Any]) -> dict[str, str]:
    """The gauge labels: the identity (name, namespace) plus what you want to slice by."""
    meta, spec = widget["metadata"], widget.get("spec") or {}
    return {"name": meta["name"], "namespace": meta["namespace"], "size": str(spec.get("size", ""))}


WIDGET = KindSpec(
    group="example.com",
    version="v1",
    plural="widgets",
    kind="Widget",
    gauges=(GaugeSpec("widget_ready_replicas", "Replicas of the Widget that are ready.", ("status", "readyReplicas")),),
    labels=widget_labels,
    instruments=("widget_reconciles",),  # our own per-Widget series belong to the Widget kind
)


def reconcile_counter(meter_provider: MeterProvider) -> Counter:
    """The controller's own per-Widget counter."""
    meter = meter_provider.get_meter("widget-controller")
    return meter.create_counter("widget_reconciles", unit="{reconcile}", description="Reconciles of the Widget.")


def reconcile(widget: Mapping[str, Any], reconciles: Counter) -> None:
    """Your reconcile; it records with the Widget's namespace and name, the lifecycle's identity keys."""
    meta = widget["metadata"]
    reconciles.add(1, {"namespace": meta["namespace"], "name": meta["name"]})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig")
    parser.add_argument("--namespace")
    args = parser.parse_args()

    instrumentation = otel_gitjob.setup()  # /metrics on 127.0.0.1:9464
    listener = ResourceListener(
        instrumentation.lifecycle,
        WIDGET,
        configuration=load_configuration(args.kubeconfig),
        settings=ListenerSettings(namespace=args.namespace),
        meter_provider=instrumentation.meter_provider,
    )
    reconciles = reconcile_counter(instrumentation.meter_provider)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    listener.start()
    try:
        listener.wait_synced(60)
        while not stop.wait(30):  # a stand-in for your controller's work loop
            for state in listener.cache.snapshot():
                reconcile({"metadata": {"namespace": state.ref.namespace, "name": state.ref.name}}, reconciles)
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()
        instrumentation.shutdown()


if __name__ == "__main__":
    main()
