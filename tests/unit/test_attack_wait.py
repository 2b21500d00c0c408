"""What goes wrong around a submission, and what must survive it (issue #27).

A failure must never destroy a healthy run: once its Job exists, only ``on_timeout: delete`` at
wait_timeout, a stuck pod, or ``state: absent`` delete it. The API server decides which of two
submissions of one identity gets the Job. A run whose Job is gone ends at the next call.

FAKE, thin: the Jobs of the runner are tests/unit/test_runner.FakeJobs (a dict, the API
server's name uniqueness included); where the wait itself is under attack, the real
JobsClient and watch.wait_for_job run over ``ScriptedBatch``, which serves the watch and the
list calls one scripted step at a time through the kubernetes client's real Watch (the API
server going away is a urllib3 error, a 5xx, an ERROR event, as the client raises them). MLflow
is real (SQLite in the test's temporary directory). The same restart on a real API server:
tests/cluster/test_wait_survives_api_restart.py.
"""

import copy
import datetime
import itertools
import json
import time

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import job as job_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import reconcile, tracking, watch
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ClusterError, TrackingError
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.jobs_client import JobsClient
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.runner import Runner
from ansible_collections.mlops.mlflow_k8s.plugins.modules import mlflow_project_job_info
from tests.unit.test_runner import NOW, FakeJobs, ends, params

TICKS = itertools.count()


# -- the scripted API server ------------------------------------------------------------------


class _Stream:
    """A watch response: its events, one line each; an exception among them breaks the stream there."""

    def __init__(self, events):
        self.status = 200
        self.events = list(events)

    def stream(self, amt=None, decode_content=False):
        for event in self.events:
            if isinstance(event, BaseException):
                raise event
            yield (json.dumps(event) + "\n").encode()

    def close(self):
        pass

    def release_conn(self):
        pass


class ScriptedBatch:
    """BatchV1Api's list_namespaced_job, one scripted step per call.

    A step is an exception (raised by the call), a list of watch events (the call must be a
    watch), or ``(job_or_None, resource_version)`` (the call must be a plain list). A read is
    answered with ``stale``: the Job as it was long ago.
    """

    def __init__(self, steps, stale=None):
        self.steps = list(steps)
        self.stale = stale
        self.calls = []
        self.api_client = client.ApiClient()

    def list_namespaced_job(self, namespace, **kwargs):
        self.calls.append(kwargs)
        assert self.steps, "the wait asked the API server more than the script says"
        step = self.steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        if kwargs.get("watch"):
            assert isinstance(step, list), f"a watch where the script expects a list: {kwargs}"
            return _Stream(step)
        assert isinstance(step, tuple), f"a list where the script expects a watch: {kwargs}"
        job, version = step
        return {"kind": "JobList", "metadata": {"resourceVersion": version}, "items": [job] if job else []}

    list_namespaced_job.__doc__ = client.BatchV1Api.list_namespaced_job.__doc__

    def read_namespaced_job(self, name, namespace, **kwargs):
        if self.stale is None:
            raise ApiException(status=404)
        return copy.deepcopy(self.stale)

    def watches(self):
        return [c["resource_version"] for c in self.calls if c.get("watch")]


class Clock:
    """Monotonic seconds that pass only when asked (0.01 a look) or slept."""

    def __init__(self):
        self.now = 0.0
        self.slept = []

    def __call__(self):
        self.now += 0.01
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def _job(version, kind=None, name="j"):
    status = {"startTime": "2026-11-22T15:00:00Z"}
    if kind:
        status["conditions"] = [{"type": kind, "status": "True", "lastTransitionTime": "2026-11-22T15:01:00Z"}]
    return {"metadata": {"name": name, "namespace": "n", "resourceVersion": version}, "status": status}


def refused():
    reason = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111] refused")
    return urllib3.exceptions.MaxRetryError(None, "/apis/batch/v1/namespaces/n/jobs", reason)


