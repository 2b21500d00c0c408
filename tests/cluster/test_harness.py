"""The cluster-test machinery proves itself on whatever cluster the session has.

In CI that is the API stand-in with the simulated kubelet; on a real cluster the same tests
run real pods (the kubelet helper steps aside), which is why every Job here really does what
the helper's rule says it does.
"""

from __future__ import annotations

import pytest
from kubernetes.dynamic.exceptions import NotFoundError

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import pod_status
from tests.harness.kubelet import LOG_ANNOTATION, SIMULATED_LABEL, SimKubelet

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


def test_target_is_known(cluster, cluster_kind, k8s):
    from kubernetes import client

    assert cluster_kind in ("real-kubelet", "no-kubelet", "standin")
    version = client.VersionApi(k8s).get_code()
    assert version.git_version in cluster.version


def test_namespace_fixture_deletes_what_it_made(dyn, make_namespace, images):
    with make_namespace("cleanup-probe") as name:
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


def test_job_driven_to_complete(dyn, namespace, kubelet, images, watch_for, cluster_kind):
    kubelet.outcome("finishes", "succeed", log="all done\n")
    dyn.request(
        "post", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=_job("finishes", images["busybox"], "echo all done")
    )
    job = watch_for("batch/v1", "Job", namespace, "finishes", _finished)
    assert "Complete" in _true_conditions(job), job["status"]
    assert "Failed" not in _true_conditions(job)
    (pod,) = _pods_of(dyn, namespace, "finishes")
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    if cluster_kind != "no-kubelet":  # a control plane without kubelet cannot serve logs
        from kubernetes import client

        log = client.CoreV1Api(dyn.client).read_namespaced_pod_log(pod["metadata"]["name"], namespace)
        assert log == "all done\n"


def test_job_driven_to_failed(dyn, namespace, kubelet, images, watch_for):
    kubelet.outcome("breaks", "fail", exit_code=3, log="about to fail\n")
    script = "echo about to fail; exit 3"
    dyn.request("post", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=_job("breaks", images["busybox"], script))
    job = watch_for("batch/v1", "Job", namespace, "breaks", _finished)
    assert "Failed" in _true_conditions(job), job["status"]
    assert "Complete" not in _true_conditions(job)
    (pod,) = _pods_of(dyn, namespace, "breaks")
    assert pod["status"]["phase"] == "Failed"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3
    if kubelet.active:
        assert pod["metadata"]["annotations"][LOG_ANNOTATION] == "about to fail\n"


def test_init_container_runs_first_and_logs_per_container(dyn, namespace, kubelet, images, watch_for, cluster_kind):
    kubelet.outcome("two-steps", "succeed", log={"prepare": "preparing\n", "main": "working\n"})
    job = _job("two-steps", images["busybox"], "echo working")
    job["spec"]["template"]["spec"]["initContainers"] = [
        {"name": "prepare", "image": images["busybox"], "command": ["sh", "-c", "echo preparing"]}
    ]
    dyn.request("post", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=job)
    assert "Complete" in _true_conditions(watch_for("batch/v1", "Job", namespace, "two-steps", _finished))
    (pod,) = _pods_of(dyn, namespace, "two-steps")
    (init,) = pod["status"]["initContainerStatuses"]
    assert init["state"]["terminated"]["exitCode"] == 0
    if cluster_kind == "no-kubelet":
        pytest.skip("a control plane without kubelet cannot serve logs")
    from kubernetes import client

    core = client.CoreV1Api(dyn.client)
    name = pod["metadata"]["name"]
    assert core.read_namespaced_pod_log(name, namespace, container="prepare") == "preparing\n"
    assert core.read_namespaced_pod_log(name, namespace, container="main") == "working\n"


def test_job_rule_run_keeps_pod_running(dyn, namespace, kubelet, images, watch_for):
    if not kubelet.active:
        pytest.skip("a real kubelet runs this cluster's pods: outcomes are the images' own")
    kubelet.outcome("job-name=lingers", "run")
    dyn.request(
        "post", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=_job("lingers", images["busybox"], "sleep 3600")
    )

    def running(p):
        return bool(p) and (p.get("status") or {}).get("phase") == "Running"

    watch_for("batch/v1", "Job", namespace, "lingers", lambda j: ((j or {}).get("status") or {}).get("active") == 1)
    pods = _pods_of(dyn, namespace, "lingers")
    pod = watch_for("v1", "Pod", namespace, pods[0]["metadata"]["name"], running)
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert ready["Ready"] == "True"
    # the last rule wins: now it may finish
    kubelet.outcome("lingers", "succeed")
    job = watch_for("batch/v1", "Job", namespace, "lingers", _finished)
    assert "Complete" in _true_conditions(job)


def test_deployment_applied_by_playbook_becomes_available(playbook, namespace, kubelet, images, dyn):
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


# -- pods that cannot start: what a real kubelet and scheduler do, the helper does too


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


def _stuck(dyn, namespace: str, name: str) -> pod_status.PodProblem | None:
    pod = dyn.request("get", f"/api/v1/namespaces/{namespace}/pods/{name}").to_dict()
    return pod_status.stuck(pod, _events(dyn, namespace, name))


def test_missing_secret_in_env_waits_in_create_container_config_error(dyn, namespace, kubelet, images, watch_for):
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


