# -*- coding: utf-8 -*-
# Copyright: (c) 2026, MLOps platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The preflight decision: from what a node reports to the list of every problem.

The role gathers raw state (facts, /proc files, stat results, reachability answers) and
hands it here as one dict; this returns every problem at once, each a sentence naming the
threshold variable to change or the thing to fix.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.mlops.mlflow_k8s.plugins.plugin_utils.proc import (
    parse_proc_modules,
    parse_proc_net_tcp,
    parse_proc_swaps,
)


def _version_tuple(value):
    parts = []
    for part in str(value).split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if digits == "":
            break
        parts.append(int(digits))
    return tuple(parts)


def mount_for(path, mounts):
    """The mount (from ansible_mounts) holding ``path``: the longest mount point prefix."""
    path = os.path.normpath(path)
    best = None
    for mount in mounts or []:
        point = os.path.normpath(mount.get("mount", ""))
        inside = path == point or path.startswith(point.rstrip("/") + "/") or point == "/"
        if inside and (best is None or len(point) > len(os.path.normpath(best["mount"]))):
            best = mount
    return best


def os_problems(data, supported):
    """``supported`` maps a distribution name (ansible_distribution) to its oldest
    supported version."""
    distribution = data.get("distribution", "")
    version = data.get("distribution_version", "")
    if distribution not in supported:
        return [
            "OS %s %s is not supported by %s (supported: %s; preflight_supported_os)"
            % (
                distribution,
                version,
                data.get("provider", "?"),
                ", ".join("%s >= %s" % (k, v) for k, v in sorted(supported.items())),
            )
        ]
    minimum = str(supported[distribution])
    if _version_tuple(version) < _version_tuple(minimum):
        return [
            "OS %s %s is older than %s %s, the oldest %s supports (preflight_supported_os)"
            % (distribution, version, distribution, minimum, data.get("provider", "?"))
        ]
    return []


def systemd_runs(data):
    """Whether the node runs systemd as PID 1 (what sd_booted() checks: /run/systemd/system)."""
    return bool(data.get("run_systemd_system")) or str(data.get("pid1_comm") or "").strip() == "systemd"


