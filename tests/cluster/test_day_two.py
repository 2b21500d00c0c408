"""Day two on real pods: the backup CronJob, playbooks/restore.yml and upgrade.yml, the gc
CronJob and the metrics endpoint.

One platform (PostgreSQL, MLflow 3.17.2, backups, gc and metrics on) is converged once for the
tests of this file (they run in file order on one worker, ``--dist loadfile``): the
read-only ones first, then those that change data (gc, the restore), then the upgrade to 3.18.0,
a migration alembic refuses, the database's minor roll, and teardown last. Every outcome is a
real pod's: the dump and archive names come from what the Jobs printed and are looked up in the
backup volume (a hostPath directory on this node), the runs are logged and read back through the
tracking server's NodePort with MlflowClient. A recorder thread polls the namespace (and the
server's /version) while a playbook runs, so the order is read from the cluster, not from the
playbook's own report. A second platform (MySQL, a ReadWriteOnce artifacts claim) is in
tests/cluster/test_mysql_platform.py, so that it runs beside this file's ordered tests.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import (
    WAIT_TIMEOUT,
    fresh_namespace,
    node_port_for,
    restricted_pod_spec,
    role_default,
    site_vars_for,
    watch_until,
)
from tests.cluster.day_two import DayTwo, assert_minor_rolls_major_refused, converge, purge
from tests.harness import cluster as cluster_harness
from tests.harness.argv_watch import ArgvWatch
from tests.harness.secrets import secret_data

pytestmark = pytest.mark.cluster

OLD_VERSION = "3.17.2"
NEW_VERSION = role_default("mlflow_server", "mlflow_server_version")  # the default the upgrade goes to
NEW_IMAGE = f"ghcr.io/mlflow/mlflow:v{NEW_VERSION}-full"
OLD_IMAGE = f"ghcr.io/mlflow/mlflow:v{OLD_VERSION}-full"
EXPERIMENT = "day-two"
JOB_TASKS = {"mlops.mlflow_k8s.cluster : Start the Job", "mlops.mlflow_k8s.cluster : Remove the Job"}
SCALE_TASK = "mlops.mlflow_k8s.mlflow_server : Scale the Deployment"
SUSPEND_TASK = "mlops.mlflow_k8s.cluster : Set the CronJob's suspend flag"
PAUSED = ("mlflow-postgresql-backup", "mlflow-server-gc")  # what restore.yml suspends, sorted
DUMP_NAME = re.compile(r"^mlflow-postgresql-\d{8}T\d{6}Z\.dump$")


# -- the platform the day_two group shares ---------------------------------------------------


# The tests of this file run in their order on one pytest-xdist worker (make cluster: --dist
# loadfile). Session scope: a module fixture would be converged again if another module's test
# ran between them.
@pytest.fixture(scope="session")
def day_two(kubeconfig, k8s, dyn, node_name, node_address, tmp_path_factory) -> Any:
    """site.yml once: PostgreSQL, MLflow 3.17.2, backups (keep 5), gc (runs deleted 1 s ago go)
    and metrics on. Purged (volumes too) after the group."""
    with fresh_namespace(dyn, "day-two") as namespace:
        port = node_port_for(namespace)
        site = site_vars_for(kubeconfig, namespace, node_name, tmp_path_factory.mktemp("day-two"), port)
        site.pop("mlflow_server_image", None)  # the upgrade goes by mlflow_server_version
        site.update(
            mlflow_server_version=OLD_VERSION,
            database_backup_enabled=True,
            database_backup_keep=5,
            mlflow_server_gc_enabled=True,
            mlflow_server_gc_older_than="1s",
            mlflow_server_metrics_enabled=True,
        )
        started = time.monotonic()
        with ArgvWatch() as watch:  # every pod the converge starts: the database, its admin Job, db-upgrade
            result = converge(kubeconfig, namespace, site)
        try:
            assert result.rc == 0, result.summary()
            print(f"\n[day two] site.yml converged {namespace} in {time.monotonic() - started:.0f} s")
            platform = DayTwo(kubeconfig, k8s, dyn, namespace, site, f"http://{node_address}:{port}")
            platform.converge_watch = watch
            yield platform
        finally:
            purge(kubeconfig, site)


# -- what runs the tests watch and start -------------------------------------------------------


class Recorder(threading.Thread):
    """Polls (Deployment replicas, server pods, Job names, Deployment image, /version, suspended
    CronJobs) and keeps
    every distinct state in order; ``jobs`` holds every Job seen, as first seen."""

    def __init__(self, kubeconfig: str, namespace: str, url: str | None = None) -> None:
        super().__init__(daemon=True)
        from kubernetes import client

        self.api = cluster_harness.new_api_client(kubeconfig)
        self.apps = client.AppsV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.core = client.CoreV1Api(self.api)
        self.namespace = namespace
        self.url = url
        self.states: list[tuple[int | None, int, tuple[str, ...], str, str, tuple[str, ...]]] = []
        self.jobs: dict[str, Any] = {}
        self.stopping = threading.Event()

    def version(self) -> str:
        import requests

        if not self.url:
            return ""
        try:
            answer = requests.get(f"{self.url}/version", timeout=2)
            return answer.text.strip() if answer.status_code == 200 else f"HTTP {answer.status_code}"
        except requests.RequestException:
            return "no answer"

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
        paused = tuple(
            sorted(c.metadata.name for c in self.batch.list_namespaced_cron_job(self.namespace).items if c.spec.suspend)
        )
        return replicas, len(pods.items), tuple(sorted(j.metadata.name for j in jobs)), image, self.version(), paused

    def run(self) -> None:
        while not self.stopping.is_set():
            current = self.state()
            if not self.states or self.states[-1] != current:
                self.states.append(current)
            time.sleep(0.2)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.join(10)
        self.api.close()


def recorded(platform: DayTwo, playbook: str, *, probe: bool = False, **extra):
    """Run a playbook on the platform with a Recorder watching: (result, recorder, seconds)."""
    with Recorder(platform.kubeconfig, platform.namespace, platform.url if probe else None) as recorder:
        started = time.monotonic()
        result = platform.play(playbook, **extra)
        seconds = time.monotonic() - started
        time.sleep(1)
    return result, recorder, seconds


def assert_no_password_in_argv(platform: DayTwo, watch: ArgvWatch, *words: str) -> None:
    """Issue 28 point 4: no process on this node (the rig's node: its containers' processes are
    this machine's) had the database passwords in its command line while ``watch`` ran, and the
    process with ``words`` among its arguments, the one that would have, was caught."""
    from kubernetes import client

    creds = secret_data(client.CoreV1Api(platform.k8s), platform.namespace, "mlflow-database-credentials")
    assert watch.saw(*words), f"no process with {words} was seen in {watch.scans} passes: the watch proves nothing"
    leaks = watch.leaks(*(creds.get(key) or "" for key in ("password", "root-password")))
    assert leaks == [], f"a database password is in a command line: {leaks}"


def first(states, predicate) -> int:
    return next(i for i, s in enumerate(states) if predicate(s))


def run_cronjob(platform: DayTwo, cronjob: str, job: str) -> tuple[str, dict[str, str]]:
    """The CronJob's job template as the Job ``job`` (what `kubectl create job --from` makes),
    run to its end: (Complete or Failed, {container: log}, init containers first). Removed after."""
    from kubernetes import client

    batch, core = client.BatchV1Api(platform.k8s), client.CoreV1Api(platform.k8s)
    ns = platform.namespace
    template = batch.read_namespaced_cron_job(cronjob, ns).spec.job_template
    body = platform.k8s.sanitize_for_serialization(template)
    body.update(apiVersion="batch/v1", kind="Job")
    body["metadata"] = {"name": job, "labels": (body.get("metadata") or {}).get("labels", {})}
    batch.create_namespaced_job(ns, body)
    try:

        def finished(obj):
            conditions = ((obj or {}).get("status") or {}).get("conditions") or []
            return any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions)

        done = watch_until(platform.dyn, "batch/v1", "Job", ns, job, finished, timeout=WAIT_TIMEOUT)
        state = next(
            c["type"]
            for c in done["status"]["conditions"]
            if c["type"] in ("Complete", "Failed") and c["status"] == "True"
        )
        logs: dict[str, str] = {}
        for pod in core.list_namespaced_pod(ns, label_selector=f"batch.kubernetes.io/job-name={job}").items:
            for container in (pod.spec.init_containers or []) + pod.spec.containers:
                with contextlib.suppress(Exception):
                    logs[container.name] = logs.get(container.name, "") + core.read_namespaced_pod_log(
                        pod.metadata.name, ns, container=container.name
                    )
        return state, logs
    finally:
        batch.delete_namespaced_job(job, ns, propagation_policy="Background")


def snapshot(client, experiment_ids: list[str]) -> dict[str, tuple]:
    """Every run of the experiments (all stages): its stage, status, params, metrics and the
    history of the metric ``loss``."""
    from mlflow.entities import ViewType

    runs = client.search_runs(experiment_ids, run_view_type=ViewType.ALL, max_results=1000)
    out = {}
    for run in runs:
        history = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss")]
        out[run.info.run_id] = (
            run.info.lifecycle_stage,
            run.info.status,
            dict(run.data.params),
            dict(run.data.metrics),
            sorted(history),
        )
    return out


def log_runs(client, experiment_id: str, count: int, prefix: str) -> list[str]:
    ids = []
    for i in range(count):
        run = client.create_run(experiment_id, run_name=f"{prefix}-{i}")
        run_id = run.info.run_id
        client.log_param(run_id, "lr", str(0.1 * (i + 1)))
        client.log_param(run_id, "prefix", prefix)
        for step in range(3):
            client.log_metric(run_id, "loss", 1.0 / (step + 1 + i), step=step)
        client.log_text(run_id, f"{prefix} run {i}\n", "notes/readme.txt")
        client.set_terminated(run_id)
        ids.append(run_id)
    return ids


def runs_read_back(result) -> int:
    """How many runs the play's read-back (read_runs.yml) got from the server."""
    return int(result.task("Hand on how many runs came back").result["ansible_facts"]["mlflow_server_read_runs_count"])


def server_version(url: str) -> str:
    import requests

    answer = requests.get(f"{url}/version", timeout=10)
    answer.raise_for_status()
    return answer.text.strip()


# -- the day_two group, in order: read-only first -------------------------------------------


def test_site_creates_the_day_two_objects(day_two, k8s) -> None:
    from kubernetes import client

    ns = day_two.namespace
    batch, core = client.BatchV1Api(k8s), client.CoreV1Api(k8s)
    # The converge started PostgreSQL, its admin Job and the server's db-upgrade init container.
    assert_no_password_in_argv(day_two, day_two.converge_watch, "db", "upgrade")
    cronjob = batch.read_namespaced_cron_job("mlflow-postgresql-backup", ns)
    assert cronjob.spec.schedule == "17 2 * * *"
    assert cronjob.spec.concurrency_policy == "Forbid"
    assert cronjob.spec.successful_jobs_history_limit == 3
    assert cronjob.spec.failed_jobs_history_limit == 3
    pod = cronjob.spec.job_template.spec.template.spec
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
    assert volumes["backup"].persistent_volume_claim.claim_name == "mlflow-database-backup"
    assert volumes["artifacts"].persistent_volume_claim.claim_name == "mlflow-artifacts"
    assert volumes["artifacts"].persistent_volume_claim.read_only is True
    mounts = {m.name: m for m in copy.volume_mounts}
    assert mounts["artifacts"].read_only and not mounts["backup"].read_only
    assert pod.affinity is None  # ReadWriteMany artifacts: any node
    assert "artifacts.sh" in core.read_namespaced_config_map("mlflow-postgresql-backup-scripts", ns).data
    assert core.read_namespaced_persistent_volume_claim("mlflow-database-backup", ns).status.phase == "Bound"
    policy = client.NetworkingV1Api(k8s).read_namespaced_network_policy("mlflow-postgresql", ns)
    admitted = [peer.pod_selector.match_labels for peer in policy.spec.ingress[0]._from]
    labels = cronjob.spec.job_template.spec.template.metadata.labels
    assert any(all(labels.get(k) == v for k, v in sel.items()) for sel in admitted), (admitted, labels)

    gc = batch.read_namespaced_cron_job("mlflow-server-gc", ns)
    assert gc.spec.successful_jobs_history_limit == 3 and gc.spec.concurrency_policy == "Forbid"
    gc_pod = gc.spec.job_template.spec.template
    container = gc_pod.spec.containers[0]
    assert container.image == OLD_IMAGE
    assert container.command[-5:] == ["gc", "--backend-store-uri", "$MLFLOW_BACKEND_STORE_URI", "--older-than", "1s"]
    gc_env = {e.name: e for e in container.env}
    assert gc_env["MLFLOW_BACKEND_STORE_URI"].value_from.secret_key_ref.name == "mlflow-backend-store"
    assert gc_env["MLFLOW_TRACKING_URI"].value.startswith("http://mlflow-server.")
    # Admitted to the database, but neither the server's Service nor its Deployment selects it.
    assert any(all(gc_pod.metadata.labels.get(k) == v for k, v in sel.items()) for sel in admitted)
    service = core.read_namespaced_service("mlflow-server", ns)
    assert not all(gc_pod.metadata.labels.get(k) == v for k, v in service.spec.selector.items())
    # Metrics: the Service's port is named http and carries the scrape annotations.
    assert service.spec.ports[0].name == "http"
    annotations = service.metadata.annotations or {}
    assert annotations.get("prometheus.io/scrape") == "true" and annotations.get("prometheus.io/path") == "/metrics"
    assert server_version(day_two.url) == OLD_VERSION


def test_metrics_endpoint_counts_the_requests(day_two) -> None:
    """/metrics through the NodePort: Prometheus text from the server's exporter, whose request
    counter grows by at least the requests made between two scrapes."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> tuple[float, dict[str, Any]]:
        answer = requests.get(f"{day_two.url}/metrics", timeout=30)
        assert answer.status_code == 200, (answer.status_code, answer.text[:500])
        assert answer.headers["Content-Type"].startswith("text/plain"), answer.headers
        families = {f.name: f for f in text_string_to_metric_families(answer.text)}
        counter = families.get("mlflow_http_request")
        assert counter is not None and counter.type == "counter", sorted(families)
        total = sum(s.value for s in counter.samples if s.name == "mlflow_http_request_total")
        return total, families

    before, families = scrape()
    assert "mlflow_http_request_duration_seconds" in families, sorted(families)
    requests_made = 7
    for attempt in range(requests_made):
        answer = requests.post(f"{day_two.url}/api/2.0/mlflow/experiments/search", json={"max_results": 10}, timeout=30)
        assert answer.status_code == 200, (attempt, answer.text)
    after, families = scrape()
    assert after >= before + requests_made, (before, after)
    # Labelled with the server's version (the exporter's group_by) and the method and status.
    samples = [s for s in families["mlflow_http_request"].samples if s.name == "mlflow_http_request_total"]
    assert any(s.labels.get("method") == "POST" and s.labels.get("status") == "200" for s in samples), samples
    # Prometheus scrapes a pod by its address: that Host is allowed (the role's pod-address
    # pattern); another one is refused: /metrics stays behind the Host check.
    from kubernetes import client

    (pod,) = (
        client.CoreV1Api(day_two.k8s)
        .list_namespaced_pod(day_two.namespace, label_selector="app.kubernetes.io/name=mlflow-server")
        .items
    )
    by_pod = requests.get(f"{day_two.url}/metrics", headers={"Host": f"{pod.status.pod_ip}:5000"}, timeout=30)
    assert by_pod.status_code == 200, (by_pod.status_code, by_pod.text[:500])
    assert "mlflow_http_request_total" in by_pod.text
    # The workers share their counts through files in the role's multiprocess directory.
    from kubernetes.stream import stream

    metrics_dir = role_default("mlflow_server", "mlflow_server_metrics_dir")
    listed = stream(
        client.CoreV1Api(day_two.k8s).connect_get_namespaced_pod_exec,
        pod.metadata.name,
        day_two.namespace,
        container=pod.spec.containers[0].name,
        command=["ls", "-A", metrics_dir],
        stdout=True,
        stderr=True,
        stdin=False,
        tty=False,
    )
    assert ".db" in listed, f"no multiprocess files in {metrics_dir}: {listed!r}"
    refused = requests.get(f"{day_two.url}/metrics", headers={"Host": "evil.example:80"}, timeout=30)
    assert refused.status_code == 403, refused.status_code


def test_check_mode_creates_nothing(day_two, k8s) -> None:
    from kubernetes import client

    ns = day_two.namespace
    before = client.AppsV1Api(k8s).read_namespaced_deployment("mlflow-server", ns)
    backups = day_two.backups()
    with Recorder(day_two.kubeconfig, ns) as recorder:
        restore = day_two.play("playbooks/restore.yml", check=True)
        upgrade = day_two.play("playbooks/upgrade.yml", check=True, mlflow_server_version=NEW_VERSION)
        time.sleep(1)
    assert restore.rc == 0, restore.summary()
    assert upgrade.rc == 0, upgrade.summary()
    assert recorder.jobs == {}, sorted(recorder.jobs)
    assert all(s[0] == 1 and s[3] == OLD_IMAGE for s in recorder.states), recorder.states
    assert day_two.backups() == backups
    planned = "Show the Job check mode would run"
    plans = [str(t.result.get("msg")) for t in restore.tasks + upgrade.tasks if t.name.endswith(planned)]
    assert any(f"would run Job {ns}/mlflow-postgresql-check (check, then artifacts)" in p for p in plans), plans
    assert any("mlflow-postgresql-restore (restore, then artifacts)" in p for p in plans), plans
    assert any("mlflow-postgresql-backup (backup, then artifacts)" in p for p in plans), plans
    assert any("mlflow-server-db-upgrade" in p for p in plans), plans
    assert any("Check mode: mlflow_server would apply" in str(t.result.get("msg")) for t in upgrade.tasks)
    after = client.AppsV1Api(k8s).read_namespaced_deployment("mlflow-server", ns)
    assert after.metadata.generation == before.metadata.generation


# -- then the ones that change data -----------------------------------------------------------


def test_gc_cronjob_deletes_a_deleted_run_for_good(day_two) -> None:
    from mlflow.exceptions import MlflowException

    mlflow = day_two.client()
    experiment = mlflow.create_experiment(f"{EXPERIMENT}-gc")
    doomed, kept = log_runs(mlflow, experiment, 2, "gc")
    artifacts = day_two.host_dir("mlflow-artifacts")
    assert list(artifacts.rglob(f"{doomed}/artifacts/notes/readme.txt")), "the artifact is not on the volume"
    mlflow.delete_run(doomed)
    assert mlflow.get_run(doomed).info.lifecycle_stage == "deleted"  # only marked
    time.sleep(2)  # older than the CronJob's --older-than 1s

    with ArgvWatch() as watch:
        state, logs = run_cronjob(day_two, "mlflow-server-gc", "mlflow-server-gc-now")
    assert state == "Complete", logs
    assert_no_password_in_argv(day_two, watch, "gc", "--older-than")
    assert f"Run with ID {doomed} has been permanently deleted." in logs["gc"], logs
    assert kept not in logs["gc"]
    with pytest.raises(MlflowException) as gone:
        mlflow.get_run(doomed)
    assert gone.value.error_code == "RESOURCE_DOES_NOT_EXIST", gone.value
    assert not list(artifacts.rglob(f"{doomed}/artifacts/notes/readme.txt")), "gc left the artifact"
    assert mlflow.get_run(kept).info.lifecycle_stage == "active"
    assert mlflow.download_artifacts(kept, "notes/readme.txt") and list(artifacts.rglob(f"{kept}/artifacts/notes"))


def test_backup_cronjob_then_restore_brings_the_data_back(day_two, k8s) -> None:
    ns = day_two.namespace
    mlflow = day_two.client()
    experiment = mlflow.create_experiment(f"{EXPERIMENT}-restore")
    first_run, second_run = log_runs(mlflow, experiment, 2, "restore")
    at_dump = snapshot(mlflow, [experiment])

    # The CronJob's pod, as its schedule would start it: the dump, then the archive beside it.
    state, logs = run_cronjob(day_two, "mlflow-postgresql-backup", "mlflow-postgresql-backup-now")
    assert state == "Complete", logs
    dump = re.search(r"backup-file=(\S+)", logs["backup"]).group(1)
    archive = re.search(r"artifacts-file=(\S+)", logs["artifacts"]).group(1)
    assert DUMP_NAME.match(dump), dump
    assert archive == dump.replace(".dump", ".artifacts.tar.gz"), (dump, archive)
    assert {dump, archive} <= day_two.backups(), day_two.backups()

    # The data changes after the dump: a run deleted, one logged, an artifact overwritten.
    mlflow.delete_run(first_run)
    later = log_runs(mlflow, experiment, 1, "after-dump")[0]
    mlflow.log_text(second_run, "overwritten after the dump\n", "notes/readme.txt")
    assert snapshot(mlflow, [experiment]) != at_dump

    result, recorder, seconds = recorded(day_two, "playbooks/restore.yml", database_restore_file=dump)
    assert result.rc == 0, result.summary()
    print(f"\n[day two] restore.yml of {dump} took {seconds:.0f} s")
    states = recorder.states
    check = first(states, lambda s: "mlflow-postgresql-check" in s[2])
    down = first(states, lambda s: s[0] == 0)
    gone = first(states, lambda s: s[0] == 0 and s[1] == 0)
    restore = first(states, lambda s: "mlflow-postgresql-restore" in s[2])
    back = first(states[restore:], lambda s: s[0] == 1) + restore
    assert states[check][0] == 1, states  # checked while the server still served
    assert check < down <= gone < restore < back, states
    assert all(s[1] == 0 for s in states[gone : restore + 1]), states
    assert "mlflow-postgresql-restore" not in states[-1][2], states  # removed after
    assert states[-1][0] == 1, states
    # Issue 28 point 6: no scheduled backup or gc could start from before the server stopped until
    # it served again; both resumed after.
    assert all(s[5] == PAUSED for s in states[down : back + 1]), states
    assert states[0][5] == () and states[-1][5] == (), states
    # The database first (init container), then the archive into the artifacts claim, read-write,
    # with the server's group (no regrouping of its files); the backup claim read-only.
    pod = recorder.jobs["mlflow-postgresql-restore"].spec.template.spec
    assert [c.name for c in pod.init_containers] == ["restore"]
    assert pod.containers[0].command == ["/bin/sh", "/scripts/artifacts.sh", "restore"]
    volumes = {v.name: v for v in pod.volumes}
    assert not volumes["artifacts"].persistent_volume_claim.read_only  # false: the API server omits it
    assert volumes["backup"].persistent_volume_claim.read_only is True
    assert pod.security_context.fs_group == 1000
    checked = recorder.jobs["mlflow-postgresql-check"].spec.template.spec
    assert "artifacts" not in {v.name for v in checked.volumes}  # the check reads the backup volume only
    shown = str(result.task("Show what the restore replaces").result)
    assert f"Restoring {dump}" in shown and archive in shown, shown
    # The read-back of restore.yml counted what the restore Job counted.
    assert runs_read_back(result) >= 2

    # Back as at the dump: the deleted run active again, the later one gone, the artifact's text.
    assert snapshot(mlflow, [experiment]) == at_dump
    assert later not in at_dump
    assert mlflow.get_run(first_run).info.lifecycle_stage == "active"
    text = Path(mlflow.download_artifacts(second_run, "notes/readme.txt")).read_text(encoding="utf-8")
    assert text == "restore run 1\n", text

    # A dump that is not there: the check fails, nothing is scaled, no restore Job.
    missing = "mlflow-postgresql-20990101T000000Z.dump"
    refused, recorder, _unused = recorded(day_two, "playbooks/restore.yml", database_restore_file=missing)
    assert refused.rc != 0
    failure = refused.failed_tasks()[0]
    assert "does not exist" in failure.msg and dump in failure.msg, failure.msg
    assert all(s[0] == 1 for s in recorder.states), recorder.states
    assert all("mlflow-postgresql-restore" not in s[2] for s in recorder.states), recorder.states
    assert all(s[5] == () for s in recorder.states), recorder.states  # refused before anything paused
    assert snapshot(mlflow, [experiment]) == at_dump

    # The same dump again, the database alone: the same content, the artifacts not touched,
    # nothing changed but its Jobs, the scale down and up, and the CronJobs' pause and resume.
    mlflow.log_text(second_run, "changed after the restore\n", "notes/readme.txt")
    mlflow.delete_run(first_run)
    again, recorder, _unused = recorded(
        day_two, "playbooks/restore.yml", database_restore_file=dump, database_restore_artifacts=False
    )
    assert again.rc == 0, again.summary()
    for run in (again, result):
        changed = [t.name for t in run.changed_tasks()]
        assert set(changed) <= JOB_TASKS | {SCALE_TASK, SUSPEND_TASK}, run.summary()
        assert changed.count(SUSPEND_TASK) == 4, run.summary()  # two CronJobs paused, then resumed
    pod = recorder.jobs["mlflow-postgresql-restore"].spec.template.spec
    assert not pod.init_containers and [c.name for c in pod.containers] == ["restore"]
    assert "artifacts" not in {v.name for v in pod.volumes}
    assert "the artifacts volume is not touched" in str(again.task("Show what the restore replaces").result)
    assert snapshot(mlflow, [experiment]) == at_dump
    text = Path(mlflow.download_artifacts(second_run, "notes/readme.txt")).read_text(encoding="utf-8")
    assert text == "changed after the restore\n", text  # the artifacts volume was left alone
    from kubernetes import client

    assert client.BatchV1Api(k8s).list_namespaced_job(ns).items == []


# -- the upgrade, and what comes after it -------------------------------------------------------


def test_upgrade_backs_up_then_migrates_once_before_the_rollout(day_two, k8s) -> None:
    from kubernetes import client

    ns = day_two.namespace
    mlflow = day_two.client()
    experiment = mlflow.create_experiment(f"{EXPERIMENT}-upgrade")
    log_runs(mlflow, experiment, 3, "upgrade")
    mine = [e.experiment_id for e in mlflow.search_experiments() if e.name.startswith(EXPERIMENT)]
    before = snapshot(mlflow, mine)
    assert len(before) >= 3
    backups = day_two.backups()
    sts = client.AppsV1Api(k8s).read_namespaced_stateful_set("mlflow-postgresql", ns)

    site = {k: v for k, v in day_two.site.items() if k != "mlflow_server_version"}  # the default
    day_two.site = site
    with ArgvWatch() as watch:  # the migration Job, then the new pods' db-upgrade init container
        result, recorder, seconds = recorded(day_two, "playbooks/upgrade.yml", probe=True)
    assert result.rc == 0, result.summary()
    assert_no_password_in_argv(day_two, watch, "db", "upgrade")
    print(f"\n[day two] upgrade.yml {OLD_VERSION} -> {NEW_VERSION} took {seconds:.0f} s")
    states = recorder.states
    backup = first(states, lambda s: "mlflow-postgresql-backup" in s[2])
    migration = first(states, lambda s: "mlflow-server-db-upgrade" in s[2])
    migrated = first(states[migration:], lambda s: "mlflow-server-db-upgrade" not in s[2]) + migration
    rolled = first(states, lambda s: s[3] == NEW_IMAGE)
    assert backup < migration < migrated <= rolled, states
    assert all(s[3] == OLD_IMAGE for s in states[:migrated]), states
    # The old pods answered all through the migration, and were the ones answering.
    assert all(s[4] == OLD_VERSION for s in states[migration:migrated]), states[migration:migrated]
    assert states[-1][3] == NEW_IMAGE and states[-1][0] == 1, states
    assert server_version(day_two.url) == NEW_VERSION
    # upgrade.yml asked the server for /version itself, and got the release it was given.
    checked = result.task("Check that the server runs the release asked for")
    assert not checked.skipped and not checked.failed, checked.result
    assert snapshot(mlflow, mine) == before  # every run, param, metric and history logged by 3.17.2
    job = recorder.jobs["mlflow-server-db-upgrade"].spec.template.spec
    assert job.containers[0].image == NEW_IMAGE
    shown = result.task("Show the backup to restore from if the upgrade goes wrong").msg
    taken = re.search(r"Backup taken: (\S+)", shown).group(1)
    assert DUMP_NAME.match(taken) and taken not in backups and taken in day_two.backups(), (shown, backups)
    assert f"database_restore_file={taken}" in shown
    # The database was not touched; the runs were counted before and read back after.
    now = client.AppsV1Api(k8s).read_namespaced_stateful_set("mlflow-postgresql", ns)
    assert now.metadata.generation == sts.metadata.generation
    assert runs_read_back(result) >= 3
    gc = client.BatchV1Api(k8s).read_namespaced_cron_job("mlflow-server-gc", ns)
    assert gc.spec.job_template.spec.template.spec.containers[0].image == NEW_IMAGE

    # Again with nothing new: a backup and a migration that finds the schema at head, nothing else.
    deployment = client.AppsV1Api(k8s).read_namespaced_deployment("mlflow-server", ns)
    again = day_two.play("playbooks/upgrade.yml", mlflow_server_smoke=False)
    assert again.rc == 0, again.summary()
    assert {t.name for t in again.changed_tasks()} <= JOB_TASKS, again.summary()
    assert client.AppsV1Api(k8s).read_namespaced_deployment("mlflow-server", ns).metadata.generation == (
        deployment.metadata.generation
    )
    assert client.AppsV1Api(k8s).read_namespaced_stateful_set("mlflow-postgresql", ns).metadata.generation == (
        sts.metadata.generation
    )


def test_failed_migration_leaves_the_old_pods_serving(day_two, k8s) -> None:
    """Back to 3.17.2 after the upgrade: its `mlflow db upgrade` cannot find the revisions 3.18.0
    added, so the migration Job fails for real; the 3.18.0 pods keep serving."""
    from kubernetes import client

    ns = day_two.namespace
    apps = client.AppsV1Api(k8s)
    old = apps.read_namespaced_deployment("mlflow-server", ns)
    assert old.spec.template.spec.containers[0].image == NEW_IMAGE, "runs after the upgrade"
    backups = day_two.backups()
    result = day_two.play("playbooks/upgrade.yml", mlflow_server_version=OLD_VERSION, mlflow_server_smoke=False)
    assert result.rc != 0
    message = result.failed_tasks()[0].msg
    assert "old pods keep serving" in message, message
    assert "Can't locate revision" in message, message
    dump = re.search(r"database_restore_file=(\S+)", message).group(1)
    assert DUMP_NAME.match(dump) and dump not in backups and dump in day_two.backups(), (message, backups)
    now = apps.read_namespaced_deployment("mlflow-server", ns)
    assert now.spec.template.spec.containers[0].image == NEW_IMAGE
    assert now.metadata.generation == old.metadata.generation
    assert now.status.ready_replicas == 1
    assert server_version(day_two.url) == NEW_VERSION
    assert client.BatchV1Api(k8s).list_namespaced_job(ns).items == []


def test_postgresql_minor_upgrade_rolls_and_major_is_refused(day_two, k8s) -> None:
    assert_minor_rolls_major_refused(day_two, k8s, "postgresql")


def test_teardown_removes_the_day_two_objects_and_keeps_the_data(day_two, k8s) -> None:
    from kubernetes import client

    ns = day_two.namespace
    batch, core = client.BatchV1Api(k8s), client.CoreV1Api(k8s)
    server = client.AppsV1Api(k8s).read_namespaced_deployment("mlflow-server", ns)
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
                # What the namespace's Pod Security (restricted) admits.
                "spec": restricted_pod_spec("db-upgrade", ["sleep", "600"]),
            }
        },
    }
    batch.create_namespaced_job(ns, leftover)
    dumps = day_two.backups()
    kept = day_two.play("playbooks/teardown.yml")
    assert kept.rc == 0, kept.summary()
    assert [c.metadata.name for c in batch.list_namespaced_cron_job(ns).items] == []
    assert [j.metadata.name for j in batch.list_namespaced_job(ns).items] == []
    claims = {c.metadata.name for c in core.list_namespaced_persistent_volume_claim(ns).items}
    assert {"mlflow-database", "mlflow-artifacts", "mlflow-database-backup"} <= claims, claims
    assert "mlflow-database-credentials" in {s.metadata.name for s in core.list_namespaced_secret(ns).items}
    assert day_two.backups() == dumps and any(DUMP_NAME.match(d) for d in dumps)


# -- on platforms of their own ------------------------------------------------------------------
