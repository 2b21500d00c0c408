"""A real ``mlflow server`` on loopback, and fresh databases on the harness's services.

Shared by tests/services (through the fixtures of its conftest.py) and by benchmarks/:

- ``free_port()``: a TCP port nobody listens on at 127.0.0.1;
- ``start_server(backend_uri, ...) -> Server``: runs the venv's ``mlflow server`` with the backend
  URI in ``MLFLOW_BACKEND_STORE_URI`` (never on its command line), one worker and job execution
  off unless told otherwise, and returns once ``/health`` answers; on failure it stops what it
  started and raises ``ServerStartError`` with the tail of the server's log;
- ``wait_for_health(url, ...)``: the bounded wait on its own, usable against any server;
- ``Server.stop()``: SIGTERM to the server's whole process group, SIGKILL when it lingers;
- ``group_members(pgid)``: the live processes of a process group (a server started in its own);
- ``services_start()`` / ``services_stop()`` / ``fresh_database()``: the PostgreSQL and MariaDB
  of tests/harness/services, and a uniquely named empty database on them, dropped afterwards.

docs/testing-services.md describes the whole harness.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
SERVICES_SCRIPT = ROOT / "tests" / "harness" / "services"
LOOPBACK = "127.0.0.1"

# Safety nets, not measurements: how long start-up may take on a busy 2-core machine before the
# harness gives up (a fresh database is migrated on start, which takes a while on MariaDB).
DEFAULT_START_TIMEOUT = float(os.environ.get("MLFLOW_TEST_SERVER_START_TIMEOUT", "180"))
DEFAULT_STOP_TIMEOUT = 30.0
LOG_TAIL_LINES = 60

# What every harness server gets unless the caller's ``env`` says otherwise.
SERVER_ENV_DEFAULTS = {
    # The job-execution subsystem starts about eight extra processes (about 1.2 GB): not needed here.
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "PYTHONUNBUFFERED": "1",
}

_ADDRESS_IN_USE = re.compile(r"address already in use|Errno 98", re.IGNORECASE)


class ServerStartError(RuntimeError):
    """``mlflow server`` did not come up (or a URL did not answer ``/health``) in time.

    ``url`` is the address that was waited on, ``returncode`` the server's exit status once
    stopped (``None`` when no process was involved), ``log_tail`` the end of its log.
    """

    def __init__(self, message: str, *, url: str, returncode: int | None = None, log_tail: str = "") -> None:
        super().__init__(message)
        self.url = url
        self.returncode = returncode
        self.log_tail = log_tail


@dataclass
class Server:
    """A running ``mlflow server``; ``stop()`` ends it (idempotent)."""

    url: str
    port: int
    process: subprocess.Popen = field(repr=False)
    log_path: Path
    workdir: Path
    artifacts_dir: Path
    backend_uri: str = field(repr=False)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return _log_tail(self.log_path, lines, self.backend_uri)

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> int:
        """SIGTERM the server's process group (uvicorn workers included), SIGKILL after ``timeout``."""
        return _stop_process(self.process, timeout)


