"""The snapshot way's steps (plugins/module_utils/delivery.py) on a real MLflow store (SQLite):
what it refuses before a run exists, what a failed upload says, what a re-run carries.

The whole path through a real `mlflow server` with proxied artifacts is proved in
tests/services/test_snapshot_fetch.py and tests/cluster/test_project_snapshot.py."""

import os
from pathlib import Path

import pytest
from mlflow import MlflowClient

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import delivery, snapshot, snapshot_fetch
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ProjectError, TemplateError, TrackingError
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.tracking import Tracker

WINE = Path(__file__).parent / "fixtures" / "projects" / "wine"


class Project:
    directory = str(WINE)


@pytest.fixture
def tracker(tmp_path):
    return Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")


@pytest.fixture
def delivered():
    made = delivery.SnapshotDelivery(Project(), {}, base_image="python:3.12-slim")
    yield made
    made.cleanup()


def test_the_project_is_packed_at_plan_time_and_removed_on_cleanup():
    made = delivery.SnapshotDelivery(Project(), {}, base_image="python:3.12-slim")
    archive = Path(made.snapshot.path)
    assert archive.is_file() and archive.stat().st_size == made.snapshot.size
    assert made.snapshot.sha256 == delivery.SnapshotDelivery(Project(), {}, base_image="x").snapshot.sha256
    assert made.tags() == {}
    made.cleanup()
    assert not archive.exists()


@pytest.mark.parametrize("uri", ["", None, "sqlite:///mlflow.db", "file:///mlruns", "databricks"])
def test_a_pod_needs_an_http_tracking_uri(uri):
    with pytest.raises(TemplateError) as error:
        delivery.SnapshotDelivery.check_job_tracking_uri(uri)
    assert error.value.option == "job_tracking_uri"
    assert "over HTTP" in str(error.value)


def test_an_experiment_whose_artifacts_the_server_does_not_proxy_is_refused(tracker, delivered, tmp_path):
    local = tracker.client.create_experiment("local", artifact_location=str(tmp_path / "artifacts"))
    with pytest.raises(TrackingError) as error:
        delivered.check_store(tracker, local, "http://mlflow.mlflow.svc:5000")
    assert error.value.option == "tracking_uri"
    assert "does not proxy" in str(error.value) and str(tmp_path / "artifacts") in str(error.value)
    proxied = tracker.client.create_experiment("proxied", artifact_location="mlflow-artifacts:/proxied")
    delivered.check_store(tracker, proxied, "http://mlflow.mlflow.svc:5000")  # accepted


def test_a_failed_upload_names_the_option_the_size_and_the_run(tracker, delivered):
    experiment = tracker.client.create_experiment("no-server", artifact_location="mlflow-artifacts:/no-server")
    run = tracker.client.create_run(experiment).info.run_id
    # mlflow-artifacts: needs a tracking server behind it; a SQLite store has none, so the upload fails.
    with pytest.raises(TrackingError) as error:
        delivered.upload(tracker, run, "http://mlflow.mlflow.svc:5000")
    assert error.value.option == "tracking_uri"
    assert f"to run {run} failed" in str(error.value) and " MB)" in str(error.value)
    assert delivered.url is None


def test_a_run_that_keeps_its_artifacts_locally_gives_no_url(tracker, delivered, tmp_path):
    experiment = tracker.client.create_experiment("files", artifact_location=str(tmp_path / "files"))
    run = tracker.client.create_run(experiment).info.run_id
    with pytest.raises(TrackingError, match="does not proxy"):
        delivered.upload(tracker, run, "http://mlflow.mlflow.svc:5000")
    # the archive itself was logged to the run's local artifact directory
    logged = [a.path for a in MlflowClient(tracker.uri).list_artifacts(run, os.path.dirname(snapshot.ARTIFACT_PATH))]
    assert snapshot.ARTIFACT_PATH in logged


def test_the_planned_url_is_the_proxied_artifact_route(delivered):
    url = delivered.planned_url("http://mlflow.mlflow.svc:5000/", "7")
    assert url == (
        "http://mlflow.mlflow.svc:5000/api/2.0/mlflow-artifacts/artifacts/7/"
        + delivery.PLANNED_URL_RUN  # shown as is in check mode: a placeholder, not a URL to fetch
        + "/artifacts/"
        + snapshot.ARTIFACT_PATH
    )


