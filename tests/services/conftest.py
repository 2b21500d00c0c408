"""Fixtures for tests on real services (marker ``services``); docs/testing-services.md.

- ``services`` (session): ``tests/harness/services start`` under a lease of this pytest process,
  the ``MLFLOW_TEST_*`` connection settings it prints; ``services stop`` at the end, which stops
  only what the script itself started and no other live session still holds.
- ``postgres_backend_uri`` / ``mysql_backend_uri`` / ``sqlite_backend_uri``: a fresh, empty,
  uniquely named database for one test, dropped afterwards (servers on it are stopped first).
- ``mlflow_server``: a factory ``mlflow_server(backend_uri, *, args=(), env=None,
  artifacts_dir=None) -> Server`` (tests/harness/mlflow_server.py) that runs a real
  ``mlflow server`` on a free loopback port and waits for ``/health``; every server a test
  started is stopped when the test ends.
- ``*_module_backend_uri`` and ``mlflow_module_server``: the same, shared by the tests of one module.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from tests.harness.mlflow_server import (
    Server,
    fresh_database,
    services_start,
    services_stop,
    start_server,
)

ROOT = Path(__file__).resolve().parents[2]


class _Servers:
    """Every server started in this session, so databases can stop theirs before being dropped."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self.started: list[Server] = []

    def start(
        self,
        backend_uri: str,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str | None] | None = None,
        artifacts_dir: str | os.PathLike[str] | None = None,
        executable: str | os.PathLike[str] | None = None,
    ) -> Server:
        workdir = self._tmp.mktemp("mlflow-server")
        server = start_server(
            backend_uri, args=args, env=env, artifacts_dir=artifacts_dir, workdir=workdir, executable=executable
        )
        self.started.append(server)
        return server

    def stop_using(self, backend_uri: str) -> None:
        for server in self.started:
            if server.backend_uri == backend_uri:
                server.stop()

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()


@pytest.fixture(scope="session")
def services() -> Iterator[dict[str, str]]:
    """The harness's PostgreSQL and MariaDB, started (or reused) for this session; their settings."""
    lease = os.getpid()
    try:
        settings = services_start(lease=lease)
    except RuntimeError as error:
        services_stop(lease=lease)
        pytest.fail(f"the services harness could not start PostgreSQL/MariaDB:\n{error}", pytrace=False)
    yield settings
    stopped = services_stop(lease=lease)
    if stopped.returncode != 0:
        sys.stderr.write(f"tests/harness/services stop failed:\n{stopped.stdout}{stopped.stderr}\n")


@pytest.fixture(scope="session")
def _mlflow_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Servers]:
    servers = _Servers(tmp_path_factory)
    yield servers
    servers.stop_all()


def _server_factory(servers: _Servers) -> tuple[Callable[..., Server], list[Server]]:
    mine: list[Server] = []

    def start(
        backend_uri: str,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str | None] | None = None,
        artifacts_dir: str | os.PathLike[str] | None = None,
        executable: str | os.PathLike[str] | None = None,
    ) -> Server:
        server = servers.start(backend_uri, args=args, env=env, artifacts_dir=artifacts_dir, executable=executable)
        mine.append(server)
        return server

    return start, mine


def _database(kind: str, settings: dict[str, str], servers: _Servers) -> Iterator[str]:
    with fresh_database(kind, settings) as uri:
        yield uri
        servers.stop_using(uri)


@pytest.fixture
def mlflow_server(_mlflow_servers: _Servers) -> Iterator[Callable[..., Server]]:
    """``mlflow_server(backend_uri, *, args=(), env=None, artifacts_dir=None) -> Server``; stopped after the test."""
    start, mine = _server_factory(_mlflow_servers)
    yield start
    for server in mine:
        server.stop()


@pytest.fixture
def postgres_backend_uri(services: dict[str, str], _mlflow_servers: _Servers) -> Iterator[str]:
    """``postgresql+psycopg2://...`` of a new, empty database on the harness's PostgreSQL."""
    yield from _database("postgresql", services, _mlflow_servers)


@pytest.fixture
def mysql_backend_uri(services: dict[str, str], _mlflow_servers: _Servers) -> Iterator[str]:
    """``mysql+pymysql://...`` of a new, empty database on the harness's MariaDB."""
    yield from _database("mysql", services, _mlflow_servers)


@pytest.fixture
def sqlite_backend_uri(tmp_path: Path, _mlflow_servers: _Servers) -> Iterator[str]:
    """``sqlite:////...`` of a new database file in the test's temporary directory."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    yield uri
    _mlflow_servers.stop_using(uri)


# The same per module: one database and one server shared by the tests of a module, for modules
# whose tests do not depend on each other's MLflow state (a server start costs 10 to 30 s here).


@pytest.fixture(scope="module")
def mlflow_module_server(_mlflow_servers: _Servers) -> Iterator[Callable[..., Server]]:
    """Like ``mlflow_server``, but its servers are stopped at the end of the module."""
    start, mine = _server_factory(_mlflow_servers)
    yield start
    for server in mine:
        server.stop()


@pytest.fixture(scope="module")
def postgres_module_backend_uri(services: dict[str, str], _mlflow_servers: _Servers) -> Iterator[str]:
    yield from _database("postgresql", services, _mlflow_servers)


@pytest.fixture(scope="module")
def mysql_module_backend_uri(services: dict[str, str], _mlflow_servers: _Servers) -> Iterator[str]:
    yield from _database("mysql", services, _mlflow_servers)


@pytest.fixture(scope="module")
def sqlite_module_backend_uri(tmp_path_factory: pytest.TempPathFactory, _mlflow_servers: _Servers) -> Iterator[str]:
    uri = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'mlflow.db'}"
    yield uri
    _mlflow_servers.stop_using(uri)
