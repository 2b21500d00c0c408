"""``mlflow server`` whose process becomes uvicorn (the mlflow_server role's ConfigMap).

``mlflow server`` prepares what its workers need (the stores, the artifact root, the allowed
hosts, the app) and then starts uvicorn as a child process and stays: it forwards SIGTERM and
waits. That parent has all of ``mlflow`` imported and holds as much memory as a worker (about
190 MB PSS measured with MLflow 3.17) while it serves nothing; without job execution it does
nothing else.

``python -m mlflow_k8s_exec server OPTIONS`` runs MLflow's own CLI, with MLflow's own code for
all of that, and at the one point where MLflow would spawn uvicorn it replaces this process with
that very command and environment (``os.execve``): uvicorn's supervisor becomes the container's
main process and receives the kubelet's SIGTERM itself.

Nothing is replaced when MLflow needs its process after the spawn: with job execution on
(``MLFLOW_SERVER_ENABLE_JOB_EXECUTION``, MLflow's default), it starts the job runners with the
server's pid and waits. Should a later MLflow no longer spawn uvicorn through
``mlflow.server._exec_cmd``, the CLI runs as ``mlflow server`` would and says so on stderr: only
the memory is lost.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# MLflow's name for the function `_run_server` spawns uvicorn with (mlflow.utils.process._exec_cmd).
SPAWN_HOOK = "_exec_cmd"
JOB_EXECUTION_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"


def job_execution_enabled(environ: Mapping[str, str]) -> bool:
    """Whether MLflow will run job runners beside the server: its variable, true when unset."""
    return environ.get(JOB_EXECUTION_ENV, "true").strip().lower() not in ("false", "0")


def exec_instead_of_spawn(spawn: Callable[..., Any], execve: Callable[..., Any] = os.execve) -> Callable[..., Any]:
    """``spawn`` (MLflow's ``_exec_cmd``), except that a command started without waiting for it
    (``synchronous=False``: the server) replaces this process, with the environment MLflow gives it."""

    def exec_cmd(cmd: Sequence[Any] | str, *, extra_env: Mapping[str, str] | None = None, **kwargs: Any) -> Any:
        if kwargs.get("synchronous", True) or isinstance(cmd, str):
            return spawn(cmd, extra_env=extra_env, **kwargs)
        argv = [str(arg) for arg in cmd]
        env = {**os.environ, **(extra_env or {})}
        sys.stdout.flush()
        sys.stderr.flush()
        return execve(argv[0], argv, env)

    return exec_cmd


def main(argv: Sequence[str] | None = None) -> None:
    import mlflow.server  # noqa: PLC0415 - heavy, and only when run
    from mlflow.cli import cli  # noqa: PLC0415

    if job_execution_enabled(os.environ):
        print(f"mlflow_k8s_exec: {JOB_EXECUTION_ENV} is on: mlflow server keeps its own process", file=sys.stderr)
    elif not callable(getattr(mlflow.server, SPAWN_HOOK, None)):
        print(
            f"mlflow_k8s_exec: mlflow.server.{SPAWN_HOOK} is gone in MLflow {mlflow.__version__}: "
            "uvicorn runs as a child of mlflow server",
            file=sys.stderr,
        )
    else:
        setattr(mlflow.server, SPAWN_HOOK, exec_instead_of_spawn(getattr(mlflow.server, SPAWN_HOOK)))
    cli.main(args=list(sys.argv[1:] if argv is None else argv), prog_name="mlflow")


if __name__ == "__main__":
    main()
