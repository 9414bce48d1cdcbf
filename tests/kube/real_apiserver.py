"""A real etcd and kube-apiserver on 127.0.0.1, built by ``scripts/kube-apiserver``.

Nothing here imitates the API server: label selectors, resourceVersions, watch bookmarks, 410
after a compaction, RBAC and the TokenRequest API are the real server's. The binaries come from
``$KUBE_APISERVER_BIN`` / ``$ETCD_BIN`` or ``~/.cache/otel-gitjob/kube-<version>/``; when they are
missing the tests fail under ``CI=true`` and skip elsewhere.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client as k8s_client
from support import free_port, stop_process

REPO = Path(__file__).resolve().parents[2]
BUILD_MANIFEST = REPO / "tests" / "kube" / "gomod" / "go.mod"
GROUP, VERSION = "fleet.cattle.io", "v1alpha1"
KINDS = {"gitrepos": "GitRepo", "helmops": "HelmOp"}


class BinariesMissing(RuntimeError):
    """kube-apiserver or etcd has not been built."""


def kubernetes_version() -> str:
    """The ``k8s.io/kubernetes`` release the build manifest pins (``v1.37.2``)."""
    for line in BUILD_MANIFEST.read_text().splitlines():
        # "require k8s.io/kubernetes v1.x", or the same inside a require block.
        words = line.split()
        if words and not words[0].startswith("//") and "k8s.io/kubernetes" in words[:-1]:
            return words[words.index("k8s.io/kubernetes") + 1]
    raise RuntimeError("%s requires no k8s.io/kubernetes" % BUILD_MANIFEST)


def find_binaries() -> tuple[str, str]:
    """Paths of kube-apiserver and etcd.

    Raises:
        BinariesMissing: With the command that builds them.
    """
    cache = Path(os.environ.get("OTEL_GITJOB_CACHE") or Path.home() / ".cache" / "otel-gitjob")
    directory = cache / ("kube-%s" % kubernetes_version())
    apiserver = os.environ.get("KUBE_APISERVER_BIN") or str(directory / "kube-apiserver")
    etcd = os.environ.get("ETCD_BIN") or str(directory / "etcd")
    missing = [path for path in (apiserver, etcd) if not os.access(path, os.X_OK)]
    if missing:
        raise BinariesMissing(
            "not built: %s; run ./scripts/kube-apiserver (7 to 21 minutes cold on 2 cores) "
            "or set KUBE_APISERVER_BIN and ETCD_BIN" % ", ".join(missing)
        )
    return apiserver, etcd


def _write_certificates(directory: Path) -> None:
    """A CA, a serving certificate for 127.0.0.1 signed by it, and the service-account signing key."""
    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None, signer: Any) -> Any:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
        )
        if issuer is None:
            builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("otel-gitjob-test-ca", ca_key, None, ca_key)
    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving = certificate("kube-apiserver", serving_key, ca.subject, ca_key)
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "serving.crt").write_bytes(serving.public_bytes(serialization.Encoding.PEM))
    write_key(directory / "serving.key", serving_key)
    service_account_key = ec.generate_private_key(ec.SECP256R1())
    write_key(directory / "sa.key", service_account_key)
    (directory / "sa.pub").write_bytes(
        service_account_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def crd(group: str, version: str, kind: str, plural: str, status_subresource: bool = False) -> dict[str, Any]:
    """A namespaced CRD keeping any spec and status; without a status subresource, status is set on create."""
    loose = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "%s.%s" % (plural, group)},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": kind + "List"},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    **({"subresources": {"status": {}}} if status_subresource else {}),
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": loose, "status": loose}}},
                }
            ],
        },
    }


class KubeApiServer:
    """etcd plus kube-apiserver on 127.0.0.1, with an admin user, RBAC and Fleet's two CRDs.

    Attributes:
        base_url: ``https://127.0.0.1:<port>`` of the API server.
        kubeconfig: Path of a kubeconfig for the admin user (group ``system:masters``).
        ca_file: The CA that signed the serving certificate.
        etcd_url: ``http://127.0.0.1:<port>`` of etcd's client endpoint (its JSON gateway too).
        startup_seconds: Wall time of :meth:`start`: etcd and kube-apiserver up, CRDs established.
        directory: The temporary directory holding data, certificates and logs.
    """

    ADMIN_TOKEN = "otel-gitjob-admin-token"

    def __init__(self, apiserver_bin: str, etcd_bin: str) -> None:
        self._apiserver_bin, self._etcd_bin = apiserver_bin, etcd_bin
        self.directory = Path(tempfile.mkdtemp(prefix="otel-gitjob-kube-"))
        self.ca_file = str(self.directory / "ca.crt")
        self.port = free_port()
        self.base_url = "https://127.0.0.1:%d" % self.port
        self.etcd_url = "http://127.0.0.1:%d" % free_port()
        self._etcd_peer = "http://127.0.0.1:%d" % free_port()
        self.kubeconfig = str(self.directory / "admin.kubeconfig")
        self.startup_seconds = 0.0
        self.etcd: subprocess.Popen[bytes] | None = None
        self.apiserver: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []
        self._ssl = ssl.create_default_context(cafile=None)

    # ------------------------------------------------------------------ processes

    def start(self) -> None:
        """Start etcd and kube-apiserver, wait for ``/readyz``, install the CRDs.

        On failure the caller must still call :meth:`stop` (the fixture does, in a ``finally``).
        """
        started = time.monotonic()
        _write_certificates(self.directory)
        self._ssl = ssl.create_default_context(cafile=self.ca_file)
        (self.directory / "tokens.csv").write_text('%s,admin,admin-uid,"system:masters"\n' % self.ADMIN_TOKEN)
        self.write_kubeconfig(self.kubeconfig, self.ADMIN_TOKEN)
        self.etcd = self._spawn(
            "etcd",
            [
                self._etcd_bin,
                "--name=otel-gitjob-test",
                "--data-dir=%s" % (self.directory / "etcd"),
                "--listen-client-urls=%s" % self.etcd_url,
                "--advertise-client-urls=%s" % self.etcd_url,
                "--listen-peer-urls=%s" % self._etcd_peer,
                "--initial-advertise-peer-urls=%s" % self._etcd_peer,
                "--initial-cluster=otel-gitjob-test=%s" % self._etcd_peer,
                "--log-level=warn",
            ],
        )
        self._wait(lambda: self._etcd_post("/v3/maintenance/status", {}) is not None, "etcd", self.etcd)
        self._start_apiserver(())
        self.install_crds()
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Kill kube-apiserver, then etcd, by PID; remove the temporary directory."""
        for process in (self.apiserver, self.etcd):
            stop_process(process, 15)
        for log in self._logs:
            log.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def restart_apiserver(self, extra_args: Sequence[str] = ()) -> float:
        """Stop kube-apiserver (SIGTERM) and start it again on the same port against the same etcd.

        Args:
            extra_args: Flags added to (or overriding) the defaults for the new process, e.g.
                ``["--watch-cache=false"]`` so that every watch is served from etcd directly.

        Returns:
            Seconds from the stop until ``/readyz`` answers again and every CRD serves lists (a freshly
            started server answers 429 for a custom resource whose storage is still initialising).
        """
        started = time.monotonic()
        stop_process(self.apiserver, 15)
        self._start_apiserver(extra_args)
        for plural in KINDS:
            self._wait(lambda p=plural: self._established(p), "CRD %s" % plural, self.apiserver)  # type: ignore[misc]
        return time.monotonic() - started

    def compact_etcd(self) -> int:
        """Compact etcd (physically) at a revision newer than every object's, via etcd's JSON gateway.

        It first writes a marker key outside ``/registry`` and compacts at that write's revision:
        compacting exactly at the newest object's revision would keep that event but not its
        predecessor, and the API server answers a watch replaying it with a 500 ("PrevKv=nil"),
        not 410. After this, a watch from any resourceVersion older than the newest write of
        the watched kind can only answer 410 Gone (at once with ``--watch-cache=false``; with
        the watch cache, once its window no longer covers it), and one from the newest still
        resumes, having missed nothing.

        Returns:
            The revision compacted at.
        """
        marker = {"key": base64.b64encode(b"/otel-gitjob-tests/compaction").decode(), "value": ""}
        written = self._etcd_post("/v3/kv/put", marker)
        if written is None:
            raise RuntimeError("etcd did not answer")
        revision = int(written["header"]["revision"])
        if self._etcd_post("/v3/kv/compaction", {"revision": revision, "physical": True}) is None:
            raise RuntimeError("etcd refused the compaction at %d" % revision)
        return revision

    def _start_apiserver(self, extra_args: Sequence[str]) -> None:
        d = self.directory
        args = [
            self._apiserver_bin,
            "--etcd-servers=%s" % self.etcd_url,
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--secure-port=%d" % self.port,
            "--cert-dir=%s" % (d / "certs"),
            "--tls-cert-file=%s" % (d / "serving.crt"),
            "--tls-private-key-file=%s" % (d / "serving.key"),
            "--token-auth-file=%s" % (d / "tokens.csv"),
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-account-key-file=%s" % (d / "sa.pub"),
            "--service-account-signing-key-file=%s" % (d / "sa.key"),
            "--service-cluster-ip-range=10.0.0.0/24",
            # No Service/Endpoints for "kubernetes" pointing at 127.0.0.1: nothing here needs them.
            "--endpoint-reconciler-type=none",
            # Compaction is the tests' to trigger (compact_etcd), not every 5 minutes behind their back.
            "--etcd-compaction-interval=0",
            "--profiling=false",
            "--v=1",
            *extra_args,
        ]
        self.apiserver = self._spawn("kube-apiserver", args)
        self._wait(self._ready, "kube-apiserver", self.apiserver, timeout=120)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.directory / ("%s.log" % name), "ab")  # noqa: SIM115 (closed in stop())
        self._logs.append(log)
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def log(self, name: str, tail: int = 4000) -> str:
        """The last ``tail`` characters of ``etcd`` or ``kube-apiserver``'s output."""
        path = self.directory / ("%s.log" % name)
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def _wait(self, ready: Any, name: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError("%s exited with %s:\n%s" % (name, process.returncode, self.log(name)))
            if ready():
                return
            time.sleep(0.1)
        raise RuntimeError("%s not ready after %ss:\n%s" % (name, timeout, self.log(name)))

    def _ready(self) -> bool:
        try:
            status, _ = self.request("GET", "/readyz")
        except OSError:
            return False
        return status == 200

    def _etcd_post(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        request = urllib.request.Request(
            self.etcd_url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return dict(json.load(response))
        except (OSError, ValueError):
            return None

    # ------------------------------------------------------------------ clients

    def request(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, dict[str, Any] | str]:
        """One HTTPS request (admin token by default); returns the status and the decoded body."""
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": "Bearer %s" % (token or self.ADMIN_TOKEN), "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10, context=self._ssl) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def write_kubeconfig(self, path: str | Path, token: str) -> str:
        """Write a kubeconfig that reaches this server with ``token``; returns its path."""
        Path(path).write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "test",
                    "clusters": [
                        {"name": "test", "cluster": {"server": self.base_url, "certificate-authority": self.ca_file}}
                    ],
                    "users": [{"name": "test", "user": {"token": token}}],
                    "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
                }
            )
        )
        return str(path)

    def configuration(self, token: str | None = None) -> k8s_client.Configuration:
        """A kubernetes-client configuration for ``token`` (the admin's by default)."""
        configuration = k8s_client.Configuration()
        configuration.host = self.base_url
        configuration.ssl_ca_cert = self.ca_file
        configuration.api_key = {"authorization": "Bearer %s" % (token or self.ADMIN_TOKEN)}
        return configuration

    def api_client(self, token: str | None = None) -> k8s_client.ApiClient:
        """A kubernetes ``ApiClient`` (admin by default); close it after use."""
        return k8s_client.ApiClient(self.configuration(token))

    def service_account_token(self, namespace: str, name: str, seconds: int = 3600) -> str:
        """A token for a ServiceAccount from the TokenRequest API (``serviceaccounts/token``)."""
        status, body = self.request(
            "POST",
            "/api/v1/namespaces/%s/serviceaccounts/%s/token" % (namespace, name),
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": seconds}},
        )
        if status != 201 or not isinstance(body, dict):
            raise RuntimeError("TokenRequest for %s/%s answered %s: %s" % (namespace, name, status, body))
        return str(body["status"]["token"])

    # ------------------------------------------------------------------ Fleet's CRDs

    def install_crds(self) -> None:
        """Minimal structural CRDs for GitRepo and HelmOp (status subresource, like Fleet's); wait established."""
        for plural, kind in KINDS.items():
            definition = crd(GROUP, VERSION, kind, plural, status_subresource=True)  # as Fleet's
            status, body = self.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", definition)
            if status not in (201, 409):
                raise RuntimeError("creating the %s CRD answered %s: %s" % (kind, status, body))
        for plural in KINDS:
            self._wait(lambda p=plural: self._established(p), "CRD %s" % plural, self.apiserver)  # type: ignore[misc]

    def _established(self, plural: str) -> bool:
        status, body = self.request("GET", "/apis/%s/%s/%s" % (GROUP, VERSION, plural))
        return status == 200

    def ensure_namespace(self, name: str) -> None:
        """Create a namespace unless it exists."""
        status, body = self.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        if status not in (201, 409):
            raise RuntimeError("creating namespace %s answered %s: %s" % (name, status, body))

    def create(
        self,
        plural: str,
        namespace: str,
        name: str,
        spec: dict[str, Any],
        status: dict[str, Any] | None = None,
        labels: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create a GitRepo or HelmOp, then set its status through the status subresource.

        Returns:
            The object as the server last returned it.
        """
        self.ensure_namespace(namespace)
        body: dict[str, Any] = {
            "apiVersion": "%s/%s" % (GROUP, VERSION),
            "kind": KINDS[plural],
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": spec,
        }
        code, created = self.request("POST", self._path(plural, namespace), body)
        if code != 201 or not isinstance(created, dict):
            raise RuntimeError("creating %s %s/%s answered %s: %s" % (plural, namespace, name, code, created))
        if status is not None:
            created["status"] = status
            code, created = self.request("PUT", self._path(plural, namespace, name) + "/status", created)
            if code != 200 or not isinstance(created, dict):
                raise RuntimeError("status of %s %s/%s answered %s: %s" % (plural, namespace, name, code, created))
        return created

    def patch_labels(self, plural: str, namespace: str, name: str, labels: dict[str, str | None]) -> None:
        """Merge-patch an object's labels (``None`` removes one)."""
        request = urllib.request.Request(
            self.base_url + self._path(plural, namespace, name),
            method="PATCH",
            data=json.dumps({"metadata": {"labels": labels}}).encode(),
            headers={"Authorization": "Bearer %s" % self.ADMIN_TOKEN, "Content-Type": "application/merge-patch+json"},
        )
        with urllib.request.urlopen(request, timeout=10, context=self._ssl) as response:
            response.read()

    def delete(self, plural: str, namespace: str, name: str) -> None:
        """Delete an object (no finalizers here, so it is gone at once)."""
        code, body = self.request("DELETE", self._path(plural, namespace, name))
        if code != 200:
            raise RuntimeError("deleting %s %s/%s answered %s: %s" % (plural, namespace, name, code, body))

    @staticmethod
    def _path(plural: str, namespace: str, name: str | None = None) -> str:
        path = "/apis/%s/%s/namespaces/%s/%s" % (GROUP, VERSION, namespace, plural)
        return path + "/" + name if name else path
