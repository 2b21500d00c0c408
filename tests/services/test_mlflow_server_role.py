"""The mlflow_server role's server, exactly as rendered, on the real PostgreSQL and MariaDB.

The role's Deployment is rendered by a real ansible-playbook (tasks/manifests.yml). Its server
container's args and env (secretKeyRef resolved to the real backend URI of the fixture) start a
real ``mlflow server``; its init containers' commands run as they would in the pod. The role's
own smoke tasks (tasks/smoke.yml) then run against the server, and the Host check is probed:
a Host header the role allowed gets through, any other gets 403.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pytest
import requests
import sqlalchemy

from benchmarks import _role
from tests.harness.mlflow_server import (
    Server,
    free_port,
    fresh_database,
    wait_for_health,
)
from tests.harness.playbook import run_playbook

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.services

NODE_ADDRESS = "10.20.30.40"
NODE_PORT = 30777
URI_SECRET = ("mlflow-database-uri", "uri")
AUTH_URI_SECRET = ("mlflow-auth-uri", "uri")
AUTH_SECRET = "mlflow-server-auth"


@pytest.fixture
def prefixed_server(tmp_path: Path) -> Iterator[Callable[[list[str], dict[str, str], str], str]]:
    """Start a rendered ``mlflow server`` argv (bound to loopback) whose /health lives below a
    ``--static-prefix`` (the harness's ``mlflow_server`` fixture waits on the bare /health)."""
    started: list[Server] = []

    def start(argv: list[str], env: dict[str, str], prefix: str) -> str:
        port = int(argv[argv.index("--port") + 1])
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
        url = f"http://127.0.0.1:{port}"
        server = Server(url, port, process, log_path, tmp_path, tmp_path / "artifacts", env["MLFLOW_BACKEND_STORE_URI"])
        started.append(server)
        wait_for_health(url + prefix, process=process, log_path=log_path, secret_source=server.backend_uri)
        return url

    yield start
    for server in started:
        server.stop()


def _role_vars(tmp_path: Path, port: int, **extra: object) -> dict[str, object]:
    (tmp_path / "artifacts").mkdir(exist_ok=True)
    return {
        "mlflow_server_port": port,
        "mlflow_server_artifacts_mount_path": str(tmp_path / "artifacts"),
        "mlflow_server_auth_config_dir": str(tmp_path),
        "mlflow_server_node_port": NODE_PORT,
        "cluster_node_addresses": [NODE_ADDRESS],
        **extra,
    }


def _run_init(manifests: list[dict], name: str, secret_values: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    argv, env = _role.init_command(manifests, name, secret_values)
    return subprocess.run(
        argv, cwd=tmp_path, env=_role.base_env(env), capture_output=True, text=True, timeout=300, check=False
    )


def _smoke(base_url: str, **extra_vars: object):
    play = [
        {
            "name": "Smoke-check a running MLflow server with the role's tasks",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Run the role's smoke check",
                    "ansible.builtin.include_role": {"name": "mlops.mlflow_k8s.mlflow_server", "tasks_from": "smoke"},
                }
            ],
        }
    ]
    return run_playbook(
        play,
        extra_vars={
            "mlflow_server_smoke_url": base_url,
            "mlflow_server_url": base_url,
            "mlflow_server_smoke_retries": 3,
            **extra_vars,
        },
        timeout=300,
    )


def _alembic_head(uri: str, table: str = "alembic_version") -> str:
    engine = sqlalchemy.create_engine(uri)
    try:
        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text(f"SELECT version_num FROM {table}")).scalar_one()  # noqa: S608
    finally:
        engine.dispose()


@pytest.fixture(params=["postgresql", "mysql"])
def backend_uri(request: pytest.FixtureRequest) -> str:
    """The real backend-store URI of the harness (tests/services/conftest.py) for each engine."""
    return request.getfixturevalue("postgres_backend_uri" if request.param == "postgresql" else "mysql_backend_uri")


