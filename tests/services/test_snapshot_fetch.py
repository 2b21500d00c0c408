"""The code snapshot through a real tracking server, as the mlflow_server role renders it.

The server is the role's Deployment (rendered by a real ansible-playbook), started from its
container's argv and env on the real PostgreSQL of the services harness, with artifacts
proxied onto a directory (``--serve-artifacts --artifacts-destination``). The module's own
functions pack the project and log it to a real run; then the init container of the rendered
Job runs as a process, exactly its ``python -c`` command with its env (Secret references
resolved as the kubelet would), with Python in isolated mode and no mlflow importable, and
the tree it restores is compared byte for byte. Once without auth, once with basic auth.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import snapshot, snapshot_job
from benchmarks import _role
from tests.harness.mlflow_server import Server, free_port, fresh_database, wait_for_health

# Not marked controller: our module_utils against a real MLflow server; the library versions are
# the same on both controller lines and the unit suite runs module_utils on Python 3.11.
pytestmark = pytest.mark.services

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "wine-quality"
URI_SECRET = ("mlflow-database-uri", "uri")
AUTH_URI_SECRET = ("mlflow-auth-uri", "uri")
AUTH_SECRET = "mlflow-server-auth"


@pytest.fixture
def role_server(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start the role's rendered server container (bound to loopback on the port it was rendered with)."""
    started: list[Server] = []

    def start(manifests: list[dict], secret_values: dict, port: int) -> str:
        argv, env = _role.server_command(manifests, secret_values)
        log_path = tmp_path / "server.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                argv,
                cwd=tmp_path,
                env=_role.base_env(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://localhost:{port}"  # a Host the role allows (--allowed-hosts)
        server = Server(url, port, process, log_path, tmp_path, tmp_path / "artifacts", secret_values[URI_SECRET])
        started.append(server)
        wait_for_health(url, process=process, log_path=log_path, secret_source=server.backend_uri)
        return url

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def auth_database(services: dict[str, str]) -> Iterator[str]:
    with fresh_database("postgresql", services) as uri:
        yield uri


def _project(tmp_path: Path) -> Path:
    """The example plus what makes a tree hard to restore: an executable, nesting, a big binary."""
    tree = tmp_path / "project"
    shutil.copytree(EXAMPLE, tree)
    (tree / "tools" / "deep" / "er").mkdir(parents=True)
    (tree / "tools" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (tree / "tools" / "run.sh").chmod(0o755)
    (tree / "tools" / "deep" / "er" / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (tree / "scratch.tmp").write_text("left out\n")
    (tree / ".mlflowignore").write_text("*.tmp\n")
    return tree


def _files(root: Path) -> dict[str, tuple[bytes, bool]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), bool(p.stat().st_mode & 0o100))
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _fetch_as_the_pod(job: dict, secret_values: dict, dest: Path) -> subprocess.CompletedProcess:
    (init,) = job["spec"]["template"]["spec"]["initContainers"]
    env = _role.resolve_env(init, secret_values)
    assert env["MLFLOW_SNAPSHOT_DEST"] == snapshot.CODE_DIR
    env["MLFLOW_SNAPSHOT_DEST"] = str(dest)  # the emptyDir's mount path, here
    assert init["command"][:2] == ["python", "-c"]
    return subprocess.run(
        [sys.executable, "-I", "-c", init["command"][2]],  # -I: no site-packages, so no mlflow, no requests
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _job(image: str = "ghcr.io/mlflow/mlflow:v3.17.2-full") -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "wine-quality-1"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "w", "image": image}]}}},
    }


def _log_snapshot(client: MlflowClient, tree: Path, tmp_path: Path) -> tuple[str, snapshot.Snapshot]:
    experiment = client.create_experiment(f"snapshot-{secrets.token_hex(4)}")
    run_id = client.create_run(experiment).info.run_id
    out = tmp_path / "packed"
    out.mkdir()
    snap = snapshot.pack(str(tree), str(out))
    snapshot.log_snapshot(client, run_id, snap)
    return run_id, snap


