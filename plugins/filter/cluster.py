# -*- coding: utf-8 -*-
# Copyright: (c) 2026, MLOps platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the preflight, cluster, microk8s and minikube roles read command output with.

The logic is in module_utils/cluster_parse.py and module_utils/preflight.py; these are
the names the roles call them by (``mlops.mlflow_k8s.<name>``). A parse error becomes an
AnsibleFilterError naming what was being read.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import cluster_parse, preflight


def _wrap(function):
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except cluster_parse.ParseError as exc:
            raise AnsibleFilterError("%s: %s" % (function.__name__, exc)) from exc

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


FILTERS = {
    "microk8s_status": cluster_parse.parse_microk8s_status,
    "microk8s_addons_to_enable": cluster_parse.microk8s_addons_to_enable,
    "microk8s_normalise_addons": cluster_parse.normalise_addons,
    "microk8s_add_node": cluster_parse.parse_microk8s_add_node,
    "microk8s_join_url": cluster_parse.microk8s_join_url,
    "minikube_status": cluster_parse.parse_minikube_status,
    "minikube_profiles": cluster_parse.parse_minikube_profiles,
    "minikube_settings_diff": cluster_parse.minikube_settings_diff,
    "minikube_addons": cluster_parse.parse_minikube_addons,
    "minikube_addons_to_enable": cluster_parse.minikube_addons_to_enable,
    "sha256_from_file": cluster_parse.parse_sha256_file,
    "kubeconfig_server": cluster_parse.kubeconfig_server,
    "kubeconfig_set_server": cluster_parse.kubeconfig_set_server,
    "kubeconfig_minify": cluster_parse.kubeconfig_minify,
    "server_is_loopback": cluster_parse.server_is_loopback,
    "kubectl_node_names": cluster_parse.parse_kubectl_nodes,
    "k8s_node_names": cluster_parse.node_names,
    "k8s_node_addresses": cluster_parse.node_addresses,
    "k8s_ingress_class": cluster_parse.ingress_class,
    "preflight_problems": preflight.evaluate,
    "preflight_report": preflight.report,
    "preflight_file_source": preflight.file_source,
    "preflight_url_source": preflight.url_source,
}


class FilterModule(object):
    """Parsers of MicroK8s, minikube, kubectl and /proc output."""

    def filters(self):
        return {name: _wrap(function) for name, function in FILTERS.items()}
