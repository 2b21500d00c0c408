"""A wait that outlives the API server: the control plane restarts under a running Job (issue #27).

mlflow_project_job waits (wait: true) for a real Job whose pod sleeps 40 s and exits 0; while
the pod runs, this machine's rig stops its whole control plane (etcd, kube-apiserver,
controller manager, scheduler: ../shared/rig/rig-down.sh) and starts it again
(../shared/rig/rig-up.sh). The node (kubelet, containerd, kube-proxy) runs on, and so does the
pod; the kubelet reports its end when the API server is back, and the Job controller then
completes the Job. The module must see that end: the Job Complete and not deleted, the run
FINISHED. Before issue #27 the first connection error of the watch deleted the Job and
marked the run FAILED.

It runs alone, never beside other tests: a control plane that goes away for half a minute
fails whatever else is talking to it (the other xdist worker's tests, a molecule scenario).
So it is marked ``disruptive``, which the cluster gate leaves out, and skipped unless
MLFLOW_K8S_DISRUPTIVE=1, which only ``tests/cluster/run --disruptive`` sets (one process; make
test runs it after every other gate). It
also needs the rig itself (a cluster named by KUBECONFIG cannot be restarted from here), and
root, as the rig's scripts do. The pod, the MLflow store and the run are real; the store is
SQLite in the test's temporary directory, and the pod never talks to MLflow.
"""

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from kubernetes import client as k8s_client

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import job as job_utils
from ansible_collections.mlops.mlflow_k8s.plugins.modules import mlflow_project_job
from tests.harness import cluster as cluster_harness
from tests.harness.module import run_module as run

ROOT = Path(__file__).resolve().parents[2]
RIG = Path(os.environ.get("MLFLOW_K8S_RIG") or ROOT.parent / "shared" / "rig")
DISRUPTIVE = os.environ.get("MLFLOW_K8S_DISRUPTIVE") == "1"

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.disruptive,
    pytest.mark.skipif(
        not DISRUPTIVE,
        reason="restarts the rig's control plane: runs alone, with MLFLOW_K8S_DISRUPTIVE=1 (tests/cluster/run)",
    ),
]

MLPROJECT = """\
name: api-restart
entry_points:
  main:
    parameters:
      seconds: {type: int, default: 40}
    command: 'sh -c "echo started; sleep $0; echo done; exit 0" {seconds}'
"""
SMALL = {"requests": {"cpu": "0", "memory": "16Mi"}}  # as tests/cluster/test_project_job.py's
RESTART_TIMEOUT = 180  # seconds each of rig-down.sh and rig-up.sh may take (a safety net)


@pytest.fixture
def rig(kubeconfig):
    """The rig's control-plane scripts, when the session's cluster is the rig and we may run them."""
    if Path(kubeconfig).resolve() != cluster_harness.rig_kubeconfig().resolve():
        pytest.skip(f"the session's cluster ({kubeconfig}) is not this machine's rig: it cannot be restarted here")
    scripts = [RIG / "rig-down.sh", RIG / "rig-up.sh"]
    missing = [str(s) for s in scripts if not s.is_file()]
    if missing:
        pytest.skip(f"no rig scripts at {', '.join(missing)} (set MLFLOW_K8S_RIG)")
    if os.geteuid() != 0:
        pytest.skip("the rig's scripts need root")
    return RIG


# What rig-up-full.sh exports before it calls rig-up.sh: the API server reaches the kubelet by its
# InternalIP ("rig-node" does not resolve: without it, logs and exec fail after the restart), and
# the controller manager runs without the controllers a one-node rig has no use for.
RIG_UP_ENV = {
    "APISERVER_EXTRA": "--kubelet-preferred-address-types=InternalIP,Hostname",
    "KCM_CONTROLLERS": "*,-node-ipam-controller,-service-lb-controller,-node-route-controller,"
    "-cloud-node-lifecycle-controller",
}


def _rig_script(rig, name):
    done = subprocess.run(
        ["bash", str(rig / name)],
        capture_output=True,
        text=True,
        timeout=RESTART_TIMEOUT,
        check=False,
        env={**os.environ, **RIG_UP_ENV},
    )
    assert done.returncode == 0, f"{name} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture
def project(tmp_path):
    path = tmp_path / "api-restart"
    path.mkdir()
    (path / "MLproject").write_text(MLPROJECT)
    return path


def _running_pod(core, namespace, deadline):
    """The name of the Job's pod once its container runs (the Job found by our run-id label)."""
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(namespace, label_selector=job_utils.LABEL_RUN_ID, _request_timeout=10).items
        for pod in pods:
            statuses = pod.status.container_statuses or []
            if any(s.state and s.state.running for s in statuses):
                return pod.metadata.name
        time.sleep(1)
    pytest.fail(f"no pod of the Job runs in namespace {namespace} within the safety net")


def test_control_plane_restart_during_the_wait_keeps_the_job_and_finishes_the_run(
    rig, kubeconfig, k8s, namespace, project, tracking, images
):
    args = {
        "project_uri": str(project),
        "image": images["busybox"],
        "namespace": namespace,
        "kubeconfig": kubeconfig,
        "tracking_uri": tracking["uri"],
        "job_tracking_uri": "http://mlflow-server.mlflow.svc:5000",
        "experiment_id": tracking["experiment_id"],
        "parameters": {"seconds": 40},
        "run_name": "api-restart",
        "wait": True,
        "wait_timeout": 600,  # a safety net: the restart takes well under a minute
        "propagation_policy": "Background",
        "resources": SMALL,
    }
    outcome = {}

    def submit():
        try:
            outcome.update(run(mlflow_project_job, args))
        except BaseException as exc:  # shown by the assertion below, not lost in the thread
            outcome["error"] = repr(exc)

    waiter = threading.Thread(target=submit, daemon=True)
    waiter.start()
    core = k8s_client.CoreV1Api(k8s)
    pod = _running_pod(core, namespace, time.monotonic() + 240)
    assert waiter.is_alive(), f"the module returned before the restart: {outcome}"

    down = False
    try:
        _rig_script(rig, "rig-down.sh")
        down = True
        time.sleep(5)  # the wait meets a refused connection, not only a closed watch
        assert waiter.is_alive(), f"the module gave up while the API server was away: {outcome}"
    finally:
        if down or not cluster_harness.probe(kubeconfig)[0]:
            _rig_script(rig, "rig-up.sh")  # whatever happened, the rig is left up

    waiter.join(timeout=args["wait_timeout"] + 60)
    assert not waiter.is_alive(), "the module still waits after wait_timeout"
    assert "error" not in outcome, outcome["error"]
    assert not outcome.get("failed"), outcome.get("msg")
    assert (outcome["state"], outcome["timed_out"]) == ("Complete", False), outcome
    assert "job_deleted" not in outcome
    batch = k8s_client.BatchV1Api(k8s)
    job = batch.read_namespaced_job(outcome["job_name"], namespace)  # not deleted
    assert job.metadata.deletion_timestamp is None
    assert any(c.type == "Complete" and c.status == "True" for c in job.status.conditions or [])
    assert job.metadata.labels[job_utils.LABEL_RUN_ID] == outcome["run"]["run_id"]
    assert core.read_namespaced_pod(pod, namespace).status.phase == "Succeeded"
    mlflow_run = tracking["client"].get_run(outcome["run"]["run_id"])
    assert mlflow_run.info.status == "FINISHED"
    # read from the kubelet after the restart
    assert "done" in outcome["logs"], (outcome["logs"], outcome.get("warnings"))
