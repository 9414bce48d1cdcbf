"""Fleet's GitRepo and HelmOp as :class:`~.kind.KindSpec` presets, and the credential-free ``repo`` label.

Both carry Fleet's ten status gauges with the labels Fleet's collectors set (the contract: ``fleet-metrics.md``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from otel_gitjob._internal.kube.kind import GaugeSpec, KindSpec, ObjectState, metadata_ref

__all__ = [
    "GAUGES",
    "GITREPO",
    "HELMOP",
    "HELMOP_GAUGES",
    "KINDS",
    "SHARD_LABEL",
    "helmop_attributes",
    "repo_attributes",
    "repo_state",
    "sanitize_repo_url",
]

SHARD_LABEL = "fleet.cattle.io/shard-ref"
"""The label Fleet's sharded controllers select on (``--shard-id``)."""

_STATUS_FIELDS = (
    ("desired_ready_clusters", ("desiredReadyClusters",), "Number of clusters the %s's bundles should be ready on."),
    ("ready_clusters", ("readyClusters",), "Number of clusters the %s's bundles are ready on."),
    ("resources_desired_ready", ("resourceCounts", "desiredReady"), "Number of resources that should be ready."),
    ("resources_ready", ("resourceCounts", "ready"), "Number of resources that are ready."),
    ("resources_not_ready", ("resourceCounts", "notReady"), "Number of resources that are not ready."),
    ("resources_missing", ("resourceCounts", "missing"), "Number of resources that are missing."),
    ("resources_modified", ("resourceCounts", "modified"), "Number of resources that are modified."),
    ("resources_orphaned", ("resourceCounts", "orphaned"), "Number of resources that are orphaned."),
    ("resources_unknown", ("resourceCounts", "unknown"), "Number of resources in an unknown state."),
    ("resources_wait_applied", ("resourceCounts", "waitApplied"), "Number of resources waiting to be applied."),
)


def _fleet_gauges(subsystem: str, kind: str) -> tuple[GaugeSpec, ...]:
    return tuple(
        GaugeSpec("fleet_%s_%s" % (subsystem, suffix), description.replace("%s", kind), ("status", *path))
        for suffix, path, description in _STATUS_FIELDS
    )


GAUGES: tuple[GaugeSpec, ...] = _fleet_gauges("gitrepo", "GitRepo")
"""The ten ``fleet_gitrepo_*`` gauges, in Fleet's order."""
HELMOP_GAUGES: tuple[GaugeSpec, ...] = _fleet_gauges("helmop", "HelmOp")
"""The ten ``fleet_helmop_*`` gauges, in Fleet's order."""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def repo_attributes(obj: Mapping[str, Any]) -> dict[str, str]:
    """The GitRepo gauge labels, exactly as Fleet's collector sets them.

    ``repo`` goes through :func:`sanitize_repo_url`; ``paths`` is ``spec.paths``
    joined with ``;``.
    """
    ref = metadata_ref(obj)
    spec = _mapping(obj.get("spec"))
    paths = spec.get("paths") or []
    if not isinstance(paths, list):
        paths = []
    return {
        "name": ref.name,
        "namespace": ref.namespace,
        "repo": sanitize_repo_url(spec.get("repo")),
        "branch": _str(spec.get("branch")),
        "paths": ";".join(str(p) for p in paths),
    }


def helmop_attributes(obj: Mapping[str, Any]) -> dict[str, str]:
    """The HelmOp gauge labels: ``repo`` (``spec.helm.repo``, no credentials), ``chart``, ``version``."""
    ref = metadata_ref(obj)
    helm = _mapping(_mapping(obj.get("spec")).get("helm"))
    return {
        "name": ref.name,
        "namespace": ref.namespace,
        "repo": sanitize_repo_url(helm.get("repo")),
        "chart": _str(helm.get("chart")),
        "version": _str(_mapping(obj.get("status")).get("version")),
    }


GITREPO = KindSpec(
    group="fleet.cattle.io",
    version="v1alpha1",
    plural="gitrepos",
    kind="GitRepo",
    shard_label=SHARD_LABEL,
    gauges=GAUGES,
    labels=repo_attributes,
)
"""Fleet's GitRepo: ``fleet_gitrepo_*`` gauges with labels name, namespace, repo, branch, paths."""

