# -*- coding: utf-8 -*-
# Copyright: (c) 2026, MLOps platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parsers for what MicroK8s, minikube, kubectl and the kernel print, and the decisions
the cluster roles take from them.

Everything here is pure: text or dicts in, dicts or lists out, so the roles' filters
(plugins/filter/microk8s.py, minikube.py, cluster.py) stay thin and the unit tests run on
outputs recorded in the tools' documented formats (tests/unit/fixtures/cluster/).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re


class ParseError(ValueError):
    """The text is not in the format the parser expects."""


def _scalar(value):
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    lowered = value.lower()
    if lowered in ("true", "yes"):
        return True
    if lowered in ("false", "no"):
        return False
    return value


# ---------------------------------------------------------------------------------------
# MicroK8s
# ---------------------------------------------------------------------------------------

_ITEM = re.compile(r"^(?P<indent>\s*)-\s+(?P<key>[A-Za-z_-]+):\s?(?P<value>.*)$")
_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_-]+):\s?(?P<value>.*)$")


def parse_microk8s_status(text):
    """Parse ``microk8s status --format yaml``.

    The output is printed line by line by MicroK8s' status.py, not by a YAML library: an
    addon description may contain ``: `` and would break ``yaml.safe_load``. So this reads
    it line by line. Returns::

        {"running": bool, "message": str,
         "high_availability": {"enabled": bool, "nodes": [{"address": .., "role": ..}]},
         "addons": {name: {"status": "enabled"|"disabled", "repository": .., "version": ..,
                           "description": ..}}}
    """
    if not isinstance(text, str):
        raise ParseError("microk8s status output must be a string")
    result = {
        "running": None,
        "message": "",
        "high_availability": {"enabled": False, "nodes": []},
        "addons": {},
    }
    section = None
    current = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            key = line.split(":", 1)[0].strip()
            section = key
            current = None
            if key not in ("microk8s", "high-availability", "addons"):
                section = None
            continue
        item = _ITEM.match(line)
        pair = item or _KEY.match(line)
        if pair is None:
            continue
        key, value = pair.group("key"), pair.group("value")
        if key == "message" and not item:
            # printed with three spaces of indent after whichever section came last
            result["message"] = value.strip()
        elif section == "microk8s":
            if key == "running":
                result["running"] = _scalar(value) is True
        elif section == "high-availability":
            ha = result["high_availability"]
            if item:
                current = {key: _scalar(value)}
                ha["nodes"].append(current)
            elif key == "enabled":
                ha["enabled"] = _scalar(value) is True
            elif key != "nodes" and current is not None:
                current[key] = _scalar(value)
        elif section == "addons":
            if item:
                if key != "name":
                    raise ParseError("addon entry does not start with its name: %r" % line)
                current = {"name": value.strip()}
            elif current is not None:
                current[key] = value.strip() if key == "description" else _scalar(value)
                if key == "status":
                    result["addons"][current["name"]] = current
    for name, addon in list(result["addons"].items()):
        result["addons"][name] = {k: v for k, v in addon.items() if k != "name"}
    if result["running"] is None:
        raise ParseError("no 'microk8s: running:' line: not the output of 'microk8s status --format yaml'")
    return result


def normalise_addons(addons):
    """Turn the user's addon list into ``[{"name": .., "args": [..]}]``.

    An entry is a name (``dns``), a name with MicroK8s' colon argument
    (``metallb:10.0.0.100-10.0.0.120``), or a dict ``{name: .., args: [..]}``.
    A later entry for the same addon replaces an earlier one.
    """
    seen = {}
    order = []
    for entry in addons or []:
        if isinstance(entry, str):
            name, sep, arg = entry.partition(":")
            spec = {"name": name.strip(), "args": [arg] if sep else []}
        elif isinstance(entry, dict) and entry.get("name"):
            args = entry.get("args") or []
            if isinstance(args, str):
                args = [args]
            spec = {"name": str(entry["name"]).strip(), "args": [str(a) for a in args]}
        else:
            raise ParseError("addon entries are names or {name, args} dicts, got %r" % (entry,))
        if not spec["name"]:
            raise ParseError("addon entry without a name: %r" % (entry,))
        if spec["name"] not in seen:
            order.append(spec["name"])
        seen[spec["name"]] = spec
    return [seen[name] for name in order]


def microk8s_addons_to_enable(status, wanted):
    """The addons of ``wanted`` that ``status`` (parsed, or raw text) does not show enabled.

    An addon MicroK8s does not know at all is an error: enabling it would fail anyway,
    and the message names it before anything runs.
    """
    if isinstance(status, str):
        status = parse_microk8s_status(status)
    if not status["running"]:
        raise ParseError("MicroK8s is not running: %s" % (status.get("message") or "no message"))
    known = status["addons"]
    unknown = [a["name"] for a in normalise_addons(wanted) if known and a["name"] not in known]
    if unknown:
        raise ParseError(
            "MicroK8s does not know the addon(s) %s; known: %s" % (", ".join(unknown), ", ".join(sorted(known)))
        )
    return [a for a in normalise_addons(wanted) if known.get(a["name"], {}).get("status") != "enabled"]


_JOIN = re.compile(r"microk8s join\s+(?P<url>\S+:\d+/[0-9A-Za-z]+/[0-9A-Za-z]+)")