def test_rendered_server_runs_and_passes_the_smoke_check(
    backend_uri: str, mlflow_server: Callable[..., Server], tmp_path: Path
) -> None:
    port = 5000  # the Service port named in --allowed-hosts; the harness binds its own free port
    manifests = _role.render_manifests(_role_vars(tmp_path, port))
    secret_values = {URI_SECRET: backend_uri}

    # The pod spec carries the URI only as a secretKeyRef: no value anywhere in it.
    assert backend_uri not in str(manifests)
    assert sqlalchemy.engine.make_url(backend_uri).password not in str(manifests)  # the password

    # The init container: `mlflow db upgrade "$MLFLOW_BACKEND_STORE_URI"`, expanded by the shell.
    init = _run_init(manifests, "db-upgrade", secret_values, tmp_path)
    assert init.returncode == 0, init.stdout + init.stderr
    head = _alembic_head(backend_uri)
    assert head, "mlflow db upgrade left no alembic version"
    again = _run_init(manifests, "db-upgrade", secret_values, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert _alembic_head(backend_uri) == head

    args, env = _role.server_args_and_env(manifests, secret_values)
    assert "--backend-store-uri" not in args
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    # The harness passes the backend URI the same way: MLFLOW_BACKEND_STORE_URI.
    assert env["MLFLOW_BACKEND_STORE_URI"] == backend_uri
    server = mlflow_server(backend_uri, args=args, env=env)
    url = server.url
    search = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    # Hosts the role allowed: the NodePort on the node address, the Service's names with the port.
    for host in (
        f"{NODE_ADDRESS}:{NODE_PORT}",
        f"mlflow-server.mlflow.svc.cluster.local:{port}",
        f"mlflow-server:{port}",
        f"localhost:{port}",
    ):
        resp = requests.get(search, headers={"Host": host}, timeout=30)
        assert resp.status_code == 200, (host, resp.status_code, resp.text[:200])
    # Any other host, including a private address MLflow's own default would let through.
    for host in ("evil.example.org", "10.99.99.99:5000", f"{NODE_ADDRESS}:{NODE_PORT + 1}"):
        resp = requests.get(search, headers={"Host": host}, timeout=30)
        assert resp.status_code == 403, (host, resp.status_code, resp.text[:200])
        assert "Invalid Host header" in resp.text

    first = _smoke(url)
    assert first.rc == 0, first.summary()
    assert first.changed == 0, first.summary()
    second = _smoke(url)  # the experiment exists now: looked up, not created
    assert second.rc == 0, second.summary()
    assert second.changed == 0, second.summary()
    assert second.task("mlops.mlflow_k8s.mlflow_server : Create the smoke-check experiment").skipped

    # One smoke run serves every check: a re-run leaves MLflow as it found it.
    client = mlflow.tracking.MlflowClient(url)
    experiment = client.get_experiment_by_name("mlflow-k8s-smoke")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_name for r in runs] == ["ansible-smoke"], runs
    assert len(client.get_metric_history(runs[0].info.run_id, "smoke")) == 1
    # The artifact went through the proxy onto --artifacts-destination.
    uploaded = list((tmp_path / "artifacts").rglob("smoke.txt"))
    assert len(uploaded) == 1, uploaded

    refused = _smoke(url, mlflow_server_smoke_host="evil.example.org")
    assert refused.rc != 0, "the smoke check passed with a Host header the server must refuse"


@pytest.fixture
def auth_database(services: dict[str, str]) -> Iterator[str]:
    """A second fresh PostgreSQL database, for the basic-auth store."""
    with fresh_database("postgresql", services) as uri:
        yield uri


def test_rendered_basic_auth_server_behind_a_static_prefix(
    postgres_backend_uri: str, auth_database: str, prefixed_server: Callable[..., str], tmp_path: Path
) -> None:
    port = free_port()
    manifests = _role.render_manifests(
        _role_vars(
            tmp_path,
            port,
            mlflow_server_expose="ingress",
            mlflow_server_ingress_host="mlflow.example.org",
            mlflow_server_ingress_path="/mlflow",
            mlflow_server_auth_enabled=True,
            database_auth_uri_secret_name=AUTH_URI_SECRET[0],
            database_auth_uri_secret_key=AUTH_URI_SECRET[1],
        )
    )
    password = secrets.token_urlsafe(24)
    secret_values = {
        URI_SECRET: postgres_backend_uri,
        AUTH_URI_SECRET: auth_database,
        (AUTH_SECRET, "admin-username"): "admin",
        (AUTH_SECRET, "admin-password"): password,
        (AUTH_SECRET, "flask-secret-key"): secrets.token_hex(24),
    }
    assert password not in str(manifests)

    for init in ("db-upgrade", "auth-config"):
        done = _run_init(manifests, init, secret_values, tmp_path)
        assert done.returncode == 0, (init, done.stdout + done.stderr)
    ini = tmp_path / "basic_auth.ini"
    assert oct(ini.stat().st_mode & 0o777) == "0o600"

    argv, env = _role.server_command(manifests, secret_values)
    assert argv[argv.index("--static-prefix") + 1] == "/mlflow"
    assert argv[argv.index("--app-name") + 1] == "basic-auth"
    url = prefixed_server(argv, env, "/mlflow")
    base = f"{url}/mlflow"
    search = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
    host = {"Host": "mlflow.example.org"}
    assert requests.get(search, headers=host, timeout=30).status_code == 401
    assert requests.get(search, headers=host, auth=("admin", "wrong-password"), timeout=30).status_code == 401
    assert requests.get(search, headers=host, auth=("admin", password), timeout=30).status_code == 200
    assert requests.get(search, headers={"Host": "other.example.org"}, timeout=30).status_code == 403

    done = _smoke(
        base,
        mlflow_server_smoke_host="mlflow.example.org",
        mlflow_server_auth_enabled=True,
        mlflow_server_auth_admin_user="admin",
        mlflow_server_auth_admin_password=password,
    )
    assert done.rc == 0, done.summary()
    assert done.changed == 0, done.summary()
    # The auth store was created by the server in its own database.
    engine = sqlalchemy.create_engine(auth_database)
    try:
        with engine.connect() as conn:
            users = conn.execute(sqlalchemy.text("SELECT username FROM users")).scalars().all()
    finally:
        engine.dispose()
    assert users == ["admin"]
