"""What the watch cache keeps per GitRepo, and how it is read off the object.

Only what the status gauges and the lifecycle actions need is kept (identity,
five label values, ten integers), not the whole object: 10,000 GitRepos with
their specs and conditions would otherwise sit in memory twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from otel_gitjob._internal.listener._types import RepoKey, RepoRef

__all__ = [
    "GAUGES",
    "GaugeSpec",
    "RepoState",
    "repo_attributes",
    "repo_state",
    "sanitize_repo_url",
]


@dataclass(frozen=True, slots=True)
class GaugeSpec:
    """One row of the status gauge table.

    Attributes:
        name: Instrument name, as Fleet's gitrepo collector names it.
        description: Instrument description.
        path: Keys leading from the GitRepo object to the integer.
    """

    name: str
    description: str
    path: tuple[str, ...]


def _counts(key: str, what: str) -> GaugeSpec:
    name = "fleet_gitrepo_resources_" + re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
    return GaugeSpec(name, "Number of resources %s." % what, ("status", "resourceCounts", key))


GAUGES: tuple[GaugeSpec, ...] = (
    GaugeSpec(
        "fleet_gitrepo_desired_ready_clusters",
        "Number of clusters the GitRepo's bundles should be ready on.",
        ("status", "desiredReadyClusters"),
    ),
    GaugeSpec(
        "fleet_gitrepo_ready_clusters",
        "Number of clusters the GitRepo's bundles are ready on.",
        ("status", "readyClusters"),
    ),
    _counts("desiredReady", "that should be ready"),
    _counts("ready", "that are ready"),
    _counts("notReady", "that are not ready"),
    _counts("missing", "that are missing"),
    _counts("modified", "that are modified"),
    _counts("orphaned", "that are orphaned"),
    _counts("unknown", "in an unknown state"),
    _counts("waitApplied", "waiting to be applied"),
)
"""The ten ``fleet_gitrepo_*`` gauges, one row each (order = ``RepoState.values``)."""


@dataclass(frozen=True, slots=True)
class RepoState:
    """The cached view of one GitRepo.

    Attributes:
        ref: Identity (namespace, name, uid).
        attributes: The gauge labels: name, namespace, repo, branch, paths.
        values: One integer per row of :data:`GAUGES`, in order.
    """

    ref: RepoRef
    attributes: Mapping[str, str]
    values: tuple[int, ...]

    @property
    def key(self) -> RepoKey:
        """``(namespace, name)``."""
        return (self.ref.namespace, self.ref.name)


def repo_state(obj: Mapping[str, Any]) -> RepoState:
    """Read a :class:`RepoState` off a GitRepo object (a dict from the API).

    Missing or non-integer status fields read as 0, as in Fleet's collector
    (Go's zero value), so a repo without status still exports its series.

    Raises:
        ValueError: The object has no string namespace and name.
    """
    meta = obj.get("metadata") or {}
    namespace, name, uid = meta.get("namespace"), meta.get("name"), meta.get("uid")
    if not isinstance(namespace, str) or not isinstance(name, str) or not namespace or not name:
        raise ValueError("GitRepo without namespace/name: %r" % ({"namespace": namespace, "name": name},))
    ref = RepoRef(namespace, name, uid if isinstance(uid, str) and uid else None)
    return RepoState(ref, repo_attributes(obj), tuple(_int_at(obj, spec.path) for spec in GAUGES))


def repo_attributes(obj: Mapping[str, Any]) -> dict[str, str]:
    """The gauge labels of a GitRepo, exactly as Fleet's collector sets them.

    ``repo`` goes through :func:`sanitize_repo_url`; ``paths`` is ``spec.paths``
    joined with ``;``.
    """
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    if not isinstance(spec, Mapping):
        spec = {}
    paths = spec.get("paths") or []
    if not isinstance(paths, list):
        paths = []
    return {
        "name": str(meta.get("name") or ""),
        "namespace": str(meta.get("namespace") or ""),
        "repo": sanitize_repo_url(spec.get("repo")),
        "branch": _str(spec.get("branch")),
        "paths": ";".join(str(p) for p in paths),
    }


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int_at(obj: Mapping[str, Any], path: tuple[str, ...]) -> int:
    value: Any = obj
    for key in path:
        if not isinstance(value, Mapping):
            return 0
        value = value.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return int(value)


# scp-like syntax: [user@]host:path, with no scheme and no slash before the colon.
_SCP_LIKE = re.compile(r"^(?:(?P<userinfo>[^@/]*)@)?(?P<host>[^@/:]+):(?P<path>(?!//).*)$")


def sanitize_repo_url(url: Any) -> str:
    """Return the repository URL without credentials, for the ``repo`` label.

    Policy (see the table-driven test):

    * Any URL with a scheme other than ssh (``https``, ``http``, ``git``, ...):
      all userinfo goes, username included. Tokens are commonly passed as the
      username alone (``https://<token>@github.com/...``). Query and fragment
      go too: a git remote never needs them, and tokens hide there.
    * ``ssh://user@host/path``: the user name stays. It is an account name
      (almost always ``git``), not a secret, and it is part of what identifies
      the remote. If a password is present (``ssh://user:pw@host``), all of
      the userinfo goes.
    * scp-like ``user@host:path`` (``git@github.com:org/repo``): same as ssh,
      ``git@`` is a username and stays; ``user:pw@host:path`` loses it all.
    * Anything else (a bare path, empty, not a string) is returned as a string
      unchanged, or ``""`` for a non-string.
    """
    if not isinstance(url, str):
        return ""
    url = url.strip()
    if "://" in url:
        try:
            parts = urlsplit(url)
        except ValueError:
            return _strip_userinfo_lexically(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            keep_user = parts.scheme.lower() in ("ssh", "git+ssh", "ssh+git") and ":" not in userinfo
            netloc = "%s@%s" % (userinfo, hostport) if keep_user and userinfo else hostport
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    match = _SCP_LIKE.match(url)
    if match and match.group("userinfo") is not None:
        userinfo = match.group("userinfo")
        if ":" in userinfo or not userinfo:
            return "%s:%s" % (match.group("host"), match.group("path"))
    return url


def _strip_userinfo_lexically(url: str) -> str:
    # urlsplit rejects some malformed netlocs (bad IPv6 brackets); never let one through with its secret.
    scheme, _, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    return "%s://%s%s%s" % (scheme, authority.rpartition("@")[2], slash, path.split("?")[0].split("#")[0])
