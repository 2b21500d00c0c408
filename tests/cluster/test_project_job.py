"""mlflow_project_job and mlflow_project_job_info against a Kubernetes API.

The module runs in-process through its entry point (patch_module_args), except for one test
that runs playbooks/run_project.yml through ansible-playbook. MLflow is real: a tracking store
on SQLite in the session's temporary directory (the services tests cover a real server on
PostgreSQL). The pods are real: the project's own command decides how each one ends (it echoes
a message, sleeps, and exits with the code it is given) in the busybox image; a Job that must
stay running sleeps 600 s and is deleted with its namespace. None of these pods talks to
MLflow: the module alone moves the run (tests/cluster/test_project_snapshot.py has pods that do).
"""

import json
import os
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
from kubernetes import client as k8s_client

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import job as job_utils
from ansible_collections.mlops.mlflow_k8s.plugins.modules import mlflow_project_job, mlflow_project_job_info
from tests.harness.module import run_module as run

pytestmark = pytest.mark.cluster

MLPROJECT = """\
name: cluster-test
entry_points:
  main:
    parameters:
      message: {type: string, default: hello}
      code: {type: int, default: 0}
      seconds: {type: int, default: 0}
    command: 'sh -c "echo $0; sleep $2; exit $1" {message} {code} {seconds}'
"""
# What each test pod asks for: no CPU request. The node's 2 cores are shared by every test
# running at the same time (platforms included), a Job that must stay running holds its request
# until its namespace is gone, and the module fails at once on a pod the scheduler finds no room
# for ("Insufficient cpu"): a request of 0 always fits.
SMALL = {"requests": {"cpu": "0", "memory": "16Mi"}}


@pytest.fixture
def project(tmp_path):
    path = tmp_path / "cluster-test"
    path.mkdir()
    (path / "MLproject").write_text(MLPROJECT)
    return path


@pytest.fixture
def submit(kubeconfig, namespace, project, tracking, images):
    def args(**extra):
        base = {
            "project_uri": str(project),
            "image": images["busybox"],
            "namespace": namespace,
            "kubeconfig": kubeconfig,
            "tracking_uri": tracking["uri"],
            "job_tracking_uri": "http://mlflow-server.mlflow.svc:5000",
            "experiment_id": tracking["experiment_id"],
            "wait_timeout": 240,
            "propagation_policy": "Background",
            "resources": SMALL,
        }
        base.update(extra)
        return base

    return args


@pytest.fixture
def batch(k8s):
    return k8s_client.BatchV1Api(k8s)


def _run(tracking, run_id):
    return tracking["client"].get_run(run_id)


def test_submit_and_wait_complete(submit, tracking, batch, namespace):
    result = run(mlflow_project_job, submit(wait=True, parameters={"message": "hello"}, run_name="ok"))
    assert result["changed"], result
    assert result["state"] == "Complete"
    assert not result["timed_out"]
    run_id = result["run"]["run_id"]
    mlflow_run = _run(tracking, run_id)
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.tags["mlflow.project.backend"] == "kubernetes"
    assert mlflow_run.data.tags["mlflow.project.env"] == "docker"
    assert mlflow_run.data.tags["mlflow.project.entryPoint"] == "main"
    assert mlflow_run.data.params == {"message": "hello", "code": "0", "seconds": "0"}

    job = batch.read_namespaced_job(result["job_name"], namespace)
    assert job.metadata.labels[job_utils.LABEL_RUN_ID] == run_id
    container = job.spec.template.spec.containers[0]
    assert container.name == "cluster-test"
    assert container.command == ["sh", "-c", "echo $0; sleep $2; exit $1", "hello", "0", "0"]
    env = {e.name: e.value for e in container.env}
    assert env["MLFLOW_RUN_ID"] == run_id
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow-server.mlflow.svc:5000"
    assert env["MLFLOW_EXPERIMENT_ID"] == tracking["experiment_id"]
    # The container's own output, read back from the kubelet and kept as the run's artifact.
    assert "hello" in result["logs"], result["logs"]
    artifacts = [a.path for a in tracking["client"].list_artifacts(run_id, "kubernetes")]
    assert artifacts == ["kubernetes/job.log"]