HELMOP = KindSpec(
    group="fleet.cattle.io",
    version="v1alpha1",
    plural="helmops",
    kind="HelmOp",
    shard_label=SHARD_LABEL,
    gauges=HELMOP_GAUGES,
    labels=helmop_attributes,
)
"""Fleet's HelmOp: ``fleet_helmop_*`` gauges with labels name, namespace, repo, chart, version."""

KINDS: dict[str, KindSpec] = {GITREPO.plural: GITREPO, HELMOP.plural: HELMOP}
"""The presets by plural, as ``otel-gitjob watch --kinds`` names them."""


def repo_state(obj: Mapping[str, Any]) -> ObjectState:
    """Project a GitRepo object (a dict from the API) with :data:`GITREPO`.

    Raises:
        ValueError: The object has no string namespace and name.
    """
    return GITREPO.project(obj)


# ------------------------------------------------------------------------------- the repo label

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#\\]*)(?P<path>[^?#]*)")
_SCHEME_PREFIX = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
_HOSTPORT = re.compile(r"^(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
# An account name (git, gitea, deploy): lowercase letters only. Tokens and key ids have digits or capitals.
_SSH_USER = re.compile(r"^[a-z_][a-z._-]{0,31}$")
_SCP_LIKE = re.compile(r"^(?:(?P<user>[a-z_][a-z._-]{0,31})@)?(?P<host>[A-Za-z0-9_][A-Za-z0-9._-]*):(?P<path>[^@?#]*)$")
_CUT = re.compile(r"[?#\s\x00-\x1f\x7f]")
_SSH_SCHEMES = frozenset({"ssh", "git+ssh", "ssh+git"})


def sanitize_repo_url(url: Any) -> str:
    """Return the repository URL without credentials, for the ``repo`` label.

    Fails closed: only two shapes are rebuilt, everything else is reduced.

    * ``scheme://[userinfo@]host[:port]/path`` with a plain host: the userinfo
      goes (for ``https``, ``http``, ``git``, ...: all of it, since tokens are
      commonly passed as the user name alone, ``https://<token>@github.com``);
      for ``ssh``, a user name without password that looks like an account
      name (lowercase letters, ``.``, ``_``, ``-``; ``ssh://git@host``) stays:
      it is not a secret, and identifies the remote. A user name with digits or
      capitals (every common token format has them) goes.
      Query and fragment go (a git remote never needs them; tokens hide there:
      ``?access_token=``).
    * scp-like ``[user@]host:path`` (``git@github.com:org/repo``): kept when
      the user name passes the same rule; otherwise reduced.
    * Anything else (``https:/u:pw@host/x``, ``https//u:pw@host``,
      ``oauth2:pw@gitlab.com/x``, a malformed host) is reduced to what is
      provably free of userinfo: the text after the last ``@``, without query
      and fragment, behind the scheme if there was a well-formed one. A
      non-string is ``""``.
    """
    if not isinstance(url, str):
        return ""
    url = url.strip()
    if not url:
        return ""
    if not any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        match = _URL.match(url)
        if match:
            scheme = match.group("scheme").lower()
            userinfo, at, hostport = match.group("authority").rpartition("@")
            if _HOSTPORT.match(hostport) and "@" not in match.group("path"):
                user = ""
                if at and scheme in _SSH_SCHEMES and _SSH_USER.match(userinfo):
                    user = userinfo + "@"
                return "%s://%s%s%s" % (scheme, user, hostport, match.group("path"))
        else:
            scp = _SCP_LIKE.match(url)
            if scp and not scp.group("path").startswith("//"):
                return url
    return _reduce(url)


def _reduce(url: str) -> str:
    """Fail closed: keep only what follows the last ``@``, cut at the first ``?``, ``#`` or whitespace."""
    scheme = _SCHEME_PREFIX.match(url)
    if scheme and "@" not in url:
        tail = _CUT.split(url[scheme.end() :], maxsplit=1)[0]
    else:
        tail = _CUT.split(url.rpartition("@")[2], maxsplit=1)[0]
    if scheme and tail and not tail.startswith(scheme.group(0)):
        return "%s://%s" % (scheme.group("scheme").lower(), tail)
    return tail
