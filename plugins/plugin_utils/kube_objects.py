# -*- coding: utf-8 -*-
# Copyright: (c) 2026, MLOps platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes objects for every provider: kubeconfig (server, minify), Nodes (names,
addresses) and IngressClasses.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.mlops.mlflow_k8s.plugins.plugin_utils.parsing import ParseError, load_json


def kubeconfig_server(kubeconfig, context=""):
    """The API server URL of ``context`` (``''``: current-context) in a kubeconfig dict."""
    if not isinstance(kubeconfig, dict):
        raise ParseError("kubeconfig is not a mapping")
    name = context or kubeconfig.get("current-context") or ""
    contexts = {c.get("name"): c.get("context") or {} for c in kubeconfig.get("contexts") or []}
    if not name:
        if len(contexts) != 1:
            raise ParseError("kubeconfig has no current-context and %d contexts" % len(contexts))
        name = next(iter(contexts))
    if name not in contexts:
        raise ParseError("kubeconfig has no context %r (it has %s)" % (name, ", ".join(sorted(contexts)) or "none"))
    cluster_name = contexts[name].get("cluster")
    for cluster in kubeconfig.get("clusters") or []:
        if cluster.get("name") == cluster_name:
            server = (cluster.get("cluster") or {}).get("server")
            if not server:
                raise ParseError("cluster %r in kubeconfig has no server" % cluster_name)
            return server
    raise ParseError("context %r names cluster %r, which the kubeconfig does not have" % (name, cluster_name))


def kubeconfig_set_server(kubeconfig, server, context=""):
    """A copy of ``kubeconfig`` whose cluster (of ``context``) points at ``server``."""
    kubeconfig_server(kubeconfig, context)  # validates
    name = context or kubeconfig.get("current-context") or kubeconfig["contexts"][0]["name"]
    cluster_name = next(c["context"]["cluster"] for c in kubeconfig["contexts"] if c.get("name") == name)
    result = json.loads(json.dumps(kubeconfig))
    for cluster in result["clusters"]:
        if cluster.get("name") == cluster_name:
            cluster["cluster"]["server"] = server
    return result


def kubeconfig_minify(kubeconfig, context):
    """A kubeconfig holding only ``context`` (made current), its cluster and its user, as
    ``kubectl config view --minify --flatten`` would print it when the certificates are
    embedded. File references (``certificate-authority``, ``client-key``) are an error:
    the file would not exist on the controller (start minikube with ``--embed-certs``)."""
    if not isinstance(kubeconfig, dict):
        raise ParseError("kubeconfig is not a mapping")
    ctx = next((c for c in kubeconfig.get("contexts") or [] if c.get("name") == context), None)
    if ctx is None:
        names = ", ".join(sorted(c.get("name", "") for c in kubeconfig.get("contexts") or [])) or "none"
        raise ParseError("kubeconfig has no context %r (it has %s)" % (context, names))
    cluster = next(
        (c for c in kubeconfig.get("clusters") or [] if c.get("name") == ctx["context"].get("cluster")), None
    )
    user = next((u for u in kubeconfig.get("users") or [] if u.get("name") == ctx["context"].get("user")), None)
    if cluster is None or user is None:
        raise ParseError("context %r names a cluster or user the kubeconfig does not have" % context)
    for owner, entry, keys in (
        ("cluster", cluster.get("cluster") or {}, ("certificate-authority",)),
        ("user", user.get("user") or {}, ("client-certificate", "client-key")),
    ):
        for key in keys:
            if entry.get(key):
                raise ParseError(
                    "the %s of context %r refers to the file %s; embed the certificates (--embed-certs)"
                    % (owner, context, entry[key])
                )
    return json.loads(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "preferences": {},
                "clusters": [cluster],
                "users": [user],
                "contexts": [ctx],
                "current-context": context,
            }
        )
    )


def server_is_loopback(server):
    host = re.sub(r"^[a-z]+://", "", str(server)).split("/", 1)[0]
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    host = host.strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def node_names(nodes):
    """Names of Node objects (dicts as kubernetes.core.k8s_info returns them), sorted."""
    return sorted(n.get("metadata", {}).get("name") for n in nodes or [] if n.get("metadata", {}).get("name"))


def node_addresses(nodes, preference=("ExternalIP", "InternalIP", "Hostname")):
    """One address per node (sorted by node name): the first address type of
    ``preference`` the node reports."""
    result = []
    for node in sorted(nodes or [], key=lambda n: n.get("metadata", {}).get("name", "")):
        by_type = {}
        for address in (node.get("status") or {}).get("addresses") or []:
            by_type.setdefault(address.get("type"), address.get("address"))
        chosen = next((by_type[t] for t in preference if by_type.get(t)), None)
        if chosen is None:
            raise ParseError(
                "node %s reports no address of type %s" % (node.get("metadata", {}).get("name"), ", ".join(preference))
            )
        result.append(chosen)
    return result


def ingress_class(classes, preferred=""):
    """The IngressClass to use: ``preferred`` when the cluster serves it (an error if it
    does not), else the one annotated as default, else the only one, else ``''``.

    MicroK8s' ingress addon creates ``public`` (the default) and ``nginx``; minikube's
    creates ``nginx`` (the default)."""
    names = sorted(c.get("metadata", {}).get("name") for c in classes or [])
    if preferred:
        if preferred not in names:
            raise ParseError(
                "IngressClass %r does not exist (the cluster has: %s)" % (preferred, ", ".join(names) or "none")
            )
        return preferred
    defaults = sorted(
        c["metadata"]["name"]
        for c in classes or []
        if (c.get("metadata", {}).get("annotations") or {}).get("ingressclass.kubernetes.io/is-default-class") == "true"
    )
    if defaults:
        return defaults[0]
    if len(names) == 1:
        return names[0]
    return ""


POD_SECURITY_LEVELS = ("privileged", "baseline", "restricted")


def pod_security_labels(level, version="latest"):
    """The Pod Security admission labels of a namespace: ``level`` enforced, warned about and
    audited, each at ``version`` (``latest`` or a Kubernetes minor such as ``v1.32``)."""
    if level not in POD_SECURITY_LEVELS:
        raise ParseError("level %r is not one of %s" % (level, ", ".join(POD_SECURITY_LEVELS)))
    if not re.match(r"^(latest|v1\.[0-9]+)$", str(version)):
        raise ParseError("version %r is neither latest nor a Kubernetes minor such as v1.32" % (version,))
    labels = {}
    for mode in ("enforce", "warn", "audit"):
        labels["pod-security.kubernetes.io/" + mode] = level
        labels["pod-security.kubernetes.io/%s-version" % mode] = str(version)
    return labels


def parse_kubectl_nodes(text):
    """Node names from ``kubectl get nodes -o json`` (what ``microk8s kubectl`` prints)."""
    data = load_json(text, "kubectl get nodes")
    return node_names(data.get("items") if isinstance(data, dict) else [])
