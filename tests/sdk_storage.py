"""A read into opentelemetry-sdk's metric storage, for the seam tests only.

The seam tests check what the SDK really holds after an eviction (placeholders included), which no
public API shows. Everything else reads metrics back through readers (``support``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from opentelemetry.context import get_current
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal.measurement import Measurement

from otel_gitjob._internal.core import _sdk


def sdk_matches(instrument: Any) -> list[Any]:
    """The SDK view matches (one per reader) that store ``instrument``'s series."""
    storages = instrument._measurement_consumer._reader_storages.values()
    return [match for storage in storages for match in storage._instrument_view_instrument_matches.get(instrument, ())]


def stored_attribute_sets(provider: MeterProvider) -> list[dict[str, Any]]:
    """The attribute sets held anywhere in ``provider``'s SDK storage, placeholders included."""
    found = []
    for storage in provider._measurement_consumer._reader_storages.values():  # type: ignore[attr-defined]
        for matches in list(storage._instrument_view_instrument_matches.values()):
            for match in matches:
                with match._lock:
                    found.extend(
                        dict(getattr(a, "_attributes", None) or {}) for a in match._attributes_aggregation.values()
                    )
    return found


def stored(instrument: Any) -> int:
    """How many series of ``instrument`` the SDK holds, over all readers (placeholders excluded)."""
    total = 0
    for match in sdk_matches(instrument):
        with match._lock:
            total += sum(not isinstance(a, _sdk.Placeholder) for a in match._attributes_aggregation.values())
    return total


def measurement(instrument: Any, value: float, attributes: Mapping[str, str]) -> Measurement:
    return Measurement(value, time.time_ns(), instrument, get_current(), dict(attributes))
