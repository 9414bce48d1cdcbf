"""Finding the cluster: the client configuration, loaded as kubectl and kopf load it."""

from __future__ import annotations

import logging
import os

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

__all__ = ["load_configuration"]

logger = logging.getLogger(__name__)


def load_configuration(kubeconfig: str | None = None) -> k8s_client.Configuration:
    """Load a client configuration the way kubectl and kopf users expect.

    With ``kubeconfig``, that file. Otherwise, in order: the in-cluster service
    account (``KUBERNETES_SERVICE_HOST`` and the mounted token), the files
    named by ``KUBECONFIG`` (read when called, not when the ``kubernetes``
    package was imported), then ``~/.kube/config``. Which one was used is
    logged at INFO.

    Args:
        kubeconfig: Path to a kubeconfig file.

    Raises:
        kubernetes.config.ConfigException: The named kubeconfig does not exist
            or is unusable, or none of the three sources is available; the
            message says which.
    """
    configuration = k8s_client.Configuration()
    if kubeconfig:
        if not os.path.exists(os.path.expanduser(kubeconfig)):
            raise k8s_config.ConfigException("no kubeconfig at %s" % kubeconfig)
        k8s_config.load_kube_config(config_file=os.path.expanduser(kubeconfig), client_configuration=configuration)
        logger.info("Kubernetes configuration: kubeconfig %s (--kubeconfig)", kubeconfig)
        return configuration
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)
    except k8s_config.ConfigException as exc:
        logger.debug("not in a cluster: %s", exc)
    else:
        logger.info("Kubernetes configuration: in-cluster service account")
        return configuration
    env = os.environ.get("KUBECONFIG", "")
    if env.strip(os.pathsep):
        k8s_config.load_kube_config(config_file=env, client_configuration=configuration)
        logger.info("Kubernetes configuration: kubeconfig %s (KUBECONFIG)", env)
        return configuration
    default = os.path.expanduser("~/.kube/config")
    if os.path.exists(default):
        k8s_config.load_kube_config(config_file=default, client_configuration=configuration)
        logger.info("Kubernetes configuration: kubeconfig %s", default)
        return configuration
    raise k8s_config.ConfigException(
        "no Kubernetes configuration: not running in a cluster, KUBECONFIG is not set and there is no %s; "
        "pass --kubeconfig PATH" % default
    )
