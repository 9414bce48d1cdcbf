"""The real-API-server tier: one etcd + kube-apiserver per session (see ``real_apiserver.py``).

Build the binaries with ``./scripts/kube-apiserver`` (``./scripts/test`` does it when they are
missing). Without them these tests fail under ``CI=true`` and skip elsewhere.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from real_apiserver import KubeApiServer, find_binaries


@pytest.fixture(scope="session")
def kube_apiserver() -> Iterator[KubeApiServer]:
    """A real etcd and kube-apiserver on 127.0.0.1 for the whole session, killed by PID at the end.

    API (for this tier's tests and later ones: resume, 410, bookmarks):

    - ``base_url``: ``https://127.0.0.1:<port>``; ``ca_file`` signed its serving certificate.
    - ``kubeconfig``: path of an admin kubeconfig (token user in ``system:masters``);
      ``write_kubeconfig(path, token)`` writes one for any token, e.g. a ServiceAccount's from
      ``service_account_token(namespace, name)`` (TokenRequest API).
    - ``configuration(token=None)`` / ``api_client(token=None)``: kubernetes-client objects.
    - ``request(method, path, body=None, token=None)``: one raw HTTPS call → ``(status, body)``.
    - ``create(plural, namespace, name, spec, status=None, labels=None)``, ``patch_labels``,
      ``delete``: GitRepos (``"gitrepos"``) and HelmOps (``"helmops"``); the CRDs
      (``fleet.cattle.io/v1alpha1``, status subresource) are installed at startup.
    - ``restart_apiserver(extra_args=())``: SIGTERM kube-apiserver and start it again on the same
      port against the same etcd (``["--watch-cache=false"]`` serves watches from etcd directly);
      returns the seconds until ``/readyz``.
    - ``compact_etcd()``: compact etcd at its current revision; returns that revision.
    - ``etcd_url``, ``startup_seconds``, ``log("etcd" | "kube-apiserver")``.

    The server runs ``--authorization-mode=RBAC``, a token file for the admin, a service-account
    signing key, ``--etcd-compaction-interval=0`` (only ``compact_etcd`` compacts) and no
    ``kubernetes`` Service endpoints. Objects persist across tests: use unique names.
    """
    apiserver_bin, etcd_bin = find_binaries()  # tests/tiers.py skipped (or, in CI, failed) the tier without them
    server = KubeApiServer(apiserver_bin, etcd_bin)
    try:
        server.start()
        print("\nkube-apiserver tier: etcd + kube-apiserver + CRDs ready in %.2f s" % server.startup_seconds)
        sys.stdout.flush()
        yield server
    finally:
        server.stop()
