# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cluster authentication options shared by the modules (mirrored by doc_fragments/k8s_auth.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

_AUTH_ARG_SPEC = {
    "kubeconfig": {"type": "path"},
    "context": {"type": "str"},
    "host": {"type": "str"},
    "api_key": {"type": "str", "no_log": True},
    "validate_certs": {"type": "bool", "default": True, "aliases": ["verify_ssl"]},
    "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert"]},
}

AUTH_OPTIONS = tuple(sorted(_AUTH_ARG_SPEC))


def auth_argument_spec():
    """A fresh copy of the shared spec (callers may add to it)."""
    return copy.deepcopy(_AUTH_ARG_SPEC)


def auth_params(params):
    """Pick the authentication options out of a module's parameters."""
    return dict((key, params.get(key)) for key in AUTH_OPTIONS)
