# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cluster authentication options, mirroring plugins/module_utils/args_common.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
attributes:
  action_group:
    description:
      - Use C(group/mlops.mlflow_k8s.k8s) in C(module_defaults) to set these options for this module and for
        every module of C(group/kubernetes.core.k8s) at once (the group extends it, see C(meta/runtime.yml)).
    support: full
    membership:
      - mlops.mlflow_k8s.k8s
options:
  kubeconfig:
    description:
      - Path of a kubeconfig file.
      - Without O(kubeconfig) and O(host), the first file of E(KUBECONFIG), then C(~/.kube/config), then the
        in-cluster service account are used.
      - Defaults to E(K8S_AUTH_KUBECONFIG), as the kubernetes.core modules.
    type: path
  context:
    description:
      - Context of the kubeconfig to use. Defaults to the kubeconfig's current context.
      - With mlflow_project_job, C(kube-context) of its C(backend_config) is used when this is not set.
      - Defaults to E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description:
      - URL of the Kubernetes API server, used with O(api_key) instead of a kubeconfig.
      - Defaults to E(K8S_AUTH_HOST).
    type: str
  api_key:
    description:
      - Bearer token for O(host). Defaults to E(K8S_AUTH_API_KEY).
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate. Defaults to E(K8S_AUTH_VERIFY_SSL), then true.
    type: bool
    default: true
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path of a CA bundle to verify the API server's certificate with. Defaults to E(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ssl_ca_cert]
requirements:
  - kubernetes >= 33.1 (Python client)
"""
