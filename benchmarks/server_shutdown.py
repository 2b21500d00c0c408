"""How long `mlflow server` takes to exit on SIGTERM while a request is stuck.

    python -m benchmarks server_shutdown [--wait SECONDS]

Starts the server as the mlflow_server role renders it (benchmarks/_role.py) and, for
comparison, `mlflow server` without uvicorn options, both on a SQLite file on loopback; opens an
artifact upload that announces 100 MB and sends 1 kB (a client stuck mid-request), sends SIGTERM
to the server's process group and measures until the process exits, or gives up after
``--wait`` seconds. This is what terminationGracePeriodSeconds has to cover.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import _role
from tests.harness.mlflow_server import free_port, wait_for_health

STUCK_REQUEST = (
    b"PUT /api/2.0/mlflow-artifacts/artifacts/0/stuck/artifacts/big.bin HTTP/1.1\r\n"
    b"Host: localhost\r\nContent-Length: 100000000\r\n\r\n" + b"x" * 1000
)


def command(config: str, port: int, workdir: Path) -> tuple[list[str], dict[str, str]]:
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    if config == "role":
        manifests = _role.render_manifests(
            {
                "mlflow_server_port": port,
                "mlflow_server_artifacts_mount_path": str(workdir / "artifacts"),
                "cluster_node_addresses": [_role.LOOPBACK],
            }
        )
        return _role.server_command(manifests, {("mlflow-database-uri", "uri"): uri})
    argv = [str(_role.BIN / "mlflow"), "server", "--backend-store-uri", uri, "--host", _role.LOOPBACK]
    # Same workers and no job runners: only the uvicorn options differ.
    return [*argv, "--port", str(port), "--workers", "2"], {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def measure(config: str, wait: float) -> float | None:
    with tempfile.TemporaryDirectory(prefix=f"shutdown-{config}-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        argv, env = command(config, port, workdir)
        env.update({"HOME": tmp, "TMPDIR": tmp, "MLFLOW_DISABLE_TELEMETRY": "true"})
        with (workdir / "server.log").open("w") as log:
            proc = subprocess.Popen(  # noqa: S603 - argv from the role's rendering
                argv, cwd=workdir, env=_role.base_env(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_for_health(f"http://{_role.LOOPBACK}:{port}", process=proc, log_path=workdir / "server.log")
            with socket.create_connection((_role.LOOPBACK, port)) as client:
                client.sendall(STUCK_REQUEST)
                time.sleep(2)
                began = time.monotonic()
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=wait)
                    return time.monotonic() - began
                except subprocess.TimeoutExpired:
                    return None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks server_shutdown", description=__doc__.split("\n", maxsplit=1)[0]
    )
    parser.add_argument("--wait", type=float, default=90, help="seconds to wait for the exit (default 90)")
    args = parser.parse_args(argv)
    for config in ("role", "defaults"):
        took = measure(config, args.wait)
        verdict = f"exited {took:.1f} s after SIGTERM" if took is not None else f"still running after {args.wait:g} s"
        print(f"{config:<9} {verdict} (one request stuck)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
