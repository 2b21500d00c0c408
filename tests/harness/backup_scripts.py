"""The database role's backup and restore scripts, exactly as rendered, run on this machine.

``render(engine)`` renders the database role (``tasks_from: manifests``, the file the role
applies from) with ``database_backup_enabled`` and returns a :class:`Rendered`: the scripts of
the backup ConfigMap and the backup container's environment from the CronJob.
``Rendered.run(script, ...)`` writes the scripts to a directory and runs one of them with
``/bin/sh`` and the container's environment: every ``secretKeyRef`` of the credentials Secret
resolved from the given credentials, the database address pointed at the harness's server and
the mount paths (backup volume, client-file emptyDir) at local directories. Nothing else is
changed, so what runs is what the CronJob and the restore Jobs run.
"""

from __future__ import annotations

import os
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
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    return Rendered(engine, rendered.manifests, dict(configmap["data"]), container)