def evaluate(data):
    """Every problem of one node, as a list of sentences (empty: the node is fit)."""
    problems = []
    checks = set(data.get("checks") or [])

    if "os" in checks:
        problems.extend(os_problems(data, data.get("supported_os") or {}))

    if "cpu" in checks and int(data.get("cpus") or 0) < int(data["min_cpus"]):
        problems.append("%s CPU(s), %s needed (preflight_min_cpus)" % (data.get("cpus"), data["min_cpus"]))

    if "memory" in checks and int(data.get("memory_mb") or 0) < int(data["min_memory_mb"]):
        problems.append(
            "%s MB memory, %s MB needed (preflight_min_memory_mb)" % (data.get("memory_mb"), data["min_memory_mb"])
        )

    if "disk" in checks:
        for requirement in data.get("disk_requirements") or []:
            mount = mount_for(requirement["path"], data.get("mounts"))
            if mount is None:
                problems.append("no mounted filesystem holds %s (preflight_disk_requirements)" % requirement["path"])
                continue
            free_mb = int(mount.get("size_available", 0)) // (1024 * 1024)
            if free_mb < int(requirement["min_free_mb"]):
                problems.append(
                    "%s MB free on %s (mount %s), %s MB needed (preflight_disk_requirements)"
                    % (free_mb, requirement["path"], mount.get("mount"), requirement["min_free_mb"])
                )

    if "swap" in checks:
        swaps = parse_proc_swaps(data.get("proc_swaps", ""))
        if swaps:
            problems.append(
                "swap is on (%s); the kubelet of minikube's none driver refuses to start with swap: "
                "run 'swapoff -a' and remove it from /etc/fstab, or set minikube_driver: docker"
                % ", ".join(s["device"] for s in swaps)
            )

    if "systemd" in checks and not systemd_runs(data):
        problems.append(
            "PID 1 is %s, not systemd (no /run/systemd/system): MicroK8s is a snap, and snapd needs systemd; "
            "boot the node with systemd, or choose another cluster_provider (minikube, existing)"
            % (str(data.get("pid1_comm") or "unknown").strip() or "unknown")
        )

    if "snapd" in checks:
        if not data.get("snap_command") and not data.get("install_snapd"):
            problems.append(
                "snapd is not installed (no snap command) and microk8s_install_snapd is false: "
                "set microk8s_install_snapd: true, or install snapd"
            )
        elif data.get("snap_command") and systemd_runs(data) and not data.get("snapd_socket"):
            problems.append(
                "snapd is installed but not running (no %s): start it (systemctl enable --now snapd.socket), "
                "or set microk8s_install_snapd: true to let the role install and start it"
                % data.get("snapd_socket_path", "/run/snapd.socket")
            )

    if "docker" in checks and not data.get("docker_socket_exists"):
        problems.append(
            "no Docker engine: %s does not exist (minikube's docker driver needs one; "
            "preflight_docker_socket, or minikube_driver: none)" % data.get("docker_socket", "/var/run/docker.sock")
        )

    if "ports" in checks:
        listening = set(parse_proc_net_tcp(data.get("proc_net_tcp", "")))
        listening.update(parse_proc_net_tcp(data.get("proc_net_tcp6", "")))
        for port in data.get("required_ports") or []:
            if int(port["port"]) in listening:
                problems.append(
                    "TCP port %s (%s) is already in use: stop what listens on it (ports checked: "
                    "preflight_provider_ports, preflight_ingress_ports, preflight_extra_ports)"
                    % (port["port"], port.get("what", ""))
                )

    if "kernel_modules" in checks:
        available = set(parse_proc_modules(data.get("proc_modules", "")))
        available.update(parse_proc_modules(data.get("modules_builtin", "")))
        available.update(m.replace("-", "_") for m in data.get("modules_loadable") or [])
        for module in data.get("required_modules") or []:
            if module.replace("-", "_") not in available:
                problems.append(
                    "kernel module %s is neither loaded, built in, nor loadable (Longhorn needs it; "
                    "preflight_longhorn_kernel_modules)" % module
                )

    if "packages" in checks:
        installed = set(data.get("packages_installed") or [])
        for package in data.get("required_packages") or []:
            if package not in installed:
                problems.append(
                    "package %s is not installed (Longhorn needs it; preflight_longhorn_packages)" % package
                )

    if "sources" in checks:
        for source in data.get("sources") or []:
            if not source.get("ok"):
                problems.append("install source %s: %s" % (source.get("name"), source.get("detail", "unreachable")))

    return problems


def report(problems_by_host):
    """One message for every host's problems (hosts without problems left out)."""
    lines = []
    count = 0
    for host in sorted(problems_by_host):
        problems = problems_by_host[host] or []
        count += len(problems)
        for problem in problems:
            lines.append("%s: %s" % (host, problem))
    if not lines:
        return ""
    return "preflight found %d problem(s):\n" % count + "\n".join("- " + line for line in lines)


def file_source(result):
    """A source entry from the result of ``stat`` looped over ``{name, file}`` items."""
    item = result.get("item") or {}
    stat = result.get("stat") or {}
    if not item.get("file"):
        return {"name": item.get("name"), "ok": False, "detail": "no file given"}
    if not stat.get("exists"):
        return {"name": item.get("name"), "ok": False, "detail": "%s does not exist on the controller" % item["file"]}
    if not stat.get("isreg", True) or int(stat.get("size", 1)) == 0:
        return {"name": item.get("name"), "ok": False, "detail": "%s is not a regular, non-empty file" % item["file"]}
    return {"name": item.get("name"), "ok": True, "detail": item["file"]}


def url_source(result):
    """A source entry from the result of ``uri`` looped over ``{name, url}`` items: any
    HTTP answer means reachable; no answer (status -1) means not."""
    item = result.get("item") or {}
    status = int(result.get("status", -1) or -1)
    if status > 0:
        return {"name": item.get("name"), "ok": True, "detail": "%s answered %d" % (item.get("url"), status)}
    instead = item.get("airgapped_by")
    return {
        "name": item.get("name"),
        "ok": False,
        "detail": "%s is unreachable from the node (%s); %s (docs/airgapped.md)"
        % (
            item.get("url"),
            result.get("msg", "no answer"),
            ("set %s to the files brought for an air-gapped install" % " and ".join(instead))
            if instead
            else "bring the files for an air-gapped install",
        ),
    }
