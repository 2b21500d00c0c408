# -*- coding: utf-8 -*-
# Copyright: (c) 2026, MLOps platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the preflight, cluster, microk8s and minikube roles read command output with.

The logic is in plugins/plugin_utils/ (controller-side only): microk8s.py, minikube.py,
kube_objects.py, parsing.py, proc.py (through preflight.py) and preflight.py. These are
the names the roles call them by (``mlops.mlflow_k8s.<name>``); each is documented in
``plugins/filter/<name>.yml`` (``ansible-doc -t filter mlops.mlflow_k8s.<name>``). A parse
error becomes an AnsibleFilterError naming the filter.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.mlops.mlflow_k8s.plugins.plugin_utils import (
    kube_objects,
    microk8s,
    minikube,
    parsing,
    preflight,
)


def _wrap(name, function):
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except parsing.ParseError as exc:
            raise AnsibleFilterError("%s: %s" % (name, exc)) from exc

    wrapper.__name__ = name
    wrapper.__doc__ = function.__doc__
    return wrapper


FILTERS = {
    "microk8s_status": microk8s.parse_microk8s_status,
    "microk8s_addons_to_enable": microk8s.microk8s_addons_to_enable,
    "microk8s_normalise_addons": microk8s.normalise_addons,
    "microk8s_add_node": microk8s.parse_microk8s_add_node,
    "microk8s_join_url": microk8s.microk8s_join_url,
    "minikube_status": minikube.parse_minikube_status,
    "minikube_profiles": minikube.parse_minikube_profiles,
    "minikube_settings_diff": minikube.minikube_settings_diff,
    "minikube_addons": minikube.parse_minikube_addons,
    "minikube_addons_to_enable": minikube.minikube_addons_to_enable,
    "sha256_from_file": parsing.parse_sha256_file,
    "kubeconfig_server": kube_objects.kubeconfig_server,
    "kubeconfig_set_server": kube_objects.kubeconfig_set_server,
    "kubeconfig_minify": kube_objects.kubeconfig_minify,
    "server_is_loopback": kube_objects.server_is_loopback,
    "pod_security_labels": kube_objects.pod_security_labels,
    "kubectl_node_names": kube_objects.parse_kubectl_nodes,
    "k8s_node_names": kube_objects.node_names,
    "k8s_node_addresses": kube_objects.node_addresses,
    "k8s_ingress_class": kube_objects.ingress_class,
    "preflight_problems": preflight.evaluate,
    "preflight_report": preflight.report,
    "preflight_file_source": preflight.file_source,
    "preflight_url_source": preflight.url_source,
}


class FilterModule(object):
    """Parsers of MicroK8s, minikube, kubectl and /proc output, and the preflight decision."""

    def filters(self):
        return {name: _wrap(name, function) for name, function in FILTERS.items()}
