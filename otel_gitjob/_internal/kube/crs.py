"""kube-state-metrics' Custom Resource State config, read into :class:`~.kind.KindSpec` s.

Every family of a ``kind: CustomResourceStateMetrics`` config becomes a multi-series gauge
(:attr:`~.kind.GaugeSpec.samples`) whose series are exactly KSM's for the same object: value
conversions, path syntax, ``*`` label copies and the ``customresource_*`` labels follow KSM's
``pkg/customresourcestate`` (``registry_factory.go``), label values Go's formatting (:mod:`.gostrings`).

Refused at start, where KSM would start and expose something else than asked (a
:class:`~otel_gitjob.ConfigurationError` naming the resource and the path): unknown keys (a misspelt
``valueFrom`` silently yields no series in KSM), a second resource for one group/version/kind (KSM v2.20
keeps only the last), wildcard versions and kinds (they need CRD discovery), a family name used by two
resources, and metric and label names the exposition format cannot carry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from otel_gitjob._internal.core.errors import ConfigurationError
from otel_gitjob._internal.kube.gostrings import go_parse_float, go_sprint, parse_quantity, parse_rfc3339
from otel_gitjob._internal.kube.kind import GaugeSpec, KindSpec, Sample

__all__ = ["DEFAULT_METRIC_NAME_PREFIX", "CustomResourceFamily", "kinds_from_crs_config", "load_crs_config"]

DEFAULT_METRIC_NAME_PREFIX = "kube_customresource"
"""KSM's prefix when a resource sets no ``metricNamePrefix``."""

_GAUGE, _STATESET, _INFO = "gauge", "stateset", "info"
_METRIC_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")
_INT = re.compile(r"[+-]?\d+\Z")
_PERCENT = re.compile(r"[0-9]+%\Z")

Value = Any
"""A value decoded from JSON: dict, list, str, bool, int, float or None."""


# -- paths -----------------------------------------------------------------------------------------------------


def _to_float(value: Value, nil_is_zero: bool) -> float:
    """KSM's ``toFloat64``: numbers, bools, and strings as bools, RFC 3339 times, quantities, percentages, floats.

    Raises:
        ValueError: KSM refuses the value too.
    """
    if value is None:
        if nil_is_zero:
            return 0.0
        raise ValueError("expected number but found nil value")
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, str):
        normalized = value.lower()
        if normalized in ("true", "yes"):
            return 1.0
        if normalized in ("false", "no", "unknown"):
            return 0.0
        seconds = parse_rfc3339(value)
        if seconds is not None:
            return float(seconds)
        try:
            return parse_quantity(value)
        except ValueError:
            pass
        if _PERCENT.match(value):
            return go_parse_float(value.rstrip("%")) / 100
        return go_parse_float(value)
    if isinstance(value, (int, float)):
        return float(value)
    raise ValueError("expected number but was %s" % go_sprint(value))


def _equal(candidate: Value, text: str) -> bool:
    """Go's ``interface{} == string``: true only for a string of the same text."""
    return isinstance(candidate, str) and candidate == text


