"""tests/harness/services itself: idempotent, sourceable, and it stops only what it started.

The last test starts a second PostgreSQL cluster and a second MariaDB next to the running ones
(own ports, data directory, socket and state directory), stops them through the script, and
checks that the services it did not start are still up.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

import pytest
import sqlalchemy

from tests.harness.mlflow_server import SERVICES_SCRIPT, free_port

pytestmark = pytest.mark.services


def _run(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SERVICES_SCRIPT), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def _settings(env_output: str) -> dict[str, str]:
    pairs = (shlex.split(line)[1].partition("=") for line in env_output.splitlines() if line.startswith("export "))
    return {key: value for key, _sep, value in pairs}


def _answers(uri: str) -> bool:
    engine = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_start_is_idempotent_and_env_is_sourceable(services: dict[str, str]) -> None:
    first, second = _run("start"), _run("start")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert first.stdout == second.stdout
    assert re.search(r"^postgresql \S+ +up +127\.0\.0\.1:\d+ ", first.stdout, re.MULTILINE), first.stdout
    assert re.search(r"^mariadb +up +127\.0\.0\.1:\d+ ", first.stdout, re.MULTILINE), first.stdout

    assert _settings(_run("env").stdout) == services
    sourced = subprocess.run(
        ["bash", "-c", f'eval "$({shlex.quote(str(SERVICES_SCRIPT))} env)" && printf %s "$MLFLOW_TEST_MYSQL_URI"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sourced.stdout == services["MLFLOW_TEST_MYSQL_URI"]
    assert _answers(services["MLFLOW_TEST_PG_URI"])
    assert _answers(services["MLFLOW_TEST_MYSQL_URI"])


def test_bad_settings_fail_before_anything_happens() -> None:
    result = _run("start", env={"MLFLOW_TEST_DB_PASSWORD": "it's"})
    assert result.returncode == 1
    assert "MLFLOW_TEST_DB_PASSWORD must be" in result.stderr
    assert "starting" not in result.stderr
    assert _run("frobnicate").returncode == 2


@pytest.mark.slow
def test_stop_stops_only_what_the_script_started(services: dict[str, str]) -> None:
    work = Path(tempfile.mkdtemp(prefix="mlflow-services-selftest-"))
    work.chmod(0o755)  # MariaDB runs as mysql and keeps its files here
    cluster = f"selftest_{uuid.uuid4().hex[:8]}"
    env = {
        "MLFLOW_TEST_SERVICES_STATE_DIR": str(work / "state"),
        "MLFLOW_TEST_PG_CLUSTER": cluster,
        "MLFLOW_TEST_PG_PORT": str(free_port()),
        "MLFLOW_TEST_MYSQL_PORT": str(free_port()),
        "MLFLOW_TEST_MYSQL_DATADIR": str(work / "mysql"),
        "MLFLOW_TEST_MYSQL_SOCKET": str(work / "run" / "mysqld.sock"),
    }
    version = None
    try:
        started = _run("start", env=env)
        assert started.returncode == 0, started.stderr
        version = re.search(rf"^postgresql (\S+)/{cluster} +up ", started.stdout, re.MULTILINE).group(1)
        assert started.stdout.count("started-by-harness=yes") == 2, started.stdout
        mine = _settings(_run("env", env=env).stdout)
        assert mine["MLFLOW_TEST_PG_PORT"] == env["MLFLOW_TEST_PG_PORT"]
        assert _answers(mine["MLFLOW_TEST_PG_URI"])
        assert _answers(mine["MLFLOW_TEST_MYSQL_URI"])

        stopped = _run("stop", env=env)
        assert stopped.returncode == 0, stopped.stderr
        after = _run("status", env=env)
        assert after.returncode == 1
        assert after.stdout.count(" down ") == 2, after.stdout

        # The services this script did not start (the session's) are untouched.
        main = _run("status")
        assert main.returncode == 0, main.stdout
        assert _answers(services["MLFLOW_TEST_PG_URI"])
        assert _answers(services["MLFLOW_TEST_MYSQL_URI"])
    finally:
        _run("stop", env=env)
        if version is None:
            listed = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=False).stdout
            version = next((line.split()[0] for line in listed.splitlines() if f" {cluster} " in line), None)
        if version is not None:
            subprocess.run(["pg_dropcluster", "--stop", version, cluster], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)
