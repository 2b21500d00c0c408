"""The default way: no image option, the code as an artifact of the run, fetched by an init container.

Everything runs for real. The tracking server is the session's shared platform (playbooks/site.yml,
the ``platform`` fixture): the module reaches it at the node's NodePort (``platform.url``), the
pods at the Service's DNS name (``platform.internal_url``). Each test has an experiment of its
own there and a namespace of its own for the Jobs; nothing changes the platform itself. The pods
run the MLproject's ``docker_env.image`` (the platform's MLflow image): the kubelet runs the init
container (fetch through the server, hash check, unpack into the emptyDir), then ``train.py``,
which logs its metrics to the run from the pod.

Two cases need more than a well-behaved server:

- a failed upload: a small ``mlflow server`` of the test's own on loopback
  (tests/harness/mlflow_server.py) whose artifact store cannot take the upload; no Job is created,
  so no pod has to reach it;
- a snapshot changed on the server after the run was tagged with its hash: the Job's pod is held
  by a scheduling gate until the test has replaced the run's artifact through the platform's own
  artifact API, then released; the init container refuses it and its log says why.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s_client
from kubernetes import watch
from mlflow.tracking import MlflowClient

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import delivery, snapshot
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import job as job_utils
from ansible_collections.mlops.mlflow_k8s.plugins.modules import mlflow_project_job
from tests.harness.mlflow_server import start_server
from tests.harness.module import run_module as run

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "wine-quality"
DOCKER_IMAGE = yaml.safe_load((EXAMPLE / "MLproject").read_text(encoding="utf-8"))["docker_env"]["image"]
# No CPU request: the node's 2 cores are shared by every test running at the same time
# (platforms included), and the module fails at once on a pod the scheduler finds no room for
# ("Insufficient cpu"); a request of 0 always fits. tests/cluster/test_readme_run_project.py
# runs the example with the project_runner role's requests, as a user would.
SMALL = {"requests": {"cpu": "0", "memory": "256Mi"}}
HOLD = "mlflow-k8s.test/hold"


@pytest.fixture
def experiment(platform):
    client = MlflowClient(platform.url)
    experiment_id = client.create_experiment(f"snapshot-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    return client, experiment_id


def _args(kubeconfig, namespace, platform, experiment_id, **extra):
    base = {
        "project_uri": str(EXAMPLE),
        "parameters": {"alpha": 0.3, "epochs": 20},
        "namespace": namespace,
        "kubeconfig": kubeconfig,
        "tracking_uri": platform.url,
        "job_tracking_uri": platform.internal_url,
        "experiment_id": experiment_id,
        "wait_timeout": 600,
        "propagation_policy": "Background",
    }
    base.update(extra)
    return base


def test_the_example_runs_to_finished_without_any_image_option(kubeconfig, namespace, platform, experiment):
    client, experiment_id = experiment
    result = run(mlflow_project_job, _args(kubeconfig, namespace, platform, experiment_id, wait=True, resources=SMALL))
    assert result.get("state") == "Complete", (result.get("msg"), result.get("stuck"), result.get("logs"))
    run_id = result["run"]["run_id"]
    mlflow_run = client.get_run(run_id)
    assert mlflow_run.info.status == "FINISHED"
    # The entry point ran in the pod and logged to the module's run through the Service.
    assert {"rmse", "mae", "r2"} <= set(mlflow_run.data.metrics), mlflow_run.data.metrics
    assert len(client.get_metric_history(run_id, "train_rmse")) == 20
    # The code it ran is the run's artifact, and its tag is that artifact's hash.
    snap = result["snapshot"]
    assert snap["uploaded"] and snap["artifact_path"] == snapshot.ARTIFACT_PATH
    assert mlflow_run.data.tags[snapshot.HASH_TAG] == snap["sha256"]
    listed = [a.path for a in client.list_artifacts(run_id, snapshot.ARTIFACT_DIR)]
    assert listed == [snapshot.ARTIFACT_PATH]
    pod = result["job"]["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["image"] == pod["containers"][0]["image"] == DOCKER_IMAGE
    assert pod["containers"][0]["workingDir"] == "/mlflow/projects/code"


def test_check_mode_shows_the_init_container_and_uploads_nothing(kubeconfig, namespace, platform, experiment, k8s):
    client, experiment_id = experiment
    result = run(
        mlflow_project_job, _args(kubeconfig, namespace, platform, experiment_id, _ansible_diff=True), check_mode=True
    )
    assert result["changed"] and result["run"]["status"] == "PLANNED"
    snap = result["snapshot"]
    assert snap["uploaded"] is False and len(snap["sha256"]) == 64
    assert snap["url"].endswith(f"/{experiment_id}/<run id>/artifacts/mlflow-project/code.tar.gz")
    assert snap["url"].startswith(platform.internal_url + "/api/2.0/mlflow-artifacts/artifacts/")
    (init,) = result["job"]["spec"]["template"]["spec"]["initContainers"]
    assert {e["name"]: e.get("value") for e in init["env"]}["MLFLOW_SNAPSHOT_SHA256"] == snap["sha256"]
    assert client.search_runs([experiment_id]) == []
    assert k8s_client.BatchV1Api(k8s).list_namespaced_job(namespace).items == []


@pytest.fixture
def own_server(tmp_path):
    """A small ``mlflow server`` of this test's own (SQLite, proxied artifacts) on loopback."""
    started = start_server(f"sqlite:///{tmp_path / 'mlflow.db'}", workdir=tmp_path / "server")
    yield started
    started.stop()


