# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An ApiClient from kubeconfig/context or host/api_key, and readable cluster errors.

The typed APIs (BatchV1Api, CoreV1Api) are used on that client rather than the dynamic
client: the dynamic client's discovery costs several API requests per module call, and
this module only ever touches Jobs, Pods and Namespaces.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ClusterError

try:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.client.rest import ApiException
    from kubernetes.config.config_exception import ConfigException

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised by the module's missing_required_lib
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = exc
    ApiException = ConfigException = Exception

REQUEST_TIMEOUT = (10, 60)

__all__ = ["ApiException", "REQUEST_TIMEOUT", "api_client", "describe_api_error", "is_api_error"]


def _auth_option(auth):
    return "host" if auth.get("host") else "kubeconfig"


def api_client(auth):
    """Build a kubernetes.client.ApiClient from the shared auth options (never global state)."""
    host = auth.get("host")
    kubeconfig = auth.get("kubeconfig")
    context = auth.get("context")
    configuration = k8s.Configuration()
    try:
        if host and not kubeconfig and not context:
            configuration.host = host
            if auth.get("api_key"):
                configuration.api_key = {"authorization": "Bearer " + auth["api_key"]}
        else:
            path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
            default_path = os.path.expanduser(k8s_config.KUBE_CONFIG_DEFAULT_LOCATION)
            if path and not os.path.exists(path):
                raise ClusterError("kubeconfig", "no kubeconfig file at {0}".format(path))
            if path or os.path.exists(default_path):
                k8s_config.load_kube_config(
                    config_file=path, context=context or None, client_configuration=configuration
                )
            else:
                k8s_config.load_incluster_config(client_configuration=configuration)
            if host:
                configuration.host = host
            if auth.get("api_key"):
                configuration.api_key = {"authorization": "Bearer " + auth["api_key"]}
    except ConfigException as exc:
        option = "context" if context and "context" in str(exc).lower() else "kubeconfig"
        raise ClusterError(option, "cannot load the cluster configuration: {0}".format(exc)) from exc
    if auth.get("validate_certs") is False:
        configuration.verify_ssl = False
    if auth.get("ca_cert"):
        configuration.ssl_ca_cert = auth["ca_cert"]
    return k8s.ApiClient(configuration)


def describe_api_error(exc, auth, action, namespace=None):
    """Turn an ApiException or a connection error into a ClusterError a person can act on."""
    option = _auth_option(auth)
    status = getattr(exc, "status", None)
    if status == 401:
        return ClusterError(
            "api_key" if auth.get("api_key") else option,
            "the cluster refused our credentials (401 Unauthorized) while trying to {0}".format(action),
        )
    if status == 403:
        return ClusterError(
            option,
            "the cluster forbids this (403 Forbidden) while trying to {0}: {1}".format(action, _reason(exc)),
        )
    if status == 404 and namespace:
        return ClusterError("namespace", "namespace {0!r} does not exist".format(namespace))
    if status is not None and status != 0:
        return ClusterError(
            option, "the cluster answered {0} while trying to {1}: {2}".format(status, action, _reason(exc))
        )
    return ClusterError(
        option,
        "cannot reach the Kubernetes API while trying to {0}: {1}".format(action, exc),
    )


def is_api_error(exc):
    """ApiException, or urllib3/socket errors from an unreachable API server."""
    if isinstance(exc, ApiException):
        return True
    module = type(exc).__module__ or ""
    return module.startswith(("urllib3", "socket", "ssl")) or isinstance(exc, (OSError, ConnectionError))


def _reason(exc):
    body = getattr(exc, "body", None)
    if body:
        try:
            import json

            return json.loads(body).get("message") or str(body)
        except (ValueError, AttributeError):
            return str(body)[:300]
    return getattr(exc, "reason", None) or str(exc)