def _parse_go_bool(text: str) -> bool | None:
    """``strconv.ParseBool``."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


_Step = Callable[[Value], Value]


class _Path:
    """A compiled KSM path (``valuePath``): ``get`` walks it, nil when any part is missing."""

    __slots__ = ("parts", "steps")

    def __init__(self, parts: Sequence[str], steps: Sequence[_Step]) -> None:
        self.parts, self.steps = tuple(parts), tuple(steps)

    def get(self, obj: Value) -> Value:
        for step in self.steps:
            if obj is None:
                return None
            obj = step(obj)
        return obj

    def __str__(self) -> str:
        return "[%s]" % ",".join(self.parts)


def _list_lookup(part: str, where: str) -> _Step:
    key, sep, val = part[1:-1].partition("=")
    if not sep:
        raise ConfigurationError("%s: invalid list lookup: %s (write [key=value])" % (where, part))
    try:
        number: float | None = _to_float(val, False)
    except ValueError:
        number = None
    boolean = _parse_go_bool(val)

    def op(m: Value) -> Value:
        if not isinstance(m, list):
            return None
        for item in m:
            if not isinstance(item, dict) or key not in item:
                continue
            candidate = item[key]
            if _equal(candidate, val):
                return item
            if number is not None:
                try:
                    if _to_float(candidate, False) == number:
                        return item
                except ValueError:
                    pass
            if boolean is not None and isinstance(candidate, bool) and candidate == boolean:
                return item
        return None

    return op


def _field(part: str) -> _Step:
    kv = part.split("=")

    def op(m: Value) -> Value:
        if isinstance(m, dict):
            if len(kv) == 2 and kv[0] in m and _equal(m[kv[0]], kv[1]):
                return m[kv[0]]
            return m.get(part)
        if isinstance(m, list):
            if not _INT.match(part):
                return None
            i = int(part)
            if i < 0:
                i += len(m)
            return m[i] if 0 <= i < len(m) else None
        return None

    return op


def _compile_path(parts: Sequence[str], where: str) -> _Path:
    ops = [_list_lookup(part, where) if part.startswith("[") and part.endswith("]") else _field(part) for part in parts]
    return _Path(parts, ops)


def _add_path_labels(obj: Value, labels: Mapping[str, _Path], result: dict[str, str]) -> None:
    """KSM's ``addPathLabels``: ``*`` keys copy a whole object first (sorted), plain keys override."""
    stars = sorted(key for key in labels if key.startswith("*") or key.endswith("*"))
    for star in stars:
        found = labels[star].get(obj)
        if isinstance(found, dict):
            for key, value in found.items():
                if star.endswith("*"):
                    key = star[:-1] + key
                result[_INVALID_LABEL_CHARS.sub("_", key)] = go_sprint(value)
    for key, path in labels.items():
        if key.startswith("*") or key.endswith("*"):
            continue
        value = path.get(obj)
        if value is None:
            continue
        result[_INVALID_LABEL_CHARS.sub("_", key)] = go_sprint(value)


# -- the three metric types ------------------------------------------------------------------------------------

_Each = tuple[dict[str, str], float]


@dataclass(frozen=True)
class _Gauge:
    path: _Path
    labels_from_path: Mapping[str, _Path]
    value_from: _Path
    nil_is_zero: bool
    label_from_key: str

    def _value(self, it: Value) -> tuple[_Each | None, str | None]:
        got = self.value_from.get(it)
        if got is None:
            if self.nil_is_zero:
                return ({}, 0.0), None
            if it is None:
                return None, "got nil while resolving path"
            return None, None
        try:
            return ({}, _to_float(got, self.nil_is_zero)), None
        except ValueError as exc:
            return None, "%s: %s" % (self.value_from, exc)

    def values(self, v: Value) -> tuple[list[_Each], list[str]]:
        result: list[_Each] = []
        errors: list[str] = []
        if isinstance(v, dict):
            value_from = str(self.value_from)
            single = "," not in value_from and len(value_from) > 2
            for key, it in v.items():
                labels: dict[str, str]
                # Fresh labels either way: no labelFromKey conflict with labelsFromPath is possible yet.
                if single and key == value_from[1:-1]:
                    try:
                        labels, value = {}, _to_float(it, self.nil_is_zero)
                    except ValueError as exc:
                        errors.append("%s: [%s]: %s" % (self.path, key, exc))
                        continue
                else:
                    ev = self._value(it)[0]
                    if ev is None:
                        continue  # KSM drops this element's error too
                    labels, value = ev
                if key != "" and self.label_from_key != "":
                    labels[self.label_from_key] = key
                _add_path_labels(it, self.labels_from_path, labels)
                _add_path_labels(v, self.labels_from_path, labels)
                result.append((labels, value))
        elif isinstance(v, list):
            for i, it in enumerate(v):
                ev, err = self._value(it)
                if err is not None:
                    errors.append("%s: [%d]: %s" % (self.path, i, err))
                elif ev is not None:
                    _add_path_labels(it, self.labels_from_path, ev[0])
                    result.append(ev)
        else:
            ev, err = self._value(v)
            if err is not None:
                errors.append("%s: %s" % (self.path, err))
            elif ev is not None:
                _add_path_labels(v, self.labels_from_path, ev[0])
                result.append(ev)
        return result, errors


