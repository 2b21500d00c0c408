# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cluster authentication options shared by the modules (mirrored by doc_fragments/k8s_auth.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible.module_utils.basic import env_fallback

# The K8S_AUTH_* variables are the ones kubernetes.core's modules read, so one environment serves both.
_AUTH_ARG_SPEC = {
    "kubeconfig": {"type": "path", "fallback": (env_fallback, ["K8S_AUTH_KUBECONFIG"])},
    "context": {"type": "str", "fallback": (env_fallback, ["K8S_AUTH_CONTEXT"])},
    "host": {"type": "str", "fallback": (env_fallback, ["K8S_AUTH_HOST"])},
    "api_key": {"type": "str", "no_log": True, "fallback": (env_fallback, ["K8S_AUTH_API_KEY"])},
    "validate_certs": {
        "type": "bool",
        "default": True,
        "aliases": ["verify_ssl"],
        "fallback": (env_fallback, ["K8S_AUTH_VERIFY_SSL"]),
    },
    "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert"], "fallback": (env_fallback, ["K8S_AUTH_SSL_CA_CERT"])},
}

AUTH_OPTIONS = tuple(sorted(_AUTH_ARG_SPEC))


def auth_argument_spec():
    """A fresh copy of the shared spec (callers may add to it)."""
    return copy.deepcopy(_AUTH_ARG_SPEC)


def auth_params(params):
    """Pick the authentication options out of a module's parameters."""
    return dict((key, params.get(key)) for key in AUTH_OPTIONS)


def tracking_uri_spec():
    """``tracking_uri``, defaulting to MLFLOW_TRACKING_URI: the one server the controller's MLflow credentials go to."""
    return {"type": "str", "fallback": (env_fallback, ["MLFLOW_TRACKING_URI"])}
