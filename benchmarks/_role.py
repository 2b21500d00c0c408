"""The MLflow server exactly as the mlflow_server role renders it, runnable on this machine.

``render_manifests`` runs a real ``ansible-playbook`` that includes the role with
``tasks_from: manifests`` (the file the role applies from) and returns ``mlflow_server_manifests``.
``server_command`` turns the rendered Deployment into the argv and environment of its server
container, resolving every ``secretKeyRef`` from a mapping of real secrets; ``init_command``
does the same for an init container. The benchmark and tests/services use these, so what
they start is what the role deploys. The only change made is the bind address: loopback (or
another local address) instead of ``0.0.0.0``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.harness.playbook import run_playbook

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what the pod binds; replaced by LOOPBACK here

_PLAYBOOK = [
    {
        "name": "Render the mlflow_server role",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Render the role",
                "ansible.builtin.include_role": {"name": "mlops.mlflow_k8s.mlflow_server", "tasks_from": "manifests"},
            },
            {
                "name": "Write the manifests",
                "ansible.builtin.copy": {
                    "content": "{{ {'manifests': mlflow_server_manifests, 'url': mlflow_server_url,"
                    " 'internal_url': mlflow_server_internal_url} | to_json }}",
                    "dest": "{{ render_output }}",
                    "mode": "0600",
                },
            },
        ],
    }
]

Secrets = Mapping[tuple[str, str], str]


class RenderError(RuntimeError):
    pass


def render(role_vars: Mapping[str, Any], timeout: float = 300) -> dict[str, Any]:
    """Render the role with ``role_vars``: {'manifests': [...], 'url': ..., 'internal_url': ...}."""
    with tempfile.TemporaryDirectory(prefix="mlflow-server-render-") as tmp:
        output = Path(tmp) / "out.json"
        result = run_playbook(_PLAYBOOK, extra_vars={**role_vars, "render_output": str(output)}, timeout=timeout)
        if result.rc != 0 or not output.exists():
            raise RenderError(f"rendering the mlflow_server role failed:\n{result.summary()}")
        return json.loads(output.read_text())


def render_manifests(role_vars: Mapping[str, Any]) -> list[dict[str, Any]]:
    return render(role_vars)["manifests"]


def deployment(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return next(m for m in manifests if m["kind"] == "Deployment")


def _container(manifests: list[dict[str, Any]], name: str, init: bool = False) -> dict[str, Any]:
    spec = deployment(manifests)["spec"]["template"]["spec"]
    containers = spec.get("initContainers", []) if init else spec["containers"]
    return next(c for c in containers if c["name"] == name)


def resolve_env(container: Mapping[str, Any], secrets: Secrets) -> dict[str, str]:
    """The container's environment with every secretKeyRef looked up in ``secrets``."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        key = (ref["name"], ref["key"])
        if key not in secrets:
            raise KeyError(f"env {item['name']} needs Secret {ref['name']} key {ref['key']}, not given")
        env[item["name"]] = secrets[key]
    return env


def _executable(name: str) -> str:
    """A container's command word, mapped onto this venv (mlflow, python) or the system (sh)."""
    if (BIN / name).exists():
        return str(BIN / name)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(name)
    return found


def server_command(
    manifests: list[dict[str, Any]], secrets: Secrets, host: str = LOOPBACK
) -> tuple[list[str], dict[str, str]]:
    """argv and environment of the server container, bound to ``host`` (loopback) instead of 0.0.0.0;
    its ConfigMap volumes written where they are mounted (``write_config_map_volumes``)."""
    write_config_map_volumes(manifests)
    container = _container(manifests, "mlflow-server")
    command = [_executable(container["command"][0]), *container["command"][1:]]
    args = [str(a) for a in container.get("args", [])]
    bind = args.index("--host")
    if args[bind + 1] != ALL_INTERFACES:
        raise RenderError(f"the role no longer binds {ALL_INTERFACES}: {args}")
    args[bind + 1] = host
    return command + args, resolve_env(container, secrets)


def server_args_and_env(manifests: list[dict[str, Any]], secrets: Secrets) -> tuple[list[str], dict[str, str]]:
    """The server container's args without ``--host``/``--port`` (for a harness that binds its
    own free loopback port), and its environment with the secrets resolved; its ConfigMap volumes
    written where they are mounted (``write_config_map_volumes``)."""
    write_config_map_volumes(manifests)
    container = _container(manifests, "mlflow-server")
    args = [str(a) for a in container.get("args", [])]
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in ("--host", "--port"):
            skip = True
            continue
        kept.append(arg)
    return kept, resolve_env(container, secrets)


def init_command(manifests: list[dict[str, Any]], name: str, secrets: Secrets) -> tuple[list[str], dict[str, str]]:
    """argv and environment of an init container (``db-upgrade``, ``auth-config``)."""
    container = _container(manifests, name, init=True)
    command = [_executable(container["command"][0]), *container["command"][1:]]
    return command + [str(a) for a in container.get("args", [])], resolve_env(container, secrets)


def base_env(extra: Mapping[str, str]) -> dict[str, str]:
    """A process environment without any MLFLOW_* of the caller, plus ``extra``; the venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    env.update(extra)
    return env


def write_config_map_volumes(manifests: list[dict[str, Any]], container: str = "mlflow-server") -> list[Path]:
    """Write each ConfigMap volume of ``container`` where it is mounted, as the kubelet does: the
    items' files under ``..data/`` (``items[].path`` may have subdirectories), and a symlink for
    each top-level name. The role vars point the mount paths at a temporary directory; the
    ConfigMap's data comes from the rendered manifests. Returns the mount paths."""
    spec = deployment(manifests)["spec"]["template"]["spec"]
    maps = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "ConfigMap"}
    volumes = {v["name"]: v["configMap"] for v in spec.get("volumes", []) if "configMap" in v}
    written = []
    for mount in _container(manifests, container)["volumeMounts"]:
        source = volumes.get(mount["name"])
        if source is None:
            continue
        data = maps[source["name"]]["data"]
        items = source.get("items") or [{"key": key, "path": key} for key in data]
        root = Path(mount["mountPath"])
        payload = root / "..data"
        for item in items:
            target = payload / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[item["key"]])
        for top in {Path(item["path"]).parts[0] for item in items}:
            link = root / top
            if not link.is_symlink():
                link.symlink_to(Path("..data") / top)
        written.append(root)
    return written


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def connections_by_process(port: int, pids: list[int] | None = None) -> list[int]:
    """Established client connections to the server listening on ``port``, counted per process
    that holds them (``pids``, or every process), largest first: how the kernel spread the
    clients' keep-alive connections over the server's workers. Linux /proc only."""
    established: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    established.add(fields[9])
    if pids is None:
        pids = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    counts = [len(_socket_inodes(pid) & established) for pid in pids]
    return sorted((c for c in counts if c), reverse=True)
