"""rollout_status reads Deployment/StatefulSet status as `kubectl rollout status` does; check
mode of workload_wait reads nothing. The waits themselves run against an API in
tests/cluster/test_workload_wait.py (stuck pods, rollouts, Jobs)."""

import pytest

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import rollout


def _deployment(generation=2, observed=2, replicas=2, updated=2, total=2, available=2, conditions=()):
    return {
        "kind": "Deployment",
        "metadata": {"name": "mlflow-server", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "readyReplicas": available,
            "conditions": list(conditions),
        },
    }


@pytest.mark.parametrize(
    ("kwargs", "done", "text"),
    [
        ({}, True, "deployment mlflow-server successfully rolled out"),
        ({"observed": 1}, False, "waiting for the Deployment spec update to be observed"),
        ({"updated": 1, "total": 3}, False, "1 of 2 updated replicas are available"),
        ({"total": 3}, False, "1 old replicas are pending termination"),
        ({"available": 1}, False, "1 of 2 updated replicas are available"),
        (
            {
                "available": 0,
                "conditions": [
                    {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"},
                ],
            },
            False,
            "deployment mlflow-server exceeded its progress deadline",
        ),
    ],
)
def test_deployment_rollout_status(kwargs, done, text):
    obj = _deployment(**kwargs)
    assert rollout.rollout_status(obj) == (done, text)
    assert rollout.failed_permanently(obj) is text.endswith("progress deadline")


def _statefulset(
    replicas=1, ready=1, updated=1, current="db-1", update="db-1", partition=None, strategy="RollingUpdate"
):
    spec = {"replicas": replicas, "updateStrategy": {"type": strategy}}
    if partition is not None:
        spec["updateStrategy"]["rollingUpdate"] = {"partition": partition}
    return {
        "kind": "StatefulSet",
        "metadata": {"name": "db", "generation": 1},
        "spec": spec,
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": updated,
            "currentRevision": current,
            "updateRevision": update,
        },
    }


@pytest.mark.parametrize(
    ("kwargs", "done", "text"),
    [
        ({}, True, "statefulset db rolled out"),
        ({"ready": 0}, False, "0 of 1 pods are ready"),
        ({"replicas": 3, "ready": 3, "updated": 1}, False, "1 of 3 pods are updated"),
        ({"current": "db-0"}, False, "waiting for the rolling update to finish"),
        (
            {"replicas": 3, "ready": 3, "updated": 1, "partition": 2, "current": "db-0"},
            True,
            "statefulset db rolled out",
        ),
        ({"updated": 0, "current": "db-0", "strategy": "OnDelete"}, True, "statefulset db rolled out"),
    ],
)
def test_statefulset_rollout_status(kwargs, done, text):
    assert rollout.rollout_status(_statefulset(**kwargs)) == (done, text)


def test_check_mode_reads_nothing():
    class Refuse:
        def wait(self, *args):
            raise AssertionError("check mode must not wait")

    params = {"kind": "StatefulSet", "namespace": "mlflow", "name": "db", "timeout": 60}
    result = rollout.run(params, check_mode=True, waiter=Refuse())
    assert result == {
        "changed": False,
        "kind": "StatefulSet",
        "namespace": "mlflow",
        "name": "db",
        "state": "Planned",
        "msg": "would wait up to 60 s for StatefulSet mlflow/db to roll out, failing early on a stuck pod",
    }


def test_selector_adds_the_pod_template_hash():
    obj = {"spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "mlflow-server", "a": "b"}}}}
    assert rollout.selector_string(obj, {"pod-template-hash": "5d9f"}) == (
        "a=b,app.kubernetes.io/name=mlflow-server,pod-template-hash=5d9f"
    )


def test_looks_come_quickly_then_back_off_to_the_interval():
    """A rollout that is done soon is seen done soon; a long one is looked at every INTERVAL."""
    now = [0.0]
    sleeps = []
    looks = []

    class Apps:
        def read_namespaced_stateful_set(self, name, namespace, **_kwargs):
            looks.append(now[0])
            ready = len(looks) > 6
            return _statefulset(replicas=2, ready=2 if ready else 1, updated=2 if ready else 1)

    class Pods:
        items = []

    class Core:
        def list_namespaced_pod(self, *_args, **_kwargs):
            return Pods()

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    waiter = rollout.Waiter(Apps(), Core(), None, clock=lambda: now[0], sleep=sleep)
    outcome = waiter.wait("StatefulSet", "mlflow", "db", timeout=60)
    assert outcome.state == "Ready", outcome.message
    assert sleeps == [0.25, 0.5, 1.0, 2, 2, 2]
    assert sleeps[-1] == rollout.INTERVAL


def test_the_last_pause_ends_at_the_deadline():
    now = [0.0]
    sleeps = []

    class Apps:
        def read_namespaced_stateful_set(self, name, namespace, **_kwargs):
            return _statefulset(replicas=2, ready=1, updated=1)

    class Core:
        def list_namespaced_pod(self, *_args, **_kwargs):
            return type("Pods", (), {"items": []})()

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    outcome = rollout.Waiter(Apps(), Core(), None, clock=lambda: now[0], sleep=sleep).wait(
        "StatefulSet", "mlflow", "db", timeout=3
    )
    assert outcome.state == "TimedOut"
    assert sum(sleeps) == 3
    assert sleeps == [0.25, 0.5, 1.0, 1.25]


def test_job_log_reads_every_container_in_order_and_masks_credentials():
    from kubernetes.client import V1Container, V1ObjectMeta, V1Pod, V1PodList, V1PodSpec
    from kubernetes.client.rest import ApiException

    pod = V1Pod(
        metadata=V1ObjectMeta(name="backup-x1", creation_timestamp=1),
        spec=V1PodSpec(
            init_containers=[V1Container(name="dump")],
            containers=[V1Container(name="artifacts"), V1Container(name="never-started")],
        ),
    )
    logs = {"dump": "dumped to postgresql://u:secret@db/x\n", "artifacts": "archived a.tar.gz\n"}

    class Core:
        def list_namespaced_pod(self, namespace, label_selector, **_kwargs):
            return V1PodList(items=[pod] if label_selector.startswith("batch.kubernetes.io/job-name=") else [])

        def read_namespaced_pod_log(self, name, namespace, container=None, **_kwargs):
            assert name == "backup-x1"
            if container not in logs:
                raise ApiException(status=400)
            return logs[container]

    log = rollout.Waiter(None, Core(), None).job_log("mlflow", "backup")
    assert log == "dumped to postgresql://u:***@db/x\narchived a.tar.gz\n"


def test_job_log_is_returned_only_when_asked_and_the_job_ended():
    class Waiter:
        def __init__(self, state):
            self.state = state

        def wait(self, *args):
            return rollout.Outcome(self.state, {"status": {}}, "done")

        def job_log(self, namespace, name):
            return "the log"

    params = {"kind": "Job", "namespace": "mlflow", "name": "backup", "timeout": 60, "job_log": True}
    assert rollout.run(params, waiter=Waiter("Complete"))["log"] == "the log"
    assert rollout.run(params, waiter=Waiter("Failed"))["log"] == "the log"
    assert "log" not in rollout.run(dict(params, job_log=False), waiter=Waiter("Complete"))
    assert "log" not in rollout.run(params, waiter=Waiter("TimedOut"))
