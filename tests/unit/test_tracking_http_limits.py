"""tracking.Tracker's HTTP retry limits apply to its client's calls only, never to the process.

MLflow reads MLFLOW_HTTP_REQUEST_* from the environment on every request; the Tracker's client
sets the ones the user has not set for the length of each call and removes them afterwards.
"""

import os

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import tracking
from tests.harness.mlflow_server import free_port

KEYS = sorted(tracking.HTTP_LIMITS)


@pytest.fixture(autouse=True)
def _no_user_settings(monkeypatch):
    for key in KEYS:
        monkeypatch.delenv(key, raising=False)


class _Recorder:
    """Stands in for MlflowClient only to see the environment a call runs in."""

    def __init__(self):
        self.seen = []
        self.tracking_uri = "http://example.invalid"

    def get_experiment_by_name(self, name):
        self.seen.append({key: os.environ.get(key) for key in KEYS})
        if name == "boom":
            raise MlflowException("boom")
        return name


def test_the_process_environment_is_untouched_by_a_tracker():
    tracker = tracking.Tracker(f"http://127.0.0.1:{free_port()}")
    assert isinstance(tracker.client._client, MlflowClient)
    assert [key for key in KEYS if key in os.environ] == []


def test_each_call_runs_with_the_limits_and_puts_the_environment_back():
    recorder = _Recorder()
    client = tracking.LimitedClient(recorder, tracking.HTTP_LIMITS)
    assert client.get_experiment_by_name("x") == "x"
    with pytest.raises(MlflowException):
        client.get_experiment_by_name("boom")
    assert recorder.seen == [tracking.HTTP_LIMITS, tracking.HTTP_LIMITS]
    assert [key for key in KEYS if key in os.environ] == []
    assert client.tracking_uri == "http://example.invalid"


def test_the_users_own_setting_wins_and_stays(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    recorder = _Recorder()
    tracking.LimitedClient(recorder, tracking.HTTP_LIMITS).get_experiment_by_name("x")
    assert recorder.seen[0]["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    assert recorder.seen[0]["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "30"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ


def test_a_real_client_call_fails_on_an_unreachable_server_with_the_limits():
    """The real MlflowClient through the wrapper: no retries asked for, the error names the server."""
    port = free_port()
    tracker = tracking.Tracker(f"http://127.0.0.1:{port}", http_limits={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
    with pytest.raises(MlflowException, match=rf"127\.0\.0\.1.*{port}"):
        tracker.client.search_experiments()
    assert [key for key in KEYS if key in os.environ] == []
