"""The cluster role's cronjob_suspend entry point on real pods (issue 28 point 6): restore.yml
pauses the backup and gc CronJobs with it. A CronJob that the cronjob controller itself starts
every minute runs a Job that sleeps; the pause sets spec.suspend and returns only once that Job
is over (or fails, naming it, when it outlasts cluster_cronjob_timeout); the resume clears it;
both change nothing the second time, and a CronJob that does not exist is left alone."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.cluster

NAME = "every-minute"
SLEEP_SECONDS = 60  # outlasts a slow ansible-playbook start on a loaded machine
PATCH_TASK = "Set the CronJob's suspend flag"
STANDARD_LABELS = {
    "app.kubernetes.io/part-of": "mlflow-k8s",
    "app.kubernetes.io/managed-by": "ansible",
    "app.kubernetes.io/name": "cronjob-suspend-test",
    "app.kubernetes.io/instance": "harness",
}


def _cronjob(image: str) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": NAME, "labels": STANDARD_LABELS},
        "spec": {
            "schedule": "* * * * *",
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "metadata": {"labels": STANDARD_LABELS},
                        "spec": {
                            "restartPolicy": "Never",
                            "terminationGracePeriodSeconds": 1,
                            "containers": [{"name": "main", "image": image, "command": ["sleep", str(SLEEP_SECONDS)]}],
                        },
                    },
                }
            },
        },
    }


def _play(namespace: str, suspend: bool, name: str = NAME, **extra: object) -> list[dict]:
    return [
        {
            "name": "Pause or resume a CronJob",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Through the cluster role",
                    "ansible.builtin.include_role": {
                        "name": "mlops.mlflow_k8s.cluster",
                        "tasks_from": "cronjob_suspend",
                    },
                    "vars": {
                        "cluster_cronjob_namespace": namespace,
                        "cluster_cronjob_name": name,
                        "cluster_cronjob_suspend": suspend,
                        **extra,
                    },
                }
            ],
        }
    ]


def _job_finished(job: dict | None) -> bool:
    conditions = ((job or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions)


def test_pause_waits_for_the_running_job_then_resume(playbook, dyn, namespace, images, watch_for) -> None:
    path = f"/apis/batch/v1/namespaces/{namespace}/cronjobs"
    dyn.request("post", path, body=_cronjob(images["busybox"]))
    # The controller starts a Job at the next full minute.
    running = watch_for(
        "batch/v1",
        "CronJob",
        namespace,
        NAME,
        lambda c: bool(((c or {}).get("status") or {}).get("active")),
        timeout=90,
    )
    job = running["status"]["active"][0]["name"]

    # Outlasting the timeout: it fails naming the Job, and the CronJob stays paused.
    impatient = playbook(_play(namespace, True, cluster_cronjob_timeout=2))
    assert impatient.rc != 0, impatient.summary()
    failure = impatient.task("Fail when a Job of the CronJob still runs")
    assert job in failure.msg and "cluster_cronjob_timeout" in failure.msg, failure.msg
    assert dyn.request("get", f"{path}/{NAME}").spec.suspend is True

    # Already paused: nothing to patch, but it waits until the Job is over.
    waited = playbook(_play(namespace, True))
    assert waited.rc == 0, waited.summary()
    assert waited.changed_tasks() == [], waited.summary()
    assert _job_finished(dyn.request("get", f"/apis/batch/v1/namespaces/{namespace}/jobs/{job}").to_dict())
    assert not dyn.request("get", f"{path}/{NAME}").status.active

    resumed = playbook(_play(namespace, False))
    assert resumed.rc == 0, resumed.summary()
    assert [t.name for t in resumed.changed_tasks()] == [f"mlops.mlflow_k8s.cluster : {PATCH_TASK}"]
    assert resumed.task("Hand on whether it exists and was suspended").result["ansible_facts"] == {
        "cluster_cronjob_found": True,
        "cluster_cronjob_was_suspended": True,
    }
    assert dyn.request("get", f"{path}/{NAME}").spec.suspend is False
    again = playbook(_play(namespace, False))
    assert again.rc == 0 and again.changed_tasks() == [], again.summary()

    # A fresh pause of an idle CronJob patches once and finds nothing running.
    paused = playbook(_play(namespace, True))
    assert paused.rc == 0, paused.summary()
    assert [t.name for t in paused.changed_tasks()] == [f"mlops.mlflow_k8s.cluster : {PATCH_TASK}"]

    # A CronJob that is not there (backups or gc off): nothing happens.
    absent = playbook(_play(namespace, True, name="not-there"))
    assert absent.rc == 0 and absent.changed_tasks() == [], absent.summary()
    assert absent.task(PATCH_TASK).skipped