def test_a_rerun_carries_the_earlier_runs_code_and_source_tags(delivered, tmp_path):
    earlier = delivery.FromRun(
        "abc123", delivered.snapshot, str(WINE), {"mlflow.source.git.commit": "0" * 40}, str(tmp_path / "w")
    )
    rerun = delivery.SnapshotDelivery(Project(), {}, base_image="python:3.12-slim", from_run=earlier)
    assert rerun.snapshot is delivered.snapshot and rerun.workdir is None
    assert rerun.tags() == {"mlflow.source.git.commit": "0" * 40, delivery.FROM_RUN_TAG: "abc123"}
    described = rerun.as_dict("http://x/y", uploaded=False)
    assert described["from_run_id"] == "abc123" and described["sha256"] == delivered.snapshot.sha256


def test_a_run_without_a_snapshot_is_refused_naming_from_run_id(tracker, tmp_path):
    experiment = tracker.client.create_experiment("empty", artifact_location=str(tmp_path / "empty"))
    run = tracker.client.create_run(experiment).info.run_id
    with pytest.raises(ProjectError) as error:
        delivery.prepare_from_run(tracker, run)
    assert error.value.option == "from_run_id"
    assert run in str(error.value) and snapshot.HASH_TAG in str(error.value)


def _job():
    container = {"name": "p", "image": "python:3.12-slim", "command": ["python", "train.py"]}
    return {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {"containers": [container]}}}}


@pytest.mark.parametrize(
    ("params", "told"),
    [({}, 200 * 1024 * 1024), ({"snapshot_max_mb": 7}, 7 * 1024 * 1024), ({"snapshot_max_mb": 0}, 0)],
)
def test_the_pod_is_told_the_byte_limit_it_unpacks_within(params, told):
    made = delivery.SnapshotDelivery(Project(), params, base_image="python:3.12-slim")
    try:
        job = made.apply(_job(), "http://svc/x")
    finally:
        made.cleanup()
    (init,) = job["spec"]["template"]["spec"]["initContainers"]
    env = {e["name"]: e.get("value") for e in init["env"]}
    assert env[snapshot_fetch.MAX_BYTES_ENV] == str(told)
    assert snapshot_fetch.max_bytes_from_env(env) == (told or None)


def test_a_rerun_unpacks_the_earlier_runs_snapshot(tracker, delivered, tmp_path):
    experiment = tracker.client.create_experiment("earlier", artifact_location=str(tmp_path / "artifacts"))
    run = tracker.client.create_run(experiment).info.run_id
    snapshot.log_snapshot(tracker.client, run, delivered.snapshot)
    earlier = delivery.prepare_from_run(tracker, run, max_mb=1)
    try:
        assert earlier.snapshot.sha256 == delivered.snapshot.sha256
        assert snapshot.project_files(earlier.project_dir) == delivered.snapshot.files
    finally:
        earlier.cleanup()


class _Listing:
    def __init__(self, path, file_size):
        self.path = path
        self.file_size = file_size


class _HugeArtifactClient:
    """A run whose snapshot the server lists at 10 GB: it must not be downloaded at all."""

    def get_run(self, run_id):
        data = type("Data", (), {"tags": {snapshot.HASH_TAG: "ab" * 32}})()
        return type("Run", (), {"data": data})()

    def list_artifacts(self, run_id, path):
        return [_Listing(snapshot.ARTIFACT_PATH, 10 * 1024**3)]

    def download_artifacts(self, run_id, path, dest):
        raise AssertionError("downloaded a snapshot the listing says is too big")


def test_an_earlier_snapshot_listed_past_the_limit_is_not_downloaded():
    tracker = type("Tracker", (), {"client": _HugeArtifactClient(), "uri": "http://mlflow"})()
    with pytest.raises(ProjectError) as error:
        delivery.prepare_from_run(tracker, "r1", max_mb=200)
    assert error.value.option == "from_run_id"
    assert "10737418240 bytes" in error.value.message and "snapshot_max_mb=200" in error.value.message
