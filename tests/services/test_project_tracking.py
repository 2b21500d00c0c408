"""mlflow_project_job's run bookkeeping against a real MLflow server on a real PostgreSQL.

MLflow's own project code (mlflow.projects.utils._create_run) runs against the same server as
the oracle for the run's tags and parameters; the example project's train.py runs as the pod
would (MLFLOW_RUN_ID, MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_ID from the environment).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import mlflow
import pytest
from mlflow.projects import utils as mlflow_project_utils
from mlflow.tracking import MlflowClient

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import tracking as tracking_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import TrackingError
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.job import LABEL_RUN_ID
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.project import load_project
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.reconcile import Reconciler
from tests.harness.mlflow_server import free_port

# Not marked controller: our module_utils against a real MLflow server; the library versions are
# the same on both controller lines and the unit suite runs module_utils on Python 3.11.
pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]
WINE = ROOT / "tests" / "unit" / "fixtures" / "projects" / "wine"
EXAMPLE = ROOT / "examples" / "wine-quality"


@pytest.fixture
def server(postgres_backend_uri, mlflow_server):
    started = mlflow_server(postgres_backend_uri)
    assert started.running, started.log_tail()
    return started


def _submit_like_the_module(tracker, project_dir, parameters, experiment_name, run_name=None):
    project = load_project(str(project_dir))
    entry = project.get_entry_point("main")
    experiment_id = tracker.experiment_id(experiment_name, None)
    tags = tracking_utils.run_tags(str(project_dir), "main", run_name=run_name, image_uri="registry/x:1")
    run_id = tracker.create_run(experiment_id, tags, entry.logged_parameters(parameters), run_name=run_name)
    return experiment_id, run_id


def test_run_has_mlflows_tags_and_params(server, monkeypatch):
    tracker = tracking_utils.Tracker(server.url)
    tracker.check()
    name = f"wine-{uuid.uuid4().hex[:8]}"
    parameters = {"alpha": 0.5, "extra_one": "a b"}
    experiment_id, run_id = _submit_like_the_module(tracker, WINE, parameters, name, run_name="first")

    # The oracle: MLflow's own project run creation, on the same server and project.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    mlflow.set_tracking_uri(server.url)
    theirs = mlflow_project_utils._create_run(str(WINE), experiment_id, str(WINE), None, "main", parameters)
    client = MlflowClient(server.url)
    mine = client.get_run(run_id)
    reference = client.get_run(theirs.info.run_id)

    assert mine.data.params == reference.data.params
    for key, value in reference.data.tags.items():
        if key.startswith("mlflow.") and key != "mlflow.runName":
            assert mine.data.tags.get(key) == value, key
    # ... and what `mlflow run --backend kubernetes` sets on top.
    assert mine.data.tags["mlflow.project.backend"] == "kubernetes"
    assert mine.data.tags["mlflow.project.env"] == "docker"
    assert mine.data.tags["mlflow.docker.image.uri"] == "registry/x:1"
    assert mine.info.run_name == "first"
    assert mine.info.status == "RUNNING"
    assert mine.info.experiment_id == experiment_id == client.get_experiment_by_name(name).experiment_id


def test_terminate_is_idempotent_and_log_is_an_artifact(server, tmp_path):
    tracker = tracking_utils.Tracker(server.url)
    _experiment_id, run_id = _submit_like_the_module(tracker, WINE, {"alpha": 1}, f"wine-{uuid.uuid4().hex[:8]}")
    tracker.log_text(run_id, "line 1\nline 2\n")
    assert tracker.terminate(run_id, "FAILED") is True
    assert tracker.terminate(run_id, "FINISHED") is False  # a terminal status is never overwritten
    client = MlflowClient(server.url)
    assert client.get_run(run_id).info.status == "FAILED"
    local = client.download_artifacts(run_id, tracking_utils.LOG_ARTIFACT, str(tmp_path))
    assert Path(local).read_text() == "line 1\nline 2\n"


def test_sync_run_from_job_state(server):
    """The one Job-to-run map (reconcile.py) on a real server; a run ends when its Job ended."""
    tracker = tracking_utils.Tracker(server.url)
    reconciler = Reconciler(jobs=None)
    ended = "2026-11-30T23:59:58Z"
    for state, expected in (
        ("Complete", "FINISHED"),
        ("Failed", "FAILED"),
        ("Deleted", "KILLED"),
        ("Running", "RUNNING"),
    ):
        _experiment_id, run_id = _submit_like_the_module(tracker, WINE, {"alpha": 1}, f"sync-{uuid.uuid4().hex[:8]}")
        condition = {"type": state, "status": "True", "lastTransitionTime": ended}
        job = {
            "metadata": {"name": "j", "namespace": "n", "labels": {LABEL_RUN_ID: run_id}},
            "status": {"conditions": [condition] if state in ("Complete", "Failed") else []},
        }
        changed, _text = reconciler.settle(tracker, job, state)
        run = MlflowClient(server.url).get_run(run_id)
        assert (changed, run.info.status) == (expected != "RUNNING", expected)
        if state in ("Complete", "Failed"):
            assert run.info.end_time == 1796083198000  # the Job's end, not this call's
        again, _text = reconciler.settle(tracker, job, state)
        assert again is False


def test_example_project_logs_to_the_modules_run(server):
    """train.py as the pod runs it: the module's run gets its batched metrics and artifacts."""
    tracker = tracking_utils.Tracker(server.url)
    experiment_id, run_id = _submit_like_the_module(tracker, EXAMPLE, {"epochs": 30}, f"ex-{uuid.uuid4().hex[:8]}")
    argv = load_project(str(EXAMPLE)).get_entry_point("main").argv({"epochs": 30})
    assert argv[:2] == ["python", "train.py"]
    env = dict(
        os.environ,
        MLFLOW_TRACKING_URI=server.url,
        MLFLOW_RUN_ID=run_id,
        MLFLOW_EXPERIMENT_ID=experiment_id,
    )
    done = subprocess.run(
        [sys.executable, *argv[1:]], check=False, cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    client = MlflowClient(server.url)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"  # mlflow.start_run() in the pod ends the run it resumed
    assert set(run.data.metrics) >= {"rmse", "mae", "r2", "train_rmse"}
    assert len(client.get_metric_history(run_id, "train_rmse")) == 30
    assert [a.path for a in client.list_artifacts(run_id)] == ["model.json"]
    assert tracker.terminate(run_id, "FINISHED") is False


def test_unreachable_server_is_named():
    tracker = tracking_utils.Tracker(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TrackingError) as caught:
        tracker.check()
    assert caught.value.option == "tracking_uri"
    assert "unreachable" in caught.value.message


def test_unknown_experiment_id_is_named(server):
    tracker = tracking_utils.Tracker(server.url)
    with pytest.raises(TrackingError) as caught:
        tracker.experiment_id(None, "987654321")
    assert caught.value.option == "experiment_id"
    assert tracker.experiment_id(f"planned-{uuid.uuid4().hex[:6]}", None, create=False) is None
