"""mlops.mlflow_k8s.workload_wait against a Kubernetes API: rollouts and Jobs end as soon as a
pod is stuck, naming the pod, its state, its events (and its log lines); healthy ones roll out.

The pods are real and fail for real: an image under the reserved .invalid domain cannot be
pulled, a Secret that does not exist cannot be read, a shell exiting 1 crash-loops, a
hostPath directory that is not on the node cannot be mounted.
"""

from __future__ import annotations

import pytest

from ansible_collections.mlops.mlflow_k8s.plugins.modules import workload_wait
from tests.harness.module import run_module

pytestmark = pytest.mark.cluster

LABELS = {"app.kubernetes.io/part-of": "mlflow-k8s", "app.kubernetes.io/managed-by": "ansible"}


def _deployment(name, container):
    labels = {**LABELS, "app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "main", **container}]},
            },
        },
    }


def _wait(kubeconfig, namespace, kind, name, check_mode=False, **extra):
    args = {"kind": kind, "namespace": namespace, "name": name, "kubeconfig": kubeconfig, "timeout": 240, **extra}
    return run_module(workload_wait, args, check_mode=check_mode)


def test_deployment_rolls_out(dyn, namespace, images, kubeconfig):
    dyn.request(
        "post",
        f"/apis/apps/v1/namespaces/{namespace}/deployments",
        body=_deployment("fine", {"image": images["pause"]}),
    )
    result = _wait(kubeconfig, namespace, "Deployment", "fine")
    assert not result.get("failed"), result
    assert result["state"] == "Ready" and result["status"]["availableReplicas"] == 1
    assert result["msg"] == "deployment fine successfully rolled out"


def test_deployment_with_an_image_that_cannot_be_pulled_fails_at_once(dyn, namespace, images, kubeconfig):
    dyn.request(
        "post",
        f"/apis/apps/v1/namespaces/{namespace}/deployments",
        body=_deployment("nopull", {"image": images["missing"]}),
    )
    result = _wait(kubeconfig, namespace, "Deployment", "nopull")
    assert result["failed"] and result["state"] == "Stuck", result
    stuck = result["stuck"]
    assert stuck["pod"].startswith("nopull-") and stuck["reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert result["msg"].startswith(f"Deployment {namespace}/nopull: pod {stuck['pod']} (container main) is stuck in ")
    assert images["missing"] in result["msg"] and "last events:" in result["msg"]


def test_crash_looping_deployment_names_the_pod_and_its_log(dyn, namespace, images, kubeconfig):
    # Ready as a server is, by its probe: a container that dies at once never is. (Without a
    # probe, a pod counts as available for the moment its container runs, and a rollout can end
    # in that moment.)
    container = {
        "image": images["busybox"],
        "command": ["sh", "-c", "echo loading config; echo no such file; exit 1"],
        "readinessProbe": {"exec": {"command": ["true"]}, "initialDelaySeconds": 5, "periodSeconds": 2},
    }
    dyn.request("post", f"/apis/apps/v1/namespaces/{namespace}/deployments", body=_deployment("crasher", container))
    # max_restarts 2: the restart count rules before two failures alike do (the next test).
    result = _wait(kubeconfig, namespace, "Deployment", "crasher", max_restarts=2)
    assert result["failed"] and result["stuck"]["reason"] == "CrashLoopBackOff", result
    assert "last exit code 1" in result["msg"]
    assert result["msg"].endswith("last log lines:\n  loading config\n  no such file"), result["msg"]


def test_slow_crash_loop_is_named_at_its_second_failure_alike(dyn, namespace, images, kubeconfig):
    """Each attempt takes 15 s before it fails (as MLflow's import takes 30): three restarts under
    the kubelet's back-off would take over a minute and a half; two failures alike are enough."""
    container = {
        "image": images["busybox"],
        "command": ["sh", "-c", "echo importing; sleep 15; echo no such table: runs; exit 3"],
        "readinessProbe": {"exec": {"command": ["true"]}, "initialDelaySeconds": 60, "periodSeconds": 2},
    }
    dyn.request("post", f"/apis/apps/v1/namespaces/{namespace}/deployments", body=_deployment("slow", container))
    result = _wait(kubeconfig, namespace, "Deployment", "slow")
    assert result["failed"] and result["stuck"]["reason"] == "RepeatedFailure", result
    assert "exit code 3, last log line: 'no such table: runs'); restarted 2 times" in result["msg"], result["msg"]
    assert result["msg"].endswith("last log lines:\n  importing\n  no such table: runs"), result["msg"]


def test_job_with_a_missing_secret_fails_at_once(dyn, namespace, images, kubeconfig):
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "token"}}}]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "needs-token", "labels": LABELS},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": images["busybox"], "command": ["true"], "env": env}],
                },
            },
        },
    }
    dyn.request("post", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=job)
    result = _wait(kubeconfig, namespace, "Job", "needs-token")
    assert result["failed"] and result["state"] == "Stuck", result
    assert result["stuck"]["reason"] == "CreateContainerConfigError"
    assert 'secret "absent" not found' in result["msg"]


def test_deployment_on_a_missing_hostpath_directory_fails_after_the_mount_grace(
    dyn, namespace, images, kubeconfig, tmp_path
):
    """What a hostPath PV of type Directory does when its directory was never made on the node
    (the node is this machine): the kubelet retries the mount for ever; the wait names it."""
    missing = tmp_path / "never-made"
    container = {"image": images["pause"], "volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    body = _deployment("nodir", container)
    body["spec"]["template"]["spec"]["volumes"] = [
        {"name": "data", "hostPath": {"path": str(missing), "type": "Directory"}}
    ]
    dyn.request("post", f"/apis/apps/v1/namespaces/{namespace}/deployments", body=body)
    result = _wait(kubeconfig, namespace, "Deployment", "nodir")
    assert result["failed"] and result["state"] == "Stuck", result
    assert result["stuck"]["reason"] == "FailedMount", result
    assert f"hostPath type check failed: {missing} is not a directory" in result["msg"], result["msg"]


def test_missing_object_fails_and_check_mode_reads_nothing(namespace, kubeconfig):
    missing = _wait(kubeconfig, namespace, "StatefulSet", "nothing-here")
    assert missing["failed"] and missing["state"] == "Missing"
    assert missing["msg"] == f"StatefulSet {namespace}/nothing-here does not exist"
    planned = _wait(kubeconfig, namespace, "StatefulSet", "nothing-here", check_mode=True)
    assert not planned.get("failed") and not planned["changed"] and planned["state"] == "Planned"
