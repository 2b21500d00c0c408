"""The database role's backup and restore scripts, exactly as rendered, run on this machine.

``render(engine)`` renders the database role (``tasks_from: manifests``, the file the role
applies from) with ``database_backup_enabled`` and returns a :class:`Rendered`: the scripts of
the backup ConfigMap and the backup container's environment from the CronJob.
``Rendered.run(script, ...)`` writes the scripts to a directory and runs one of them with
``/bin/sh`` and the container's environment: every ``secretKeyRef`` of the credentials Secret
resolved from the given credentials, the database address pointed at the harness's server and
the mount paths (backup volume, client-file emptyDir) at local directories. Nothing else is
changed, so what runs is what the CronJob and the restore Jobs run.

``Rendered.run_artifacts(mode, ...)`` runs artifacts.sh as the pod's ``artifacts`` container
does (its command and env, the backup and artifacts mounts pointed at local directories), with
busybox's ``sh`` and applets only on ``PATH`` (the image's tools) when busybox is installed,
else the host's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.manifests.harness import Case
from tests.manifests.harness import render as render_cases

ROOT = Path(__file__).resolve().parents[2]
SECRET_KEYS = ("username", "password", "database")


@dataclass(frozen=True)
class Credentials:
    host: str
    port: int
    username: str
    password: str
    database: str


@dataclass(frozen=True)
class Rendered:
    engine: str
    manifests: list[dict[str, Any]]
    scripts: dict[str, str]
    container: dict[str, Any]
    artifacts: dict[str, Any] | None = None

    @property
    def prefix(self) -> str:
        return next(line.split("=", 1)[1] for line in self.scripts["common.sh"].splitlines() if "PREFIX=" in line)

    @property
    def suffix(self) -> str:
        return ".dump" if self.engine == "postgresql" else ".sql.gz"

    def env(self, creds: Credentials, backup_dir: Path, client_dir: Path, **extra: str) -> dict[str, str]:
        """The container's environment, resolved for ``creds`` and the local directories."""
        env: dict[str, str] = {}
        for item in self.container["env"]:
            if "value" in item:
                env[item["name"]] = str(item["value"])
                continue
            key = item["valueFrom"]["secretKeyRef"]["key"]
            if key not in SECRET_KEYS:
                raise KeyError(f"env {item['name']} reads Secret key {key}, which the test cannot resolve")
            env[item["name"]] = getattr(creds, key)
        env.update(
            DB_HOST=creds.host, DB_PORT=str(creds.port), BACKUP_DIR=str(backup_dir), CLIENT_DIR=str(client_dir), **extra
        )
        return env

    def run(
        self,
        script: str,
        creds: Credentials,
        backup_dir: Path,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess:
        """Run ``script`` (backup.sh, restore.sh) as its container would; returns the finished process."""
        with tempfile.TemporaryDirectory(prefix="backup-scripts-") as tmp:
            scripts_dir = Path(tmp) / "scripts"
            client_dir = Path(tmp) / "client"
            scripts_dir.mkdir()
            client_dir.mkdir(mode=0o700)
            for name, text in self.scripts.items():
                (scripts_dir / name).write_text(text)
            process_env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "LANG": "C.UTF-8",
                **self.env(creds, backup_dir, client_dir),
                **(env or {}),
            }
            process_env["HOME"] = process_env["TMPDIR"] = tmp
            return subprocess.run(
                ["/bin/sh", str(scripts_dir / script), *args],
                env=process_env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )

    def run_artifacts(
        self,
        mode: str,
        backup_dir: Path,
        artifacts_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess:
        """Run the ``artifacts`` container's command (artifacts.sh ``mode``) on local directories."""
        if self.artifacts is None:
            raise ValueError("rendered without the artifacts copy (database_backup_artifacts)")
        command = self.artifacts["command"]
        if command[:2] != ["/bin/sh", "/scripts/artifacts.sh"]:
            raise ValueError(f"unexpected artifacts command {command}")
        with tempfile.TemporaryDirectory(prefix="artifacts-script-") as tmp:
            scripts_dir = Path(tmp) / "scripts"
            scripts_dir.mkdir()
            for name, text in self.scripts.items():
                (scripts_dir / name).write_text(text)
            process_env = {item["name"]: str(item["value"]) for item in self.artifacts["env"]}
            process_env.update(
                BACKUP_DIR=str(backup_dir), ARTIFACTS_DIR=str(artifacts_dir), HOME=tmp, TMPDIR=tmp, LANG="C.UTF-8"
            )
            process_env["PATH"] = busybox_path(Path(tmp) / "bin") or os.environ.get("PATH", "/usr/bin:/bin")
            process_env.update(env or {})
            shell = shutil.which("sh", path=process_env["PATH"]) or "/bin/sh"
            return subprocess.run(
                [shell, str(scripts_dir / "artifacts.sh"), mode],
                env=process_env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )


def busybox_path(directory: Path) -> str | None:
    """A directory of links to every busybox applet (sh, tar, gzip, ls, grep...), or None without busybox."""
    busybox = shutil.which("busybox")
    if busybox is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        (directory / applet).symlink_to(busybox)
    return str(directory)


def render(engine: str, **role_vars: Any) -> Rendered:
    """Render the database role's backup objects for ``engine`` (postgresql or mysql)."""
    case = Case(
        role="database",
        name=f"backup-{engine}",
        vars={"database_engine": engine, "database_backup_enabled": True, **role_vars},
        source=ROOT / "tests" / "harness" / "backup_scripts.py",
    )
    rendered = render_cases([case], forks=1)[case.id]
    if rendered.error:
        raise RuntimeError(f"rendering the database role's backup objects failed: {rendered.error}")
    configmap = next(m for m in rendered.manifests if m["kind"] == "ConfigMap" and "backup.sh" in m.get("data", {}))
    cronjob = next(m for m in rendered.manifests if m["kind"] == "CronJob")
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    # With the artifacts copy the dump runs first, as the init container, and artifacts.sh after it.
    database = (pod.get("initContainers") or pod["containers"])[0]
    artifacts = pod["containers"][0] if pod.get("initContainers") else None
    return Rendered(engine, rendered.manifests, dict(configmap["data"]), database, artifacts)
