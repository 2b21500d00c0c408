"""Day two against a Kubernetes API: the backup CronJob and playbooks/restore.yml.

site.yml with database_backup_enabled creates the CronJob (schedule, history limits, no
overlap), the backup volume and a NetworkPolicy that admits the backup pods. restore.yml runs a
check Job first; only when it passes is the MLflow server scaled to 0 (its pods gone) before the
restore Job starts, and scaled back after it. A check that fails (missing dump) stops the play
with the server untouched and no restore Job created. A recorder thread polls the namespace, so
the order is read from the API, not from the playbook's own report.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.cluster.test_site import apps, core, inventory, site_vars  # noqa: F401 - fixtures

pytestmark = pytest.mark.cluster

DUMP = "mlflow-postgresql-20260101T021700Z.dump"


class Recorder(threading.Thread):
    """Polls (Deployment replicas, server pods, Job names) and keeps every distinct state in order."""

    def __init__(self, k8s, namespace: str) -> None:
        super().__init__(daemon=True)
        from kubernetes import client

        self.apps = client.AppsV1Api(k8s)
        self.batch = client.BatchV1Api(k8s)
        self.core = client.CoreV1Api(k8s)
        self.namespace = namespace
        self.states: list[tuple[int | None, int, tuple[str, ...]]] = []
        self.stopping = threading.Event()

    def state(self):
        try:
            deployment = self.apps.read_namespaced_deployment("mlflow-server", self.namespace)
            replicas = deployment.spec.replicas
        except Exception:  # noqa: BLE001 - not there (yet)
            replicas = None
        pods = self.core.list_namespaced_pod(self.namespace, label_selector="app.kubernetes.io/name=mlflow-server")
        jobs = self.batch.list_namespaced_job(self.namespace).items
        return replicas, len(pods.items), tuple(sorted(j.metadata.name for j in jobs))

    def run(self) -> None:
        while not self.stopping.is_set():
            current = self.state()
            if not self.states or self.states[-1] != current:
                self.states.append(current)
            time.sleep(0.05)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.join(5)


def first(states, predicate) -> int:
    return next(i for i, s in enumerate(states) if predicate(s))


@pytest.fixture
def backup_site(playbook, site_vars, kubelet):  # noqa: F811
    extra = {**site_vars, "database_backup_enabled": True, "database_backup_keep": 5}
    result = playbook("playbooks/site.yml", inventory=inventory(), extra_vars=extra)
    assert result.rc == 0, result.summary()
    yield extra
    done = playbook("playbooks/teardown.yml", inventory=inventory(), extra_vars={**extra, "purge": True})
    assert done.rc == 0, done.summary()


def test_site_creates_the_backup_cronjob_and_volume(backup_site, k8s, namespace) -> None:
    from kubernetes import client

    cronjob = client.BatchV1Api(k8s).read_namespaced_cron_job("mlflow-postgresql-backup", namespace)
    assert cronjob.spec.schedule == "17 2 * * *"
    assert cronjob.spec.concurrency_policy == "Forbid"
    assert cronjob.spec.successful_jobs_history_limit == 3
    assert cronjob.spec.failed_jobs_history_limit == 3
    pod = cronjob.spec.job_template.spec.template.spec
    assert pod.volumes[1].persistent_volume_claim.claim_name == "mlflow-database-backup"
    env = {e.name: e for e in pod.containers[0].env}
    assert env["BACKUP_KEEP"].value == "5"
    assert env["DB_PASSWORD"].value is None and env["DB_PASSWORD"].value_from.secret_key_ref.key == "password"
    pvc = client.CoreV1Api(k8s).read_namespaced_persistent_volume_claim("mlflow-database-backup", namespace)
    assert pvc.status.phase == "Bound"
    policy = client.NetworkingV1Api(k8s).read_namespaced_network_policy("mlflow-postgresql", namespace)
    admitted = [peer.pod_selector.match_labels for peer in policy.spec.ingress[0]._from]
    labels = cronjob.spec.job_template.spec.template.metadata.labels
    assert any(all(labels.get(k) == v for k, v in sel.items()) for sel in admitted), (admitted, labels)


def test_restore_checks_then_scales_down_restores_and_scales_back(
    backup_site, playbook, kubelet, k8s, namespace
) -> None:
    kubelet.outcome("mlflow-postgresql-check", log=f"2026-01-01T00:00:00Z restore-file={DUMP}\n")
    kubelet.outcome("mlflow-postgresql-restore", delay=1.0, log=f"restore-file={DUMP}\nloading\nrestored-runs=3\n")
    with Recorder(k8s, namespace) as recorder:
        result = playbook(
            "playbooks/restore.yml",
            inventory=inventory(),
            extra_vars={**backup_site, "mlflow_server_smoke": False},
        )
        time.sleep(0.3)
    assert result.rc == 0, result.summary()
    states = recorder.states
    check = first(states, lambda s: "mlflow-postgresql-check" in s[2])
    down = first(states, lambda s: s[0] == 0)
    gone = first(states, lambda s: s[0] == 0 and s[1] == 0)
    restore = first(states, lambda s: "mlflow-postgresql-restore" in s[2])
    back = first(states[restore:], lambda s: s[0] == 1) + restore
    assert states[check][0] == 1, states  # checked while the server still served
    assert check < down <= gone < restore < back, states
    assert all(s[1] == 0 for s in states[gone : restore + 1]), states
    assert all("mlflow-postgresql-restore" not in s[2] for s in states[back:][-1:]), states  # removed after


def test_restore_of_a_missing_dump_touches_nothing(backup_site, playbook, kubelet, k8s, namespace) -> None:
    kubelet.outcome(
        "mlflow-postgresql-check",
        "fail",
        log="ERROR: /backup/mlflow-postgresql-20990101T000000Z.dump does not exist; dumps there: \n",
    )
    with Recorder(k8s, namespace) as recorder:
        result = playbook(
            "playbooks/restore.yml",
            inventory=inventory(),
            extra_vars={
                **backup_site,
                "mlflow_server_smoke": False,
                "database_restore_file": "mlflow-postgresql-20990101T000000Z.dump",
            },
        )
        time.sleep(0.3)
    assert result.rc != 0
    failure = result.failed_tasks()[0]
    assert "does not exist" in failure.msg, failure.msg
    assert all(s[0] == 1 for s in recorder.states), recorder.states
    assert all("mlflow-postgresql-restore" not in s[2] for s in recorder.states), recorder.states
