"""Day two against a Kubernetes API: the backup CronJob, playbooks/restore.yml and upgrade.yml.

site.yml with database_backup_enabled creates the CronJob (schedule, history limits, no
overlap; the dump as init container, then the artifacts copy with the artifacts claim mounted
read-only, and on a ReadWriteOnce claim the server's node through podAffinity), the backup
volume and a NetworkPolicy that admits the backup pods. restore.yml runs a check Job first;
only when it passes is the MLflow server scaled to 0 (its pods gone) before the restore Job
(database, then artifacts) starts, and scaled back after it. A check that fails (missing dump)
stops the play with the server untouched and no restore Job created. A recorder thread polls
the namespace, so the order is read from the API, not from the playbook's own report. Both
playbooks in check mode create nothing; a second run with nothing new changes nothing but its
Jobs (and restore's scale down and up).
"""

from __future__ import annotations

import threading
import time

import pytest

# Fixtures shared with test_site.py.
from tests.cluster.test_site import apps, core, inventory, site_vars  # noqa: F401  # pylint: disable=unused-import

pytestmark = pytest.mark.cluster

DUMP = "mlflow-postgresql-20260101T021700Z.dump"
ARCHIVE = "mlflow-postgresql-20260101T021700Z.artifacts.tar.gz"


class Recorder(threading.Thread):
    """Polls (Deployment replicas, server pods, Job names) and keeps every distinct state in order."""

    def __init__(self, k8s, namespace: str) -> None:
        super().__init__(daemon=True)
        from kubernetes import client

        self.apps = client.AppsV1Api(k8s)
        self.batch = client.BatchV1Api(k8s)
        self.core = client.CoreV1Api(k8s)
        self.namespace = namespace
        self.states: list[tuple[int | None, int, tuple[str, ...], str]] = []
        self.jobs: dict[str, object] = {}  # every Job seen, as first seen
        self.stopping = threading.Event()

    def state(self):
        try:
            deployment = self.apps.read_namespaced_deployment("mlflow-server", self.namespace)
            replicas = deployment.spec.replicas
            image = deployment.spec.template.spec.containers[0].image
        except Exception:  # noqa: BLE001 - not there (yet)
            replicas, image = None, ""
        pods = self.core.list_namespaced_pod(self.namespace, label_selector="app.kubernetes.io/name=mlflow-server")
        jobs = self.batch.list_namespaced_job(self.namespace).items
        for job in jobs:
            self.jobs.setdefault(job.metadata.name, job)
        return replicas, len(pods.items), tuple(sorted(j.metadata.name for j in jobs)), image

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


def _recorded(playbook, k8s, namespace: str, path: str, site: dict, **extra):
    """Run a playbook (site's vars, no smoke check, ``extra``) with a Recorder watching the
    namespace: (result, recorder)."""
    with Recorder(k8s, namespace) as recorder:
        result = playbook(path, inventory=inventory(), extra_vars={**site, "mlflow_server_smoke": False, **extra})
        time.sleep(0.3)
    return result, recorder


def first(states, predicate) -> int:
    return next(i for i, s in enumerate(states) if predicate(s))


