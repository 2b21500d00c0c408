"""The cluster-test machinery proves itself on the session's cluster, with real pods.

The target and its Ready node, the namespace fixture and the run cleanup, and what a real
kubelet and scheduler do with pods that run, fail, crash-loop or cannot start: the states and
events pod_status classifies are read here from the real thing.
"""

from __future__ import annotations

import contextlib
import json
import uuid

import pytest
from kubernetes.dynamic.exceptions import NotFoundError

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import pod_status
from tests.harness import cluster as cluster_harness

pytestmark = pytest.mark.cluster

STANDARD_LABELS = {
    "app.kubernetes.io/part-of": "mlflow-k8s",
    "app.kubernetes.io/managed-by": "ansible",
    "app.kubernetes.io/name": "harness-test",
    "app.kubernetes.io/instance": "harness",
}


def _job(name: str, image: str, script: str) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": STANDARD_LABELS},
        "spec": {
            "backoffLimit": 0,  # one pod: a failure fails the Job now, not after six retries
            "template": {
                "metadata": {"labels": STANDARD_LABELS},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "main", "image": image, "command": ["sh", "-c", script]}],
                },
            },
        },
    }


def _true_conditions(job: dict | None) -> set[str]:
    conditions = ((job or {}).get("status") or {}).get("conditions") or []
    return {c["type"] for c in conditions if c.get("status") == "True"}


def _finished(job: dict | None) -> bool:
    return bool(_true_conditions(job) & {"Complete", "Failed"})


def _pods_of(dyn, namespace: str, job: str) -> list[dict]:
    pods = dyn.request("get", f"/api/v1/namespaces/{namespace}/pods", label_selector=f"job-name={job}")
    return pods.to_dict().get("items") or []


def test_target_is_a_cluster_with_a_ready_node(cluster, k8s, node_name):
    from kubernetes import client

    detail = json.loads(cluster.detail)
    assert client.VersionApi(k8s).get_code().git_version == detail["version"]
    assert node_name in detail["ready_nodes"]
    assert node_name in cluster_harness.ready_nodes(k8s)


def test_probe_refuses_a_cluster_that_does_not_answer(tmp_path):
    kubeconfig = cluster_harness.write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:9")  # a closed port
    ok, detail = cluster_harness.probe(str(kubeconfig), timeout=2)
    assert not ok and "does not answer" in detail and str(kubeconfig) in detail


def test_namespace_fixture_deletes_what_it_made(dyn, make_namespace, images):
    with make_namespace("cleanup-probe", wait=True) as name:
        namespace = dyn.request("get", f"/api/v1/namespaces/{name}").to_dict()
        assert namespace["metadata"]["labels"]["mlflow-k8s.test/owner"] == "pytest"
        assert name.startswith("t-cleanup-probe-")
        dyn.request(
            "post",
            f"/api/v1/namespaces/{name}/configmaps",
            body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "left-behind"}, "data": {"a": "b"}},
        )
    with pytest.raises(NotFoundError):
        dyn.request("get", f"/api/v1/namespaces/{name}")
    with pytest.raises(NotFoundError):
        dyn.request("get", f"/api/v1/namespaces/{name}/configmaps/left-behind")