def free_port(host: str = LOOPBACK) -> int:
    """A port that nothing listens on right now (the kernel's pick; a small race remains)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def mlflow_executable() -> str:
    """The ``mlflow`` CLI of the running interpreter's environment (the project's venv)."""
    for candidate in (Path(sys.executable).parent / "mlflow", ROOT / ".venv" / "bin" / "mlflow"):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    raise FileNotFoundError(f"no mlflow CLI beside {sys.executable} nor in {ROOT / '.venv' / 'bin'}")


def wait_for_health(
    url: str,
    *,
    timeout: float = DEFAULT_START_TIMEOUT,
    process: subprocess.Popen | None = None,
    log_path: Path | None = None,
    interval: float = 0.25,
    secret_source: str = "",
) -> None:
    """Return once ``GET {url}/health`` answers 200; raise ``ServerStartError`` otherwise.

    With ``process``, a process that exits fails the wait at once. With ``log_path``, the error
    carries the log's tail (with the password of ``secret_source``, a URI, masked).
    """
    health = url.rstrip("/") + "/health"
    # No proxy for loopback, whatever the environment says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    last_error = "no attempt made"
    while True:
        if process is not None and process.poll() is not None:
            tail = _log_tail(log_path, LOG_TAIL_LINES, secret_source) if log_path else ""
            raise ServerStartError(
                f"mlflow server for {url} exited with status {process.returncode} before {health} answered"
                + _tail_block(log_path, tail),
                url=url,
                returncode=process.returncode,
                log_tail=tail,
            )
        remaining = deadline - time.monotonic()
        try:
            with opener.open(health, timeout=max(0.5, min(5.0, remaining))) as response:
                body = response.read(200).decode(errors="replace")
                if response.status == 200:
                    return
                last_error = f"HTTP {response.status}: {body!r}"
        except urllib.error.HTTPError as error:
            last_error = f"HTTP {error.code}: {error.reason}"
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            last_error = f"{type(reason).__name__}: {reason}"
        if time.monotonic() + interval >= deadline:
            tail = _log_tail(log_path, LOG_TAIL_LINES, secret_source) if log_path else ""
            raise ServerStartError(
                f"{health} did not answer 200 within {timeout:g} s; last error: {last_error}"
                + _tail_block(log_path, tail),
                url=url,
                returncode=None if process is None else process.poll(),
                log_tail=tail,
            )
        time.sleep(interval)


def start_server(
    backend_uri: str,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str | None] | None = None,
    artifacts_dir: str | os.PathLike[str] | None = None,
    workdir: str | os.PathLike[str] | None = None,
    workers: int = 1,
    timeout: float = DEFAULT_START_TIMEOUT,
    port_attempts: int = 3,
    executable: str | os.PathLike[str] | None = None,
) -> Server:
    """Start the venv's ``mlflow server`` on a free loopback port and wait for ``/health``.

    ``backend_uri`` goes through ``MLFLOW_BACKEND_STORE_URI``. ``args`` are appended to the
    command line (``--workers`` in them replaces the default of ``workers``; ``--host`` and
    ``--port`` are the harness's). ``env`` is laid over the server's environment, which is the
    caller's minus every ``MLFLOW_*`` variable plus ``SERVER_ENV_DEFAULTS``; a value of ``None``
    removes a variable. Artifacts are served from ``artifacts_dir`` (default
    ``<workdir>/artifacts``); the log is ``<workdir>/server.log`` (``workdir`` default: a new
    temporary directory). ``executable``: another ``mlflow`` CLI (another release's venv).
    Raises ``ServerStartError`` (after stopping the process) when the
    server exits or stays silent for ``timeout`` seconds.
    """
    args = [str(a) for a in args]
    for option in ("--host", "-h", "--port", "-p"):
        if any(a == option or a.startswith(option + "=") for a in args):
            raise ValueError(f"args must not set {option}: the harness binds a free loopback port itself")
    workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="mlflow-server-"))
    workdir.mkdir(parents=True, exist_ok=True)
    artifacts = Path(artifacts_dir) if artifacts_dir is not None else workdir / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)

    server_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    executable = str(executable) if executable is not None else mlflow_executable()
    server_env["PATH"] = f"{Path(executable).parent}{os.pathsep}{server_env.get('PATH', '/usr/bin:/bin')}"
    server_env.update(SERVER_ENV_DEFAULTS)
    server_env["MLFLOW_BACKEND_STORE_URI"] = backend_uri
    for key, value in (env or {}).items():
        if value is None:
            server_env.pop(key, None)
        else:
            server_env[key] = str(value)

    extra = []
    if not any(a in ("--workers", "-w") or a.startswith("--workers=") for a in args):
        extra += ["--workers", str(workers)]
    if not any(a == "--artifacts-destination" or a.startswith("--artifacts-destination=") for a in args):
        extra += ["--artifacts-destination", str(artifacts)]

    for attempt in range(1, port_attempts + 1):
        port = free_port()
        url = f"http://{LOOPBACK}:{port}"
        log_path = workdir / "server.log" if attempt == 1 else workdir / f"server.{attempt}.log"
        argv = [executable, "server", "--host", LOOPBACK, "--port", str(port), *extra, *args]
        with log_path.open("w") as log:
            log.write(f"# {shlex.join(argv)}\n")
            log.flush()
            process = subprocess.Popen(
                argv,
                cwd=workdir,
                env=server_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() reaches the uvicorn workers
            )
        server = Server(
            url=url,
            port=port,
            process=process,
            log_path=log_path,
            workdir=workdir,
            artifacts_dir=artifacts,
            backend_uri=backend_uri,
        )
        try:
            wait_for_health(url, timeout=timeout, process=process, log_path=log_path, secret_source=backend_uri)
        except ServerStartError as error:
            returncode = server.stop()
            error.returncode = returncode
            if attempt < port_attempts and _ADDRESS_IN_USE.search(server.log_tail()):
                continue  # another process took the port between free_port() and the bind
            raise
        except BaseException:
            server.stop()
            raise
        return server
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- databases


def services_start(lease: int | None = None) -> dict[str, str]:
    """Run ``tests/harness/services start`` (under ``lease``, a pid) and return its ``env`` settings."""
    command = [str(SERVICES_SCRIPT), "start"]
    if lease is not None:
        command += ["--lease", str(lease)]
    started = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if started.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(command)} failed with status {started.returncode}:\n{started.stdout}{started.stderr}"
        )
    return services_env()


def services_env() -> dict[str, str]:
    """The ``MLFLOW_TEST_*`` settings printed by ``tests/harness/services env``."""
    out = subprocess.run([str(SERVICES_SCRIPT), "env"], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    settings = {}
    for line in out.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, _sep, value = words[1].partition("=")
            settings[key] = value
    return settings


def services_stop(lease: int | None = None) -> subprocess.CompletedProcess:
    """``tests/harness/services stop``: stops only what the script started (and no live lease holds)."""
    command = [str(SERVICES_SCRIPT), "stop"]
    if lease is not None:
        command += ["--lease", str(lease)]
    return subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)


def unique_database_name(prefix: str = "mlflow_t") -> str:
    """``mlflow_t_<12 hex>``: inside the ``mlflow\\_%`` grant of the MariaDB test user."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def fresh_database(kind: str, settings: Mapping[str, str], name: str | None = None) -> Iterator[str]:
    """Create an empty database on the harness's PostgreSQL (``kind="postgresql"``) or MariaDB
    (``kind="mysql"``) and yield its SQLAlchemy URI; drop it afterwards (PostgreSQL: even with
    sessions still connected)."""
    import sqlalchemy

    prefix = {"postgresql": "MLFLOW_TEST_PG", "mysql": "MLFLOW_TEST_MYSQL"}.get(kind)
    if prefix is None:
        raise ValueError(f"kind must be 'postgresql' or 'mysql', not {kind!r}")
    name = name or unique_database_name()
    if not re.fullmatch(r"mlflow_[a-z0-9_]{1,50}", name):
        raise ValueError(f"database name {name!r} must match mlflow_[a-z0-9_]+")
    admin_url = sqlalchemy.engine.make_url(settings[f"{prefix}_URI"])
    admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)
    quote = '"' if kind == "postgresql" else "`"
    create = f"CREATE DATABASE {quote}{name}{quote}" + (" CHARACTER SET utf8mb4" if kind == "mysql" else "")
    drop = f"DROP DATABASE IF EXISTS {quote}{name}{quote}" + (" WITH (FORCE)" if kind == "postgresql" else "")
    try:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(create))
        try:
            yield admin_url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(sqlalchemy.text(drop))
    finally:
        admin.dispose()