def parse_microk8s_add_node(text):
    """Parse ``microk8s add-node`` output: ``--format json``/``yaml`` or the pretty text.

    Returns ``{"token": "<token>/<check>", "urls": ["ip:port/token/check", ...]}`` with the
    default interface's URL first when the pretty format names it.
    """
    if not isinstance(text, str):
        raise ParseError("add-node output must be a string")
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise ParseError("add-node JSON output does not parse: %s" % exc) from exc
        if not isinstance(data, dict) or not data.get("urls"):
            raise ParseError("add-node JSON output has no urls")
        return {"token": data.get("token", ""), "urls": list(data["urls"])}
    if stripped.startswith("token:") or stripped.startswith("urls:"):
        urls = [line.strip()[2:].strip() for line in stripped.splitlines() if line.strip().startswith("- ")]
        token = ""
        for line in stripped.splitlines():
            if line.startswith("token:"):
                token = _scalar(line.split(":", 1)[1])
        if not urls:
            raise ParseError("add-node YAML output has no urls")
        return {"token": token, "urls": urls}
    urls = []
    for match in _JOIN.finditer(text):
        if match.group("url") not in urls:
            urls.append(match.group("url"))
    if not urls:
        raise ParseError("no 'microk8s join <address>:<port>/<token>/<check>' line in add-node output")
    token = urls[0].split("/", 1)[1]
    return {"token": token, "urls": urls}


def microk8s_join_url(add_node, address=None, strict=True):
    """The join URL for ``address`` (the control-plane address the joining node reaches),
    or the first one (the default interface's). ``add_node`` is parsed or raw add-node
    output. With ``strict`` false, an address add-node does not offer falls back to the
    first URL instead of failing."""
    if isinstance(add_node, str):
        add_node = parse_microk8s_add_node(add_node)
    if address:
        for url in add_node["urls"]:
            host = url.split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
            if host == address:
                return url
        if strict:
            raise ParseError(
                "add-node offers no join address %s (it offers %s)"
                % (address, ", ".join(u.split("/", 1)[0] for u in add_node["urls"]))
            )
    return add_node["urls"][0]


# ---------------------------------------------------------------------------------------
# minikube
# ---------------------------------------------------------------------------------------


def _load_json(text, what):
    if isinstance(text, (dict, list)):
        return text
    stripped = (text or "").strip()
    # minikube prints warnings (e.g. a newer release is available) before the JSON on
    # some versions: read from the first bracket.
    starts = [i for i in (stripped.find("{"), stripped.find("[")) if i >= 0]
    if not starts:
        raise ParseError("%s: no JSON in output" % what)
    try:
        return json.loads(stripped[min(starts) :])
    except ValueError as exc:
        raise ParseError("%s: JSON does not parse: %s" % (what, exc)) from exc


def parse_minikube_status(text):
    """Parse ``minikube status -o json`` (one node: an object; several: a list).

    Returns ``{"exists": bool, "running": bool, "nodes": [{name, host, kubelet, apiserver,
    kubeconfig, worker}]}``; ``running`` is true when every node's host and kubelet run and
    the control plane's API server runs.
    """
    data = _load_json(text, "minikube status")
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
    data = _load_json(text, "minikube profile list")
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
    data = _load_json(text, "minikube addons list")
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


def parse_sha256_file(text, filename=None):
    """Read a checksum from a ``.sha256`` file: a bare hex digest (minikube, kubectl
    releases) or ``<digest>  <filename>`` lines (sha256sum format)."""
    digests = []
    for line in (text or "").splitlines():
        cells = line.split()
        if not cells:
            continue
        digest = cells[0].lower()
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            continue
        name = cells[1].lstrip("*") if len(cells) > 1 else None
        if filename is None or name is None or name.rsplit("/", 1)[-1] == filename:
            digests.append(digest)
    if not digests:
        raise ParseError("no sha256 digest%s in checksum file" % (" for " + filename if filename else ""))
    return digests[0]


# ---------------------------------------------------------------------------------------
# Kubernetes objects (kubeconfig, Nodes, IngressClasses), for every provider
# ---------------------------------------------------------------------------------------


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


def parse_kubectl_nodes(text):
    """Node names from ``kubectl get nodes -o json`` (what ``microk8s kubectl`` prints)."""
    data = _load_json(text, "kubectl get nodes")
    return node_names(data.get("items") if isinstance(data, dict) else [])


# ---------------------------------------------------------------------------------------
# Kernel state for preflight
# ---------------------------------------------------------------------------------------

_TCP_LISTEN = "0A"


def parse_proc_net_tcp(text):
    """Listening TCP ports from /proc/net/tcp or /proc/net/tcp6 (sorted, unique)."""
    ports = set()
    for line in (text or "").splitlines()[1:]:
        cells = line.split()
        if len(cells) < 4 or ":" not in cells[1]:
            continue
        if cells[3] == _TCP_LISTEN:
            ports.add(int(cells[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def parse_proc_swaps(text):
    """Active swap devices from /proc/swaps: ``[{"device", "size_kb"}]``."""
    result = []
    for line in (text or "").splitlines()[1:]:
        cells = line.split()
        if len(cells) >= 3:
            result.append({"device": cells[0], "size_kb": int(cells[2])})
    return result


def parse_proc_modules(text):
    """Loaded module names from /proc/modules, or built-in ones from modules.builtin
    (``kernel/drivers/.../iscsi_tcp.ko`` lines)."""
    names = set()
    for line in (text or "").splitlines():
        cells = line.split()
        if not cells:
            continue
        word = cells[0]
        if "/" in word or word.endswith((".ko", ".ko.xz", ".ko.zst", ".ko.gz")):
            word = word.rsplit("/", 1)[-1].split(".ko", 1)[0]
        names.add(word.replace("-", "_"))
    return sorted(names)