def test_cleanup_deletes_the_namespaces_of_its_run_and_their_volumes(dyn, kubeconfig, make_namespace):
    """python -m tests.harness.cluster cleanup (tests/cluster/run's last step): the namespaces
    carrying the run's id go, with the Retain volumes that were bound in them; another run's stay."""
    run = f"cleanup-probe-{uuid.uuid4().hex[:6]}"
    made = []
    for owner in (run, "another-run"):
        name = f"t-cleanup-{owner}"[:56] + f"-{uuid.uuid4().hex[:6]}"
        labels = {**cluster_harness.namespace_labels("cleanup"), cluster_harness.RUN_LABEL: owner}
        dyn.request("post", "/api/v1/namespaces", body={"metadata": {"name": name, "labels": labels}})
        volume = {
            "metadata": {"name": f"{name}-data"},
            "spec": {
                "capacity": {"storage": "1Mi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "cleanup-probe",
                "hostPath": {"path": f"/tmp/{name}"},
                "claimRef": {"namespace": name, "name": "data"},
            },
        }
        dyn.request("post", "/api/v1/persistentvolumes", body=volume)
        made.append(name)
    try:
        deleted = cluster_harness.cleanup(kubeconfig, run)
        assert sorted(deleted) == [f"Namespace {made[0]}", f"PersistentVolume {made[0]}-data"], deleted
        with pytest.raises(NotFoundError):
            dyn.request("get", f"/api/v1/persistentvolumes/{made[0]}-data")
        dyn.request("get", f"/api/v1/persistentvolumes/{made[1]}-data")
        assert dyn.request("get", f"/api/v1/namespaces/{made[1]}").status.phase == "Active"
    finally:
        for name in made:
            for path in (f"/api/v1/persistentvolumes/{name}-data", f"/api/v1/namespaces/{name}"):
                with contextlib.suppress(NotFoundError):
                    dyn.request("delete", path)


def test_job_runs_to_complete(dyn, namespace, images, watch_for):
    dyn.request(
        "post", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=_job("finishes", images["busybox"], "echo all done")
    )
    job = watch_for("batch/v1", "Job", namespace, "finishes", _finished)
    assert "Complete" in _true_conditions(job), job["status"]
    assert "Failed" not in _true_conditions(job)
    (pod,) = _pods_of(dyn, namespace, "finishes")
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    from kubernetes import client

    log = client.CoreV1Api(dyn.client).read_namespaced_pod_log(pod["metadata"]["name"], namespace)
    assert log == "all done\n"


def test_job_fails_with_its_exit_code(dyn, namespace, images, watch_for):
    script = "echo about to fail; exit 3"
    dyn.request("post", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=_job("breaks", images["busybox"], script))
    job = watch_for("batch/v1", "Job", namespace, "breaks", _finished)
    assert "Failed" in _true_conditions(job), job["status"]
    assert "Complete" not in _true_conditions(job)
    (pod,) = _pods_of(dyn, namespace, "breaks")
    assert pod["status"]["phase"] == "Failed"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3
    from kubernetes import client

    assert client.CoreV1Api(dyn.client).read_namespaced_pod_log(pod["metadata"]["name"], namespace) == "about to fail\n"


def test_init_container_runs_first_and_logs_per_container(dyn, namespace, images, watch_for):
    job = _job("two-steps", images["busybox"], "echo working")
    job["spec"]["template"]["spec"]["initContainers"] = [
        {"name": "prepare", "image": images["busybox"], "command": ["sh", "-c", "echo preparing"]}
    ]
    dyn.request("post", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=job)
    assert "Complete" in _true_conditions(watch_for("batch/v1", "Job", namespace, "two-steps", _finished))
    (pod,) = _pods_of(dyn, namespace, "two-steps")
    (init,) = pod["status"]["initContainerStatuses"]
    assert init["state"]["terminated"]["exitCode"] == 0
    from kubernetes import client

    core = client.CoreV1Api(dyn.client)
    name = pod["metadata"]["name"]
    assert core.read_namespaced_pod_log(name, namespace, container="prepare") == "preparing\n"
    assert core.read_namespaced_pod_log(name, namespace, container="main") == "working\n"


def test_deployment_applied_by_playbook_becomes_available(playbook, namespace, images, dyn):
    plays = [
        {
            "name": "Apply a Deployment and wait for it",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Apply the Deployment",
                    "kubernetes.core.k8s": {
                        "state": "present",
                        "namespace": "{{ harness_namespace }}",
                        "wait": True,
                        "wait_timeout": 300,
                        "definition": {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "metadata": {"name": "sleeper", "labels": STANDARD_LABELS},
                            "spec": {
                                "replicas": 2,
                                "selector": {"matchLabels": {"app.kubernetes.io/name": "harness-test"}},
                                "template": {
                                    "metadata": {"labels": STANDARD_LABELS},
                                    "spec": {
                                        "terminationGracePeriodSeconds": 1,
                                        "containers": [{"name": "main", "image": "{{ harness_image }}"}],
                                    },
                                },
                            },
                        },
                    },
                }
            ],
        }
    ]
    extra_vars = {"harness_namespace": namespace, "harness_image": images["pause"]}

    check = playbook(plays, extra_vars=extra_vars, check=True)
    assert check.rc == 0, check.summary()
    assert [t.name for t in check.changed_tasks()] == ["Apply the Deployment"]
    with pytest.raises(NotFoundError):  # check mode created nothing
        dyn.request("get", f"/apis/apps/v1/namespaces/{namespace}/deployments/sleeper")

    first = playbook(plays, extra_vars=extra_vars)
    assert first.rc == 0, first.summary()
    assert [t.name for t in first.changed_tasks()] == ["Apply the Deployment"]
    status = dyn.request("get", f"/apis/apps/v1/namespaces/{namespace}/deployments/sleeper").to_dict()["status"]
    assert status["availableReplicas"] == 2
    assert {c["type"]: c["status"] for c in status["conditions"]}["Available"] == "True"

    second = playbook(plays, extra_vars=extra_vars)
    assert second.rc == 0, second.summary()
    assert second.changed == 0, second.summary()
    assert second.changed_tasks() == []


# -- pods that cannot start: what a real kubelet and scheduler do with them


def _pod(name: str, image: str, **spec) -> dict:
    labels = {**STANDARD_LABELS, "app.kubernetes.io/instance": name}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "main", "image": image}], **spec},
    }


def _events(dyn, namespace: str, pod: str) -> list[dict]:
    selector = f"involvedObject.kind=Pod,involvedObject.name={pod}"
    events = dyn.request("get", f"/api/v1/namespaces/{namespace}/events", field_selector=selector).to_dict()
    return events.get("items") or []


def _waiting(pod: dict | None) -> dict:
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or [{}]
    return (statuses[0].get("state") or {}).get("waiting") or {}