@pytest.fixture
def backup_site(playbook, site_vars, kubelet):  # noqa: F811
    extra = {**site_vars, "database_backup_enabled": True, "database_backup_keep": 5, "mlflow_server_gc_enabled": True}
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
    env = {e.name: e for e in pod.init_containers[0].env}
    assert env["BACKUP_KEEP"].value == "5"
    assert not any(e.name.startswith("DB_") for e in pod.containers[0].env)  # the copy needs no credential
    assert env["DB_PASSWORD"].value is None and env["DB_PASSWORD"].value_from.secret_key_ref.key == "password"
    # The dump first (init container), then the artifacts copy beside it, same volume.
    assert pod.init_containers[0].command == ["/bin/sh", "/scripts/backup.sh"]
    copy = pod.containers[0]
    assert copy.command == ["/bin/sh", "/scripts/artifacts.sh", "backup"]
    assert (copy.security_context.run_as_user, copy.security_context.run_as_group) == (1000, 999)
    volumes = {v.name: v for v in pod.volumes}
    assert volumes["artifacts"].persistent_volume_claim.claim_name == "mlflow-artifacts"
    assert volumes["artifacts"].persistent_volume_claim.read_only is True
    mounts = {m.name: m for m in copy.volume_mounts}
    assert mounts["artifacts"].read_only and not mounts["backup"].read_only
    assert pod.affinity is None  # ReadWriteMany artifacts: any node
    assert (
        "artifacts.sh"
        in client.CoreV1Api(k8s).read_namespaced_config_map("mlflow-postgresql-backup-scripts", namespace).data
    )
    pvc = client.CoreV1Api(k8s).read_namespaced_persistent_volume_claim("mlflow-database-backup", namespace)
    assert pvc.status.phase == "Bound"
    policy = client.NetworkingV1Api(k8s).read_namespaced_network_policy("mlflow-postgresql", namespace)
    admitted = [peer.pod_selector.match_labels for peer in policy.spec.ingress[0]._from]
    labels = cronjob.spec.job_template.spec.template.metadata.labels
    assert any(all(labels.get(k) == v for k, v in sel.items()) for sel in admitted), (admitted, labels)

    gc = client.BatchV1Api(k8s).read_namespaced_cron_job("mlflow-server-gc", namespace)
    assert gc.spec.successful_jobs_history_limit == 3 and gc.spec.concurrency_policy == "Forbid"
    gc_pod = gc.spec.job_template.spec.template
    container = gc_pod.spec.containers[0]
    assert container.command[-1].startswith('exec mlflow gc --backend-store-uri "$MLFLOW_BACKEND_STORE_URI"')
    gc_env = {e.name: e for e in container.env}
    assert gc_env["MLFLOW_BACKEND_STORE_URI"].value_from.secret_key_ref.name == "mlflow-backend-store"
    assert gc_env["MLFLOW_GC_OLDER_THAN"].value == "30d"
    assert gc_env["MLFLOW_TRACKING_URI"].value.startswith("http://mlflow-server.")
    # Admitted to the database, but neither the server's Service nor its Deployment selects it.
    assert any(all(gc_pod.metadata.labels.get(k) == v for k, v in sel.items()) for sel in admitted)
    service = client.CoreV1Api(k8s).read_namespaced_service("mlflow-server", namespace)
    assert not all(gc_pod.metadata.labels.get(k) == v for k, v in service.spec.selector.items())


def test_restore_checks_then_scales_down_restores_and_scales_back(
    backup_site, playbook, kubelet, k8s, namespace
) -> None:
    kubelet.outcome(
        "mlflow-postgresql-check",
        log={"check": f"2026-01-01T00:00:00Z restore-file={DUMP}\n", "artifacts": f"artifacts-file={ARCHIVE}\n"},
    )
    kubelet.outcome(
        "mlflow-postgresql-restore",
        delay=1.0,
        log={
            "restore": f"restore-file={DUMP}\nloading\nrestored-runs=3\n",
            "artifacts": f"artifacts-file={ARCHIVE}\nrestored-artifacts=12\n",
        },
    )
    result, recorder = _recorded(playbook, k8s, namespace, "playbooks/restore.yml", backup_site)
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
    # The database first (init container), then the archive into the artifacts claim, read-write,
    # with the server's group (no regrouping of its files); the backup claim read-only.
    pod = recorder.jobs["mlflow-postgresql-restore"].spec.template.spec
    assert [c.name for c in pod.init_containers] == ["restore"]
    assert pod.containers[0].command == ["/bin/sh", "/scripts/artifacts.sh", "restore"]
    volumes = {v.name: v for v in pod.volumes}
    assert volumes["artifacts"].persistent_volume_claim.read_only is False
    assert volumes["backup"].persistent_volume_claim.read_only is True
    assert pod.security_context.fs_group == 1000
    check = recorder.jobs["mlflow-postgresql-check"].spec.template.spec
    assert "artifacts" not in {v.name for v in check.volumes}  # the check reads the backup volume only
    assert f"Restoring {DUMP}" in str(result.task("Show what the restore replaces").result)
    assert ARCHIVE in str(result.task("Show what the restore replaces").result)