def reset():
    return urllib3.exceptions.ProtocolError("Connection broken", ConnectionResetError(104, "Connection reset by peer"))


def status(code, message="nope"):
    error = ApiException(status=code, reason="Reason")
    error.body = json.dumps({"message": message})
    return error


def error_event(code, reason="Expired", message="too old resource version"):
    return {"type": "ERROR", "object": {"kind": "Status", "code": code, "reason": reason, "message": message}}


def wait(batch, timeout=600, clock=None, **kwargs):
    clock = clock or Clock()
    return watch.wait_for_job(batch, "n", "j", timeout, clock=clock, sleep=clock.sleep, **kwargs)


# -- the wait: what it retries, and what it does not ------------------------------------------


def test_api_server_restart_mid_watch_resumes_and_sees_the_end():
    batch = ScriptedBatch(
        [
            [{"type": "MODIFIED", "object": _job("2")}, reset()],  # the API server goes down mid-stream
            refused(),
            refused(),
            status(503, "apiserver is shutting down"),
            (_job("2"), "40"),  # back: list again, see the Job as it is now
            [{"type": "MODIFIED", "object": _job("41", "Complete")}],
        ]
    )
    clock = Clock()
    job, state, timed_out = wait(batch, clock=clock, job=_job("1"))
    assert (state, timed_out) == ("Complete", False)
    assert batch.watches() == ["1", "40"] and not batch.steps
    assert clock.slept and all(0 < s <= watch.MAX_BACKOFF for s in clock.slept)
    assert clock.slept == sorted(clock.slept), "the back-off grows"


def test_expired_watch_relists_and_resumes_from_the_lists_version_not_the_jobs():
    # The Job has not changed for an hour: watching from its own resourceVersion is 410 again.
    batch = ScriptedBatch(
        [[error_event(410)], (_job("1"), "900"), [{"type": "MODIFIED", "object": _job("901", "Failed")}]],
        stale=_job("1"),
    )
    _job_, state, _timed_out = wait(batch, job=_job("1"))
    assert state == "Failed"
    assert batch.watches() == ["1", "900"]


def test_job_deleted_while_the_api_server_was_away_is_deleted():
    batch = ScriptedBatch([refused(), (None, "70")])
    assert wait(batch, job=_job("1"))[1:] == ("Deleted", False)


def test_api_down_until_the_deadline_raises_instead_of_timing_out():
    clock = Clock()
    batch = ScriptedBatch([refused()] * 200)
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        wait(batch, timeout=120, clock=clock, job=_job("1"))
    assert 110 <= clock.now <= 121, "it kept trying until wait_timeout, and not beyond"


def test_a_watch_closed_at_once_again_and_again_backs_off_instead_of_spinning():
    clock = Clock()
    complete = [{"type": "MODIFIED", "object": _job("10", "Complete")}]
    batch = ScriptedBatch([[], (_job("1"), "5"), [], (_job("1"), "7"), [], (_job("1"), "9"), complete])
    assert wait(batch, clock=clock, job=_job("1"))[1] == "Complete"
    assert clock.slept == [1, 2, 4] and batch.watches() == ["1", "5", "7", "9"]


def test_refusals_are_retried_briefly_or_not_at_all_never_for_the_whole_wait():
    # RBAC caches fill a few seconds after an API server starts: a 403 then is worth a second look,
    # a lasting one is not worth an hour; a 400 is our own fault, at once.
    clock = Clock()
    batch = ScriptedBatch([status(403, "forbidden")] * 200)
    with pytest.raises(ApiException) as caught:
        wait(batch, timeout=3600, clock=clock, job=_job("1"))
    assert caught.value.status == 403
    assert 1 < len(batch.calls) < 20 and clock.now <= watch.AUTH_GRACE + watch.MAX_BACKOFF
    batch = ScriptedBatch([status(400, "bad field selector")] * 5)
    with pytest.raises(ApiException):
        wait(batch, job=_job("1"))
    assert len(batch.calls) == 1


