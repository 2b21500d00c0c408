"""The launcher the mlflow_server role ships in its ConfigMap
(roles/mlflow_server/files/mlflow_k8s_exec.py), imported from that very file: which spawns it
turns into an exec and which it leaves alone. Against MLflow's own `_run_server`, and the real
process replaced by uvicorn: tests/services/test_mlflow_server_role.py."""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path

import pytest

from tests.harness.role_files import load_role_file

launcher = load_role_file("mlflow_server", "mlflow_k8s_exec")


@pytest.mark.parametrize(
    ("value", "enabled"),
    [(None, True), ("true", True), ("1", True), ("True", True), ("false", False), ("0", False), (" FALSE ", False)],
)
def test_job_execution_is_on_unless_mlflow_reads_it_as_off(value: str | None, enabled: bool) -> None:
    environ = {} if value is None else {launcher.JOB_EXECUTION_ENV: value}
    assert launcher.job_execution_enabled(environ) is enabled


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def spawn(self, cmd, **kwargs):
        self.calls.append(("spawn", cmd, kwargs))
        return "spawned"

    def execve(self, path, argv, env):
        self.calls.append(("execve", path, argv, env))
        return "replaced"


def test_the_server_spawn_becomes_an_exec_with_mlflows_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_K8S_EXEC_TEST", "from-the-pod")
    recorder = _Recorder()
    exec_cmd = launcher.exec_instead_of_spawn(recorder.spawn, execve=recorder.execve)
    result = exec_cmd(
        [sys.executable, "-m", "uvicorn", Path("app")],
        extra_env={"_MLFLOW_SERVER_ARTIFACT_ROOT": "/a"},
        capture_output=False,
        synchronous=False,
    )
    assert result == "replaced"
    [(kind, path, argv, env)] = recorder.calls
    assert (kind, path, argv) == ("execve", sys.executable, [sys.executable, "-m", "uvicorn", "app"])
    assert env["_MLFLOW_SERVER_ARTIFACT_ROOT"] == "/a"
    assert env["MLFLOW_K8S_EXEC_TEST"] == "from-the-pod"
    assert os.environ.get("_MLFLOW_SERVER_ARTIFACT_ROOT") is None  # this process's own is untouched


@pytest.mark.parametrize(
    ("cmd", "kwargs"),
    [
        (["sh", "-c", "true"], {}),  # waits for it: runs as MLflow would
        (["sh", "-c", "true"], {"synchronous": True, "capture_output": True}),
        ("sh -c true", {"synchronous": False}),  # a shell string is not an argv to exec
    ],
)
def test_every_other_call_goes_to_mlflows_spawn_unchanged(cmd, kwargs) -> None:
    recorder = _Recorder()
    exec_cmd = launcher.exec_instead_of_spawn(recorder.spawn, execve=recorder.execve)
    assert exec_cmd(cmd, extra_env={"A": "1"}, **kwargs) == "spawned"
    assert recorder.calls == [("spawn", cmd, {"extra_env": {"A": "1"}, **kwargs})]


def test_mlflow_spawns_the_server_through_the_hook_without_waiting() -> None:
    """The pinned MLflow still has the seam the launcher replaces: `_run_server` starts the server
    with `_exec_cmd(..., synchronous=False)` from `mlflow.server`'s namespace. A release that
    moves it makes this fail here, not as a silent loss of memory in the pod."""
    import mlflow.server  # noqa: PLC0415

    assert callable(getattr(mlflow.server, launcher.SPAWN_HOOK))
    source = inspect.getsource(mlflow.server._run_server)
    assert f"{launcher.SPAWN_HOOK}(" in source
    assert "synchronous=False" in source
