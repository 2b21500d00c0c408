"""The runner's flows against a thin fake Jobs client and a real MLflow tracking store.

FAKE, thin: ``FakeJobs`` stands in for plugins/module_utils/jobs_client.JobsClient (the same
methods, Jobs kept in a dict, the outcome of a wait decided by the test), so that each flow's
bookkeeping can be checked to the millisecond without a cluster. Everything MLflow is real
(a SQLite store in the test's temporary directory). The same flows run on real pods of a real
cluster in tests/cluster/test_project_job.py; JobsClient's error
translation is tested here on the real kubernetes client's exceptions.
"""

import copy
import datetime
import itertools
import json
from pathlib import Path

import pytest
from kubernetes.client.rest import ApiException

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import job as job_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import pod_status, reconcile, tracking, watch
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ClusterError, TemplateError
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.jobs_client import JobsClient
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.runner import Runner
from ansible_collections.mlops.mlflow_k8s.plugins.modules import mlflow_project_job, mlflow_project_job_info

PROJECTS = Path(__file__).parent / "fixtures" / "projects"
ENDED = "2026-01-02T03:04:05Z"
ENDED_MS = reconcile.to_millis(ENDED)
NOW = 1_900_000_000.0  # the fake clock of the reconciler, epoch seconds
TICKS = itertools.count()


class FakeJobs:
    """JobsClient's methods over a dict of Jobs; ``outcome(job) -> (job, state, timed_out)`` decides waits.

    As the API server does, a name is taken once: ``create`` of a taken name returns None (409
    AlreadyExists), and so does ``dry_run`` (False). ``server``: the API server's URL.
    """

    server = "https://fake-cluster:6443"

    def __init__(self, outcome=None, log="", finished_at=None):
        self.jobs = {}
        self.outcome = outcome
        self.log = log
        self.finished = finished_at
        self.deleted = []
        self.serial = 0

    def check_namespace(self, namespace):
        pass

    def dry_run(self, namespace, manifest, option):
        job_utils.validate_template(manifest, option)
        return manifest["metadata"]["name"] not in self.jobs

    def create(self, namespace, manifest, option):
        if manifest["metadata"]["name"] in self.jobs:
            return None
        self.serial += 1
        job = copy.deepcopy(manifest)
        job["metadata"].update(
            resourceVersion=str(self.serial), creationTimestamp=f"2026-01-01T00:00:{self.serial:02d}Z"
        )
        self.jobs[job["metadata"]["name"]] = job
        return copy.deepcopy(job)

    def list(self, namespace, selector):
        terms = [t.partition("=") for t in selector.split(",")]
        found = [
            j
            for j in self.jobs.values()
            if all(k in j["metadata"]["labels"] and (not eq or j["metadata"]["labels"][k] == v) for k, eq, v in terms)
        ]
        return sorted((copy.deepcopy(j) for j in found), key=lambda j: j["metadata"]["creationTimestamp"], reverse=True)

    def read(self, namespace, name):
        return copy.deepcopy(self.jobs.get(name))

    def delete(self, namespace, name):
        job = self.jobs.get(name)
        if job is None:
            return False
        job["metadata"]["deletionTimestamp"] = "2026-01-01T01:00:00Z"  # Foreground: terminating for a while
        self.deleted.append(name)
        return True

    def wait(self, namespace, name, timeout, job=None):
        outcome = self.outcome(self.jobs[name])
        if not isinstance(outcome, watch.JobOutcome):
            outcome = watch.JobOutcome(*outcome)  # what watch.wait_for_job returns
        self.jobs[name] = copy.deepcopy(outcome.job)
        return outcome

    def logs(self, namespace, name, container):
        return self.log

    def finished_at(self, namespace, name):
        return self.finished

    def end(self, name, kind, stamp=ENDED):
        """Give Job ``name`` a Complete/Failed condition (``stamp``: its lastTransitionTime, or None)."""
        condition = {"type": kind, "status": "True"}
        if stamp:
            condition["lastTransitionTime"] = stamp
        self.jobs[name]["status"] = {"conditions": [condition]}
        return self.jobs[name]


def ends(kind, stamp=ENDED):
    def outcome(job):
        job = copy.deepcopy(job)
        condition = {"type": kind, "status": "True"}
        if stamp:
            condition["lastTransitionTime"] = stamp
        job["status"] = {"conditions": [condition]}
        return job, kind, False

    return outcome


def still_running(job):
    return copy.deepcopy(job), "Running", True


def params(module=mlflow_project_job, **extra):
    values = {k: v.get("default") for k, v in module.argument_spec().items()}
    values.update(extra)
    return values


def runner(values, jobs, check_mode=False, warn=None):
    return Runner(
        values,
        check_mode=check_mode,
        warn=warn,
        jobs_factory=lambda auth, context: jobs,
        now=lambda: datetime.datetime(2026, 1, 1) + datetime.timedelta(seconds=next(TICKS)),  # a Job name each
        clock=lambda: NOW,
    )