def test_unreachable_pods_during_a_restart_do_not_end_the_wait():
    class Core:
        looks = 0

        def list_namespaced_pod(self, namespace, **kwargs):
            Core.looks += 1
            if Core.looks <= 2:
                raise refused()
            return client.V1PodList(items=[])

    batch = ScriptedBatch([(_job("1"), "3"), (_job("1"), "4"), [{"type": "MODIFIED", "object": _job("5", "Complete")}]])
    assert wait(batch, job=_job("1"), core=Core())[1] == "Complete"
    assert batch.watches() == ["4"]


# -- JobsClient: the name is the API server's to give ----------------------------------------


def test_a_taken_name_is_an_answer_not_an_error():
    jobs = JobsClient({"host": "http://127.0.0.1:9"})

    def taken(*args, **kwargs):
        raise status(409, 'jobs.batch "x" already exists')

    jobs.batch.create_namespaced_job = taken
    manifest = copy.deepcopy(job_utils.DEFAULT_TEMPLATE)
    assert jobs.create("ns", manifest, "job_template") is None
    assert jobs.dry_run("ns", manifest, "job_template") is False


def test_the_wait_gives_up_naming_the_job_and_the_outage():
    jobs = JobsClient({"host": "http://127.0.0.1:9"})
    clock = Clock()
    jobs.batch = ScriptedBatch([refused()] * 200)
    jobs.core = None
    jobs.clock, jobs.sleep = clock, clock.sleep
    with pytest.raises(ClusterError) as caught:
        jobs.wait("n", "train-1", 60, job=_job("1", name="train-1"))
    assert "train-1" in caught.value.message and "cannot reach the Kubernetes API" in caught.value.message
    assert clock.now >= 55 and len(jobs.batch.calls) > 3, "it tried again until wait_timeout"


# -- the runner: nothing after the Job exists destroys it -------------------------------------


def runner(values, jobs, tracker=None, clock=None, warn=None):
    return Runner(
        values,
        warn=warn,
        jobs_factory=lambda auth, context: jobs,
        tracker_factory=tracker or tracking.Tracker,
        now=lambda: datetime.datetime(2026, 1, 1) + datetime.timedelta(seconds=next(TICKS)),
        clock=clock or (lambda: NOW),
    )


def status_of(store, run_id):
    return store["client"].get_run(run_id).info.status


def runs_of(store, identity):
    found = store["client"].search_runs([store["experiment_id"]], f"tags.`{tracking.IDENTITY_TAG}` = '{identity}'")
    return {r.info.run_id: r for r in found}


class WatchedJobs(FakeJobs):
    """FakeJobs whose wait is the real JobsClient.wait over a ScriptedBatch: ``steps`` are the Job's
    (the objects in them are given the created Job's name and labels)."""

    def __init__(self, steps, clock):
        super().__init__()
        self.script = steps
        self.clock = clock

    def wait(self, namespace, name, timeout, job=None):
        meta = self.jobs[name]["metadata"]
        real = JobsClient({"host": "http://127.0.0.1:9"})
        real.batch = ScriptedBatch([self._named(s, meta) for s in self.script])
        real.core = None
        real.clock, real.sleep = self.clock, self.clock.sleep
        outcome = real.wait(namespace, name, timeout, job=job)
        if outcome.job is not None:
            self.jobs[name] = copy.deepcopy(outcome.job)
        return outcome

    def _named(self, step, meta):
        if isinstance(step, list):
            return [self._named(e, meta) for e in step]
        if isinstance(step, tuple):
            return (self._object(step[0], meta), step[1])
        if isinstance(step, dict) and step.get("type") in ("ADDED", "MODIFIED", "DELETED"):
            return dict(step, object=self._object(step["object"], meta))
        return step

    @staticmethod
    def _object(obj, meta):
        if obj is None:
            return None
        obj = copy.deepcopy(obj)
        obj["metadata"].update(
            name=meta["name"], namespace=meta["namespace"], labels=meta["labels"], annotations=meta["annotations"]
        )
        return obj


