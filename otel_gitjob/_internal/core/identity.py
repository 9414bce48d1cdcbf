"""What an object is, in whatever shape a Python controller holds it.

Controllers hold an object as a dict from the API, a watch event (``{"type",
"object"}``, or the ``kubernetes`` client's typed event whose ``object`` is a
model and ``raw_object`` a dict), a kopf ``body`` or kopf ``meta`` (the
metadata itself, no ``metadata`` key), a ``kubernetes`` client model, a kr8s
``APIObject``, a lightkube model or ``Generic`` resource, a ``(namespace,
name)`` tuple, or our own :class:`ObjectRef`. Nothing here raises, whatever
the object does: what cannot be read is refused with a reason, and the caller
drops and counts the measurement.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ObjectRef", "coerce_object", "fast_identity", "kind_of", "valid_identity_value"]

# Kubernetes names are at most 253 characters (DNS subdomains; namespaces are 63-character labels).
MAX_NAME_LENGTH = 253


def valid_identity_value(value: str) -> bool:
    """Whether a namespace or name can be a label value: a plausible Kubernetes name.

    Lone surrogates (not encodable as UTF-8, which took every scrape down),
    control characters and over-long values are refused.
    """
    return 0 < len(value) <= MAX_NAME_LENGTH and value.isprintable()


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """The identity of one Kubernetes object (a GitRepo, a HelmOp, ...).

    Attributes:
        namespace: The object's namespace.
        name: The object's name.
        uid: ``metadata.uid`` when known. A write carrying a uid different from
            the one an object was forgotten with means it was recreated, and
            lifts the block against late writes.
    """

    namespace: str
    name: str
    uid: str | None = None


# Reasons are label values of the dropped-measurements self-metric; keep them few and stable.
REASON_BAD_OBJECT = "bad_repo"
REASON_BAD_IDENTITY_VALUE = "bad_identity_value"


def coerce_object(obj: Any) -> tuple[ObjectRef | None, str | None]:
    """Turn anything that names an object into a :class:`ObjectRef`.

    Returns:
        ``(ref, None)`` on success, ``(None, reason)`` when ``obj`` has no usable
        string namespace and name. Never raises, whatever ``obj`` does.
    """
    try:
        return _coerce(obj)
    except Exception:  # a property or Mapping.get that raises: unusable, never the controller's problem
        return None, REASON_BAD_OBJECT


def _coerce(repo: Any) -> tuple[ObjectRef | None, str | None]:
    if type(repo) is ObjectRef:
        namespace, name, uid = repo.namespace, repo.name, repo.uid
    elif isinstance(repo, tuple) and len(repo) == 2:
        (namespace, name), uid = repo, None
    else:
        metadata = _metadata_of(repo)
        if metadata is None:
            return None, REASON_BAD_OBJECT
        namespace, name, uid = _field(metadata, "namespace"), _field(metadata, "name"), _field(metadata, "uid")
    if namespace is None or name is None:
        return None, REASON_BAD_OBJECT
    if type(namespace) is not str or type(name) is not str:
        # Subclasses of str (enums, kopf's wrappers) are fine; anything else would
        # be exported as a JSON blob label or collide with a real repo's identity.
        if not (isinstance(namespace, str) and isinstance(name, str)):
            return None, REASON_BAD_IDENTITY_VALUE
        namespace, name = str(namespace), str(name)
    if not namespace or not name:
        return None, REASON_BAD_OBJECT
    if uid is not None:
        uid = str(uid) if isinstance(uid, str) and uid else None
    if type(repo) is ObjectRef:
        return repo, None
    return ObjectRef(namespace, name, uid), None


def kind_of(obj: Any) -> str | None:
    """The Kubernetes kind an object carries (``"GitRepo"``), or ``None``. Never raises.

    Reads ``kind`` of a dict or kopf body (or of a watch event's object), the
    ``kind`` attribute of a client model or kr8s object, and a lightkube
    model's class (whose instances often leave ``kind`` unset).
    """
    try:
        return _kind_of(obj, depth=0)
    except Exception:
        return None


def _kind_of(obj: Any, depth: int) -> str | None:
    if obj is None or isinstance(obj, (str, bytes, tuple, ObjectRef)) or depth > 1:
        return None
    if isinstance(obj, Mapping):
        kind = obj.get("kind")
        if isinstance(kind, str) and kind:
            return kind
        if "metadata" not in obj:
            for key in ("raw_object", "object"):
                inner = obj.get(key)
                if inner is not None:
                    return _kind_of(inner, depth + 1)
    else:
        kind = getattr(obj, "kind", None)
        if isinstance(kind, str) and kind:
            return kind
    resource = getattr(_lightkube_api_info(type(obj)), "resource", None)
    kind = getattr(resource, "kind", None)
    return kind if isinstance(kind, str) and kind else None


def _lightkube_api_info(cls: type) -> Any:
    """A lightkube resource class's ApiInfo (which knows its kind), through lightkube's own accessor."""
    resource_module = sys.modules.get("lightkube.core.resource")  # loaded wherever a lightkube object exists
    if resource_module is None:
        return None
    try:
        return resource_module.api_info(cls)
    except AttributeError:  # not a lightkube resource
        return None


def _metadata_of(repo: Any, depth: int = 0) -> Any:
    if isinstance(repo, Mapping):
        metadata = repo.get("metadata")
        if metadata is not None:
            return metadata
        # A watch event ({"type": ..., "object": {...}}; the kubernetes client's typed events carry the
        # model in "object" and the dict in "raw_object") holds the object one level down.
        if depth == 0:
            for key in ("raw_object", "object"):
                inner = repo.get(key)
                if inner is not None and not isinstance(inner, (str, bytes)):
                    found = _metadata_of(inner, depth + 1)
                    if found is not None:
                        return found
        # kopf's ``meta`` (and any mapping of metadata fields) is the metadata itself.
        if isinstance(repo.get("name"), str):
            return repo
        return None
    metadata = getattr(repo, "metadata", None)
    if metadata is None and isinstance(getattr(repo, "name", None), str):
        return repo  # a metadata model itself (kubernetes' V1ObjectMeta, lightkube's ObjectMeta)
    return metadata


def _field(metadata: Any, key: str) -> Any:
    if isinstance(metadata, Mapping):
        return metadata.get(key)
    return getattr(metadata, key, None)


Identified = tuple[str, str, "str | None"]  # (namespace, name, uid)


def _of_ref(obj: ObjectRef) -> Identified | None:
    return _checked(obj.namespace, obj.name, obj.uid)


def _of_tuple(obj: tuple[Any, ...]) -> Identified | None:
    if len(obj) == 2 and type(obj[0]) is str and type(obj[1]) is str:
        return obj[0], obj[1], None
    return None


def _checked(namespace: Any, name: Any, uid: Any) -> Identified | None:
    if type(namespace) is not str or type(name) is not str or not namespace or not name:
        return None
    if uid is None or type(uid) is str:
        return namespace, name, uid or None
    return None


def _of_metadata_dict(metadata: Any) -> Identified | None:
    if type(metadata) is not dict:
        return None
    return _checked(metadata.get("namespace"), metadata.get("name"), metadata.get("uid"))


def _of_dict(obj: dict[str, Any]) -> Identified | None:
    return _of_metadata_dict(obj.get("metadata"))


def _of_mapping_metadata(obj: Mapping[str, Any]) -> Identified | None:
    # Subscripts: a lazy mapping's get() of an absent key may cost an exception (kopf's do).
    return _of_metadata_dict(obj["metadata"])


def _of_mapping_fields(obj: Mapping[str, Any]) -> Identified | None:
    try:
        uid = obj["uid"]
    except KeyError:  # an object not created by an API server (tests, dry runs)
        uid = None
    return _checked(obj["namespace"], obj["name"], uid)


def _of_metadata_attribute(obj: Any) -> Identified | None:
    metadata = getattr(obj, "metadata", None)
    return _checked(
        getattr(metadata, "namespace", None), getattr(metadata, "name", None), getattr(metadata, "uid", None)
    )


def _of_own_attributes(obj: Any) -> Identified | None:
    return _checked(getattr(obj, "namespace", None), getattr(obj, "name", None), getattr(obj, "uid", None))


_Reader = Callable[[Any], "Identified | None"]
# A type's reader, once one agreed with coerce_object() on an object of the type (None: the type has none).
_READERS: dict[type, _Reader | None] = {ObjectRef: _of_ref, tuple: _of_tuple, dict: _of_dict}
_MAX_READER_TYPES = 256


def fast_identity(obj: Any) -> Identified | None:
    """``(namespace, name, uid)`` of ``obj`` read by its type, or None when only :func:`coerce_object` can tell.

    Cheap for every shape a controller holds (no probing of absent keys, which
    costs an exception on kopf's mappings). A type gets a reader once the
    reader agreed with :func:`coerce_object` on one of its objects; where the
    reader answers at all, it answers what :func:`coerce_object` would (a
    watch event, a bad name or a cluster-scoped object gets None). Never raises.
    """
    try:
        reader = _READERS[type(obj)]
    except KeyError:
        reader = _learn(obj)
    except TypeError:
        return None
    if reader is None:
        return None
    try:
        return reader(obj)
    except Exception:
        return None


def _learn(obj: Any) -> _Reader | None:
    ref, _reason = coerce_object(obj)
    if ref is None or len(_READERS) >= _MAX_READER_TYPES:
        return None  # nothing to compare with yet
    expected = (ref.namespace, ref.name, ref.uid)
    readers = (_of_mapping_metadata, _of_mapping_fields) if isinstance(obj, Mapping) else ()
    for reader in (*readers, _of_metadata_attribute, _of_own_attributes):
        try:
            if reader(obj) == expected:
                _READERS[type(obj)] = reader
                return reader
        except Exception:
            continue
    _READERS[type(obj)] = None
    return None
