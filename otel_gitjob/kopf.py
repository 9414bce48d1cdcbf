"""One call wires a kopf operator's kind into the metric lifecycle (``pip install 'otel-gitjob[kopf]'``).

.. code:: python

    import kopf
    import otel_gitjob
    import otel_gitjob.kopf
    from otel_gitjob.fleet import GITREPO

    instrumentation = otel_gitjob.setup()
    otel_gitjob.kopf.instrument(instrumentation.lifecycle, GITREPO, meter_provider=instrumentation.meter_provider)

:func:`instrument` registers one kopf *event* handler for the kind. It sees
every watch event, DELETED included, so the object's series are forgotten
when it is deleted; it also observes new objects (and a uid change under the
same name as a forget plus an observe) and serves the kind's status gauges
from its own small cache, re-keyed when labels change, exactly like the
standalone listener.

Why not ``@kopf.on.delete(optional=True)``: an optional deletion handler only
runs when *another* finalizer holds the object, so for most objects it never
runs and their series stay forever. The choice is between:

* ``finalizer=False`` (the default): the DELETED event. No finalizer, so an
  uninstalled or crashed operator never blocks anybody's ``kubectl delete``.
  An object deleted while the operator is down is not seen deleted; but then
  its series died with the process, so nothing is left to forget.
* ``finalizer=True``: also a non-optional ``@kopf.on.delete`` handler, for
  which kopf puts its finalizer on every object of the kind. The deletion
  then waits until the handler ran, so even a deletion that kopf would see
  only as a vanished object is forgotten; the price is that deleting any
  object of the kind waits for the operator, and removing the operator means
  removing its finalizer from every object by hand.
"""

from otel_gitjob._internal.kube.kopf_integration import KopfInstrumentation, instrument

__all__ = ["KopfInstrumentation", "instrument"]