def test_restore_of_the_database_alone_leaves_the_artifacts(backup_site, playbook, kubelet, k8s, namespace) -> None:
    kubelet.outcome("mlflow-postgresql-check", log=f"restore-file={DUMP}\n")
    kubelet.outcome("mlflow-postgresql-restore", log=f"restore-file={DUMP}\nrestored-runs=3\n")
    result, recorder = _recorded(
        playbook, k8s, namespace, "playbooks/restore.yml", backup_site, database_restore_artifacts=False
    )
    assert result.rc == 0, result.summary()
    pod = recorder.jobs["mlflow-postgresql-restore"].spec.template.spec
    assert not pod.init_containers and [c.name for c in pod.containers] == ["restore"]
    assert "artifacts" not in {v.name for v in pod.volumes}
    assert "the artifacts volume is not touched" in str(result.task("Show what the restore replaces").result)


def test_restore_of_a_missing_dump_touches_nothing(backup_site, playbook, kubelet, k8s, namespace) -> None:
    kubelet.outcome(
        "mlflow-postgresql-check",
        "fail",
        log="ERROR: /backup/mlflow-postgresql-20990101T000000Z.dump does not exist; dumps there: \n",
    )
    result, recorder = _recorded(
        playbook,
        k8s,
        namespace,
        "playbooks/restore.yml",
        backup_site,
        database_restore_file="mlflow-postgresql-20990101T000000Z.dump",
    )
    assert result.rc != 0
    failure = result.failed_tasks()[0]
    assert "does not exist" in failure.msg, failure.msg
    assert all(s[0] == 1 for s in recorder.states), recorder.states
    assert all("mlflow-postgresql-restore" not in s[2] for s in recorder.states), recorder.states


NEW_IMAGE = "ghcr.io/mlflow/mlflow:v3.18.0-full"
BACKUP_LOG = {"backup": f"backup-file={DUMP} kept=1\n", "artifacts": f"artifacts-file={ARCHIVE} kept=1\n"}


def test_upgrade_backs_up_then_migrates_once_before_the_rollout(backup_site, playbook, kubelet, k8s, namespace) -> None:
    kubelet.outcome("mlflow-postgresql-backup", log=BACKUP_LOG)
    kubelet.outcome("mlflow-server-db-upgrade", delay=1.0, log="INFO  [alembic.runtime.migration] Running upgrade\n")
    result, recorder = _recorded(
        playbook, k8s, namespace, "playbooks/upgrade.yml", backup_site, mlflow_server_image=NEW_IMAGE
    )
    assert result.rc == 0, result.summary()
    states = recorder.states
    backup = first(states, lambda s: "mlflow-postgresql-backup" in s[2])
    migration = first(states, lambda s: "mlflow-server-db-upgrade" in s[2])
    migrated = first(states[migration:], lambda s: "mlflow-server-db-upgrade" not in s[2]) + migration
    rolled = first(states, lambda s: s[3] == NEW_IMAGE)
    assert backup < migration < migrated <= rolled, states
    assert all(s[3] != NEW_IMAGE for s in states[:migrated]), states  # old pods served during the migration
    assert states[-1][3] == NEW_IMAGE and states[-1][0] == 1, states
    assert "Backup taken: mlflow-postgresql-20260101T021700Z.dump" in str(
        result.task("Show the backup to restore from if the upgrade goes wrong").result
    )


def test_failed_migration_leaves_the_old_pods_serving(backup_site, playbook, kubelet, k8s, namespace) -> None:
    from kubernetes import client

    kubelet.outcome("mlflow-postgresql-backup", log=BACKUP_LOG)
    kubelet.outcome("mlflow-server-db-upgrade", "fail", log="alembic.util.exc.CommandError: Can't locate revision\n")
    old = client.AppsV1Api(k8s).read_namespaced_deployment("mlflow-server", namespace)
    result = playbook(
        "playbooks/upgrade.yml",
        inventory=inventory(),
        extra_vars={**backup_site, "mlflow_server_image": NEW_IMAGE, "mlflow_server_smoke": False},
    )
    assert result.rc != 0
    message = result.failed_tasks()[0].msg
    assert "old pods keep serving" in message, message
    assert "database_restore_file=mlflow-postgresql-20260101T021700Z.dump" in message, message
    assert "Can't locate revision" in message, message
    now = client.AppsV1Api(k8s).read_namespaced_deployment("mlflow-server", namespace)
    assert now.spec.template.spec.containers[0].image == old.spec.template.spec.containers[0].image
    assert now.metadata.generation == old.metadata.generation