def test_wait_complete_ends_the_run_at_the_jobs_end(submit, store):
    jobs = FakeJobs(outcome=ends("Complete"), log="loss 0.1\n")
    result = runner(submit(wait=True), jobs).present()
    assert (result["state"], result["run_synced"], result["run"]["status"]) == ("Complete", True, "FINISHED")
    assert result["run"]["end_time"] == ENDED_MS
    assert result["logs"] == "loss 0.1"
    assert [a.path for a in store["client"].list_artifacts(result["run"]["run_id"], "kubernetes")] == [
        "kubernetes/job.log"
    ]


def test_a_late_call_ends_the_run_at_the_jobs_end_not_at_the_call(submit):
    jobs = FakeJobs()
    first = runner(submit(run_name="late"), jobs).present()
    assert first["run"]["status"] == "RUNNING"
    jobs.end(first["job_name"], "Failed")
    again = runner(submit(run_name="late"), jobs).present()
    assert again["existing"] and again["changed"] and again["run"]["status"] == "FAILED"
    assert again["run"]["end_time"] == ENDED_MS
    third = runner(submit(run_name="late"), jobs).present()
    assert not third["changed"] and third["job_name"] == first["job_name"]


def test_without_a_condition_time_the_pods_finished_at_is_the_end(submit):
    jobs = FakeJobs(outcome=ends("Failed", stamp=None), finished_at="2026-01-02T03:04:06.500000Z")
    result = runner(submit(wait=True, run_name="pods"), jobs).present()
    assert result["run"]["status"] == "FAILED"
    assert result["run"]["end_time"] == ENDED_MS + 1500


def test_timeout_deletes_the_job_and_kills_the_run_now(submit):
    jobs = FakeJobs(outcome=still_running)
    result = runner(submit(wait=True, run_name="slow"), jobs).present()
    assert result["timed_out"] and result["job_deleted"] and jobs.deleted == [result["job_name"]]
    assert result["run"]["status"] == "KILLED" and result["run"]["end_time"] == int(NOW * 1000)


def test_timeout_keep_leaves_the_run_running(submit):
    jobs = FakeJobs(outcome=still_running)
    result = runner(submit(wait=True, on_timeout="keep", run_name="kept"), jobs).present()
    assert result["timed_out"] and "job_deleted" not in result and jobs.deleted == []
    assert result["run"]["status"] == "RUNNING"


def test_a_stuck_pod_fails_the_run_now_with_the_reason(submit, store):
    problem = pod_status.PodProblem(
        pod="p-1", reason="Unschedulable", message='persistentvolumeclaim "x" not found', container=None, events=()
    )

    def stuck(job):
        return watch.JobOutcome(copy.deepcopy(job), watch.STUCK, False, problem, "", ("waiting for a node",))

    jobs = FakeJobs(outcome=stuck)
    result = runner(submit(wait=True, run_name="stuck"), jobs).present()
    assert result["failed"] and result["stuck"]["reason"] == "Unschedulable" and result["job_deleted"]
    assert 'persistentvolumeclaim "x" not found' in result["msg"]
    run = store["client"].get_run(result["run"]["run_id"])
    assert run.info.status == "FAILED" and run.info.end_time == int(NOW * 1000)
    assert run.data.tags[watch.FAILURE_REASON_TAG] == "Unschedulable"


def test_info_changes_nothing_unless_sync_run(submit, store):
    jobs = FakeJobs()
    submitted = runner(submit(run_name="info"), jobs).present()
    jobs.end(submitted["job_name"], "Complete")
    read = params(mlflow_project_job_info, namespace="ns")
    looked = runner(read, jobs).info()
    assert not looked["changed"] and looked["jobs"][0]["run_status"] == "RUNNING"
    assert store["client"].get_run(submitted["run"]["run_id"]).info.status == "RUNNING"
    planned = runner(dict(read, sync_run=True), jobs, check_mode=True).info()
    assert planned["changed"] and store["client"].get_run(submitted["run"]["run_id"]).info.status == "RUNNING"
    synced = runner(dict(read, sync_run=True), jobs).info()
    assert synced["changed"] and synced["jobs"][0]["run_status"] == "FINISHED"
    assert store["client"].get_run(submitted["run"]["run_id"]).info.end_time == ENDED_MS


def test_absent_twice_on_a_terminating_job(submit):
    jobs = FakeJobs()
    submitted = runner(submit(run_name="gone"), jobs).present()
    args = submit(run_name="gone", state="absent")
    first = runner(args, jobs).absent()
    assert first["changed"] and first["deleted"] == [submitted["job_name"]]
    assert first["killed_runs"] == [submitted["run"]["run_id"]]
    second = runner(args, jobs).absent()  # the Job is still there, terminating
    assert (second["changed"], second["deleted"], second["killed_runs"]) == (False, [], [])