def test_a_failed_upload_marks_the_run_failed_and_creates_no_job(kubeconfig, namespace, own_server, k8s):
    client = MlflowClient(own_server.url)
    experiment_id = client.create_experiment("no-upload")
    # Real failure, no mock: the experiment's artifact directory on the server becomes a file,
    # so the server cannot store the upload (500), while the database still takes the run.
    location = client.get_experiment(experiment_id).artifact_location
    assert location == f"mlflow-artifacts:/{experiment_id}"
    target = own_server.artifacts_dir / experiment_id
    shutil.rmtree(target, ignore_errors=True)
    target.write_text("not a directory")
    args = {
        "project_uri": str(EXAMPLE),
        "namespace": namespace,
        "kubeconfig": kubeconfig,
        "tracking_uri": own_server.url,
        "job_tracking_uri": own_server.url,
        "experiment_id": experiment_id,
        "run_name": "no-upload",
    }
    result = run(mlflow_project_job, args)
    assert result["failed"] and result["option"] == "tracking_uri", result
    assert "uploading the project's code" in result["msg"]
    runs = client.search_runs([experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert k8s_client.BatchV1Api(k8s).list_namespaced_job(namespace).items == []


def test_resubmitting_the_same_content_reuses_the_run(kubeconfig, namespace, platform, experiment, tmp_path):
    client, experiment_id = experiment
    copy = tmp_path / "wine-quality"
    shutil.copytree(EXAMPLE, copy)

    def submit():
        return run(
            mlflow_project_job,
            _args(kubeconfig, namespace, platform, experiment_id, project_uri=str(copy), resources=SMALL),
        )

    first = submit()
    os.utime(copy / "train.py", (0, 0))  # an mtime is not content
    again = submit()
    assert first["changed"] and not again["changed"] and again["existing"]
    assert again["run"]["run_id"] == first["run"]["run_id"]
    assert len(client.search_runs([experiment_id])) == 1  # nothing uploaded for the second call
    (copy / "train.py").write_text((copy / "train.py").read_text() + "\n# changed\n")
    changed = submit()
    assert changed["changed"] and changed["snapshot"]["sha256"] != first["snapshot"]["sha256"]
    assert len(client.search_runs([experiment_id])) == 2


def test_from_run_id_reruns_exactly_that_code(kubeconfig, namespace, platform, experiment, tmp_path):
    client, experiment_id = experiment
    copy = tmp_path / "wine-quality"
    shutil.copytree(EXAMPLE, copy)
    first = run(
        mlflow_project_job,
        _args(kubeconfig, namespace, platform, experiment_id, project_uri=str(copy), wait=True, resources=SMALL),
    )
    assert first.get("state") == "Complete", (first.get("msg"), first.get("logs"))
    shutil.rmtree(copy)  # no checkout left: the code comes from the run
    args = _args(
        kubeconfig, namespace, platform, experiment_id, from_run_id=first["run"]["run_id"], wait=True, resources=SMALL
    )
    del args["project_uri"]
    args["parameters"] = {"alpha": 0.9, "epochs": 5}
    again = run(mlflow_project_job, args)
    assert again.get("state") == "Complete", (again.get("msg"), again.get("logs"))
    old, new = client.get_run(first["run"]["run_id"]), client.get_run(again["run"]["run_id"])
    assert new.info.run_id != old.info.run_id and new.info.status == "FINISHED"
    assert new.data.tags[snapshot.HASH_TAG] == old.data.tags[snapshot.HASH_TAG] == again["snapshot"]["sha256"]
    assert new.data.tags[delivery.FROM_RUN_TAG] == old.info.run_id
    assert new.data.tags["mlflow.source.name"] == old.data.tags["mlflow.source.name"]
    assert new.data.params["alpha"] == "0.9"
    fetched = []
    for mlflow_run in (old, new):
        (tmp_path / mlflow_run.info.run_id).mkdir()
        path = client.download_artifacts(
            mlflow_run.info.run_id, snapshot.ARTIFACT_PATH, str(tmp_path / mlflow_run.info.run_id)
        )
        fetched.append(Path(path))
    assert fetched[0].read_bytes() == fetched[1].read_bytes()
    # The pod of the re-run ran the earlier run's code with the new parameters.
    assert len(client.get_metric_history(new.info.run_id, "train_rmse")) == 5
    assert len(client.get_metric_history(old.info.run_id, "train_rmse")) == 20


def test_a_snapshot_changed_on_the_server_fails_the_pod_and_the_log_says_why(
    kubeconfig, namespace, platform, experiment, k8s, tmp_path
):
    client, experiment_id = experiment
    core = k8s_client.CoreV1Api(k8s)
    # The pod waits behind a scheduling gate (a real Kubernetes feature, no mock) until the
    # artifact has been changed; the module's wait sees a Pending pod meanwhile.
    template = json.loads(json.dumps(job_utils.DEFAULT_TEMPLATE))
    template["spec"]["template"]["spec"]["schedulingGates"] = [{"name": HOLD}]
    args = _args(kubeconfig, namespace, platform, experiment_id, wait=True, job_template=template, resources=SMALL)
    outcome: dict = {}
    waiter = threading.Thread(target=lambda: outcome.update(run(mlflow_project_job, args)), daemon=True)
    waiter.start()
    pod = None
    watcher = watch.Watch()
    for event in watcher.stream(core.list_namespaced_pod, namespace, timeout_seconds=240):
        if event["type"] == "ADDED":
            pod = event["object"]
            watcher.stop()
    assert pod is not None, f"no pod within 240 s; the module returned {outcome}"
    assert [g.name for g in pod.spec.scheduling_gates or []] == [HOLD]
    (job,) = k8s_client.BatchV1Api(k8s).list_namespaced_job(namespace).items
    run_id = job.metadata.labels[job_utils.LABEL_RUN_ID]
    # Replace the logged archive through the server's own artifact API: one byte more.
    stored = Path(client.download_artifacts(run_id, snapshot.ARTIFACT_PATH, str(tmp_path)))
    changed = tmp_path / "changed" / stored.name
    changed.parent.mkdir()
    changed.write_bytes(stored.read_bytes() + b"\0")
    client.log_artifact(run_id, str(changed), snapshot.ARTIFACT_DIR)
    again = Path(client.download_artifacts(run_id, snapshot.ARTIFACT_PATH, str(tmp_path / "again")))
    assert again.read_bytes() == changed.read_bytes()
    core.patch_namespaced_pod(pod.metadata.name, namespace, [{"op": "remove", "path": "/spec/schedulingGates"}])
    waiter.join(timeout=600)
    assert not waiter.is_alive(), "the module's wait did not return"
    result = outcome
    assert result.get("state") == "Failed", result
    assert result["run"]["run_id"] == run_id
    assert client.get_run(run_id).info.status == "FAILED"
    # The entry point never ran; the init container's log is what the module returns.
    assert "mlflow-snapshot:" in result["logs"] and "sha256" in result["logs"], result["logs"]
    assert client.get_metric_history(run_id, "train_rmse") == []
