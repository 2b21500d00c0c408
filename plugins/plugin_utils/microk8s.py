# -*- coding: utf-8 -*-
# Copyright: (c) 2026, MLOps platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MicroK8s: ``microk8s status``, ``microk8s add-node`` output and the addons to enable."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.mlops.mlflow_k8s.plugins.plugin_utils.parsing import ParseError, scalar

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
                result["running"] = scalar(value) is True
        elif section == "high-availability":
            ha = result["high_availability"]
            if item:
                current = {key: scalar(value)}
                ha["nodes"].append(current)
            elif key == "enabled":
                ha["enabled"] = scalar(value) is True
            elif key != "nodes" and current is not None:
                current[key] = scalar(value)
        elif section == "addons":
            if item:
                if key != "name":
                    raise ParseError("addon entry does not start with its name: %r" % line)
                current = {"name": value.strip()}
            elif current is not None:
                current[key] = value.strip() if key == "description" else scalar(value)
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
                token = scalar(line.split(":", 1)[1])
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
