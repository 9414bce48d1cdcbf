"""What a GitRepo is, in whatever shape a controller holds it.

Controllers hold a GitRepo as a watch-event dict, a kopf body, a ``kubernetes``
client model, a ``(namespace, name)`` tuple, or our own :class:`RepoRef`. The
recording path turns any of them into a :class:`RepoRef` without raising:
:func:`coerce_repo` returns ``None`` plus a reason for anything unusable, and
the caller drops the measurement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["RepoRef", "coerce_repo", "valid_identity_value"]

# Kubernetes names are at most 253 characters (DNS subdomains; namespaces are 63-character labels).
MAX_NAME_LENGTH = 253


def valid_identity_value(value: str) -> bool:
    """Whether a namespace or name can be a label value: a plausible Kubernetes name.

    Lone surrogates (not encodable as UTF-8, which took every scrape down),
    control characters and over-long values are refused.
    """
    return 0 < len(value) <= MAX_NAME_LENGTH and value.isprintable()


@dataclass(frozen=True, slots=True)
class RepoRef:
    """The identity of one GitRepo.

    Attributes:
        namespace: The GitRepo's namespace.
        name: The GitRepo's name.
        uid: ``metadata.uid`` when known. A write carrying a uid different from
            the one a repo was forgotten with means the repo was recreated, and
            lifts the block against late writes.
    """

    namespace: str
    name: str
    uid: str | None = None


# Reasons are label values of the dropped-measurements self-metric; keep them few and stable.
REASON_BAD_REPO = "bad_repo"
REASON_BAD_IDENTITY_VALUE = "bad_identity_value"


def coerce_repo(repo: Any) -> tuple[RepoRef | None, str | None]:
    """Turn anything that names a GitRepo into a :class:`RepoRef`; never raises.

    An object whose ``metadata`` property raises, or a Mapping whose ``get``
    raises, is as unusable as one without a name: ``(None, "bad_repo")``.
    """
    try:
        return _coerce_repo(repo)
    except Exception:
        return None, REASON_BAD_REPO


def _coerce_repo(repo: Any) -> tuple[RepoRef | None, str | None]:
    """Turn anything that names a GitRepo into a :class:`RepoRef`.

    Returns:
        ``(ref, None)`` on success, ``(None, reason)`` when ``repo`` has no usable
        string namespace and name. Never raises.
    """
    if type(repo) is RepoRef:
        namespace, name, uid = repo.namespace, repo.name, repo.uid
    elif isinstance(repo, tuple) and len(repo) == 2:
        (namespace, name), uid = repo, None
    else:
        metadata = _metadata_of(repo)
        if metadata is None:
            return None, REASON_BAD_REPO
        namespace, name, uid = _field(metadata, "namespace"), _field(metadata, "name"), _field(metadata, "uid")
    if namespace is None or name is None:
        return None, REASON_BAD_REPO
    if type(namespace) is not str or type(name) is not str:
        # Subclasses of str (enums, kopf's wrappers) are fine; anything else would
        # be exported as a JSON blob label or collide with a real repo's identity.
        if not (isinstance(namespace, str) and isinstance(name, str)):
            return None, REASON_BAD_IDENTITY_VALUE
        namespace, name = str(namespace), str(name)
    if not namespace or not name:
        return None, REASON_BAD_REPO
    if uid is not None and not isinstance(uid, str):
        uid = None
    if type(repo) is RepoRef:
        return repo, None
    return RepoRef(namespace, name, uid), None


def _metadata_of(repo: Any) -> Any:
    if isinstance(repo, Mapping):
        metadata = repo.get("metadata")
        # A watch event ({"type": ..., "object": {...}}) carries the object one level down.
        if metadata is None and isinstance(repo.get("object"), Mapping):
            metadata = repo["object"].get("metadata")
        return metadata
    return getattr(repo, "metadata", None)


def _field(metadata: Any, key: str) -> Any:
    if isinstance(metadata, Mapping):
        return metadata.get(key)
    return getattr(metadata, key, None)