def _stuck(dyn, namespace: str, name: str, **rules) -> pod_status.PodProblem | None:
    pod = dyn.request("get", f"/api/v1/namespaces/{namespace}/pods/{name}").to_dict()
    return pod_status.stuck(pod, _events(dyn, namespace, name), **rules)


def test_missing_secret_in_env_waits_in_create_container_config_error(dyn, namespace, images, watch_for):
    container = {
        "name": "main",
        "image": images["pause"],
        "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "later", "key": "password"}}}],
    }
    dyn.request(
        "post",
        f"/api/v1/namespaces/{namespace}/pods",
        body=_pod("needs-secret", images["pause"], containers=[container]),
    )
    pod = watch_for(
        "v1", "Pod", namespace, "needs-secret", lambda p: _waiting(p).get("reason") == "CreateContainerConfigError"
    )
    assert _waiting(pod)["message"] == 'secret "later" not found'
    assert pod["status"]["phase"] == "Pending"
    watch_for("v1", "Pod", namespace, "needs-secret", lambda p: bool(_events(dyn, namespace, "needs-secret")))
    problem = _stuck(dyn, namespace, "needs-secret")
    assert problem.reason == "CreateContainerConfigError"
    assert 'Failed: Error: secret "later" not found' in problem.events
    # the kubelet retries: once the Secret exists, the container starts
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "later"}, "stringData": {"password": "x"}}
    dyn.request("post", f"/api/v1/namespaces/{namespace}/secrets", body=secret)
    watch_for("v1", "Pod", namespace, "needs-secret", lambda p: (p or {}).get("status", {}).get("phase") == "Running")


def test_missing_claim_keeps_the_pod_unschedulable(dyn, namespace, images, watch_for):
    volume = {"name": "data", "persistentVolumeClaim": {"claimName": "mlflow-pv-claim"}}
    body = _pod("needs-claim", images["pause"], volumes=[volume])
    body["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    dyn.request("post", f"/api/v1/namespaces/{namespace}/pods", body=body)

    def unschedulable(p):
        conditions = ((p or {}).get("status") or {}).get("conditions") or []
        return any(c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable" for c in conditions)

    watch_for("v1", "Pod", namespace, "needs-claim", unschedulable)
    watch_for("v1", "Pod", namespace, "needs-claim", lambda p: bool(_events(dyn, namespace, "needs-claim")))
    pod = dyn.request("get", f"/api/v1/namespaces/{namespace}/pods/needs-claim").to_dict()
    assert not pod["spec"].get("nodeName") and pod["status"]["phase"] == "Pending"
    problem = _stuck(dyn, namespace, "needs-claim")
    assert problem.reason == "Unschedulable"
    assert 'persistentvolumeclaim "mlflow-pv-claim" not found' in problem.message
    assert any(line.startswith("FailedScheduling: ") and "mlflow-pv-claim" in line for line in problem.events)


def test_crash_loop_restarts_with_back_off_events_and_a_log(dyn, namespace, images, watch_for):
    body = _pod("crasher", images["busybox"])
    body["spec"]["containers"][0]["command"] = ["sh", "-c", "echo starting; echo no config; exit 2"]
    dyn.request("post", f"/api/v1/namespaces/{namespace}/pods", body=body)

    def looping(p):
        statuses = ((p or {}).get("status") or {}).get("containerStatuses") or [{}]
        return _waiting(p).get("reason") == "CrashLoopBackOff" and statuses[0].get("restartCount", 0) >= 2

    pod = watch_for("v1", "Pod", namespace, "crasher", looping)
    (entry,) = pod["status"]["containerStatuses"]
    assert entry["lastState"]["terminated"]["exitCode"] == 2
    # The pod as the watch saw it, in back-off: read again, it may be running its next attempt
    # (a busy node stretches that window). The threshold is counted from what was seen.
    restarts = entry["restartCount"]
    events = _events(dyn, namespace, "crasher")
    assert pod_status.stuck(pod, events, max_restarts=restarts + 1) is None
    problem = pod_status.stuck(pod, events, max_restarts=restarts)
    assert (problem.reason, problem.container) == ("CrashLoopBackOff", "main")
    assert f"restarted {restarts} times" in problem.message, problem.message
    assert any(line.startswith("BackOff: Back-off restarting failed container main") for line in problem.events)
    log = pod_status.log_tail(dyn.client, namespace, "crasher", "main", lines=5)
    assert log.splitlines()[-2:] == ["starting", "no config"]


def test_image_that_cannot_be_pulled_backs_off_with_events(dyn, namespace, images, watch_for):
    dyn.request("post", f"/api/v1/namespaces/{namespace}/pods", body=_pod("no-image", images["missing"]))
    pod = watch_for("v1", "Pod", namespace, "no-image", lambda p: _waiting(p).get("reason") == "ImagePullBackOff")
    assert images["missing"] in _waiting(pod)["message"]
    problem = _stuck(dyn, namespace, "no-image")
    assert problem.reason == "ImagePullBackOff"
    reasons = [e["reason"] for e in _events(dyn, namespace, "no-image")]
    assert {"Pulling", "Failed", "BackOff"} <= set(reasons)