DATABASE_IMAGES = {
    "postgresql": (
        ("docker.io/library/postgres:17.6-bookworm", True),
        ("docker.io/library/postgres:17.7-bookworm", True),
        ("docker.io/library/postgres:18.1-bookworm", False),
    ),
    # MySQL's major version is its release series: 8.4.x -> 8.4.y rolls, 9.x is refused.
    "mysql": (
        ("docker.io/library/mysql:8.4.6", True),
        ("docker.io/library/mysql:8.4.7", True),
        ("docker.io/library/mysql:9.4.0", False),
    ),
}


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
def test_database_minor_upgrade_rolls_and_major_is_refused(
    engine,
    playbook,
    site_vars,  # noqa: F811
    kubelet,
    k8s,
    namespace,
) -> None:
    from kubernetes import client

    core = client.CoreV1Api(k8s)  # noqa: F811
    extra = {**site_vars, "mlflow_server_smoke": False, "database_engine": engine}
    if engine == "mysql":
        # And the backup CronJob on a ReadWriteOnce artifacts claim: on the server pods' node.
        extra.update(database_backup_enabled=True, storage_artifacts_access_modes=["ReadWriteOnce"])
    images = DATABASE_IMAGES[engine]
    claim = secret = None
    try:
        for image, ok in images:
            result = playbook(
                "playbooks/site.yml",
                inventory=inventory(),
                extra_vars={**extra, f"database_{engine}_image": image},
                tags=["cluster", "storage", "database"],
            )
            sts = client.AppsV1Api(k8s).read_namespaced_stateful_set(f"mlflow-{engine}", namespace)
            running = sts.spec.template.spec.containers[0].image
            if ok:
                assert result.rc == 0, result.summary()
                assert running == image
            else:
                assert result.rc != 0
                message = result.failed_tasks()[0].msg
                major = image.rsplit(":", 1)[1].rsplit(".", 1)[0] if engine == "mysql" else image.split(":")[1][:2]
                assert f"major version {major}" in message and "playbooks/restore.yml" in message, message
                assert running == images[1][0]
            # The data stays: the same claim on the same volume, the same credentials.
            pvc = core.read_namespaced_persistent_volume_claim("mlflow-database", namespace)
            creds = core.read_namespaced_secret("mlflow-database-credentials", namespace)
            now = (pvc.metadata.uid, pvc.spec.volume_name), (creds.metadata.uid, creds.data["password"])
            claim, secret = (now[0], now[1]) if claim is None else (claim, secret)
            assert (now[0], now[1]) == (claim, secret)
        if engine == "mysql":
            pod = client.BatchV1Api(k8s).read_namespaced_cron_job("mlflow-mysql-backup", namespace)
            affinity = pod.spec.job_template.spec.template.spec.affinity.pod_affinity
            term = affinity.required_during_scheduling_ignored_during_execution[0]
            assert term.label_selector.match_labels == {"app.kubernetes.io/name": "mlflow-server"}
            assert term.topology_key == "kubernetes.io/hostname"
    finally:
        done = playbook("playbooks/teardown.yml", inventory=inventory(), extra_vars={**extra, "purge": True})
        assert done.rc == 0, done.summary()


JOB_TASKS = {"mlops.mlflow_k8s.cluster : Start the Job", "mlops.mlflow_k8s.cluster : Remove the Job"}