def test_api_server_restart_during_the_wait_keeps_the_job(submit, store):
    jobs = WatchedJobs(
        [
            [{"type": "MODIFIED", "object": _job("2")}, reset()],  # the API server goes down mid-stream
            refused(),
            status(503, "apiserver is shutting down"),
            status(500),
            (_job("79"), "80"),  # back: list again
            [error_event(410)],  # the restarted API server's watch cache starts later than "80"
            (_job("79"), "85"),
            [{"type": "MODIFIED", "object": _job("86", "Complete")}],
        ],
        Clock(),
    )
    result = runner(submit(run_name="restart", wait=True), jobs).present()
    assert not result.get("failed"), result["msg"]
    assert (result["state"], result["run"]["status"]) == ("Complete", "FINISHED"), result
    assert jobs.deleted == [] and result["job_name"] in jobs.jobs


def test_api_down_at_wait_timeout_fails_without_deleting_or_failing_the_run(submit, store):
    jobs = WatchedJobs([refused()] * 400, Clock())
    result = runner(submit(run_name="outage", wait=True, wait_timeout=300), jobs).present()
    run_id = result["run_id"]
    assert result["failed"] and jobs.deleted == [] and result["job_name"] in jobs.jobs
    assert result["job_name"] in result["msg"] and run_id in result["msg"]
    assert "mlflow_project_job_info" in result["msg"]
    assert status_of(store, run_id) == "RUNNING"


def test_delete_at_wait_timeout_failing_leaves_the_run_for_the_next_call(submit, store):
    jobs = FakeJobs(outcome=lambda job: (copy.deepcopy(job), "Running", True))

    def unreachable(namespace, name):
        raise ClusterError("kubeconfig", "cannot reach the Kubernetes API while trying to delete Job " + name)

    jobs.delete = unreachable
    result = runner(submit(run_name="no-delete", wait=True), jobs).present()
    assert result["failed"] and result["job_name"] in jobs.jobs
    assert status_of(store, result["run_id"]) == "RUNNING"


class NoLogUpload(tracking.Tracker):
    def log_text(self, run_id, text, path=tracking.LOG_ARTIFACT):
        raise TrackingError("tracking_uri", "the artifact store is full")


def test_a_failed_log_upload_does_not_change_the_runs_outcome(submit, store):
    warnings = []
    jobs = FakeJobs(outcome=ends("Complete"), log="loss 0.1\n")
    result = runner(submit(run_name="no-log", wait=True), jobs, tracker=NoLogUpload, warn=warnings.append).present()
    assert not result.get("failed") and result["run"]["status"] == "FINISHED" and jobs.deleted == []
    assert any("artifact store is full" in w for w in warnings), warnings


class DownAtTheEnd(tracking.Tracker):
    def terminate(self, run_id, status, end_time=None):
        raise TrackingError("tracking_uri", "the tracking server is unreachable")


def test_tracking_server_down_when_the_job_ends_keeps_the_job(submit, store):
    jobs = FakeJobs(outcome=ends("Complete"))
    result = runner(submit(run_name="tracking-down", wait=True), jobs, tracker=DownAtTheEnd).present()
    assert result["failed"] and jobs.deleted == [] and result["job_name"] in jobs.jobs
    assert status_of(store, result["run_id"]) == "RUNNING"
    assert "tracking server is unreachable" in result["msg"]


class NoTags(tracking.Tracker):
    def set_tags(self, run_id, tags):
        raise TrackingError("tracking_uri", "tagging is down")