def test_fetch_restores_the_exact_tree_without_auth(
    postgres_backend_uri: str, role_server: Callable[..., str], tmp_path: Path
) -> None:
    port = free_port()
    (tmp_path / "artifacts").mkdir()
    manifests = _role.render_manifests(
        {
            "mlflow_server_port": port,
            "mlflow_server_artifacts_mount_path": str(tmp_path / "artifacts"),
            "cluster_node_addresses": ["10.20.30.40"],
        }
    )
    secret_values = {URI_SECRET: postgres_backend_uri}
    url = role_server(manifests, secret_values, port)
    client = MlflowClient(url)
    tree = _project(tmp_path)
    run_id, snap = _log_snapshot(client, tree, tmp_path)

    run = client.get_run(run_id)
    assert run.data.tags[snapshot.HASH_TAG] == snap.sha256
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    # On the server's disk, under the run: the very bytes that were packed.
    stored = list((tmp_path / "artifacts").rglob("code.tar.gz"))
    assert [p.read_bytes() for p in stored] == [Path(snap.path).read_bytes()]

    artifact = snapshot.artifact_url(url, run.info.artifact_uri)
    job = snapshot_job.add_code_delivery(_job(), artifact, snap.sha256)
    dest = tmp_path / "code"
    done = _fetch_as_the_pod(job, secret_values, dest)
    assert done.returncode == 0, done.stderr
    assert _files(dest) == {k: v for k, v in _files(tree).items() if k != "scratch.tmp"}

    # A snapshot that changed on the server is refused, and nothing is unpacked.
    stored[0].write_bytes(stored[0].read_bytes() + b"\0")
    tampered = _fetch_as_the_pod(job, secret_values, tmp_path / "code2")
    assert tampered.returncode == 1 and "sha256" in tampered.stderr
    assert list((tmp_path / "code2").iterdir()) == []


def test_fetch_with_basic_auth_from_the_secret(
    postgres_backend_uri: str,
    auth_database: str,
    role_server: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    (tmp_path / "artifacts").mkdir()
    manifests = _role.render_manifests(
        {
            "mlflow_server_port": port,
            "mlflow_server_artifacts_mount_path": str(tmp_path / "artifacts"),
            "mlflow_server_auth_config_dir": str(tmp_path),
            "cluster_node_addresses": ["10.20.30.40"],
            "mlflow_server_auth_enabled": True,
            "database_auth_uri_secret_name": AUTH_URI_SECRET[0],
            "database_auth_uri_secret_key": AUTH_URI_SECRET[1],
        }
    )
    password = secrets.token_urlsafe(24)
    secret_values = {
        URI_SECRET: postgres_backend_uri,
        AUTH_URI_SECRET: auth_database,
        (AUTH_SECRET, "admin-username"): "admin",
        (AUTH_SECRET, "admin-password"): password,
        (AUTH_SECRET, "flask-secret-key"): secrets.token_hex(24),
    }
    argv, env = _role.init_command(manifests, "auth-config", secret_values)
    written = subprocess.run(argv, env=_role.base_env(env), capture_output=True, text=True, timeout=300, check=False)
    assert written.returncode == 0, written.stderr
    url = role_server(manifests, secret_values, port)
    assert requests.get(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=30).status_code == 401

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    client = MlflowClient(url)
    tree = _project(tmp_path)
    run_id, snap = _log_snapshot(client, tree, tmp_path)
    artifact = snapshot.artifact_url(url, client.get_run(run_id).info.artifact_uri)

    secret = snapshot_job.auth_secret(
        {"name": AUTH_SECRET, "username_key": "admin-username", "password_key": "admin-password"}
    )
    job = snapshot_job.add_code_delivery(_job(), artifact, snap.sha256, secret)
    assert password not in str(job)  # the pod spec holds only the Secret's name and keys
    dest = tmp_path / "code"
    done = _fetch_as_the_pod(job, secret_values, dest)
    assert done.returncode == 0, done.stderr
    assert password not in done.stdout + done.stderr
    assert _files(dest) == {k: v for k, v in _files(tree).items() if k != "scratch.tmp"}

    # Without the Secret, the server refuses and the init step says where to look.
    anonymous = snapshot_job.add_code_delivery(_job(), artifact, snap.sha256)
    refused = _fetch_as_the_pod(anonymous, secret_values, tmp_path / "code2")
    assert refused.returncode == 1 and "HTTP 401" in refused.stderr and "Secret" in refused.stderr