def test_missing_claim_keeps_the_pod_unschedulable(dyn, namespace, kubelet, images, watch_for):
    volume = {"name": "data", "persistentVolumeClaim": {"claimName": "mlflow-pv-claim"}}
    body = _pod("needs-claim", images["pause"], volumes=[volume])
    body["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    dyn.request("post", f"/api/v1/namespaces/{namespace}/pods", body=body)

    def unschedulable(p):
        conditions = ((p or {}).get("status") or {}).get("conditions") or []
        return any(c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable" for c in conditions)

    watch_for("v1", "Pod", namespace, "needs-claim", unschedulable)
    watch_for("v1", "Pod", namespace, "needs-claim", lambda p: bool(_events(dyn, namespace, "needs-claim")))
    if kubelet.active:  # past the helper's bind grace, it still did not bind the pod itself
        import time

        time.sleep(kubelet.bind_grace + 1)
    pod = dyn.request("get", f"/api/v1/namespaces/{namespace}/pods/needs-claim").to_dict()
    assert not pod["spec"].get("nodeName") and pod["status"]["phase"] == "Pending"
    problem = _stuck(dyn, namespace, "needs-claim")
    assert problem.reason == "Unschedulable"
    assert 'persistentvolumeclaim "mlflow-pv-claim" not found' in problem.message
    assert any(line.startswith("FailedScheduling: ") and "mlflow-pv-claim" in line for line in problem.events)


def test_crash_loop_restarts_with_back_off_events_and_a_log(dyn, namespace, kubelet, images, watch_for):
    kubelet.outcome("app.kubernetes.io/instance=crasher", "crashloop", exit_code=2, log="starting\nno config\n")
    body = _pod("crasher", images["busybox"])
    body["spec"]["containers"][0]["command"] = ["sh", "-c", "echo starting; echo no config; exit 2"]
    dyn.request("post", f"/api/v1/namespaces/{namespace}/pods", body=body)

    def looping(p):
        statuses = ((p or {}).get("status") or {}).get("containerStatuses") or [{}]
        return _waiting(p).get("reason") == "CrashLoopBackOff" and statuses[0].get("restartCount", 0) >= 3

    pod = watch_for("v1", "Pod", namespace, "crasher", looping)
    (entry,) = pod["status"]["containerStatuses"]
    assert entry["lastState"]["terminated"]["exitCode"] == 2
    problem = _stuck(dyn, namespace, "crasher")
    assert (problem.reason, problem.container) == ("CrashLoopBackOff", "main")
    assert any(line.startswith("BackOff: Back-off restarting failed container main") for line in problem.events)
    log = pod_status.log_tail(dyn.client, namespace, "crasher", "main", lines=5)
    assert log.splitlines()[-2:] == ["starting", "no config"]


def test_image_that_cannot_be_pulled_backs_off_with_events(dyn, namespace, kubelet, images, watch_for):
    dyn.request("post", f"/api/v1/namespaces/{namespace}/pods", body=_pod("no-image", images["missing"]))
    pod = watch_for("v1", "Pod", namespace, "no-image", lambda p: _waiting(p).get("reason") == "ImagePullBackOff")
    assert images["missing"] in _waiting(pod)["message"]
    problem = _stuck(dyn, namespace, "no-image")
    assert problem.reason == "ImagePullBackOff"
    reasons = [e["reason"] for e in _events(dyn, namespace, "no-image")]
    assert {"Pulling", "Failed", "BackOff"} <= set(reasons)


def test_pull_failure_rule_fails_an_existing_image(dyn, namespace, kubelet, images, watch_for):
    if not kubelet.active:
        pytest.skip("a real kubelet runs this cluster's pods: it pulls images that exist")
    kubelet.outcome("app.kubernetes.io/instance=unlucky", "pull-failure")
    dyn.request("post", f"/api/v1/namespaces/{namespace}/pods", body=_pod("unlucky", images["pause"]))
    pod = watch_for("v1", "Pod", namespace, "unlucky", lambda p: _waiting(p).get("reason") == "ImagePullBackOff")
    assert pod["status"]["phase"] == "Pending"
    assert any(e["message"].startswith("Failed to pull image") for e in _events(dyn, namespace, "unlucky"))


def test_simulated_node_registered_and_removed(k8s, dyn, namespace, cluster_kind):
    with SimKubelet(k8s, namespace) as helper:
        if cluster_kind == "real-kubelet":
            assert not helper.active and helper.steps_aside and helper.real_nodes
            return
        assert helper.active
        node = dyn.request("get", f"/api/v1/nodes/{helper.node_name}").to_dict()
        labels = node["metadata"]["labels"]
        assert labels[SIMULATED_LABEL] == "true"
        assert labels["kubernetes.io/hostname"] == helper.node_name
        assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "True"
        assert not node["spec"].get("unschedulable")
        assert node["status"]["allocatable"]["pods"] == "110"
    with pytest.raises(NotFoundError):
        dyn.request("get", f"/api/v1/nodes/{helper.node_name}")
    assert helper.errors == []


def test_helper_steps_aside_for_a_real_kubelet(k8s, dyn, namespace, cluster_kind):
    if cluster_kind == "real-kubelet":
        helper = SimKubelet(k8s, namespace).start()
        assert helper.steps_aside and not helper.active
        helper.stop()
        return
    # Pretend a real kubelet: a Ready node without the simulated label (unschedulable, so no
    # pod of another test lands on it).
    name = f"pretend-real-{namespace}"[:63]
    dyn.request(
        "post",
        "/api/v1/nodes",
        body={"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {"unschedulable": True}},
    )
    try:
        node = dyn.request("get", f"/api/v1/nodes/{name}").to_dict()
        node["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}
        dyn.request("put", f"/api/v1/nodes/{name}/status", body=node)
        with SimKubelet(k8s, namespace) as helper:
            assert helper.steps_aside
            assert not helper.active
            assert name in helper.real_nodes
            with pytest.raises(NotFoundError):  # it registered nothing
                dyn.request("get", f"/api/v1/nodes/{helper.node_name}")
    finally:
        dyn.request("delete", f"/api/v1/nodes/{name}")
