"""MLflow 3.17.2 -> 3.18.0 in place, on the real MariaDB (PostgreSQL's: on real pods, by
upgrade.yml in tests/cluster/test_day_two.py).

Runs, params, metric histories, tags and artifacts are logged with the project venv's MLflow
3.17.2 server; the migration command the mlflow_server role renders (its db-upgrade init
container, which the upgrade Job runs too) migrates the schema with MLflow 3.18.0 from a cached
venv (tests/harness/mlflow_venv.py); a 3.18.0 server then reads everything back unchanged.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import mlflow
import pytest
import requests
import sqlalchemy
from mlflow.tracking import MlflowClient

from benchmarks import _role
from tests.harness.argv_watch import ArgvWatch
from tests.harness.mlflow_data import log_sample, run_count, snapshot
from tests.harness.mlflow_venv import installed_with, mlflow_venv

pytestmark = pytest.mark.services

OLD, NEW = "3.17.2", "3.18.0"


def _mlflow_bin(version: str) -> Path:
    """The ``bin`` of a venv with MLflow ``version``: the project's when it carries that release
    (which one a fresh ``make setup`` gets depends on the index), else a cached one."""
    return Path(_role.BIN) if mlflow.__version__ == version else mlflow_venv(version)


@pytest.fixture(scope="module")
def old_mlflow() -> Path:
    return _mlflow_bin(OLD)


@pytest.fixture(scope="module")
def new_mlflow() -> Path:
    return _mlflow_bin(NEW)


def _revision(uri: str) -> str:
    db = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
    try:
        with db.connect() as conn:
            return conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        db.dispose()


def _revisions(bin_dir: Path) -> set[str]:
    code = (
        "import pathlib, mlflow.store.db_migrations as m;"
        "print(' '.join(p.name.split('_')[0] for p in (pathlib.Path(m.__file__).parent / 'versions').glob('*.py')))"
    )
    out = subprocess.run([str(bin_dir / "python"), "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("engine", ["mysql"])
def test_upgrade_317_to_318_keeps_everything(
    engine: str, request: pytest.FixtureRequest, mlflow_server, old_mlflow: Path, new_mlflow: Path, tmp_path: Path
) -> None:
    uri = request.getfixturevalue("postgres_backend_uri" if engine == "postgresql" else "mysql_backend_uri")
    artifacts = tmp_path / "artifacts"

    old = mlflow_server(uri, artifacts_dir=artifacts, executable=old_mlflow / "mlflow")
    assert requests.get(f"{old.url}/version", timeout=30).text.strip() == OLD
    client = MlflowClient(old.url)
    log_sample(client, "logged-with-3-17")
    before = snapshot(client)
    assert run_count(before) == 6
    old.stop()
    old_revision = _revision(uri)

    manifests = _role.render_manifests(
        {
            "mlflow_server_version": NEW,
            "mlflow_server_artifacts_mount_path": str(artifacts),
            "cluster_node_addresses": ["10.20.30.40"],
        }
    )
    argv, env = _role.init_command(manifests, "db-upgrade", {("mlflow-database-uri", "uri"): uri})
    assert uri not in " ".join(argv), "the URI must not be on the command line"
    process_env = _role.base_env(env)
    process_env["PATH"] = f"{new_mlflow}:{process_env['PATH']}"
    argv[0] = shutil.which(Path(argv[0]).name, path=process_env["PATH"])  # the new release's python
    # Nor in the command line of any process it starts (sh -c 'exec mlflow db upgrade "$URI"' put it there).
    with ArgvWatch() as watch:
        migrated = subprocess.run(argv, env=process_env, capture_output=True, text=True, timeout=900, check=False)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert watch.saw("db", "upgrade"), "the migration's process was never seen: the watch proves nothing"
    leaks = watch.leaks(unquote(urlsplit(uri).password or ""))
    assert leaks == [], f"the database password is in a command line: {leaks}"

    new_revision = _revision(uri)
    assert new_revision != old_revision
    assert new_revision in _revisions(new_mlflow) - _revisions(old_mlflow), (
        f"{new_revision} is not one of {NEW}'s new migrations ({installed_with(new_mlflow)})"
    )

    new = mlflow_server(uri, artifacts_dir=artifacts, executable=new_mlflow / "mlflow")
    after = snapshot(MlflowClient(new.url))
    assert after == before