@dataclass(frozen=True)
class _StateSet:
    path: _Path
    labels_from_path: Mapping[str, _Path]
    value_from: _Path
    label_name: str
    states: tuple[str, ...]

    def _one(self, v: Value) -> tuple[list[_Each], list[str]]:
        comparable = self.value_from.get(v)
        if comparable is None:
            return [], []
        if not isinstance(comparable, str):
            where = "[%s]" % ",".join(self.path.parts + self.value_from.parts)
            return [], ["%s: expected value for path to be string, got %s" % (where, type(comparable).__name__)]
        result: list[_Each] = []
        for entry in self.states:
            labels = {self.label_name: entry}
            _add_path_labels(v, self.labels_from_path, labels)
            result.append((labels, 1.0 if comparable == entry else 0.0))
        return result, []

    def values(self, v: Value) -> tuple[list[_Each], list[str]]:
        if not isinstance(v, list):
            return self._one(v)
        result: list[_Each] = []
        errors: list[str] = []
        for item in v:
            values, errs = self._one(item)  # one or the other
            result.extend(values)
            errors.extend(errs)
        return result, errors


@dataclass(frozen=True)
class _Info:
    path: _Path
    labels_from_path: Mapping[str, _Path]
    label_from_key: str

    def _one(self, v: Value) -> list[_Each]:
        if v is None:
            return []
        labels: dict[str, str] = {}
        _add_path_labels(v, self.labels_from_path, labels)
        return [(labels, 1.0)] if labels else []

    def values(self, v: Value) -> tuple[list[_Each], list[str]]:
        result: list[_Each] = []
        errors: list[str] = []
        if isinstance(v, list):
            for item in v:
                result.extend(self._one(item))
        elif isinstance(v, dict):
            own = self._one(v)
            for labels, _value in own:
                if self.label_from_key in labels:
                    errors.append(
                        "%s: labelFromKey (%s) generated labels conflict with labelsFromPath, consider renaming it"
                        % (self.path, self.label_from_key)
                    )
            for key, it in v.items():
                labels = {}
                if key != "" and self.label_from_key != "":
                    labels[self.label_from_key] = key
                _add_path_labels(it, self.labels_from_path, labels)
                if labels:
                    result.append((labels, 1.0))
            result.extend(own)
        else:
            result = self._one(v)
        return result, errors


@dataclass(frozen=True)
class CustomResourceFamily:
    """One compiled metric of a resource: what KSM calls a ``compiledFamily``.

    Called with an object, it returns the family's series for that object as KSM's ``generate`` does;
    values KSM would log an error for and skip are skipped too, and reported to ``dropped``.

    Attributes:
        name: The full metric name (prefix included).
        help: Its HELP text.
    """

    name: str
    help: str
    each: _Gauge | _StateSet | _Info
    common_labels: Mapping[str, str]
    labels_from_path: Mapping[str, _Path]

    def __call__(self, obj: Mapping[str, Any], dropped: Callable[[str], None] | None = None) -> list[_Each]:
        base = dict(self.common_labels)
        _add_path_labels(obj, self.labels_from_path, base)
        values, errors = self.each.values(self.each.path.get(obj))
        if dropped is not None:
            for error in errors:
                dropped("%s: %s" % (self.name, error))
        values.sort(key=lambda each: sorted(each[0].items()))  # KSM's order: by the sorted label pairs
        for labels, _value in values:
            for key, label in base.items():
                labels.setdefault(key, label)
        return values


# -- reading the config ----------------------------------------------------------------------------------------