def test_everything_that_shapes_the_job_is_in_the_identity(submit):
    jobs = FakeJobs()
    base = runner(submit(run_name="shape"), jobs).present()
    variants = [
        {"image": "registry.local/wine:2"},
        {
            "job_template": dict(
                job_utils.DEFAULT_TEMPLATE, spec=dict(job_utils.DEFAULT_TEMPLATE["spec"], backoffLimit=2)
            )
        },
        {"resources": {"limits": {"memory": "1Gi"}}},
        {"env": {"A": "1"}},
        {"service_account": "other"},
        {"job_tracking_uri": "http://elsewhere:5000"},
    ]
    identities = {base["identity"]}
    for extra in variants:
        made = runner(submit(run_name="shape", **extra), jobs).present()
        assert made["changed"] and not made.get("existing"), extra
        identities.add(made["identity"])
    assert len(identities) == len(variants) + 1


def test_failure_after_the_run_exists_leaves_nothing(submit, store):
    jobs = FakeJobs()

    def refuse(namespace, manifest, option):
        raise ClusterError("kubeconfig", "the cluster went away")

    jobs.create = refuse
    with pytest.raises(ClusterError):
        runner(submit(run_name="refused-create"), jobs).present()
    runs = store["client"].search_runs([store["experiment_id"]], "tags.mlflow.runName = 'refused-create'")
    assert [r.info.status for r in runs] == ["FAILED"] and jobs.jobs == {}


def test_pod_level_resources_are_warned_about(submit):
    template = copy.deepcopy(job_utils.DEFAULT_TEMPLATE)
    template["spec"]["template"]["spec"]["resources"] = {"limits": {"memory": "512Mi"}}
    warnings = []
    runner(submit(job_template=template), FakeJobs(), check_mode=True, warn=warnings.append).present()
    assert any("spec.template.spec.resources" in w and "containers[0].resources" in w for w in warnings), warnings


@pytest.mark.parametrize(
    ("stamp", "millis"),
    [
        ("2026-01-02T03:04:05Z", ENDED_MS),
        ("2026-01-02T03:04:05.250Z", ENDED_MS + 250),
        ("2026-01-02T04:04:05+01:00", ENDED_MS),
    ],
)
def test_to_millis(stamp, millis):
    assert reconcile.to_millis(stamp) == millis


def test_one_status_map():
    assert reconcile.JOB_TO_RUN == {
        "Complete": "FINISHED",
        "Failed": "FAILED",
        "Deleted": "KILLED",
        "TimedOut": "KILLED",
        "Stuck": "FAILED",
    }
    assert reconcile.run_status("Running") is None


# -- JobsClient.call: the one error translation, on the real client's exceptions -----------------


@pytest.fixture
def client():
    return JobsClient({"host": "http://127.0.0.1:9"})


def _raise(exc):
    def func(*args, **kwargs):
        raise exc

    return func


def _api_error(status, message="nope"):
    error = ApiException(status=status, reason="Reason")
    error.body = json.dumps({"message": message})
    return error


def test_call_422_on_the_job_names_the_template_option(client):
    with pytest.raises(TemplateError) as caught:
        client.call("create Job", _raise(_api_error(422, "spec.x: Invalid")), invalid_option="backend_config")
    assert caught.value.option == "backend_config" and "spec.x: Invalid" in caught.value.message


def test_call_404_with_a_namespace_names_it(client):
    with pytest.raises(ClusterError) as caught:
        client.call("list Jobs", _raise(_api_error(404)), namespace="nowhere")
    assert caught.value.option == "namespace" and "'nowhere' does not exist" in caught.value.message


def test_call_allowed_status_returns_none(client):
    assert client.call("read Job x", _raise(_api_error(404)), allow=(404,)) is None


def test_call_unreachable_and_forbidden_name_the_auth_option(client):
    with pytest.raises(ClusterError) as caught:
        client.call("list Jobs", _raise(ConnectionRefusedError(111, "Connection refused")))
    assert caught.value.option == "host" and "cannot reach the Kubernetes API" in caught.value.message
    with pytest.raises(ClusterError) as caught:
        client.call("list Jobs", _raise(_api_error(403, "forbidden")))
    assert "403 Forbidden" in caught.value.message


def test_call_passes_the_request_timeout_unless_told(client):
    seen = []
    client.call("x", lambda **kw: seen.append(kw))
    client.call("x", lambda **kw: seen.append(kw), request_timeout=False)
    assert "_request_timeout" in seen[0] and seen[1] == {}


def test_the_pods_user_is_granted_edit_on_the_experiment_before_the_run_exists(submit, store, monkeypatch):
    """tracking_grant_user: granted with the submitter's credentials before create_run; never in check mode."""
    calls = []

    def grant(self, username, experiment_id, permission="EDIT", option="tracking_uri"):
        runs = store["client"].search_runs([experiment_id], "tags.mlflow.runName = 'granted'")
        calls.append((username, experiment_id, permission, option, len(runs)))
        return True

    monkeypatch.setattr(tracking.Tracker, "grant_experiment_permission", grant)
    runner(
        submit(run_name="granted", tracking_grant_user="runner-mlflow-projects"), FakeJobs(), check_mode=True
    ).present()
    assert calls == []
    result = runner(submit(run_name="granted", tracking_grant_user="runner-mlflow-projects"), FakeJobs()).present()
    assert calls == [("runner-mlflow-projects", store["experiment_id"], "EDIT", "tracking_grant_user", 0)]
    assert result["run"]["status"] == "RUNNING"
