"""The database role's URI and password change on the real MariaDB. (PostgreSQL's, with the
same kind of password: on real pods, by site.yml in tests/cluster/test_site.py.)

A database user whose password is full of characters that need escaping
(``@:/?#%+ '"\\`` and, where the driver can send it, non-ASCII) is created on the real server;
the backend-store URI is built by the role's filter (the Python function, and once through a
real ansible-playbook rendering the role's URI Secret); a real ``mlflow server`` runs on it
and a run is logged and read back. Then the role's own ``admin.sh`` (rendered into its
ConfigMap by a real ansible-playbook, run by ``sh`` with the environment the admin Job gives
it) changes the password to another such password (logging in with the pending one, the stored
one being stale) and creates the basic-auth database; the
server on the re-rendered URI still reads the run, and the old password no longer logs in.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import sqlalchemy
from mlflow.tracking import MlflowClient
from sqlalchemy.engine import make_url

from ansible_collections.mlops.mlflow_k8s.plugins.filter.backend_store_uri import FilterModule
from tests.harness.playbook import run_playbook

ROOT = Path(__file__).resolve().parents[2]

# controller: runs a role's tasks or our module_utils in-process (.ci/run repeats it on Python 3.11)
pytestmark = [pytest.mark.services, pytest.mark.controller]

backend_store_uri = FilterModule().filters()["backend_store_uri"]

# PyMySQL sends a password as latin-1 while MariaDB hashes the UTF-8 the client sent it in:
# MySQL passwords are printable ASCII (the role refuses others), PostgreSQL's anything.
PASSWORDS = {
    "postgresql": ("p@ss:/w?rd#1%2B+ 'q\"\\ü密", "n3w@:/?#%+ '\"\\ßé🔑"),
    "mysql": ("p@ss:/w?rd#1%2B+ 'q\"\\", "n3w@:/?#%+ '\"\\;--$(x)`y`"),
}


def admin_engine(uri: str) -> sqlalchemy.Engine:
    return sqlalchemy.create_engine(uri, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)


def can_log_in(uri: str) -> bool:
    engine = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
    except sqlalchemy.exc.OperationalError:
        return False
    finally:
        engine.dispose()


def render(tmp_path: Path, role_vars: dict) -> list[dict]:
    """``database_manifests`` rendered by a real ansible-playbook; written to a 0600 file, not logged."""
    out = tmp_path / "manifests.json"
    play = [
        {
            "name": "Render the database role's manifests",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Render",
                    "ansible.builtin.include_role": {"name": "mlops.mlflow_k8s.database", "tasks_from": "manifests"},
                },
                {
                    "name": "Keep them",
                    "ansible.builtin.copy": {
                        "content": "{{ database_manifests | to_json }}",
                        "dest": str(out),
                        "mode": "0600",
                    },
                    "no_log": True,
                },
            ],
        }
    ]
    result = run_playbook(play, extra_vars=role_vars)
    assert result.rc == 0, result.summary()
    return json.loads(out.read_text())


def by_kind(manifests: list[dict], kind: str) -> dict:
    return next(m for m in manifests if m["kind"] == kind)


def decoded(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


@pytest.fixture
def database_user(services):
    """Create a login for the test's database with the first password; drop it afterwards.

    The test's database is dropped before this runs down (its fixture is requested later), so
    the login is dropped through the harness's own database."""
    made = []

    def create(engine_name: str, backend_uri: str, password: str) -> str:
        admin_url = make_url(backend_uri)
        user = f"mlflow_u_{uuid.uuid4().hex[:10]}"
        admin = admin_engine(backend_uri)
        with admin.connect() as conn:
            if engine_name == "postgresql":
                conn.execute(sqlalchemy.text(f'CREATE ROLE "{user}" LOGIN CREATEDB PASSWORD :pw'), {"pw": password})
                conn.execute(sqlalchemy.text(f'GRANT "{user}" TO "{admin_url.username}"'))
                conn.execute(sqlalchemy.text(f'ALTER DATABASE "{admin_url.database}" OWNER TO "{user}"'))
            else:
                conn.execute(sqlalchemy.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY :pw"), {"pw": password})
                escaped = admin_url.database.replace("_", "\\_")  # in GRANT, _ is a wildcard
                conn.execute(sqlalchemy.text(f"GRANT ALL ON `{escaped}`.* TO '{user}'@'%'"))
        admin.dispose()
        made.append((engine_name, backend_uri, user))
        return user

    yield create
    for engine_name, _uri, user in made:
        admin = admin_engine(services["MLFLOW_TEST_PG_URI" if engine_name == "postgresql" else "MLFLOW_TEST_MYSQL_URI"])
        with admin.connect() as conn:
            if engine_name == "postgresql":
                conn.execute(sqlalchemy.text(f'DROP ROLE IF EXISTS "{user}"'))
            else:
                conn.execute(sqlalchemy.text(f"DROP USER IF EXISTS '{user}'@'%'"))
        admin.dispose()


@pytest.fixture
def auth_database(services):
    """A name for the basic-auth database the admin script creates; dropped afterwards."""
    made = []

    def name(engine_name: str, backend_uri: str) -> str:
        db = f"mlflow_a_{uuid.uuid4().hex[:10]}"
        made.append((engine_name, backend_uri, db))
        return db

    yield name
    for engine_name, _uri, db in made:
        admin = admin_engine(services["MLFLOW_TEST_PG_URI" if engine_name == "postgresql" else "MLFLOW_TEST_MYSQL_URI"])
        with admin.connect() as conn:
            if engine_name == "postgresql":
                conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            else:
                conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS `{db}`"))
        admin.dispose()


def log_and_read_back(server_url: str, tag: str) -> str:
    client = MlflowClient(tracking_uri=server_url)
    experiment = client.create_experiment(f"uri-{tag}-{uuid.uuid4().hex[:6]}")
    run = client.create_run(experiment)
    client.log_param(run.info.run_id, "password_kind", tag)
    client.log_metric(run.info.run_id, "loss", 0.25, step=3)
    client.set_terminated(run.info.run_id)
    got = client.get_run(run.info.run_id)
    assert got.data.params == {"password_kind": tag}
    assert got.data.metrics == {"loss": 0.25}
    assert got.info.status == "FINISHED"
    return run.info.run_id


@pytest.mark.parametrize("engine_name", ["mysql"])
def test_role_uri_and_password_change_on_real_database(
    engine_name, request, tmp_path, mlflow_server, database_user, auth_database
):
    backend_uri = request.getfixturevalue(
        {"postgresql": "postgres_backend_uri", "mysql": "mysql_backend_uri"}[engine_name]
    )
    admin_url = make_url(backend_uri)
    first, second = PASSWORDS[engine_name]
    user = database_user(engine_name, backend_uri, first)
    parts = {"host": admin_url.host, "port": admin_url.port, "username": user, "database": admin_url.database}

    # 1. The filter's function builds the URI; a real server logs and reads a run on it.
    uri = backend_store_uri(engine_name, password=first, **parts)
    assert make_url(uri).password == first
    server = mlflow_server(uri)
    run_id = log_and_read_back(server.url, "first")
    server.stop()

    # 2. The role's admin script, rendered by a real ansible-playbook, changes the password
    #    and creates the auth database, with every credential in the environment only.
    manifests = render(tmp_path, {"database_engine": engine_name, "database_password": second})
    script = tmp_path / "admin.sh"
    script.write_text(by_kind(manifests, "ConfigMap")["data"]["admin.sh"])
    auth_db = auth_database(engine_name, backend_uri)
    env = {
        "PATH": os.environ["PATH"],
        "DB_HOST": admin_url.host,
        "DB_PORT": str(admin_url.port),
        "DB_USER": user,
        "DB_NAME": admin_url.database,
        "MLFLOW_AUTH_DB": auth_db,
        "NEW_PASSWORD": second,
    }
    if engine_name == "postgresql":
        # The Job logs in as the user with the first of its passwords that works: here the
        # stored one is stale and the pending one (a killed run's change) is the database's.
        env["OLD_PASSWORD"] = "stale-" + uuid.uuid4().hex
        env["PENDING_PASSWORD"] = first
    else:
        env["DB_ADMIN_USER"] = admin_url.username  # the Job logs in as root; here the harness's admin
        env["MYSQL_PWD"] = admin_url.password
    changed = subprocess.run(
        [shutil.which("sh") or "/bin/sh", str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert "database-admin: done" in changed.stdout
    assert first not in changed.stdout + changed.stderr and second not in changed.stdout + changed.stderr

    # 3. The URI Secret as the role renders it (external, from parts) carries the new password.
    manifests = render(
        tmp_path,
        {
            "database_engine": "external",
            "database_external_engine": engine_name,
            "database_external_host": admin_url.host,
            "database_external_port": admin_url.port,
            "database_external_user": user,
            "database_external_password": second,
            "database_external_name": admin_url.database,
            "database_external_auth_name": auth_db,
        },
    )
    uris = decoded(by_kind(manifests, "Secret"))
    assert uris["uri"] == backend_store_uri(engine_name, password=second, **parts)
    assert make_url(uris["auth-uri"]).database == auth_db
    assert can_log_in(uris["auth-uri"]), "the admin script did not create or grant the auth database"
    assert not can_log_in(uri), "the old password still logs in"

    server = mlflow_server(uris["uri"])
    client = MlflowClient(tracking_uri=server.url)
    assert client.get_run(run_id).data.params == {"password_kind": "first"}
    log_and_read_back(server.url, "second")

    # 4. Run again with the same password: it changes nothing and still logs in.
    again = subprocess.run(
        [shutil.which("sh") or "/bin/sh", str(script)],
        env={**env, "PGPASSWORD": second} if engine_name == "postgresql" else env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert can_log_in(uris["uri"])