class _Reader:
    """Typed access to one mapping of the config, with KSM-style errors naming where it is."""

    def __init__(self, data: Any, where: str, known: Iterable[str]) -> None:
        if data is None or data == "":
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigurationError("%s: expected a mapping, got %s" % (where, _describe(data)))
        unknown = sorted(str(key) for key in data if key not in set(known))
        if unknown:
            raise ConfigurationError(
                "%s: unknown field %s (known: %s); kube-state-metrics ignores unknown fields, which hides typos"
                % (where, ", ".join(unknown), ", ".join(known))
            )
        self.data, self.where = data, where

    def at(self, key: str) -> str:
        return "%s.%s" % (self.where, key)

    def text(self, key: str) -> str:
        """The scalar at ``key`` as text; ``""`` when absent."""
        value = self.data.get(key)
        return "" if value is None else _text(value, self.at(key))

    def flag(self, key: str) -> bool:
        value = self.data.get(key)
        if value is None or value == "":
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in ("true", "True", "TRUE", "false", "False", "FALSE"):
            return value.lower() == "true"
        raise ConfigurationError("%s: expected true or false, got %s" % (self.at(key), _describe(value)))

    def strings(self, key: str) -> list[str]:
        return _strings(self.data.get(key), self.at(key))

    def _get(self, key: str, kind: type, expected: str) -> Any:
        """The value at ``key`` (``None`` when absent or empty), refused unless a ``kind``."""
        value = self.data.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, kind):
            raise ConfigurationError("%s: expected %s, got %s" % (self.at(key), expected, _describe(value)))
        return value

    def string_map(self, key: str) -> dict[str, str]:
        value = self._get(key, Mapping, "a mapping of strings") or {}
        return {_text(k, self.at(key)): _text(v, "%s.%s" % (self.at(key), k)) for k, v in value.items()}

    def paths(self, key: str) -> dict[str, list[str]]:
        value = self._get(key, Mapping, "a mapping of label names to paths") or {}
        return {_text(k, self.at(key)): _strings(v, "%s.%s" % (self.at(key), k)) for k, v in value.items()}

    def items(self, key: str) -> list[Any]:
        return self._get(key, list, "a list") or []


def _describe(value: Any) -> str:
    text = repr(value)
    return "%s %s" % (type(value).__name__, text if len(text) <= 60 else text[:57] + "...")


