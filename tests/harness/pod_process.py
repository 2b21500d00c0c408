"""Run a pod's containers as local processes, where nothing else runs pods (stand-in, no kubelet).

The simulated kubelet (kubelet.py) writes pod statuses but runs nothing. For a test that has
to prove what a pod *does* with its spec (an init container that fetches code, an entry point
that logs to MLflow), ``run_pod`` runs the pod's init containers, in order, then its first
container, each as a process of this machine:

- each volume (``emptyDir`` only; anything else is refused) is a fresh directory under
  ``root``; a path in ``workingDir``, ``command``, ``args`` or an env value that starts with a
  ``mountPath`` of the container is rewritten to that directory;
- env values come from ``value``, or from ``secrets[(secret name, key)]`` for a
  ``secretKeyRef`` (as the kubelet resolves them); nothing of this process's env but ``PATH``;
- ``python`` is this interpreter (the venv's: mlflow, numpy), other commands come from ``PATH``.

What it does not do: images (the host's Python and files stand in for the image's), users,
resources, probes, restarts. A real kubelet is the proof of those; this is the proof that the
spec's commands, env and mounts fit together.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

Secrets = Mapping[tuple[str, str], str]


class PodSpecError(ValueError):
    pass


def _volumes(pod_spec: Mapping[str, Any], root: Path) -> dict[str, Path]:
    out = {}
    for volume in pod_spec.get("volumes") or []:
        if "emptyDir" not in volume:
            raise PodSpecError(f"volume {volume.get('name')!r}: only emptyDir volumes run locally, got {volume}")
        path = root / "volumes" / volume["name"]
        path.mkdir(parents=True, exist_ok=True)
        out[volume["name"]] = path
    return out


def _translator(container: Mapping[str, Any], volumes: Mapping[str, Path]):
    mounts = sorted(
        ((m["mountPath"].rstrip("/"), volumes[m["name"]]) for m in container.get("volumeMounts") or []),
        key=lambda item: -len(item[0]),
    )

    def translate(text: str) -> str:
        for mount_path, local in mounts:
            if text == mount_path or text.startswith(mount_path + "/"):
                return str(local) + text[len(mount_path) :]
        return text

    return translate


def _env(container: Mapping[str, Any], secrets: Secrets, translate) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = translate(str(item["value"]))
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        key = (ref["name"], ref["key"])
        if key not in secrets:
            raise PodSpecError(f"env {item['name']} needs Secret {ref['name']} key {ref['key']}, not given")
        env[item["name"]] = secrets[key]
    if container.get("envFrom"):
        raise PodSpecError("envFrom is not supported by the local pod runner")
    return env


def _argv(container: Mapping[str, Any], translate) -> list[str]:
    words = [translate(str(w)) for w in list(container.get("command") or []) + list(container.get("args") or [])]
    if not words:
        raise PodSpecError(f"container {container.get('name')!r} has no command (the image's entrypoint is unknown)")
    if words[0] in ("python", "python3"):
        words[0] = sys.executable
    else:
        found = shutil.which(words[0])
        if not found:
            raise PodSpecError(f"container {container.get('name')!r}: {words[0]!r} is not on PATH here")
        words[0] = found
    return words


def run_container(
    container: Mapping[str, Any], volumes: Mapping[str, Path], root: Path, secrets: Secrets, timeout: float
) -> subprocess.CompletedProcess:
    translate = _translator(container, volumes)
    cwd = translate(container["workingDir"]) if container.get("workingDir") else str(root)
    return subprocess.run(
        _argv(container, translate),
        cwd=cwd,
        env=_env(container, secrets, translate),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_pod(
    pod: Mapping[str, Any], root: Path, *, secrets: Secrets | None = None, timeout: float = 300
) -> tuple[int, str, str]:
    """Run the init containers, then the first container: (exit code, log text, container name).

    A failing init container ends the pod with its code, as on a real kubelet with
    ``restartPolicy: Never``; the log and name are then that container's.
    """
    spec = pod["spec"]
    secrets = secrets or {}
    root.mkdir(parents=True, exist_ok=True)
    volumes = _volumes(spec, root)
    for init in spec.get("initContainers") or []:
        done = run_container(init, volumes, root, secrets, timeout)
        if done.returncode != 0:
            return done.returncode, done.stdout + done.stderr, init["name"]
    main = spec["containers"][0]
    done = run_container(main, volumes, root, secrets, timeout)
    return done.returncode, done.stdout + done.stderr, main["name"]