def test_tagging_the_run_after_its_job_exists_cannot_delete_the_job(submit, store):
    jobs = FakeJobs()
    result = runner(submit(run_name="no-tags"), jobs, tracker=NoTags).present()
    assert jobs.deleted == [] and result["job_name"] in jobs.jobs
    assert status_of(store, jobs.jobs[result["job_name"]]["metadata"]["labels"][job_utils.LABEL_RUN_ID]) == "RUNNING"


def test_create_answer_lost_after_the_job_was_made_keeps_the_run(submit, store):
    jobs = FakeJobs()
    real_create = jobs.create

    def created_then_reset(namespace, manifest, option):
        real_create(namespace, manifest, option)
        raise ClusterError("kubeconfig", "cannot reach the Kubernetes API while trying to create Job: reset")

    jobs.create = created_then_reset
    result = runner(submit(run_name="lost-answer"), jobs).present()
    assert result["changed"] and not result.get("failed")
    run_id = jobs.jobs[result["job_name"]]["metadata"]["labels"][job_utils.LABEL_RUN_ID]
    assert result["run"]["run_id"] == run_id and status_of(store, run_id) == "RUNNING"


# -- one Job and one live run per identity, whatever the concurrency --------------------------


class Blind(FakeJobs):
    """What a second submitter saw: it listed (and dry-ran, with ``dry_run_blind``) before the
    first one's Job existed; its create then meets that Job."""

    def __init__(self, jobs, dry_run_blind=True):
        super().__init__()
        self.jobs = jobs.jobs
        self.dry_run_blind = dry_run_blind
        self.looks = 0

    def list(self, namespace, selector):
        return []

    def dry_run(self, namespace, manifest, option):
        if self.dry_run_blind:
            return True
        return super().dry_run(namespace, manifest, option)


def test_two_submitters_at_once_make_one_job_and_one_live_run(submit, store):
    first_jobs = FakeJobs()
    first = runner(submit(run_name="race"), first_jobs, clock=time.time).present()
    second = runner(submit(run_name="race"), Blind(first_jobs), clock=time.time).present()
    assert list(first_jobs.jobs) == [first["job_name"]]
    assert second["job_name"] == first["job_name"] and second["run"]["run_id"] == first["run"]["run_id"]
    runs = runs_of(store, first["identity"])
    live = [r for r, run in runs.items() if run.info.status == "RUNNING"]
    assert live == [first["run"]["run_id"]]
    (loser,) = [run for r, run in runs.items() if r != first["run"]["run_id"]]
    assert loser.info.status == "KILLED"
    assert loser.data.tags[reconcile.SUPERSEDED_TAG] == first["run"]["run_id"]


def test_a_job_that_appeared_before_the_dry_run_means_no_second_run(submit, store):
    first_jobs = FakeJobs()
    first = runner(submit(run_name="race-early"), first_jobs, clock=time.time).present()
    second = runner(submit(run_name="race-early"), Blind(first_jobs, dry_run_blind=False), clock=time.time).present()
    assert second["existing"] and second["run"]["run_id"] == first["run"]["run_id"]
    assert list(runs_of(store, first["identity"])) == [first["run"]["run_id"]]


class CreatesTwice(tracking.Tracker):
    """MLflow's client retried runs/create: the first answer was lost, the server made two runs."""

    def create_run(self, experiment_id, tags, params, run_name=None):
        super().create_run(experiment_id, tags, params, run_name=run_name)
        return super().create_run(experiment_id, tags, params, run_name=run_name)


def test_mlflow_retrying_runs_create_leaves_one_live_run(submit, store):
    result = runner(submit(run_name="retried"), FakeJobs(), tracker=CreatesTwice, clock=time.time).present()
    runs = runs_of(store, result["identity"])
    assert len(runs) == 2
    (duplicate,) = [run for r, run in runs.items() if r != result["run"]["run_id"]]
    assert duplicate.info.status == "KILLED"
    assert duplicate.data.tags[reconcile.SUPERSEDED_TAG] == result["run"]["run_id"]
    assert status_of(store, result["run"]["run_id"]) == "RUNNING"


