"""The role's gc CronJob command on a real ``mlflow server`` and PostgreSQL.

The CronJob's container (command, environment with the backend URI resolved from the Secret)
is run as rendered, with MLFLOW_TRACKING_URI pointed at the harness's server instead of the
in-cluster Service: a run deleted longer ago than --older-than is gone from the database and
its artifacts are gone from the server's artifact directory (deleted through the proxy); a run
not deleted is kept whole.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from benchmarks import _role

pytestmark = pytest.mark.services


def test_gc_removes_deleted_runs_and_their_artifacts(postgres_backend_uri: str, mlflow_server, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    server = mlflow_server(postgres_backend_uri, artifacts_dir=artifacts)
    client = MlflowClient(server.url)
    experiment = client.create_experiment("gc")
    kept, doomed = (client.create_run(experiment).info.run_id for _number in range(2))
    for run_id in (kept, doomed):
        client.log_text(run_id, "payload", "files/a.txt")
        client.log_metric(run_id, "m", 1.0)
    doomed_files = [p for p in artifacts.rglob("a.txt") if doomed in str(p)]
    assert doomed_files, "the artifact did not land in the server's directory"
    client.delete_run(doomed)
    time.sleep(2)

    manifests = _role.render_manifests(
        {
            "mlflow_server_gc_enabled": True,
            "mlflow_server_gc_older_than": "1s",
            "mlflow_server_artifacts_mount_path": str(artifacts),
            "cluster_node_addresses": ["10.20.30.40"],
        }
    )
    cronjob = next(m for m in manifests if m["kind"] == "CronJob")
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert postgres_backend_uri not in str(cronjob), "the URI must come from the Secret only"
    env = _role.resolve_env(container, {("mlflow-database-uri", "uri"): postgres_backend_uri})
    env["MLFLOW_TRACKING_URI"] = server.url
    result = subprocess.run(
        [_role._executable(container["command"][0]), *container["command"][1:]],
        env=_role.base_env(env),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert doomed in result.stdout + result.stderr

    with pytest.raises(MlflowException):
        client.get_run(doomed)
    assert not any(p.exists() for p in doomed_files)
    assert client.get_run(kept).data.metrics == {"m": 1.0}
    assert [f.path for f in client.list_artifacts(kept, "files")] == ["files/a.txt"]
