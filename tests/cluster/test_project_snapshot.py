"""The default way: no image option, the code as an artifact of the run, fetched by an init container.

The tracking server is a real ``mlflow server`` with proxied artifacts (tests/harness/mlflow_server.py,
SQLite backend; the services tests cover PostgreSQL and basic auth). The module runs in-process.

Where the pods run:

- on the API stand-in (or a control plane without kubelet), nothing runs pods: the simulated
  kubelet keeps the pod Running while tests/harness/pod_process.py runs the pod's own init
  container and entry point as local processes, exactly as rendered (command, env, emptyDir,
  workingDir), on this machine's Python instead of the image; their exit code and output
  then end the pod through the simulated kubelet. This proves the Job's spec, the fetch, the
  unpack and the entry point against the real server; it does not prove the image (that it
  has Python, that it can be pulled), the kubelet's volume handling or in-cluster networking.
- on a real cluster (KUBECONFIG naming one with real kubelets) the kubelet runs everything, and
  the test needs a tracking server the pods can reach: MLFLOW_K8S_TEST_TRACKING_URI (from this
  machine) and MLFLOW_K8S_TEST_JOB_TRACKING_URI (from the pods); it is skipped without them.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from kubernetes import client as k8s_client
from mlflow.tracking import MlflowClient

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import delivery, snapshot
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import job as job_utils
from ansible_collections.mlops.mlflow_k8s.plugins.modules import mlflow_project_job
from tests.harness.mlflow_server import start_server
from tests.harness.module import run_module as run
from tests.harness.pod_process import run_pod

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "wine-quality"
WINE_LABEL = {job_utils.LABEL_PROJECT: "wine-quality"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, cluster_kind):
    """(tracking URI for the module, for the pods, the local server's artifacts directory or None)."""
    if cluster_kind == "real-kubelet":
        uri = os.environ.get("MLFLOW_K8S_TEST_TRACKING_URI")
        job_uri = os.environ.get("MLFLOW_K8S_TEST_JOB_TRACKING_URI")
        if not (uri and job_uri):
            pytest.skip(
                "a real cluster runs the pods: set MLFLOW_K8S_TEST_TRACKING_URI and MLFLOW_K8S_TEST_JOB_TRACKING_URI "
                "to a tracking server (with proxied artifacts) that this machine and the pods can reach"
            )
        yield uri, job_uri, None
        return
    workdir = tmp_path_factory.mktemp("snapshot-server")
    started = start_server(f"sqlite:///{workdir / 'mlflow.db'}", workdir=workdir)
    yield started.url, started.url, started.artifacts_dir
    started.stop()


@pytest.fixture
def experiment(server):
    client = MlflowClient(server[0])
    experiment_id = client.create_experiment(f"snapshot-{os.getpid()}-{time.time_ns()}")
    return client, experiment_id


class LocalPods:
    """Runs each new pod of the namespace with pod_process.run_pod, then ends it through the kubelet."""

    def __init__(self, k8s, namespace, kubelet, root: Path, before=None):
        self.before = before or (lambda pod: None)
        self.core = k8s_client.CoreV1Api(k8s)
        self.namespace = namespace
        self.kubelet = kubelet
        self.root = root
        self.results: dict[str, tuple[int, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        if self.kubelet.active:
            self.kubelet.outcome(WINE_LABEL, "run")  # Running until the local run decides
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _loop(self):
        api = self.core.api_client
        while not self._stop.is_set():
            for pod in self.core.list_namespaced_pod(self.namespace).items:
                name = pod.metadata.name
                job_name = (pod.metadata.labels or {}).get("job-name") or (pod.metadata.labels or {}).get(
                    "batch.kubernetes.io/job-name"
                )
                if name in self.results or not job_name:
                    continue
                manifest = api.sanitize_for_serialization(pod)
                self.before(manifest)
                code, log, container = run_pod(manifest, self.root / name)
                self.results[name] = (code, log)
                # The log belongs to the container that ended the pod (an init container's, when it failed).
                if code == 0:
                    self.kubelet.outcome(job_name, "succeed", log={container: log})
                else:
                    self.kubelet.outcome(job_name, "fail", exit_code=code, log={container: log})
            self._stop.wait(0.3)


def _args(kubeconfig, namespace, server, experiment_id, **extra):
    base = {
        "project_uri": str(EXAMPLE),
        "parameters": {"alpha": 0.3, "epochs": 20},
        "namespace": namespace,
        "kubeconfig": kubeconfig,
        "tracking_uri": server[0],
        "job_tracking_uri": server[1],
        "experiment_id": experiment_id,
        "wait_timeout": 600,
        "propagation_policy": "Background",
    }
    base.update(extra)
    return base


def test_the_example_runs_to_finished_without_any_image_option(
    kubeconfig, namespace, kubelet, k8s, server, experiment, tmp_path
):
    client, experiment_id = experiment
    with LocalPods(k8s, namespace, kubelet, tmp_path / "pods") as pods:
        result = run(mlflow_project_job, _args(kubeconfig, namespace, server, experiment_id, wait=True))
    assert result.get("state") == "Complete", result
    run_id = result["run"]["run_id"]
    mlflow_run = client.get_run(run_id)
    assert mlflow_run.info.status == "FINISHED"
    # The entry point ran: its metrics are on the module's run.
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
    docker_image = "ghcr.io/mlflow/mlflow:v3.17.2-full"
    assert init["image"] == pod["containers"][0]["image"] == docker_image
    assert pod["containers"][0]["workingDir"] == "/mlflow/projects/code"
    if kubelet.active:
        [(code, log)] = list(pods.results.values())
        assert code == 0, log


def test_check_mode_shows_the_init_container_and_uploads_nothing(kubeconfig, namespace, server, experiment, k8s):
    client, experiment_id = experiment
    result = run(
        mlflow_project_job, _args(kubeconfig, namespace, server, experiment_id, _ansible_diff=True), check_mode=True
    )
    assert result["changed"] and result["run"]["status"] == "PLANNED"
    snap = result["snapshot"]
    assert snap["uploaded"] is False and len(snap["sha256"]) == 64
    assert snap["url"].endswith(f"/{experiment_id}/<run id>/artifacts/mlflow-project/code.tar.gz")
    (init,) = result["job"]["spec"]["template"]["spec"]["initContainers"]
    assert {e["name"]: e.get("value") for e in init["env"]}["MLFLOW_SNAPSHOT_SHA256"] == snap["sha256"]
    assert client.search_runs([experiment_id]) == []
    assert k8s_client.BatchV1Api(k8s).list_namespaced_job(namespace).items == []


def test_a_failed_upload_marks_the_run_failed_and_creates_no_job(
    kubeconfig, namespace, server, experiment, k8s, cluster_kind
):
    if cluster_kind == "real-kubelet":
        pytest.skip("breaks the local server's artifact store on purpose; a shared server is not broken here")
    client, experiment_id = experiment
    # Real failure, no mock: the experiment's artifact directory on the server becomes a file,
    # so the server cannot store the upload (500), while the database still takes the run.
    location = client.get_experiment(experiment_id).artifact_location
    assert location == f"mlflow-artifacts:/{experiment_id}"
    target = server[2] / experiment_id
    shutil.rmtree(target, ignore_errors=True)
    target.write_text("not a directory")
    result = run(mlflow_project_job, _args(kubeconfig, namespace, server, experiment_id, run_name="no-upload"))
    assert result["failed"] and result["option"] == "tracking_uri", result
    assert "uploading the project's code" in result["msg"]
    runs = client.search_runs([experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert k8s_client.BatchV1Api(k8s).list_namespaced_job(namespace).items == []


def test_resubmitting_the_same_content_reuses_the_run(kubeconfig, namespace, kubelet, server, experiment, tmp_path):
    client, experiment_id = experiment
    kubelet.outcome(WINE_LABEL, "run")
    copy = tmp_path / "wine-quality"
    shutil.copytree(EXAMPLE, copy)
    first = run(mlflow_project_job, _args(kubeconfig, namespace, server, experiment_id, project_uri=str(copy)))
    os.utime(copy / "train.py", (0, 0))  # an mtime is not content
    again = run(mlflow_project_job, _args(kubeconfig, namespace, server, experiment_id, project_uri=str(copy)))
    assert first["changed"] and not again["changed"] and again["existing"]
    assert again["run"]["run_id"] == first["run"]["run_id"]
    assert len(client.search_runs([experiment_id])) == 1  # nothing uploaded for the second call
    (copy / "train.py").write_text((copy / "train.py").read_text() + "\n# changed\n")
    changed = run(mlflow_project_job, _args(kubeconfig, namespace, server, experiment_id, project_uri=str(copy)))
    assert changed["changed"] and changed["snapshot"]["sha256"] != first["snapshot"]["sha256"]


def test_from_run_id_reruns_exactly_that_code(kubeconfig, namespace, kubelet, k8s, server, experiment, tmp_path):
    client, experiment_id = experiment
    copy = tmp_path / "wine-quality"
    shutil.copytree(EXAMPLE, copy)
    with LocalPods(k8s, namespace, kubelet, tmp_path / "pods"):
        first = run(
            mlflow_project_job, _args(kubeconfig, namespace, server, experiment_id, project_uri=str(copy), wait=True)
        )
        assert first.get("state") == "Complete", first
        shutil.rmtree(copy)  # no checkout left: the code comes from the run
        args = _args(kubeconfig, namespace, server, experiment_id, from_run_id=first["run"]["run_id"], wait=True)
        del args["project_uri"]
        args["parameters"] = {"alpha": 0.9, "epochs": 5}
        again = run(mlflow_project_job, args)
    assert again.get("state") == "Complete", again
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
    if kubelet.active:
        assert len(client.get_metric_history(new.info.run_id, "train_rmse")) == 5


def test_a_snapshot_changed_on_the_server_fails_the_pod_and_the_log_says_why(
    kubeconfig, namespace, kubelet, k8s, server, experiment, tmp_path, cluster_kind
):
    if cluster_kind == "real-kubelet":
        pytest.skip("changes an artifact on the local server's disk")
    client, experiment_id = experiment

    def tamper(pod):
        for stored in server[2].rglob("code.tar.gz"):
            stored.write_bytes(stored.read_bytes() + b"\0")

    with LocalPods(k8s, namespace, kubelet, tmp_path / "pods", before=tamper):
        result = run(mlflow_project_job, _args(kubeconfig, namespace, server, experiment_id, wait=True))
    assert result.get("state") == "Failed", result
    assert client.get_run(result["run"]["run_id"]).info.status == "FAILED"
    # The entry point never ran; the init container's log is what the module returns.
    assert "mlflow-snapshot:" in result["logs"] and "sha256" in result["logs"], result["logs"]
