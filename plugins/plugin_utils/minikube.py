# -*- coding: utf-8 -*-
# Copyright: (c) 2026, MLOps platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""minikube: ``minikube status``, ``profile list`` and ``addons list`` JSON, and what
differs from a running profile.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.mlops.mlflow_k8s.plugins.plugin_utils.parsing import ParseError, load_json


def parse_minikube_status(text):
    """Parse ``minikube status -o json`` (one node: an object; several: a list).

    Returns ``{"exists": bool, "running": bool, "nodes": [{name, host, kubelet, apiserver,
    kubeconfig, worker}]}``; ``running`` is true when every node's host and kubelet run and
    the control plane's API server runs.
    """
    data = load_json(text, "minikube status")
    nodes = data if isinstance(data, list) else [data]
    parsed = []
    for node in nodes:
        if not isinstance(node, dict) or "Host" not in node:
            raise ParseError("minikube status: an entry has no 'Host': %r" % (node,))
        parsed.append(
            {
                "name": node.get("Name", ""),
                "host": node.get("Host", ""),
                "kubelet": node.get("Kubelet", ""),
                "apiserver": node.get("APIServer", ""),
                "kubeconfig": node.get("Kubeconfig", ""),
                "worker": bool(node.get("Worker", False)),
            }
        )
    exists = any(n["host"] not in ("Nonexistent", "") for n in parsed)
    running = bool(parsed) and all(
        n["host"] == "Running" and n["kubelet"] == "Running" and (n["worker"] or n["apiserver"] == "Running")
        for n in parsed
    )
    return {"exists": exists, "running": running, "nodes": parsed}


def parse_minikube_profiles(text):
    """Parse ``minikube profile list -o json`` into ``{profile name: settings}`` with the
    settings the role compares: driver, cpus, memory (MB), kubernetes_version,
    container_runtime, nodes, status, ip."""
    data = load_json(text, "minikube profile list")
    if not isinstance(data, dict) or "valid" not in data:
        raise ParseError("minikube profile list: no 'valid' list")
    profiles = {}
    for profile in data.get("valid") or []:
        config = profile.get("Config") or {}
        k8s = config.get("KubernetesConfig") or {}
        nodes = config.get("Nodes") or []
        control = next((n for n in nodes if n.get("ControlPlane")), nodes[0] if nodes else {})
        profiles[profile.get("Name")] = {
            "status": profile.get("Status", ""),
            "driver": config.get("Driver", ""),
            "cpus": config.get("CPUs"),
            "memory": config.get("Memory"),
            "disk_size": config.get("DiskSize"),
            "kubernetes_version": k8s.get("KubernetesVersion", ""),
            "container_runtime": k8s.get("ContainerRuntime", ""),
            "nodes": len(nodes),
            "ip": control.get("IP", ""),
            "port": control.get("Port"),
        }
    return profiles


def _version(value):
    value = str(value or "").strip()
    return value if not value or value.startswith("v") else "v" + value


def minikube_settings_diff(current, wanted):
    """What differs between a profile's recorded settings and the wanted ones.

    ``wanted`` has the keys of parse_minikube_profiles' values that the user pins (a key
    with value None or '' is not compared). Returns a list of human-readable differences,
    empty when they match.
    """
    differences = []
    for key in ("driver", "cpus", "memory", "disk_size", "kubernetes_version", "container_runtime", "nodes"):
        want = wanted.get(key)
        if want in (None, ""):
            continue
        have = current.get(key)
        if key == "kubernetes_version":
            same = _version(have) == _version(want)
        elif key in ("cpus", "memory", "disk_size", "nodes"):
            try:
                same = int(have) == int(want)
            except (TypeError, ValueError):
                same = False
        else:
            same = str(have) == str(want)
        if not same:
            differences.append("%s is %s, wanted %s" % (key, have, want))
    return differences


def parse_minikube_addons(text):
    """Parse ``minikube addons list -o json`` into ``{addon: "enabled"|"disabled"}``."""
    data = load_json(text, "minikube addons list")
    if not isinstance(data, dict):
        raise ParseError("minikube addons list: not an object")
    return {name: (entry or {}).get("Status", "") for name, entry in data.items()}


def minikube_addons_to_enable(addons, wanted):
    """The names in ``wanted`` that ``addons`` (parsed or raw) does not show enabled."""
    if not isinstance(addons, dict) or any(not isinstance(v, str) for v in addons.values()):
        addons = parse_minikube_addons(addons)
    unknown = [name for name in wanted if addons and name not in addons]
    if unknown:
        raise ParseError("minikube does not know the addon(s) %s" % ", ".join(unknown))
    result = []
    for name in wanted:
        if addons.get(name) != "enabled" and name not in result:
            result.append(name)
    return result
