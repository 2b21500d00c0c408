"""A real MLflow tracking server on PostgreSQL, MariaDB and SQLite, and what happens when it is not there.

Each backend test writes through one client and reads back through a new one, then looks into
the database itself: the data must be in the fresh database the fixture made, which proves the
server took its backend from ``MLFLOW_BACKEND_STORE_URI``. The failure tests prove that the
harness and a client fail, with a message that says why, when nothing answers.
"""

from __future__ import annotations

import time
import uuid

import pytest
import sqlalchemy
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tests.harness.mlflow_server import ServerStartError, database_exists, free_port, start_server, wait_for_health

pytestmark = pytest.mark.services

BACKEND_FIXTURES = {
    "postgresql": "postgres_backend_uri",
    "mariadb": "mysql_backend_uri",
    "sqlite": "sqlite_backend_uri",
}
LOSS = [0.9, 0.7, 0.55]
ACCURACY = [0.5, 0.62, 0.71, 0.8, 0.86]


@pytest.mark.parametrize("backend", list(BACKEND_FIXTURES))
def test_tracking_round_trip(backend: str, request: pytest.FixtureRequest, mlflow_server) -> None:
    backend_uri = request.getfixturevalue(BACKEND_FIXTURES[backend])
    server = mlflow_server(backend_uri)
    assert server.running, server.log_tail()

    writer = MlflowClient(tracking_uri=server.url)
    experiment_name = f"harness-{backend}-{uuid.uuid4().hex[:8]}"
    experiment_id = writer.create_experiment(experiment_name)
    run_id = writer.create_run(experiment_id, run_name="round-trip", tags={"backend": backend}).info.run_id
    writer.log_param(run_id, "alpha", "0.5")
    now = int(time.time() * 1000)
    for step, value in enumerate(LOSS):
        writer.log_metric(run_id, "loss", value, timestamp=now + step, step=step)
    writer.log_batch(
        run_id,
        metrics=[Metric("accuracy", value, now + step, step) for step, value in enumerate(ACCURACY)],
        params=[Param("l1_ratio", "0.1"), Param("epochs", "5")],
        tags=[RunTag("stage", "batch")],
    )
    writer.set_terminated(run_id)

    reader = MlflowClient(tracking_uri=server.url)
    run = reader.get_run(run_id)
    assert run.info.experiment_id == experiment_id
    assert run.info.status == "FINISHED"
    assert run.data.params == {"alpha": "0.5", "l1_ratio": "0.1", "epochs": "5"}
    assert run.data.metrics == {"loss": LOSS[-1], "accuracy": ACCURACY[-1]}
    assert run.data.tags["backend"] == backend
    assert run.data.tags["stage"] == "batch"
    loss = sorted((m.step, m.value) for m in reader.get_metric_history(run_id, "loss"))
    accuracy = sorted((m.step, m.value) for m in reader.get_metric_history(run_id, "accuracy"))
    assert loss == list(enumerate(LOSS))
    assert accuracy == list(enumerate(ACCURACY))
    assert reader.get_experiment_by_name(experiment_name).experiment_id == experiment_id
    assert [r.info.run_id for r in reader.search_runs([experiment_id])] == [run_id]

    # The rows are in the fixture's database: the server used the URI it was given.
    engine = sqlalchemy.create_engine(backend_uri, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            params_table = sqlalchemy.table(
                "params", sqlalchemy.column("key"), sqlalchemy.column("value"), sqlalchemy.column("run_uuid")
            )
            rows = conn.execute(
                sqlalchemy.select(params_table.c.key, params_table.c.value).where(params_table.c.run_uuid == run_id)
            )
            params = dict(rows.all())  # CursorResult has keys(): dict() would take it for a mapping
            points = conn.execute(sqlalchemy.text("SELECT COUNT(*) FROM metrics WHERE run_uuid = :r"), {"r": run_id})
            experiments = conn.execute(
                sqlalchemy.text("SELECT COUNT(*) FROM experiments WHERE name = :n"), {"n": experiment_name}
            )
            assert params == {"alpha": "0.5", "l1_ratio": "0.1", "epochs": "5"}
            assert points.scalar_one() == len(LOSS) + len(ACCURACY)
            assert experiments.scalar_one() == 1
    finally:
        engine.dispose()

    # Once stopped, the server is gone and its address no longer answers.
    server.stop()
    assert not server.running
    with pytest.raises(ServerStartError, match="Connection refused"):
        wait_for_health(server.url, timeout=2)


def test_backend_databases_are_fresh_per_test(postgres_backend_uri: str, mysql_backend_uri: str) -> None:
    """Nothing of an earlier test is left: the fixtures' databases start without any table."""
    for uri in (postgres_backend_uri, mysql_backend_uri):
        engine = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
        try:
            assert sqlalchemy.inspect(engine).get_table_names() == [], uri.rsplit("@", 1)[-1]
        finally:
            engine.dispose()
    assert postgres_backend_uri.startswith("postgresql+psycopg2://")
    assert mysql_backend_uri.startswith("mysql+pymysql://")


def test_module_and_test_databases_are_distinct(
    services: dict[str, str], postgres_module_backend_uri: str, postgres_backend_uri: str
) -> None:
    names = {uri.rsplit("/", 1)[-1] for uri in (postgres_module_backend_uri, postgres_backend_uri)}
    assert len(names) == 2
    assert all(name.startswith("mlflow_t_") and database_exists("postgresql", services, name) for name in names)


def test_health_wait_fails_on_a_port_nobody_listens_on() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(ServerStartError, match=rf"{url}/health did not answer 200 within 3 s") as failure:
        wait_for_health(url, timeout=3)
    assert "Connection refused" in str(failure.value)
    assert failure.value.url == url


def test_client_fails_when_the_server_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    port = free_port()
    client = MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
    with pytest.raises(MlflowException, match=rf"127\.0\.0\.1.*{port}.*Connection refused"):
        client.search_experiments()


def test_server_start_fails_with_its_log_when_the_database_port_is_wrong(services: dict[str, str], tmp_path) -> None:
    """The right user, password and database, on a port where no database listens."""
    port = free_port()
    user, password = services["MLFLOW_TEST_PG_USER"], services["MLFLOW_TEST_PG_PASSWORD"]
    uri = f"postgresql+psycopg2://{user}:{password}@127.0.0.1:{port}/{services['MLFLOW_TEST_PG_DATABASE']}"
    # MLflow retries the connection for about 100 s before it exits; 30 s of it show the cause.
    with pytest.raises(ServerStartError) as failure:
        start_server(uri, workdir=tmp_path, timeout=30)
    message = str(failure.value)
    assert "/health did not answer 200 within 30 s" in message
    assert f"--- last 60 lines of {tmp_path / 'server.log'} ---" in message
    assert "SQLAlchemy engine could not be created" in message  # MLflow's own log line
    assert f'connection to server at "127.0.0.1", port {port} failed: Connection refused' in message
    assert password not in message
    assert failure.value.returncode is not None  # the harness stopped the server it started
