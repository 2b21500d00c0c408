"""wait_for_job's watch handling where a real API rarely goes: 410 Gone, bookmarks, deletion, timeouts.

FAKE, thin: the batch API below serves scripted watch streams through the kubernetes client's
real Watch machinery (line splitting, ERROR events, resourceVersion handling). Normal waits
(Complete, Failed, timeout, deletion) run against a real API in tests/cluster/test_project_job.py.
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
    def __init__(self, reads, streams):
        self.reads = list(reads)
        self.streams = list(streams)
        self.watch_calls = []
        self.api_client = client.ApiClient()

    def read_namespaced_job(self, name, namespace, **kwargs):
        job = self.reads.pop(0)
        if job is None:
            raise ApiException(status=404)
        return job

    def list_namespaced_job(self, namespace, **kwargs):
        self.watch_calls.append(kwargs)
        return _Response(self.streams.pop(0))

    list_namespaced_job.__doc__ = client.BatchV1Api.list_namespaced_job.__doc__


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 0.5
        return self.now


def test_gone_resource_version_is_read_again():
    complete = _job("9", [{"type": "Complete", "status": "True"}])
    batch = FakeBatch(
        reads=[_job("1"), _job("5")],
        streams=[
            [{"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}}],
            [
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}},
                {"type": "MODIFIED", "object": complete},
            ],
        ],
    )
    job, state, timed_out = watch.wait_for_job(batch, "n", "j", 60, clock=Clock())
    assert (state, timed_out) == ("Complete", False)
    assert job["metadata"]["resourceVersion"] == "9"
    assert [c["resource_version"] for c in batch.watch_calls] == ["1", "5"]
    assert all(c["field_selector"] == "metadata.name=j" for c in batch.watch_calls)


def test_bookmark_moves_the_resource_version():
    failed = _job("12", [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}])
    batch = FakeBatch(
        reads=[_job("1")],
        streams=[
            [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "10"}}}],
            [{"type": "MODIFIED", "object": failed}],
        ],
    )
    _final, state, _log = watch.wait_for_job(batch, "n", "j", 60, clock=Clock())
    assert state == "Failed"
    assert [c["resource_version"] for c in batch.watch_calls] == ["1", "10"]


def test_deleted_during_the_watch():
    batch = FakeBatch(reads=[_job("1")], streams=[[{"type": "DELETED", "object": _job("3")}]])
    assert watch.wait_for_job(batch, "n", "j", 60, clock=Clock())[1:] == ("Deleted", False)


def test_gone_before_the_wait():
    batch = FakeBatch(reads=[None], streams=[])
    assert watch.wait_for_job(batch, "n", "j", 60, clock=Clock()) == (None, "Deleted", False)


def test_timeout_returns_the_last_state():
    batch = FakeBatch(reads=[_job("1")], streams=[[{"type": "MODIFIED", "object": _job("2")}]] * 20)
    job, state, timed_out = watch.wait_for_job(batch, "n", "j", 3, clock=Clock())
    assert (state, timed_out) == ("Running", True)
    assert job["metadata"]["resourceVersion"] == "2"
    assert all(1 <= c["timeout_seconds"] <= 3 for c in batch.watch_calls)


def test_created_job_saves_the_first_read():
    complete = _job("4", [{"type": "Complete", "status": "True"}])
    batch = FakeBatch(reads=[], streams=[[{"type": "MODIFIED", "object": complete}]])
    assert watch.wait_for_job(batch, "n", "j", 60, clock=Clock(), job=_job("3"))[1] == "Complete"


def test_other_api_errors_are_raised():
    batch = FakeBatch(
        reads=[_job("1")],
        streams=[
            [{"type": "ERROR", "object": {"kind": "Status", "code": 403, "reason": "Forbidden", "message": "no"}}]
        ],
    )
    with pytest.raises(ApiException) as caught:
        watch.wait_for_job(batch, "n", "j", 60, clock=Clock())
    assert caught.value.status == 403


def test_tail():
    assert watch.tail("a\nb\nc\n", 2) == "b\nc"
    assert watch.tail("a\nb", 0) == "a\nb"
