"""Fixtures the runner's unit tests share (test_runner.py, test_attack_wait.py)."""

import pytest
from mlflow.tracking import MlflowClient

from tests.unit.test_runner import PROJECTS, params


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A real MLflow tracking store (SQLite) per test module, and an experiment in it."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("runner", artifact_location=str(root / "artifacts"))
    return {"uri": uri, "client": client, "experiment_id": experiment_id}


@pytest.fixture
def submit(store):
    """mlflow_project_job's arguments for the example project on a prebuilt image, ``extra`` on top."""

    def make(**extra):
        base = {
            "project_uri": str(PROJECTS / "wine"),
            "image": "registry.local/wine:1",
            "parameters": {"alpha": 0.5},
            "tracking_uri": store["uri"],
            "experiment_id": store["experiment_id"],
            "namespace": "ns",
        }
        base.update(extra)
        return params(**base)

    return make