def _text(value: Any, where: str) -> str:
    """A scalar as YAML text, as Go's yaml decoder fills a string field from any scalar."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    raise ConfigurationError("%s: expected a string, got %s" % (where, _describe(value)))


def _strings(value: Any, where: str) -> list[str]:
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        raise ConfigurationError(
            "%s: expected a list of path segments such as [status, phase], got %s" % (where, _describe(value))
        )
    return [_text(item, "%s[%d]" % (where, i)) for i, item in enumerate(value)]


def load_crs_config(config: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    """Parse the YAML text of a config (a mapping passes through).

    Every scalar is read as its text, as Go's YAML decoder does for the string
    fields KSM declares (``yes``, ``on`` and ``1`` stay strings).

    Raises:
        ConfigurationError: Not YAML, or not a mapping.
    """
    if isinstance(config, Mapping):
        return config
    if isinstance(config, bytes):
        config = config.decode("utf-8")
    if not isinstance(config, str):
        raise ConfigurationError(
            "custom resource state config: expected YAML text or a mapping, got %s" % type(config).__name__
        )
    import yaml  # the kubernetes client's dependency: present wherever a listener runs

    try:
        # The first document only, as KSM's decoder reads it.
        data = next(yaml.load_all(config, Loader=yaml.BaseLoader), None)  # noqa: S506 - str, list and dict only
    except yaml.YAMLError as exc:
        raise ConfigurationError("failed to parse Custom Resource State metrics: %s" % exc) from exc
    if not isinstance(data, Mapping):
        raise ConfigurationError(
            "failed to parse Custom Resource State metrics: expected a mapping with spec.resources, got %s"
            % _describe(data)
        )
    return data


_TOP = ("apiVersion", "kind", "metadata", "spec")
_RESOURCE = (
    "groupVersionKind",
    "metricNamePrefix",
    "resourcePlural",
    "labelsFromPath",
    "commonLabels",
    "metrics",
    "errorLogV",
)
_GENERATOR = ("name", "help", "each", "labelsFromPath", "commonLabels", "errorLogV")
_EACH = ("type", "gauge", "stateSet", "info")
_TYPE_KEYS = {
    _GAUGE: ("gauge", ("path", "labelsFromPath", "valueFrom", "labelFromKey", "nilIsZero")),
    _STATESET: ("stateSet", ("path", "labelsFromPath", "list", "labelName", "valueFrom")),
    _INFO: ("info", ("path", "labelsFromPath", "labelFromKey")),
}


def _compile_paths(paths: Mapping[str, list[str]], where: str) -> dict[str, _Path]:
    return {key: _compile_path(parts, "%s.%s" % (where, key)) for key, parts in paths.items()}


def _check_label(name: str, where: str) -> None:
    if not _LABEL_NAME.match(name) or name.startswith("__"):
        raise ConfigurationError(
            "%s: %r is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __); kube-state-metrics "
            "would expose it unchanged and break the scrape" % (where, name)
        )


def _compile_each(each: _Reader, where: str) -> _Gauge | _StateSet | _Info:
    raw_type = each.text("type")
    kind = raw_type.lower()
    if kind not in _TYPE_KEYS:
        raise ConfigurationError(
            "%s.type: unknown metric type %s (use Gauge, StateSet or Info)" % (where, raw_type or '""')
        )
    section, keys = _TYPE_KEYS[kind]
    if each.data.get(section) is None:
        raise ConfigurationError("%s: expected each.%s to not be nil (type is %s)" % (where, section, raw_type))
    spec = _Reader(each.data[section], "%s.%s" % (where, section), keys)
    path = _compile_path(spec.strings("path"), spec.at("path"))
    labels = _compile_paths(spec.paths("labelsFromPath"), spec.at("labelsFromPath"))
    value_from = _compile_path(spec.strings("valueFrom"), spec.at("valueFrom"))  # empty for Info
    label_from_key = spec.text("labelFromKey")  # empty for StateSet
    if label_from_key:
        _check_label(label_from_key, spec.at("labelFromKey"))
    if kind == _GAUGE:
        return _Gauge(path, labels, value_from, spec.flag("nilIsZero"), label_from_key)
    if kind == _STATESET:
        label_name = spec.text("labelName")
        _check_label(label_name, spec.at("labelName"))
        return _StateSet(path, labels, value_from, label_name, tuple(spec.strings("list")))
    return _Info(path, labels, label_from_key)


def _plural(kind: str) -> str:
    """The kubebuilder default plural of a kind (KSM reads the CRD's; set ``resourcePlural`` when they differ)."""
    lower = kind.lower()
    if lower.endswith(("s", "x", "z", "ch", "sh")):
        return lower + "es"
    if lower.endswith("y") and len(lower) > 1 and lower[-2] not in "aeiou":
        return lower[:-1] + "ies"
    return lower + "s"


def _compile_resource(raw: Any, where: str) -> tuple[tuple[str, str, str], str, list[CustomResourceFamily]]:
    resource = _Reader(raw, where, _RESOURCE)
    gvk = _Reader(resource.data.get("groupVersionKind"), resource.at("groupVersionKind"), ("group", "version", "kind"))
    group, version, kind = (gvk.text(key) for key in ("group", "version", "kind"))
    where = "%s (%s_%s_%s)" % (where, group, version, kind)
    for key, value in (("version", version), ("kind", kind)):
        if not value:
            raise ConfigurationError("%s: groupVersionKind.%s is required" % (where, key))
        if value == "*" or not re.fullmatch(r"[A-Za-z0-9.-]+", value):
            raise ConfigurationError(
                "%s: groupVersionKind.%s %r: wildcards are not supported (kube-state-metrics resolves them from "
                "the installed CRDs); list each version and kind" % (where, key, value)
            )
    if group == "*":
        raise ConfigurationError("%s: groupVersionKind.group '*' is not supported; name the group" % where)
    prefix = resource.data.get("metricNamePrefix")
    prefix = DEFAULT_METRIC_NAME_PREFIX if prefix is None else _text(prefix, resource.at("metricNamePrefix"))
    resource_common = resource.string_map("commonLabels")
    resource_paths = resource.paths("labelsFromPath")
    families: list[CustomResourceFamily] = []
    for i, raw_metric in enumerate(resource.items("metrics")):
        at = "%s.metrics[%d]" % (where, i)
        generator = _Reader(raw_metric, at, _GENERATOR)
        name = generator.text("name")
        at = "%s (%s)" % (at, name)
        each = _Reader(generator.data.get("each"), generator.at("each"), _EACH)
        each_metric = _compile_each(each, "%s.each" % at)
        full = "%s_%s" % (prefix, name) if prefix else name
        if not _METRIC_NAME.match(full):
            raise ConfigurationError(
                "%s: metric name %r is not a Prometheus and OpenTelemetry name ([a-zA-Z][a-zA-Z0-9_]*)" % (at, full)
            )
        # KSM sets the GVK labels over the resource's commonLabels, then merges the metric's over them.
        gvk_labels = {"customresource_group": group, "customresource_version": version, "customresource_kind": kind}
        common = {**resource_common, **gvk_labels, **generator.string_map("commonLabels")}
        for label in common:
            _check_label(label, "%s.commonLabels" % at)
        paths = {**resource_paths, **generator.paths("labelsFromPath")}
        families.append(
            CustomResourceFamily(
                name=full,
                help=generator.text("help"),
                each=each_metric,
                common_labels=common,
                labels_from_path=_compile_paths(paths, "%s.labelsFromPath" % at),
            )
        )
    return (group, version, kind), resource.text("resourcePlural"), families


def _merged(families: Sequence[CustomResourceFamily]) -> Callable[..., list[Sample]]:
    """Families that share a name within one resource: KSM writes them as one family, the first's HELP."""

    def samples(obj: Mapping[str, Any], dropped: Callable[[str], None] | None = None) -> list[Sample]:
        return [sample for family in families for sample in family(obj, dropped)]

    return samples


def kinds_from_crs_config(config: str | bytes | Mapping[str, Any]) -> list[KindSpec]:
    """Build one :class:`~.kind.KindSpec` per resource of a kube-state-metrics Custom Resource State config.

    Each metric of a resource becomes a gauge with several series per object
    (:attr:`~.kind.GaugeSpec.samples`), named and labelled as KSM names and
    labels them. Serve them with a :class:`~.listener.ResourceListener` (or
    ``otel_gitjob.kopf.instrument``) per kind.

    Args:
        config: The YAML text (``kind: CustomResourceStateMetrics``) or the
            same structure as a mapping.

    Returns:
        The kinds, in the config's order.

    Raises:
        ConfigurationError: The config is not one KSM would serve as written
            (the message names the resource and the path, and says what to do).

    Example:
        >>> kinds = kinds_from_crs_config(open("crs.yaml").read())  # doctest: +SKIP
        >>> [ResourceListener(lifecycle, kind).start() for kind in kinds]  # doctest: +SKIP
    """
    data = load_crs_config(config)
    top = _Reader(data, "custom resource state config", _TOP)
    spec = _Reader(top.data.get("spec"), "spec", ("resources",))
    kinds: list[KindSpec] = []
    seen_gvk: dict[tuple[str, str, str], str] = {}
    seen_names: dict[str, str] = {}
    for i, raw in enumerate(spec.items("resources")):
        where = "spec.resources[%d]" % i
        gvk, plural, families = _compile_resource(raw, where)
        group, version, kind = gvk
        label = "%s_%s_%s" % gvk
        if gvk in seen_gvk:
            raise ConfigurationError(
                "%s (%s): a second entry for the same resource (first: %s); merge their metrics into one entry"
                % (where, label, seen_gvk[gvk])
            )
        seen_gvk[gvk] = where
        by_name: dict[str, list[CustomResourceFamily]] = {}
        for family in families:
            by_name.setdefault(family.name, []).append(family)
        for name in by_name:
            other = seen_names.get(name)
            if other is not None:
                raise ConfigurationError(
                    "%s (%s): metric %s is also a metric of %s; one instrument serves one kind here, so give each "
                    "resource its own metricNamePrefix or metric names" % (where, label, name, other)
                )
            seen_names[name] = "%s (%s)" % (where, label)
        gauges = tuple(
            GaugeSpec(
                name=name,
                description=group_families[0].help,
                samples=group_families[0] if len(group_families) == 1 else _merged(group_families),
            )
            for name, group_families in by_name.items()
        )
        kinds.append(
            KindSpec(
                group=group,
                version=version,
                plural=plural or _plural(kind),
                kind=kind,
                # Without CRD discovery the scope is unknown: list cluster-wide, which serves both.
                namespaced=False,
                gauges=gauges,
            )
        )
    return kinds