def test_check_mode_creates_nothing_and_reruns_change_only_their_jobs(
    backup_site, playbook, kubelet, k8s, namespace
) -> None:
    from kubernetes import client

    apps = client.AppsV1Api(k8s)  # noqa: F811
    kubelet.outcome("mlflow-postgresql-backup", log=BACKUP_LOG)
    restore_logs = {
        "mlflow-postgresql-check": {"check": f"restore-file={DUMP}\n", "artifacts": f"artifacts-file={ARCHIVE}\n"},
        "mlflow-postgresql-restore": {
            "restore": f"restore-file={DUMP}\nrestored-runs=3\n",
            "artifacts": f"artifacts-file={ARCHIVE}\nrestored-artifacts=12\n",
        },
    }
    for job, log in restore_logs.items():
        kubelet.outcome(job, log=log)
    before = apps.read_namespaced_deployment("mlflow-server", namespace)
    sts = apps.read_namespaced_stateful_set("mlflow-postgresql", namespace)
    plain = {**backup_site, "mlflow_server_smoke": False}

    # Check mode: exit 0, the plan printed, nothing created or scaled.
    with Recorder(k8s, namespace) as recorder:
        restore = playbook("playbooks/restore.yml", inventory=inventory(), extra_vars=plain, check=True)
        upgrade = playbook(
            "playbooks/upgrade.yml",
            inventory=inventory(),
            extra_vars={**plain, "mlflow_server_image": NEW_IMAGE},
            check=True,
        )
        time.sleep(0.3)
    assert restore.rc == 0, restore.summary()
    assert upgrade.rc == 0, upgrade.summary()
    assert recorder.jobs == {}, sorted(recorder.jobs)
    assert all(s[0] == 1 and s[3] == before.spec.template.spec.containers[0].image for s in recorder.states)
    planned = "Show the Job check mode would run"
    plans = [str(t.result.get("msg")) for t in restore.tasks + upgrade.tasks if t.name.endswith(planned)]
    assert any(f"would run Job {namespace}/mlflow-postgresql-check (check, then artifacts)" in p for p in plans), plans
    assert any("mlflow-postgresql-restore (restore, then artifacts)" in p for p in plans), plans
    assert any("mlflow-postgresql-backup (backup, then artifacts)" in p for p in plans), plans
    assert any("mlflow-server-db-upgrade" in p for p in plans), plans
    assert any("Check mode: mlflow_server would apply" in str(t.result.get("msg")) for t in upgrade.tasks)

    # An upgrade with nothing new: its backup and migration Jobs run and go; nothing else changes.
    kubelet.outcome("mlflow-server-db-upgrade", log="INFO  [alembic.runtime.migration] Context impl\n")
    again = playbook("playbooks/upgrade.yml", inventory=inventory(), extra_vars=plain)
    assert again.rc == 0, again.summary()
    assert {t.name for t in again.changed_tasks()} <= JOB_TASKS, again.summary()
    after = apps.read_namespaced_deployment("mlflow-server", namespace)
    assert after.metadata.generation == before.metadata.generation
    now = apps.read_namespaced_stateful_set("mlflow-postgresql", namespace)
    assert now.metadata.generation == sts.metadata.generation

    # Restore replaces data by nature; run twice with the same dump, it does the same thing and
    # ends in the same state: the same dump and archive loaded, the server back at its replicas,
    # and nothing changed but its Jobs and the scale down and up.
    runs = [playbook("playbooks/restore.yml", inventory=inventory(), extra_vars=plain) for attempt in (1, 2)]
    scale = "mlops.mlflow_k8s.mlflow_server : Scale the Deployment"
    for run in runs:
        assert run.rc == 0, run.summary()
        assert {t.name for t in run.changed_tasks()} <= JOB_TASKS | {scale}, run.summary()
        assert DUMP in str(run.task("Show what the restore replaces").result)
    first_changes, second_changes = ([t.name for t in r.changed_tasks()] for r in runs)
    assert sorted(first_changes) == sorted(second_changes)
    assert apps.read_namespaced_deployment("mlflow-server", namespace).spec.replicas == 1
    assert client.BatchV1Api(k8s).list_namespaced_job(namespace).items == []


def test_teardown_removes_the_day_two_objects_and_keeps_the_data(backup_site, playbook, k8s, namespace) -> None:
    from kubernetes import client

    batch, core = client.BatchV1Api(k8s), client.CoreV1Api(k8s)  # noqa: F811
    server = client.AppsV1Api(k8s).read_namespaced_deployment("mlflow-server", namespace)
    # A migration Job left by an upgrade that was stopped: the labels its template gives it.
    leftover = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "mlflow-server-db-upgrade",
            "labels": {**server.metadata.labels, "app.kubernetes.io/component": "db-upgrade"},
        },
        "spec": {
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "mlflow-db-upgrade"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "db-upgrade", "image": NEW_IMAGE}]},
            }
        },
    }
    batch.create_namespaced_job(namespace, leftover)
    kept = playbook("playbooks/teardown.yml", inventory=inventory(), extra_vars=backup_site)
    assert kept.rc == 0, kept.summary()
    assert [c.metadata.name for c in batch.list_namespaced_cron_job(namespace).items] == []
    assert [j.metadata.name for j in batch.list_namespaced_job(namespace).items] == []
    claims = {c.metadata.name for c in core.list_namespaced_persistent_volume_claim(namespace).items}
    assert {"mlflow-database", "mlflow-artifacts", "mlflow-database-backup"} <= claims, claims
    assert "mlflow-database-credentials" in {s.metadata.name for s in core.list_namespaced_secret(namespace).items}


SERVICEMONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {"plural": "servicemonitors", "singular": "servicemonitor", "kind": "ServiceMonitor"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


def _metrics_play(namespace):
    return [
        {
            "name": "ServiceMonitor where its CRD exists",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Run the role's metrics tasks",
                    "ansible.builtin.include_role": {"name": "mlops.mlflow_k8s.mlflow_server", "tasks_from": "metrics"},
                    "vars": {"mlflow_server_metrics_enabled": True, "mlflow_server_namespace": namespace},
                }
            ],
        }
    ]


def test_servicemonitor_only_with_its_crd(playbook, dyn, namespace) -> None:
    import os

    from kubernetes.dynamic.exceptions import NotFoundError

    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    try:
        crds.get(name="servicemonitors.monitoring.coreos.com")
        pytest.skip("this cluster has the ServiceMonitor CRD already: the without-CRD half cannot run here")
    except NotFoundError:
        pass

    without = playbook(_metrics_play(namespace))
    assert without.rc == 0, without.summary()
    assert without.task("Apply the ServiceMonitor").skipped

    crds.create(body=SERVICEMONITOR_CRD)
    try:
        with_crd = playbook(_metrics_play(namespace))
        applied = with_crd.task("Apply the ServiceMonitor")
        assert not applied.skipped
        if os.environ.get("MLFLOW_K8S_STANDIN") == "1":
            # The stand-in stores CRDs but serves no custom resources: the apply was attempted
            # (the CRD was found), and failed only for that (docs/testing-cluster-standin.md).
            assert applied.failed
        else:
            assert with_crd.rc == 0, with_crd.summary()
            monitors = dyn.resources.get(api_version="monitoring.coreos.com/v1", kind="ServiceMonitor")
            monitor = monitors.get(name="mlflow-server", namespace=namespace)
            assert monitor.spec.endpoints[0].port == "http"
    finally:
        crds.delete(name="servicemonitors.monitoring.coreos.com")


def _backup_now_play(extra: dict) -> list[dict]:
    return [
        {
            "name": "A backup now, as upgrade.yml takes it",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Take a backup",
                    "ansible.builtin.include_role": {"name": "mlops.mlflow_k8s.database", "tasks_from": "backup_job"},
                    "vars": {"database_backup_job": "backup", **extra},
                }
            ],
        }
    ]


def test_backup_on_a_rwo_artifacts_claim_needs_the_server(playbook, site_vars, kubelet, k8s, namespace) -> None:  # noqa: F811
    """A ReadWriteOnce artifacts claim (a Longhorn volume is attached to one node): the backup pod
    is bound to the node of a running server pod, and cannot be scheduled while none runs."""
    from kubernetes import client

    apps, core = client.AppsV1Api(k8s), client.CoreV1Api(k8s)  # noqa: F811
    extra = {
        **site_vars,
        "mlflow_server_smoke": False,
        "mlflow_server_gc_enabled": False,
        "database_backup_enabled": True,
        "storage_artifacts_access_modes": ["ReadWriteOnce"],
    }
    try:
        site = playbook("playbooks/site.yml", inventory=inventory(), extra_vars=extra)
        assert site.rc == 0, site.summary()
        kubelet.outcome("mlflow-postgresql-backup", log=BACKUP_LOG)
        # With the server running, the backup pod finds its node.
        taken = playbook(_backup_now_play({}), extra_vars=extra)
        assert taken.rc == 0, taken.summary()
        assert (
            taken.task("Hand on what the Job did").result["ansible_facts"]["database_backup_job_artifacts_file"]
            == ARCHIVE
        )

        apps.patch_namespaced_deployment_scale("mlflow-server", namespace, {"spec": {"replicas": 0}})
        watch_gone = time.monotonic() + 60
        while core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=mlflow-server").items:
            assert time.monotonic() < watch_gone, "the server pods did not go"
            time.sleep(0.5)
        waiting = playbook(_backup_now_play({"database_backup_wait_timeout": 30}), extra_vars=extra)
        assert waiting.rc != 0
        message = waiting.failed_tasks()[0].msg
        assert "pod affinity" in message, message
    finally:
        done = playbook("playbooks/teardown.yml", inventory=inventory(), extra_vars={**extra, "purge": True})
        assert done.rc == 0, done.summary()