def test_wait_failed(submit, tracking):
    result = run(mlflow_project_job, submit(wait=True, parameters={"code": 3, "message": "boom"}))
    assert result["state"] == "Failed"
    assert "boom" in result["logs"], result["logs"]
    assert _run(tracking, result["run"]["run_id"]).info.status == "FAILED"


def test_missing_claim_fails_at_once_with_the_schedulers_message(submit, tracking, batch, namespace):
    template = json.loads(json.dumps(job_utils.DEFAULT_TEMPLATE))
    pod_spec = template["spec"]["template"]["spec"]
    pod_spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "mlflow-pv-claim"}}]
    pod_spec["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    result = run(mlflow_project_job, submit(wait=True, job_template=template, run_name="no-claim"))
    # failed before wait_timeout (240 s) with the pod's reason, not timed out
    assert result["failed"] and result["state"] == "Stuck" and not result["timed_out"], result
    stuck = result["stuck"]
    assert stuck["reason"] == "Unschedulable"
    assert 'persistentvolumeclaim "mlflow-pv-claim" not found' in stuck["message"]
    assert 'persistentvolumeclaim "mlflow-pv-claim" not found' in result["msg"]
    assert stuck["pod"].startswith(result["job_name"]) and stuck["pod"] in result["msg"]
    assert any(line.startswith("FailedScheduling: ") for line in stuck["events"]), stuck
    mlflow_run = _run(tracking, result["run"]["run_id"])
    assert mlflow_run.info.status == "FAILED"
    assert mlflow_run.data.tags["mlops.mlflow-k8s/failure-reason"] == "Unschedulable"
    assert result["job_deleted"]  # on_timeout: delete (the default) applies to a stuck pod too
    remaining = [j for j in batch.list_namespaced_job(namespace).items if not j.metadata.deletion_timestamp]
    assert remaining == []


def test_image_pull_failure_fails_at_once_and_keeps_the_job(submit, tracking, batch, namespace, images):
    result = run(mlflow_project_job, submit(wait=True, image=images["missing"], on_timeout="keep"))
    assert result["failed"] and result["state"] == "Stuck" and not result["timed_out"], result
    stuck = result["stuck"]
    assert stuck["reason"] in ("ErrImagePull", "ImagePullBackOff"), stuck
    assert images["missing"] in stuck["message"] and stuck["container"] == "cluster-test"
    assert any(images["missing"] in line for line in stuck["events"]), stuck
    mlflow_run = _run(tracking, result["run"]["run_id"])
    assert mlflow_run.info.status == "FAILED"
    assert mlflow_run.data.tags["mlops.mlflow-k8s/failure-reason"] == stuck["reason"]
    assert "job_deleted" not in result
    assert batch.read_namespaced_job(result["job_name"], namespace).metadata.name == result["job_name"]


def test_timeout_deletes_job_and_kills_run(submit, tracking, watch_for, namespace):
    result = run(mlflow_project_job, submit(wait=True, wait_timeout=2, parameters={"seconds": 600}))
    assert result["timed_out"] and result["job_deleted"]
    assert _run(tracking, result["run"]["run_id"]).info.status == "KILLED"
    assert watch_for("batch/v1", "Job", namespace, result["job_name"], lambda obj: obj is None) is None


def test_timeout_keep_leaves_job_running(submit, tracking, batch, namespace):
    result = run(mlflow_project_job, submit(wait=True, wait_timeout=1, on_timeout="keep", parameters={"seconds": 600}))
    assert result["timed_out"] and "job_deleted" not in result
    assert _run(tracking, result["run"]["run_id"]).info.status == "RUNNING"
    assert batch.read_namespaced_job(result["job_name"], namespace).metadata.name == result["job_name"]


def test_state_absent_deletes_job_and_kills_run(submit, tracking, watch_for, namespace):
    # The shell ignores SIGTERM: a short grace period, or the deletion waits 30 s for the kill.
    template = json.loads(json.dumps(job_utils.DEFAULT_TEMPLATE))
    template["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 1
    submitted = run(mlflow_project_job, submit(job_template=template, parameters={"seconds": 600}))
    run_id = submitted["run"]["run_id"]
    # The operator's tracking_uri: the module never follows the URI a Job's annotation names (issue #27).
    absent = {
        "state": "absent",
        "namespace": namespace,
        "run_id": run_id,
        "kubeconfig": submit()["kubeconfig"],
        "tracking_uri": tracking["uri"],
    }
    removed = run(mlflow_project_job, absent)
    assert removed["changed"] and removed["deleted"] == [submitted["job_name"]]
    assert removed["killed_runs"] == [run_id]
    assert _run(tracking, run_id).info.status == "KILLED"
    assert watch_for("batch/v1", "Job", namespace, submitted["job_name"], lambda obj: obj is None) is None
    again = run(mlflow_project_job, absent)
    assert not again["changed"]


def test_idempotent_resubmission_and_force(submit, batch, namespace, tracking):
    first = run(mlflow_project_job, submit(parameters={"seconds": 600}, run_name="same"))
    second = run(mlflow_project_job, submit(parameters={"seconds": 600}, run_name="same"))
    assert first["changed"] and not second["changed"]
    assert second["existing"] and second["job_name"] == first["job_name"]
    assert second["run"]["run_id"] == first["run"]["run_id"]
    other = run(mlflow_project_job, submit(parameters={"seconds": 601}, run_name="same"))
    assert other["changed"] and other["job_name"] != first["job_name"]
    forced = run(mlflow_project_job, submit(parameters={"seconds": 600}, run_name="same", force=True))
    assert forced["changed"] and forced["job_name"] != first["job_name"]
    jobs = batch.list_namespaced_job(namespace).items
    assert len(jobs) == 3


def test_a_fixed_template_or_image_is_a_new_submission(submit, project, tracking, batch, namespace, images):
    # The first Job fails; the same call with a fixed template must not return that failed Job.
    # The template's DATA decides: the project's command fails on /wrong.
    (project / "MLproject").write_text(
        "name: cluster-test\nentry_points:\n  main:\n    command: 'sh -c \"echo DATA=$DATA; test $DATA != /wrong\"'\n"
    )
    broken = json.loads(json.dumps(job_utils.DEFAULT_TEMPLATE))
    broken["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "DATA", "value": "/wrong"}]
    first = run(mlflow_project_job, submit(wait=True, job_template=broken, run_name="fixme"))
    assert first["state"] == "Failed", first
    fixed = json.loads(json.dumps(job_utils.DEFAULT_TEMPLATE))
    fixed["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "DATA", "value": "/right"}]
    second = run(mlflow_project_job, submit(wait=True, job_template=fixed, run_name="fixme"))
    assert second["changed"] and not second.get("existing"), second
    assert second["state"] == "Complete" and second["identity"] != first["identity"]
    assert "DATA=/wrong" in first["logs"] and "DATA=/right" in second["logs"], (first["logs"], second["logs"])
    # The same fixed call again finds the Job it made; another image is another submission again.
    third = run(mlflow_project_job, submit(job_template=fixed, run_name="fixme"))
    assert third["existing"] and third["job_name"] == second["job_name"] and not third["changed"]
    other = run(mlflow_project_job, submit(job_template=fixed, run_name="fixme", image=images["busybox"] + "-other"))
    assert other["changed"] and other["job_name"] != second["job_name"]


def test_absent_twice_on_a_terminating_job_changes_nothing_the_second_time(submit, tracking, batch, namespace):
    submitted = run(mlflow_project_job, submit(parameters={"seconds": 600}, run_name="twice"))
    name = submitted["job_name"]
    # A Job terminates for a while (its pods' grace period, foreground deletion); a finalizer
    # holds it in that state for as long as the test needs, on any cluster.
    batch.patch_namespaced_job(name, namespace, {"metadata": {"finalizers": ["mlflow-k8s.test/hold"]}})
    try:
        args = submit(parameters={"seconds": 600}, run_name="twice", state="absent")
        first = run(mlflow_project_job, args)
        assert first["changed"] and first["deleted"] == [name]
        assert first["killed_runs"] == [submitted["run"]["run_id"]]
        assert batch.read_namespaced_job(name, namespace).metadata.deletion_timestamp is not None
        second = run(mlflow_project_job, args)
        assert not second["changed"] and second["deleted"] == [] and second["killed_runs"] == [], second
    finally:
        batch.patch_namespaced_job(name, namespace, [{"op": "remove", "path": "/metadata/finalizers"}])


def test_template_labels_are_kept(submit, batch, namespace):
    template = json.loads(json.dumps(job_utils.DEFAULT_TEMPLATE))
    template["metadata"]["labels"] = {"app.kubernetes.io/instance": "team-a"}
    submitted = run(mlflow_project_job, submit(job_template=template, parameters={"seconds": 600}))
    labels = batch.read_namespaced_job(submitted["job_name"], namespace).metadata.labels
    assert labels["app.kubernetes.io/instance"] == "team-a"
    assert labels[job_utils.LABEL_PROJECT] == "cluster-test"
    info = run(mlflow_project_job_info, {"namespace": namespace, "kubeconfig": submit()["kubeconfig"]})
    assert [j["name"] for j in info["jobs"]] == [submitted["job_name"]]


def test_pod_level_resources_warn(submit, namespace):
    template = json.loads(json.dumps(job_utils.DEFAULT_TEMPLATE))
    template["spec"]["template"]["spec"]["resources"] = {"limits": {"memory": "512Mi"}}
    from ansible.module_utils import basic

    with mock.patch.object(basic.AnsibleModule, "warn") as warn:
        result = run(mlflow_project_job, submit(job_template=template), check_mode=True)
    assert result["changed"], result
    warnings = [call.args[0] for call in warn.call_args_list]
    assert any(w.startswith("job_template: spec.template.spec.resources") for w in warnings), warnings


def test_relative_project_uri_is_resolved_and_the_path_tried_is_named(submit, project, monkeypatch):
    monkeypatch.chdir(project.parent)
    result = run(mlflow_project_job, submit(project_uri=project.name), check_mode=True)
    assert result["changed"] and result["job"]["metadata"]["name"].startswith("cluster-test-"), result
    missing = run(mlflow_project_job, submit(project_uri="no-such-project"), check_mode=True)
    assert missing["failed"] and missing["option"] == "project_uri"
    assert str(project.parent / "no-such-project") in missing["msg"], missing["msg"]
    based = run(mlflow_project_job, submit(project_uri=project.name, base_dir="/"), check_mode=True)
    assert based["failed"] and "/cluster-test" in based["msg"] and "base_dir" in based["msg"]


def test_recovery_after_the_submitter_died(submit, tracking, watch_for, namespace):
    # The submitter returns without waiting (as if it died): the run stays RUNNING while the Job ends.
    submitted = run(mlflow_project_job, submit(parameters={"code": 2, "message": "killed-by-OOM"}))
    run_id = submitted["run"]["run_id"]
    assert submitted["run"]["status"] == "RUNNING"
    failed = watch_for(
        "batch/v1", "Job", namespace, submitted["job_name"], lambda o: job_utils.job_state(o) == "Failed"
    )
    assert _run(tracking, run_id).info.status == "RUNNING"

    # An _info module changes nothing by default: it reports the Job Failed and the run RUNNING.
    # The operator's tracking_uri: the info module never follows the URI a Job's annotation names.
    reading = {
        "namespace": namespace,
        "kubeconfig": submit()["kubeconfig"],
        "logs": True,
        "tracking_uri": tracking["uri"],
    }
    looked = run(mlflow_project_job_info, reading)
    assert not looked["changed"]
    (item,) = looked["jobs"]
    assert (item["state"], item["run_status"], "run_synced" in item) == ("Failed", "RUNNING", False)
    assert _run(tracking, run_id).info.status == "RUNNING"

    time.sleep(1.5)  # the end time must come from the Job, not from when the run was settled
    info = run(mlflow_project_job_info, {**reading, "sync_run": True})
    assert info["changed"]
    (item,) = info["jobs"]
    assert (item["run_id"], item["state"], item["run_status"], item["run_synced"]) == (run_id, "Failed", "FAILED", True)
    assert "killed-by-OOM" in item["logs"], item["logs"]
    assert _run(tracking, run_id).info.end_time == _failed_at_ms(failed)
    again = run(mlflow_project_job_info, {**reading, "sync_run": True})
    assert not again["changed"]


def _failed_at_ms(job):
    """The Job's end as epoch ms, from its Complete/Failed condition (what the run's end_time must be)."""
    import datetime

    (stamp,) = [
        c["lastTransitionTime"]
        for c in job["status"]["conditions"]
        if c["type"] in ("Complete", "Failed") and c["status"] == "True"
    ]
    when = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return int(when.timestamp() * 1000)


def test_resubmission_brings_the_run_up_to_date(submit, tracking, watch_for, namespace):
    submitted = run(mlflow_project_job, submit(parameters={"message": "later"}))
    done = watch_for(
        "batch/v1", "Job", namespace, submitted["job_name"], lambda o: job_utils.job_state(o) == "Complete"
    )
    time.sleep(1.5)  # a late call: the run still ends when the Job did
    again = run(mlflow_project_job, submit(parameters={"message": "later"}))
    assert again["existing"] and again["run_synced"] and again["changed"]
    finished = _run(tracking, submitted["run"]["run_id"])
    assert finished.info.status == "FINISHED"
    assert finished.info.end_time == _failed_at_ms(done)
    third = run(mlflow_project_job, submit(parameters={"message": "later"}))
    assert not third["changed"]


def test_check_mode_creates_nothing(submit, batch, namespace, tracking):
    before = len(tracking["client"].search_runs([tracking["experiment_id"]]))
    result = run(mlflow_project_job, submit(parameters={"message": "dry"}, _ansible_diff=True), check_mode=True)
    assert result["changed"]
    assert result["diff"]["before"] == {} and result["diff"]["after"] == result["job"]
    assert result["job"]["metadata"]["labels"][job_utils.LABEL_RUN_ID] == "planned"
    assert result["run"]["status"] == "PLANNED"
    assert result["run"]["params"] == {"message": "dry", "code": "0", "seconds": "0"}
    assert result["job"]["spec"]["template"]["spec"]["containers"][0]["command"][-3:] == ["dry", "0", "0"]
    assert batch.list_namespaced_job(namespace).items == []
    assert len(tracking["client"].search_runs([tracking["experiment_id"]])) == before


def test_invalid_job_is_refused_before_anything_exists(submit, batch, namespace, tracking):
    # A port number that is not a number: refused before the run is created (the dry run checks it).
    template = json.loads(json.dumps(job_utils.DEFAULT_TEMPLATE))
    template["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": "not-a-port"}]
    result = run(mlflow_project_job, submit(job_template=template, run_name="refused"))
    assert result["failed"] and result["option"] == "job_template", result
    assert "not a valid Job" in result["msg"] or "rejects the rendered Job" in result["msg"]
    assert tracking["client"].search_runs([tracking["experiment_id"]], "tags.mlflow.runName = 'refused'") == []
    assert batch.list_namespaced_job(namespace).items == []


def test_failure_after_the_run_exists_leaves_nothing(submit, batch, namespace, tracking):
    # FAKE, thin: the create call of the Job fails after the run exists (the API server cannot be
    # made to fail on cue for real). Everything else is real: the module reads the Job back by its
    # name from the cluster, finds none, and ends the run FAILED; no Job is left.
    from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import jobs_client
    from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ClusterError

    def broken(self, namespace, manifest, option):
        raise ClusterError("kubeconfig", "the API server went away")

    with mock.patch.object(jobs_client.JobsClient, "create", broken):
        result = run(mlflow_project_job, submit(run_name="half-made", parameters={"seconds": 600}))
    assert result["failed"] and result["option"] == "kubeconfig", result
    runs = tracking["client"].search_runs([tracking["experiment_id"]], "tags.mlflow.runName = 'half-made'")
    assert [r.info.status for r in runs] == ["FAILED"]
    remaining = [j for j in batch.list_namespaced_job(namespace).items if not j.metadata.deletion_timestamp]
    assert remaining == []


def test_unreachable_tracking_server_fails_before_anything(submit, batch, namespace):
    result = run(mlflow_project_job, submit(tracking_uri="http://127.0.0.1:9"))
    assert result["failed"] and result["option"] == "tracking_uri"
    assert "unreachable" in result["msg"]
    assert batch.list_namespaced_job(namespace).items == []


def test_missing_namespace_is_named(submit):
    result = run(mlflow_project_job, submit(namespace="no-such-namespace-here"))
    assert result["failed"] and result["option"] == "namespace"
    assert "does not exist" in result["msg"]


def test_run_project_playbook(playbook, namespace, project, tracking, images):
    root = Path(__file__).resolve().parents[2]
    extra = {
        "project_uri": str(project),
        "project_image": images["busybox"],
        "project_runner_namespace": namespace,
        "project_tracking_uri": tracking["uri"],
        "project_experiment_id": tracking["experiment_id"],
        "project_parameters": {"message": "playbook"},
        "project_runner_resources": SMALL,
    }
    result = playbook(root / "playbooks" / "run_project.yml", extra_vars=extra)
    assert result.rc == 0, result.summary()
    runs = tracking["client"].search_runs([tracking["experiment_id"]], "params.message = 'playbook'")
    assert [r.info.status for r in runs] == ["FINISHED"]
    # Again: the same project, parameters and run name find the same Job; nothing changes.
    again = playbook(root / "playbooks" / "run_project.yml", extra_vars=extra)
    assert again.rc == 0 and again.changed == 0, again.summary()
    assert len(tracking["client"].search_runs([tracking["experiment_id"]], "params.message = 'playbook'")) == 1


def test_build_with_backend_config_builds_once(kubeconfig, namespace, tracking, project, batch, images):
    """build: true through MLflow's kubernetes_config.json; the Job runs the pushed digest.

    FAKE, thin: no Docker engine exists here, so the docker SDK client is the recording stand-in
    of tests/unit/test_image.py (login/get/build/push/get_registry_data). The cluster, the run
    and the Job are real: the kubelet is handed the pushed digest and tries to pull it, which
    fails (nothing was pushed anywhere), so each wait ends Stuck on that pull, naming it.
    """
    import yaml

    from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.runner import Runner
    from tests.unit.test_image import FakeDocker

    (project / "MLproject").write_text(
        MLPROJECT.replace("name: cluster-test\n", f"name: cluster-test\ndocker_env:\n  image: {images['busybox']}\n")
    )
    template = json.loads(json.dumps(job_utils.DEFAULT_TEMPLATE))
    template["metadata"]["namespace"] = namespace
    (project / "job.yaml").write_text(yaml.safe_dump(template))
    contexts = yaml.safe_load(Path(kubeconfig).read_text())["contexts"]
    (project / "kubernetes_config.json").write_text(
        json.dumps(
            {
                "kube-context": contexts[0]["name"],
                "kube-job-template-path": "job.yaml",
                "repository-uri": "registry.local:5000/team/cluster-test",
            }
        )
    )
    docker = FakeDocker()
    params = {
        "project_uri": str(project),
        "backend_config": str(project / "kubernetes_config.json"),
        "build": True,
        "registry_username": "ci",
        "registry_password": "secret-pw",
        "kubeconfig": kubeconfig,
        "tracking_uri": tracking["uri"],
        "experiment_id": tracking["experiment_id"],
        "wait": True,
        "wait_timeout": 240,
        "on_timeout": "keep",
        "force": True,
        "resources": SMALL,
    }
    first = Runner(params, docker_factory=lambda host: docker).present()
    second = Runner(params, docker_factory=lambda host: docker).present()
    assert (first["image"]["built"], first["image"]["pushed"]) == (True, True)
    assert (second["image"]["built"], second["image"]["pushed"]) == (False, False)
    assert first["image"]["reference"] == second["image"]["reference"]
    assert docker.logins[0]["username"] == "ci"
    assert first["job_name"] != second["job_name"]
    for result in (first, second):
        job = batch.read_namespaced_job(result["job_name"], namespace)
        assert job.spec.template.spec.containers[0].image == first["image"]["reference"]
        assert "@sha256:" in first["image"]["reference"]
        assert result["state"] == "Stuck" and not result["timed_out"], result
        assert result["stuck"]["reason"] in ("ErrImagePull", "ImagePullBackOff"), result["stuck"]
        assert first["image"]["reference"] in result["stuck"]["message"], result["stuck"]
        run = _run(tracking, result["run"]["run_id"])
        assert run.info.status == "FAILED"
        assert run.data.tags["mlflow.docker.image.id"] == first["image"]["digest"]


def test_job_deleted_while_waiting_kills_the_run(submit, tracking, batch, namespace):
    import threading

    outcome = {}
    waiter = threading.Thread(
        target=lambda: outcome.update(run(mlflow_project_job, submit(wait=True, parameters={"seconds": 600}))),
        daemon=True,
    )
    waiter.start()
    from kubernetes import watch

    name = None
    watcher = watch.Watch()
    for event in watcher.stream(
        batch.list_namespaced_job,
        namespace,
        label_selector=f"{job_utils.LABEL_PROJECT}=cluster-test",
        timeout_seconds=240,
    ):
        if job_utils.LABEL_RUN_ID in (event["object"].metadata.labels or {}):
            name = event["object"].metadata.name
            watcher.stop()
    assert name, "the module created no Job"
    batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
    waiter.join(timeout=240)
    assert not waiter.is_alive()
    assert outcome["state"] == "Deleted" and not outcome["timed_out"]
    assert _run(tracking, outcome["run"]["run_id"]).info.status == "KILLED"


def test_absent_by_the_same_inputs_and_in_check_mode(submit, tracking, batch, namespace):
    submitted = run(mlflow_project_job, submit(parameters={"seconds": 600}, run_name="to-cancel"))
    args = submit(parameters={"seconds": 600}, run_name="to-cancel", state="absent")
    planned = run(mlflow_project_job, args, check_mode=True)
    assert planned["changed"] and planned["deleted"] == [submitted["job_name"]]
    assert batch.read_namespaced_job(submitted["job_name"], namespace).metadata.deletion_timestamp is None
    assert _run(tracking, submitted["run"]["run_id"]).info.status == "RUNNING"
    removed = run(mlflow_project_job, args)
    assert removed["changed"] and removed["killed_runs"] == [submitted["run"]["run_id"]]
    assert _run(tracking, submitted["run"]["run_id"]).info.status == "KILLED"


def test_run_project_playbook_check_mode(playbook, namespace, project, tracking, images, batch):
    root = Path(__file__).resolve().parents[2]
    extra = {
        "project_uri": str(project),
        "project_image": images["busybox"],
        "project_runner_namespace": namespace,
        "project_tracking_uri": tracking["uri"],
        "project_experiment_id": tracking["experiment_id"],
        "project_parameters": {"message": "dry"},
    }
    result = playbook(root / "playbooks" / "run_project.yml", extra_vars=extra, check=True, diff=True)
    assert result.rc == 0, result.summary()
    submitted = result.task("Submit the project and wait for it").result
    assert submitted["changed"] and submitted["run"]["status"] == "PLANNED"
    assert batch.list_namespaced_job(namespace).items == []
    assert tracking["client"].search_runs([tracking["experiment_id"]], "params.message = 'dry'") == []


@pytest.mark.parametrize(
    ("kube_env", "option", "expected"),
    [
        (None, None, "tracking"),  # the submitter's URI
        ("http://from-env:5000", None, "http://from-env:5000"),  # MLflow's KUBE_MLFLOW_TRACKING_URI
        ("http://from-env:5000", "http://option:5000", "http://option:5000"),  # the option wins
    ],
)
def test_job_tracking_uri_precedence(submit, tracking, monkeypatch, kube_env, option, expected):
    if kube_env:
        monkeypatch.setenv("KUBE_MLFLOW_TRACKING_URI", kube_env)
    else:
        monkeypatch.delenv("KUBE_MLFLOW_TRACKING_URI", raising=False)
    args = submit(job_tracking_uri=option)
    result = run(mlflow_project_job, args, check_mode=True)
    env = {e["name"]: e["value"] for e in result["job"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_TRACKING_URI"] == (tracking["uri"] if expected == "tracking" else expected)


def test_git_project_uri(submit, tracking, project, tmp_path):
    import subprocess

    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "c"], ["tag", "v1"]):
        subprocess.run(["git", *args], cwd=project, check=True, capture_output=True, env={**os.environ, **env})
    uri = f"file://{project}"
    result = run(mlflow_project_job, submit(project_uri=uri, version="v1", wait=True, parameters={"message": "git"}))
    assert result["state"] == "Complete", (result.get("stuck"), result.get("msg"))
    run_ = _run(tracking, result["run"]["run_id"])
    assert run_.data.tags["mlflow.source.name"] == uri
    assert len(run_.data.tags["mlflow.source.git.commit"]) == 40
    # Same content as the local directory: the same identity, so the local call finds this Job.
    local = run(mlflow_project_job, submit(parameters={"message": "git"}))
    assert local["existing"] and local["job_name"] == result["job_name"]


def test_one_module_defaults_group_covers_our_modules_and_kubernetes_core(playbook, namespace, kubeconfig):
    # The environment names no usable kubeconfig: only the group's module_defaults reach the cluster.
    play = [
        {
            "name": "group/mlops.mlflow_k8s.k8s",
            "hosts": "localhost",
            "gather_facts": False,
            "module_defaults": {"group/mlops.mlflow_k8s.k8s": {"kubeconfig": kubeconfig}},
            "tasks": [
                {
                    "name": "Ours",
                    "mlops.mlflow_k8s.mlflow_project_job_info": {"namespace": namespace},
                },
                {
                    "name": "kubernetes.core's",
                    "kubernetes.core.k8s_info": {"kind": "Namespace", "name": namespace},
                },
            ],
        }
    ]
    nowhere = "/nonexistent/kubeconfig"
    result = playbook(play, env={"K8S_AUTH_KUBECONFIG": nowhere, "KUBECONFIG": nowhere})
    assert result.rc == 0, result.summary()
    assert result.task("Ours").result["jobs"] == []
    assert [r["metadata"]["name"] for r in result.task("kubernetes.core's").result["resources"]] == [namespace]


def test_teardown_deletes_the_project_jobs_and_ends_their_runs_killed(submit, tracking, playbook, namespace, batch):
    """The role's teardown (tasks_from: teardown) with the operator's tracking URI: the Job goes and
    its run ends KILLED now, not FAILED at some later call's sweep; a second teardown finds nothing."""
    submitted = run(mlflow_project_job, submit(parameters={"seconds": 600}, run_name="torn-down"))
    run_id = submitted["run"]["run_id"]
    assert _run(tracking, run_id).info.status == "RUNNING"
    play = [
        {
            "name": "Tear the project namespace down as playbooks/teardown.yml does",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": sys.executable},
            "tasks": [
                {
                    "ansible.builtin.include_role": {
                        "name": "mlops.mlflow_k8s.project_runner",
                        "tasks_from": "teardown",
                    },
                    "vars": {"project_runner_namespace": namespace, "project_runner_tracking_uri": tracking["uri"]},
                }
            ],
        }
    ]
    first = playbook(play)
    assert first.rc == 0, first.summary()
    killed = first.task("Delete each project Job and end its run KILLED")
    assert killed.changed, first.summary()
    assert _run(tracking, run_id).info.status == "KILLED"
    remaining = [j for j in batch.list_namespaced_job(namespace).items if not j.metadata.deletion_timestamp]
    assert remaining == []
    again = playbook(play)
    assert again.rc == 0 and again.changed == 0, again.summary()