def test_a_name_taken_by_another_submission_fails_the_new_run_and_leaves_that_job(submit, store):
    jobs = FakeJobs()
    first = runner(submit(run_name="taken"), jobs).present()
    squatter = jobs.jobs[first["job_name"]]
    squatter["metadata"]["annotations"][job_utils.ANNOTATION_IDENTITY] = "someone-else"
    with pytest.raises(ClusterError) as caught:
        runner(submit(run_name="taken"), Blind(jobs)).present()
    assert first["job_name"] in caught.value.message
    assert jobs.deleted == [] and list(jobs.jobs) == [first["job_name"]]
    others = [r for r in runs_of(store, first["identity"]) if r != first["run"]["run_id"]]
    assert [status_of(store, r) for r in others] == ["FAILED"]


# -- every run whose Job is gone ends at the next call ----------------------------------------


class Died(BaseException):
    """The submitter was killed: nothing after this point ran."""


def test_a_run_whose_submitter_died_before_its_job_fails_at_the_next_call(submit, store, monkeypatch):
    jobs = FakeJobs()

    def die(namespace, manifest, option):
        raise Died()

    jobs.create = die
    monkeypatch.setattr(Runner, "_undo", lambda *args, **kwargs: None)  # killed: no cleanup ran
    with pytest.raises(Died):
        runner(submit(run_name="died"), jobs).present()
    monkeypatch.undo()
    (orphan,) = store["client"].search_runs([store["experiment_id"]], "tags.mlflow.runName = 'died'")
    assert orphan.info.status == "RUNNING"
    jobs = FakeJobs()
    later = runner(submit(run_name="another-one"), jobs).present()  # any later call in that namespace
    run = store["client"].get_run(orphan.info.run_id)
    assert run.info.status == "FAILED" and run.data.tags[watch.FAILURE_REASON_TAG] == reconcile.JOB_NOT_FOUND
    assert orphan.info.run_id in later["orphaned_runs"]


def test_a_run_whose_job_is_gone_fails_at_the_next_info_sync_but_not_while_young_or_elsewhere(submit, store):
    jobs = FakeJobs()
    submitted = runner(submit(run_name="ttl"), jobs).present()
    elsewhere_jobs = FakeJobs()
    elsewhere_jobs.server = "https://another-cluster:6443"
    elsewhere = runner(submit(run_name="ttl-elsewhere"), elsewhere_jobs).present()
    del jobs.jobs[submitted["job_name"]]  # its TTL after it finished, or someone, removed it
    read = params(mlflow_project_job_info, namespace="ns", sync_run=True, tracking_uri=store["uri"])
    run_id = submitted["run"]["run_id"]

    young = runner(read, jobs, clock=time.time).info()  # it might be being submitted right now
    assert status_of(store, run_id) == "RUNNING" and not young["changed"]
    later = time.time() + reconcile.ORPHAN_GRACE + 60
    planned = Runner(read, check_mode=True, jobs_factory=lambda a, c: jobs, clock=lambda: later).info()
    assert planned["changed"] and run_id in planned["orphaned_runs"] and status_of(store, run_id) == "RUNNING"
    settled = runner(read, jobs, clock=lambda: later).info()
    assert settled["changed"] and run_id in settled["orphaned_runs"]
    run = store["client"].get_run(run_id)
    assert run.info.status == "FAILED" and run.data.tags[watch.FAILURE_REASON_TAG] == reconcile.JOB_NOT_FOUND
    assert submitted["job_name"] in run.data.tags[reconcile.ORPHAN_TAG]
    assert status_of(store, elsewhere["run"]["run_id"]) == "RUNNING"  # its Job is on another cluster
    again = runner(read, jobs, clock=lambda: later).info()
    assert not again["changed"]
