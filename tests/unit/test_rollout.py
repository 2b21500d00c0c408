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
