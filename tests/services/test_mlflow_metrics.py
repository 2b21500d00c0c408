"""The role's Prometheus settings on a real ``mlflow server`` (MariaDB-free: SQLite is enough here).

The server runs with the argv and environment the role renders with
``mlflow_server_metrics_enabled`` (only the bind address changed to loopback): /metrics answers
with MLflow's request metrics for a Host header of a pod address (what Prometheus sends), and
the Host check still refuses any other name. The multiprocess directory is where the role puts
its emptyDir.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests

from benchmarks import _role
from tests.harness.mlflow_server import free_port, wait_for_health

pytestmark = pytest.mark.services


def test_metrics_are_scraped_by_pod_address(sqlite_backend_uri: str, tmp_path: Path) -> None:
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    (tmp_path / "artifacts").mkdir()
    manifests = _role.render_manifests(
        {
            "mlflow_server_metrics_enabled": True,
            "mlflow_server_metrics_dir": str(metrics_dir),
            "mlflow_server_port": port,
            "mlflow_server_artifacts_mount_path": str(tmp_path / "artifacts"),
            "cluster_node_addresses": ["10.20.30.40"],
        }
    )
    argv, env = _role.server_command(manifests, {("mlflow-database-uri", "uri"): sqlite_backend_uri})
    assert env["MLFLOW_EXPOSE_PROMETHEUS"] == str(metrics_dir)
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        argv, cwd=tmp_path, env=_role.base_env(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_health(url, process=process, log_path=tmp_path / "server.log", secret_source=sqlite_backend_uri)
        requests.get(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=30).raise_for_status()
        scraped = requests.get(f"{url}/metrics", headers={"Host": f"10.1.2.3:{port}"}, timeout=30)
        assert scraped.status_code == 200, scraped.text[:500]
        assert "mlflow_http_request_total" in scraped.text, scraped.text[:2000]
        assert any(metrics_dir.iterdir()), "no multiprocess files in the role's metrics directory"
        refused = requests.get(f"{url}/metrics", headers={"Host": f"evil.example:{port}"}, timeout=30)
        assert refused.status_code == 403
    finally:
        import os
        import signal

        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
        log.close()