def database_exists(kind: str, settings: Mapping[str, str], name: str) -> bool:
    """Whether database ``name`` exists on the harness's PostgreSQL or MariaDB."""
    import sqlalchemy

    prefix = "MLFLOW_TEST_PG" if kind == "postgresql" else "MLFLOW_TEST_MYSQL"
    query = (
        "SELECT 1 FROM pg_database WHERE datname = :name"
        if kind == "postgresql"
        else "SELECT 1 FROM information_schema.schemata WHERE schema_name = :name"
    )
    engine = sqlalchemy.create_engine(settings[f"{prefix}_URI"], poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text(query), {"name": name}).first() is not None
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- internals


def _stop_process(process: subprocess.Popen, timeout: float) -> int:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        alone_since = None
        while process.poll() is None and time.monotonic() < deadline:
            # The `mlflow server` wrapper only forwards the signal and waits for uvicorn; once uvicorn
            # is gone it spends seconds in interpreter shutdown. Nothing is lost by cutting that short.
            members = group_members(process.pid)
            if members is None or members - {process.pid}:
                alone_since = None
            elif alone_since is None:
                alone_since = time.monotonic()
            elif time.monotonic() - alone_since > 0.5:
                break
            time.sleep(0.1)
        if process.poll() is None:
            # Still running: uvicorn ignores SIGTERM while requests are stuck, or the wrapper lingers.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # Workers may outlive a wrapper that died on its own.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    return process.returncode


def group_members(pgid: int) -> set[int] | None:
    """Live processes of process group ``pgid`` (from /proc; ``None`` where there is no /proc)."""
    members = set()
    try:
        entries = list(os.scandir("/proc"))
    except OSError:
        return None
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields: state, ppid, pgrp, ...; zombies (state Z) are already gone
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.add(int(entry.name))
    return members


def _log_tail(log_path: Path | None, lines: int, secret_source: str = "") -> str:
    if log_path is None:
        return ""
    try:
        text = Path(log_path).read_text(errors="replace")
    except OSError as error:
        return f"(log {log_path} unreadable: {error})"
    tail = "\n".join(text.splitlines()[-lines:])
    password = urlsplit(secret_source).password if "://" in secret_source else None
    return tail.replace(password, "***") if password else tail


def _tail_block(log_path: Path | None, tail: str) -> str:
    if log_path is None:
        return ""
    return f"\n--- last {LOG_TAIL_LINES} lines of {log_path} ---\n{tail or '(empty)'}\n--- end of log ---"
