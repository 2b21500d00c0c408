"""wait_for_job's watch handling where a real API rarely goes: 410 Gone, bookmarks, deletion, timeouts.

FAKE, thin: the batch API below serves scripted lists and watch streams through the kubernetes
client's real Watch machinery (line splitting, ERROR events, resourceVersion handling). Normal
waits (Complete, Failed, timeout, deletion) run against a real API in
tests/cluster/test_project_job.py; the API server failing during a wait, in
tests/unit/test_attack_wait.py.
"""

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import watch


def _job(rv, conditions=None, start=True):
    status = {"conditions": conditions or []}
    if start:
        status["startTime"] = "2026-11-22T15:00:00Z"
    return {"metadata": {"name": "j", "namespace": "n", "resourceVersion": rv}, "status": status}


class _Response:
    def __init__(self, events):
        self.status = 200
        self._data = "".join(json.dumps(e) + "\n" for e in events).encode()

    def stream(self, amt=None, decode_content=False):
        yield self._data

    def close(self):
        pass

    def release_conn(self):
        pass


class FakeBatch:
    """``lists``: what each plain list answers, ``(job or None, the list's resourceVersion)``;
    ``streams``: the events of each watch."""

    def __init__(self, lists, streams):
        self.lists = list(lists)
        self.streams = list(streams)
        self.watch_calls = []
        self.api_client = client.ApiClient()

    def list_namespaced_job(self, namespace, **kwargs):
        if not kwargs.get("watch"):
            job, version = self.lists.pop(0)
            return {"metadata": {"resourceVersion": version}, "items": [job] if job else []}
        self.watch_calls.append(kwargs)
        return _Response(self.streams.pop(0))

    list_namespaced_job.__doc__ = client.BatchV1Api.list_namespaced_job.__doc__


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 0.5
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def wait(batch, timeout, **kwargs):
    clock = Clock()
    return watch.wait_for_job(batch, "n", "j", timeout, clock=clock, sleep=clock.sleep, **kwargs)


def test_gone_resource_version_lists_again_and_watches_from_the_lists_version():
    complete = _job("9", [{"type": "Complete", "status": "True"}])
    batch = FakeBatch(
        lists=[(_job("1"), "3"), (_job("1"), "8")],
        streams=[
            [{"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}}],
            [
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "8"}}},
                {"type": "MODIFIED", "object": complete},
            ],
        ],
    )
    job, state, timed_out = wait(batch, 60)
    assert (state, timed_out) == ("Complete", False)
    assert job["metadata"]["resourceVersion"] == "9"
    assert [c["resource_version"] for c in batch.watch_calls] == ["3", "8"]
    assert all(c["field_selector"] == "metadata.name=j" for c in batch.watch_calls)


def test_bookmark_moves_the_resource_version():
    failed = _job("12", [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}])
    batch = FakeBatch(
        lists=[(_job("1"), "1")],
        streams=[
            [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "10"}}}],
            [{"type": "MODIFIED", "object": failed}],
        ],
    )
    _final, state, _log = wait(batch, 60)
    assert state == "Failed"
    assert [c["resource_version"] for c in batch.watch_calls] == ["1", "10"]


def test_deleted_during_the_watch():
    batch = FakeBatch(lists=[(_job("1"), "1")], streams=[[{"type": "DELETED", "object": _job("3")}]])
    assert wait(batch, 60)[1:] == ("Deleted", False)


def test_gone_before_the_wait():
    batch = FakeBatch(lists=[(None, "4")], streams=[])
    assert wait(batch, 60) == (None, "Deleted", False)


def test_timeout_returns_the_last_state():
    batch = FakeBatch(lists=[(_job("1"), "1")], streams=[[{"type": "MODIFIED", "object": _job("2")}]] * 20)
    job, state, timed_out = wait(batch, 3)
    assert (state, timed_out) == ("Running", True)
    assert job["metadata"]["resourceVersion"] == "2"
    assert all(1 <= c["timeout_seconds"] <= 3 for c in batch.watch_calls)


def test_created_job_saves_the_first_list():
    complete = _job("4", [{"type": "Complete", "status": "True"}])
    batch = FakeBatch(lists=[], streams=[[{"type": "MODIFIED", "object": complete}]])
    assert wait(batch, 60, job=_job("3"))[1] == "Complete"
    assert [c["resource_version"] for c in batch.watch_calls] == ["3"]


def test_other_api_errors_are_raised():
    batch = FakeBatch(
        lists=[(_job("1"), "1")],
        streams=[
            [{"type": "ERROR", "object": {"kind": "Status", "code": 400, "reason": "BadRequest", "message": "no"}}]
        ],
    )
    with pytest.raises(ApiException) as caught:
        wait(batch, 60)
    assert caught.value.status == 400


def test_tail():
    assert watch.tail("a\nb\nc\n", 2) == "b\nc"
    assert watch.tail("a\nb", 0) == "a\nb"


class FakeCore:
    """Serves the Job's pods (one scripted state per look) and no events, as typed models."""

    def __init__(self, pods):
        self.pods = list(pods)
        self.looks = 0

    def list_namespaced_pod(self, namespace, label_selector=None, **kwargs):
        pod = self.pods[min(self.looks, len(self.pods) - 1)]
        self.looks += 1
        return client.V1PodList(items=[client.ApiClient()._ApiClient__deserialize(pod, "V1Pod")])

    def list_namespaced_event(self, namespace, field_selector=None, **kwargs):
        return client.CoreV1EventList(items=[])

    def read_namespaced_pod_log(self, *args, **kwargs):
        raise ApiException(status=400)


def _job_pod(status):
    return {
        "metadata": {"name": "j-abcde", "namespace": "n", "creationTimestamp": "2026-11-22T15:00:00Z"},
        "spec": {"containers": [{"name": "main", "image": "registry.invalid/x:0"}]},
        "status": status,
    }


def test_a_stuck_pod_ends_the_wait_with_its_problem_and_the_progress_seen():
    waiting = _job_pod(
        {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.",
                }
            ],
        }
    )
    pulling = _job_pod(
        {
            "phase": "Pending",
            "containerStatuses": [
                {
                    "name": "main",
                    "image": "registry.invalid/x:0",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "x"'}},
                }
            ],
        }
    )
    running = _job("2")
    batch = FakeBatch(lists=[(_job("1"), "1")], streams=[[{"type": "MODIFIED", "object": running}]] * 5)
    seen = []
    outcome = wait(batch, 600, core=FakeCore([waiting, pulling]), progress=seen.append)
    job, state, timed_out = outcome
    assert (state, timed_out) == ("Stuck", False)
    assert (outcome.problem.pod, outcome.problem.reason) == ("j-abcde", "ImagePullBackOff")
    assert outcome.progress == (
        "pod j-abcde: Unschedulable: 0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.",
    )
    assert seen == list(outcome.progress)
    assert all(c["timeout_seconds"] <= watch.POD_CHECK for c in batch.watch_calls)


def test_without_core_the_pods_are_not_looked_at():
    complete = _job("4", [{"type": "Complete", "status": "True"}])
    batch = FakeBatch(lists=[(_job("1"), "1")], streams=[[{"type": "MODIFIED", "object": complete}]])
    outcome = wait(batch, 600)
    assert outcome == (complete, "Complete", False) and outcome.problem is None and outcome.progress == ()
