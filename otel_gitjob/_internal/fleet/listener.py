"""The GitRepo listener: a :class:`ResourceListener` with Fleet's GitRepo preset."""

from __future__ import annotations

from typing import Any

from otel_gitjob._internal.fleet.presets import GITREPO
from otel_gitjob._internal.kube._types import Sink
from otel_gitjob._internal.kube.listener import ResourceListener

__all__ = ["GitRepoListener"]


class GitRepoListener(ResourceListener):
    """A :class:`ResourceListener` for Fleet's GitRepos (``otel_gitjob.fleet.GITREPO``).

    Takes the same keyword arguments as :class:`ResourceListener`.
    """

    def __init__(self, sink: Sink, **kwargs: Any) -> None:
        super().__init__(sink, GITREPO, **kwargs)
