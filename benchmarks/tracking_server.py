"""Tracking-server benchmark: the mlflow_server role's settings against `mlflow server`'s defaults.

    python -m benchmarks tracking_server [--seconds S] [--ramp S] [--concurrency C]
                                         [--sweep 8,32,64,128] [--batch-size B] [--rounds R]
                                         [--backends postgresql,mysql]

For each backend, a PostgreSQL 15 and a MariaDB of this machine's packages are started for the
run, each with ``max_connections`` as the database role sets it (``database_max_connections``
of roles/database/defaults/main.yml), and two servers run side by side, each on its own fresh
database:

- ``role``: the server container exactly as the role renders it (benchmarks/_role.py: its
  args and environment, with the role's defaults, and the database's max_connections handed on
  as the database role does, so the role's own sizing check runs), bound to loopback;
- ``defaults``: ``mlflow server --backend-store-uri URI --host 127.0.0.1 --port P``.

Once both are idle, two workloads run from C client threads over keep-alive connections:
``log-metric`` (one metric per request) and ``log-batch`` (B metrics per request), each in
alternating rounds (role, defaults, defaults, role, ...) so that whatever else the machine
does falls on both. In a round the clients call back to back; only the calls that end inside
its measuring window count (S seconds per workload and configuration, split over the rounds,
opening ``--ramp`` seconds after the clients start; the calls still running when it closes
finish uncounted), so throughput is the steady state's, not the ramp's or the drain's.
``--sweep`` repeats that at each concurrency level in one run. It reports, per level, backend,
workload and configuration: requests/s, p50, p95, p99 and the slowest request, errors by kind,
the server's memory (PSS of its process tree) and the role/defaults ratios. Everything listens
on 127.0.0.1; the database servers are stopped and removed afterwards. The figures are written
to benchmarks/results/tracking_server-<time>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests
import sqlalchemy
import yaml
from mlflow.environment_variables import (
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
    MLFLOW_HTTP_REQUEST_BACKOFF_JITTER,
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
    MLFLOW_HTTP_REQUEST_TIMEOUT,
    MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER,
)
from mlflow.utils import request_utils
from urllib3.util import Retry

from benchmarks import _role

ROOT = _role.ROOT
RESULTS = ROOT / "benchmarks" / "results"
BACKENDS = ("postgresql", "mysql")
CONFIGS = ("role", "defaults")
# What MLflow's own client waits for an answer (MLFLOW_HTTP_REQUEST_TIMEOUT, 120 s by default):
# a request queued longer than that is an error for a user too.
CLIENT_TIMEOUT = MLFLOW_HTTP_REQUEST_TIMEOUT.get()


# --------------------------------------------------------------------------- databases


def stop_group(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM to the process group of ``proc`` (started with a session of its own), SIGKILL after ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def database_role_max_connections() -> int:
    """``database_max_connections`` as the database role deploys it (its defaults file)."""
    defaults = yaml.safe_load((ROOT / "roles" / "database" / "defaults" / "main.yml").read_text())
    return int(defaults["database_max_connections"])


def _wait_for(check: Any, what: str, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start in {timeout:g} s:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)


def _accepts(uri: str) -> bool:
    engine = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect():
            return True
    except sqlalchemy.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


@contextlib.contextmanager
def database_server(backend: str, max_connections: int) -> Iterator[dict[str, str]]:
    """A PostgreSQL or MariaDB server of this machine's packages for this run only, on a free
    loopback port, with ``max_connections``; yields the settings ``fresh_database`` reads."""
    password = uuid.uuid4().hex
    port = free_port()
    with tempfile.TemporaryDirectory(prefix=f"bench-{backend}-") as tmp:
        base = Path(tmp)
        owner = "postgres" if backend == "postgresql" else "mysql"
        try:
            shutil.chown(base, owner, owner)
        except LookupError:
            raise SystemExit(
                f"{backend}: no '{owner}' user, so no server of Debian's packages to start here; "
                "`tests/harness/services start` installs PostgreSQL and MariaDB (then `stop` it: "
                "the benchmark starts servers of its own)"
            ) from None
        log = base / "server.log"
        if backend == "postgresql":
            bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
            pwfile = base / "pw"
            pwfile.write_text(password)
            shutil.chown(pwfile, owner, owner)
            initdb = [str(bindir / "initdb"), "-D", str(base / "data"), "-U", "bench", f"--pwfile={pwfile}"]
            initdb += ["--auth-local=trust", "--auth-host=scram-sha-256"]
            subprocess.run(["runuser", "-u", owner, "--", *initdb], check=True, capture_output=True)
            argv = ["runuser", "-u", owner, "--", str(bindir / "postgres"), "-D", str(base / "data")]
            argv += ["-p", str(port), "-k", str(base), "-c", "listen_addresses=127.0.0.1"]
            argv += ["-c", f"max_connections={max_connections}"]
            admin_uri = f"postgresql+psycopg2://bench:{password}@127.0.0.1:{port}/postgres"
            prefix = "MLFLOW_TEST_PG"
        else:
            install = ["mariadb-install-db", f"--user={owner}", f"--datadir={base / 'data'}"]
            install += ["--auth-root-authentication-method=socket"]
            subprocess.run(install, check=True, capture_output=True)
            argv = ["mariadbd", f"--user={owner}", f"--datadir={base / 'data'}", f"--socket={base / 'sock'}"]
            argv += [f"--port={port}", "--bind-address=127.0.0.1", "--skip-name-resolve", f"--pid-file={base / 'pid'}"]
            argv += [f"--max-connections={max_connections}"]
            admin_uri = f"mysql+pymysql://bench:{password}@127.0.0.1:{port}/mysql"
            prefix = "MLFLOW_TEST_MYSQL"
        with log.open("w") as handle:
            proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)  # noqa: S603
        try:
            if backend == "mysql":
                user = "'bench'@'127.0.0.1'"
                sql = f"CREATE USER {user} IDENTIFIED BY '{password}'; GRANT ALL ON *.* TO {user};"
                root = ["mariadb", f"--socket={base / 'sock'}", "-u", "root"]
                # through stdin: the password is on no command line
                _wait_for(
                    lambda: (
                        subprocess.run(root, input=sql, text=True, capture_output=True, check=False).returncode == 0
                    ),
                    "MariaDB",
                    log,
                )
            _wait_for(lambda: _accepts(admin_uri), backend, log)
            yield {
                f"{prefix}_USER": "bench",
                f"{prefix}_PASSWORD": password,
                f"{prefix}_PORT": str(port),
                f"{prefix}_URI": admin_uri,
                "max_connections": str(max_connections),
            }
        finally:
            stop_group(proc, timeout=60)


@contextlib.contextmanager
def fresh_database(backend: str, env: dict[str, str]) -> Iterator[str]:
    """A new, empty database on ``backend`` for one server; dropped afterwards. Yields its URI."""
    name = f"mlflow_bench_{uuid.uuid4().hex[:10]}"
    if backend == "postgresql":
        user, password = env["MLFLOW_TEST_PG_USER"], env["MLFLOW_TEST_PG_PASSWORD"]
        admin_uri = env["MLFLOW_TEST_PG_URI"]
        uri = f"postgresql+psycopg2://{user}:{password}@127.0.0.1:{env['MLFLOW_TEST_PG_PORT']}/{name}"
        engine = sqlalchemy.create_engine(admin_uri, isolation_level="AUTOCOMMIT")
    else:
        user, password = env["MLFLOW_TEST_MYSQL_USER"], env["MLFLOW_TEST_MYSQL_PASSWORD"]
        port = env.get("MLFLOW_TEST_MYSQL_PORT", "3306")
        admin_uri = env["MLFLOW_TEST_MYSQL_URI"]
        uri = f"mysql+pymysql://{user}:{password}@127.0.0.1:{port}/{name}"
        engine = sqlalchemy.create_engine(admin_uri)
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
        if backend == "mysql":
            conn.commit()
    try:
        yield uri
    finally:
        with engine.connect() as conn:
            if backend == "postgresql":
                conn.execute(
                    sqlalchemy.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                    {"name": name},
                )
            conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name}"))
            if backend == "mysql":
                conn.commit()
        engine.dispose()


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_role.LOOPBACK, 0))
        return sock.getsockname()[1]


def tree_pids(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(root: int) -> float:
    """CPU time (user + system) used so far by ``root`` and its descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in tree_pids(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def settle(root: int, idle_share: float = 0.1, interval: float = 2.0, limit: float = 90.0) -> float:
    """Wait until the server's process tree uses under ``idle_share`` of a core (start-up done)."""
    began = time.monotonic()
    last = cpu_seconds(root)
    while time.monotonic() - began < limit:
        time.sleep(interval)
        now = cpu_seconds(root)
        if (now - last) / interval < idle_share:
            break
        last = now
    return time.monotonic() - began


def machine_busy_seconds() -> float:
    """CPU seconds the machine has spent on anything but idle and iowait since boot."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def pss_mb(root: int) -> float:
    """Proportional set size of ``root`` and all its descendants, in MB."""
    total_kb = 0
    for pid in tree_pids(root):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
                    break
        except OSError:
            continue
    return total_kb / 1024


@dataclass
class Server:
    config: str
    backend: str
    proc: subprocess.Popen
    url: str
    processes: int = 0
    log: Path | None = None


def role_command(
    uri: str, port: int, workdir: Path, max_connections: int, overrides: dict[str, Any] | None = None
) -> tuple[list[str], dict[str, str]]:
    role_vars = {
        "mlflow_server_port": port,
        "mlflow_server_artifacts_mount_path": str(workdir / "artifacts"),
        # the admission gate's ConfigMap is written there, as the kubelet mounts it
        "mlflow_server_admission_gate_mount_path": str(workdir / "admission-gate"),
        "cluster_node_addresses": [_role.LOOPBACK],
        # what the database role hands on: the role checks its connections against it
        "database_connection_limit": max_connections,
        **(overrides or {}),
    }
    manifests = _role.render_manifests(role_vars)
    secrets = {("mlflow-database-uri", "uri"): uri}
    argv, env = _role.server_command(manifests, secrets)
    # HOME and TMPDIR point at /tmp in the pod (an emptyDir); keep this run's files apart.
    env.update({"HOME": str(workdir), "TMPDIR": str(workdir)})
    return argv, env


def defaults_command(
    uri: str, port: int, workdir: Path, _max_connections: int, _overrides: dict[str, Any] | None = None
) -> tuple[list[str], dict[str, str]]:
    argv = [str(_role.BIN / "mlflow"), "server", "--backend-store-uri", uri, "--host", _role.LOOPBACK]
    argv += ["--port", str(port)]
    return argv, {"HOME": str(workdir), "TMPDIR": str(workdir)}


@contextlib.contextmanager
def running_server(
    config: str,
    backend: str,
    uri: str,
    max_connections: int,
    overrides: dict[str, Any] | None = None,
    startup_timeout: float = 180,
) -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{config}-{backend}-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        command = role_command if config == "role" else defaults_command
        argv, extra = command(uri, port, workdir, max_connections, overrides)
        # Both without telemetry: it is not a server setting under test and there is no route out.
        env = _role.base_env({**extra, "MLFLOW_DISABLE_TELEMETRY": "true"})
        log = workdir / "server.log"
        with log.open("w") as handle:
            proc = subprocess.Popen(  # noqa: S603 - argv built from the role's rendering
                argv, cwd=workdir, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )
        server = Server(config, backend, proc, f"http://{_role.LOOPBACK}:{port}", log=log)
        try:
            deadline = time.monotonic() + startup_timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{config}/{backend} server exited: {log.read_text()[-3000:]}")
                with contextlib.suppress(requests.RequestException):
                    if requests.get(f"{server.url}/health", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{config}/{backend} server not healthy in {startup_timeout}s")
                time.sleep(0.5)
            yield server
        finally:
            stop_group(proc, timeout=40)


# --------------------------------------------------------------------------- workloads


@dataclass
class Measurement:
    backend: str
    config: str
    operation: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    rps: float
    # each whole client call, retries included (what a user's log_batch waits)
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    # each HTTP attempt (a 503 answer of the admission gate is one)
    attempts: int = 0
    attempt_p50_ms: float = 0.0
    attempt_p95_ms: float = 0.0
    attempt_p99_ms: float = 0.0
    attempt_max_ms: float = 0.0
    shed: int = 0  # 503 answers MLflow's client retried: not errors
    retries_max: int = 0  # the most retries one call needed (MLflow's client gives up after 7)
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    pss_mb: float = 0.0
    processes: int = 0
    error_samples: list[str] = field(default_factory=list)
    # client connections per server process, largest first, once in each round
    connections: list[list[int]] = field(default_factory=list)
    # CPU milliseconds the server's process tree spent per successful call, and the share of the
    # machine's cores busy (with anything) inside the measuring windows: on a machine whose cores
    # are all busy, throughput is what the cores can do over what one call costs
    server_cpu_ms: float = 0.0
    cores_busy: float = 0.0


def _p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def setup_runs(url: str, count: int) -> list[str]:
    session = requests.Session()
    name = f"bench-{uuid.uuid4().hex[:8]}"
    exp = session.post(f"{url}/api/2.0/mlflow/experiments/create", json={"name": name}, timeout=30)
    exp.raise_for_status()
    experiment_id = exp.json()["experiment_id"]
    runs = []
    for _round in range(count):
        r = session.post(
            f"{url}/api/2.0/mlflow/runs/create",
            json={"experiment_id": experiment_id, "start_time": int(time.time() * 1000)},
            timeout=30,
        )
        r.raise_for_status()
        runs.append(r.json()["run"]["info"]["run_id"])
    return runs


# --------------------------------------------------------------------------- MLflow's client


_ATTEMPTS = threading.local()


class _TimedRetry(Retry):
    """MLflow's own Retry object (same class, same settings) that notes when each attempt ended
    and the next began: urllib3 calls ``sleep`` between two attempts."""

    def sleep(self, response: Any = None) -> None:
        _ATTEMPTS.marks.append((time.perf_counter(), response.status if response is not None else None))
        super().sleep(response)
        _ATTEMPTS.marks.append((time.perf_counter(), None))


def mlflow_client_session() -> requests.Session:
    """A requests Session as MLflow's client builds it for a tracking server call
    (mlflow.utils.rest_utils.http_request -> request_utils): its retry policy from MLflow's
    environment variables (7 retries, backoff 2, jitter 1, 503 among the retried codes,
    Retry-After honoured, POST retried too), one Session per client thread (each stands for one
    user's process), with each attempt's end and start noted (``_TimedRetry``)."""
    session = request_utils._cached_get_request_session.__wrapped__(  # noqa: SLF001 - MLflow's builder, uncached
        MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(),
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get(),
        MLFLOW_HTTP_REQUEST_BACKOFF_JITTER.get(),
        request_utils._TRANSIENT_FAILURE_RESPONSE_CODES,  # noqa: SLF001 - what http_request retries
        True,  # raise_on_status, http_request's default
        _pid=os.getpid(),
        respect_retry_after_header=MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER.get(),
    )
    for adapter in session.adapters.values():  # one adapter, mounted for http:// and https://
        retry = adapter.max_retries
        if type(retry) not in (Retry, _TimedRetry):
            raise RuntimeError(f"MLflow's session retries with {type(retry)}, not urllib3's Retry")
        retry.__class__ = _TimedRetry  # Retry.new() keeps the class for every later attempt
    return session


@dataclass
class Sample:
    """What one round of one workload returned. ``completed``: successful calls that ended inside
    the measuring window (throughput); the rest is about the calls that started inside it, each
    followed to its end: latencies of the successful ones and of every attempt, 503s retried,
    errors; the window's length, and how the server's workers shared the client connections;
    the CPU seconds the server's process tree and the whole machine spent inside the window."""

    completed: int = 0
    latencies: list[float] = field(default_factory=list)
    attempts: list[float] = field(default_factory=list)
    shed: int = 0
    retries: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0
    connections: list[list[int]] = field(default_factory=list)
    server_cpu: float = 0.0
    machine_cpu: float = 0.0

    def add(self, other: Sample) -> None:
        self.completed += other.completed
        self.latencies += other.latencies
        self.attempts += other.attempts
        self.shed += other.shed
        self.retries += other.retries
        self.errors += other.errors
        self.wall += other.wall
        self.connections += other.connections
        self.server_cpu += other.server_cpu
        self.machine_cpu += other.machine_cpu


def workload(
    server: Server,
    operation: str,
    runs: list[str],
    ramp: float,
    window: float,
    concurrency: int,
    batch_size: int,
) -> Sample:
    """``concurrency`` threads call ``operation`` back to back, each through MLflow's client
    session (retries included): ``ramp`` seconds unmeasured, then a measuring window of
    ``window`` seconds, then on until every call that started inside the window has ended.

    Throughput is the successful calls that ended inside the window over its length: the ramp
    (every client's first call, the queue filling) and the drain are not the steady state a
    team logging in parallel sees, and a round shorter than one call of a loaded server would
    otherwise measure mostly its own start and end. Latencies, attempts, 503s and errors are
    those of the calls that started inside the window, each followed to its end under the same
    load (the clients keep calling, unmeasured, until the last of them is done): a call that was
    shed and retried for long is counted, not cut off by the window's end.
    """
    sample = Sample()
    lock = threading.Lock()
    began = time.perf_counter()
    opens, closes = began + ramp, began + ramp + window
    endpoint = "log-metric" if operation == "log-metric" else "log-batch"
    port = int(server.url.rsplit(":", 1)[1])
    counter = iter(range(1 << 62))
    stop = threading.Event()
    outstanding = [0]  # calls started inside the window and not ended yet

    def body(i: int, run_id: str) -> dict[str, Any]:
        now = int(time.time() * 1000)
        if operation == "log-metric":
            return {"run_id": run_id, "key": "loss", "value": 1.0 / (i + 1), "timestamp": now, "step": i}
        metrics = [
            {"key": f"m{j % 10}", "value": float(j), "timestamp": now, "step": i * batch_size + j}
            for j in range(batch_size)
        ]
        return {"run_id": run_id, "metrics": metrics}

    def settled() -> None:
        """Under the lock: once the window is over and its last call ended, everyone stops."""
        if time.perf_counter() >= closes and outstanding[0] == 0:
            stop.set()

    def client(worker: int) -> None:
        session = mlflow_client_session()
        run_id = runs[worker % len(runs)]
        while not stop.is_set():
            with lock:
                i = next(counter)
                start = time.perf_counter()
                measured = opens <= start < closes
                outstanding[0] += measured
            _ATTEMPTS.marks = []
            try:
                resp = session.post(
                    f"{server.url}/api/2.0/mlflow/runs/{endpoint}", json=body(i, run_id), timeout=CLIENT_TIMEOUT
                )
                ok = resp.status_code == 200
                detail = f"{resp.status_code} {resp.text[:200]}"
            except requests.RequestException as exc:
                ok, detail = False, f"{type(exc).__name__} {exc!s:.200}"
            end = time.perf_counter()
            # attempt i runs from its start mark (the call's start, or the end of a sleep) to its end mark
            marks = _ATTEMPTS.marks
            starts = [start] + [t for t, _status in marks[1::2]]
            ends = [t for t, _status in marks[0::2]] + [end]
            with lock:
                sample.completed += ok and opens <= end < closes
                if measured:
                    outstanding[0] -= 1
                    sample.attempts += [e - b for b, e in zip(starts, ends, strict=False)]
                    sample.shed += sum(1 for _t, status in marks[0::2] if status == 503)
                    sample.retries.append(len(marks) // 2)
                    if ok:
                        sample.latencies.append(end - start)
                    else:
                        sample.errors.append(detail)
                settled()

    threads = [threading.Thread(target=client, args=(w,)) for w in range(concurrency)]
    for t in threads:
        t.start()
    time.sleep(max(opens - time.perf_counter(), 0))
    cpu_before = cpu_seconds(server.proc.pid), machine_busy_seconds()
    # Halfway through the window every client holds its keep-alive connection.
    time.sleep(max(opens + window / 2 - time.perf_counter(), 0))
    sample.connections.append(_role.connections_by_process(port, tree_pids(server.proc.pid)))
    time.sleep(max(closes - time.perf_counter(), 0))
    sample.server_cpu = cpu_seconds(server.proc.pid) - cpu_before[0]
    sample.machine_cpu = machine_busy_seconds() - cpu_before[1]
    with lock:
        settled()
    for t in threads:
        t.join()
    sample.wall = window
    return sample


def error_kind(detail: str) -> str:
    """One word for an error: the pool timeout, too many connections, MLflow's client giving up
    after its retries, an HTTP status, a client exception."""
    if "QueuePool limit" in detail:
        return "pool-timeout"
    if "too many" in detail.lower() and "error responses" not in detail:
        return "too-many-connections"
    if detail.startswith("RetryError"):
        return "retries-exhausted"
    word = detail.split(" ", 1)[0]
    return f"http-{word}" if word.isdigit() else word


def _ms(value: float) -> float:
    return round(value * 1000, 1)


def measurement(server: Server, operation: str, concurrency: int, sample: Sample) -> Measurement:
    done = len(sample.latencies)
    kinds: dict[str, int] = {}
    for detail in sample.errors:
        kinds[error_kind(detail)] = kinds.get(error_kind(detail), 0) + 1
    return Measurement(
        backend=server.backend,
        config=server.config,
        operation=operation,
        concurrency=concurrency,
        requests=done,
        errors=len(sample.errors),
        seconds=round(sample.wall, 2),
        rps=round(sample.completed / sample.wall, 1) if sample.wall else 0.0,
        p50_ms=_ms(_p(sample.latencies, 50)),
        p95_ms=_ms(_p(sample.latencies, 95)),
        p99_ms=_ms(_p(sample.latencies, 99)),
        max_ms=_ms(max(sample.latencies, default=float("nan"))),
        attempts=len(sample.attempts),
        attempt_p50_ms=_ms(_p(sample.attempts, 50)),
        attempt_p95_ms=_ms(_p(sample.attempts, 95)),
        attempt_p99_ms=_ms(_p(sample.attempts, 99)),
        attempt_max_ms=_ms(max(sample.attempts, default=float("nan"))),
        shed=sample.shed,
        retries_max=max(sample.retries, default=0),
        errors_by_kind=kinds,
        error_samples=sample.errors[:3],
        connections=sample.connections,
        server_cpu_ms=round(1000 * sample.server_cpu / sample.completed, 2) if sample.completed else 0.0,
        cores_busy=round(sample.machine_cpu / (sample.wall * (os.cpu_count() or 1)), 2) if sample.wall else 0.0,
    )


# --------------------------------------------------------------------------- report


def ratios(results: list[Measurement]) -> list[dict[str, Any]]:
    out = []
    for backend, level in sorted({(m.backend, m.concurrency) for m in results}):
        for op in ("log-metric", "log-batch"):
            pick = {
                m.config: m for m in results if m.backend == backend and m.operation == op and m.concurrency == level
            }
            if set(pick) != set(CONFIGS):
                continue
            role, default = pick["role"], pick["defaults"]
            out.append(
                {
                    "backend": backend,
                    "concurrency": level,
                    "operation": op,
                    "rps_ratio": round(role.rps / default.rps, 2) if default.rps else None,
                    "p95_ratio": round(role.p95_ms / default.p95_ms, 2) if default.p95_ms else None,
                    "p99_ratio": round(role.p99_ms / default.p99_ms, 2) if default.p99_ms else None,
                    "pss_ratio": round(role.pss_mb / default.pss_mb, 2) if default.pss_mb else None,
                }
            )
    return out


def _kinds(m: Measurement) -> str:
    return ",".join(f"{k}:{v}" for k, v in sorted(m.errors_by_kind.items())) or "-"


def _spread(m: Measurement) -> str:
    return " ".join("/".join(map(str, counts)) or "-" for counts in m.connections)


def table(results: list[Measurement], rat: list[dict[str, Any]]) -> str:
    lines = [
        "call: each whole client call, retries included; attempt: each HTTP attempt (a 503 is one);"
        " shed: 503s retried by the client; retries: the most one call needed (MLflow gives up after 7);"
        " CPU ms: the server's per successful call; busy: the machine's cores, inside the windows",
        f"{'backend':<11}{'clients':>7} {'config':<9}{'operation':<11}{'calls':>6}{'req/s':>7}"
        f"{'call p50/p95/p99/max s':>24}{'attempt p95/p99/max s':>23}{'shed':>6}{'retries':>8}{'PSS MB':>7}"
        f"{'procs':>6}{'CPU ms':>8}{'busy':>6} {'connections by process':<24} errors",
    ]
    for m in sorted(results, key=lambda m: (m.backend, m.concurrency, m.operation, m.config)):
        call = f"{m.p50_ms / 1000:.1f}/{m.p95_ms / 1000:.1f}/{m.p99_ms / 1000:.1f}/{m.max_ms / 1000:.1f}"
        attempt = f"{m.attempt_p95_ms / 1000:.1f}/{m.attempt_p99_ms / 1000:.1f}/{m.attempt_max_ms / 1000:.1f}"
        lines.append(
            f"{m.backend:<11}{m.concurrency:>7} {m.config:<9}{m.operation:<11}{m.requests:>6}{m.rps:>7.1f}"
            f"{call:>24}{attempt:>23}{m.shed:>6}{m.retries_max:>8}{m.pss_mb:>7.0f}{m.processes:>6}"
            f"{m.server_cpu_ms:>8.1f}{m.cores_busy:>6.0%} {_spread(m):<24} {_kinds(m)}"
        )
    lines.append("")
    lines.append(
        f"{'backend':<11}{'clients':>7} {'operation':<11}{'req/s role/defaults':>20}{'p95 ratio':>10}"
        f"{'p99 ratio':>10}{'PSS ratio':>10}"
    )
    for r in rat:
        lines.append(
            f"{r['backend']:<11}{r['concurrency']:>7} {r['operation']:<11}{r['rps_ratio']!s:>20}"
            f"{r['p95_ratio']!s:>10}{r['p99_ratio']!s:>10}{r['pss_ratio']!s:>10}"
        )
    return "\n".join(lines)


def measure_backend(backend: str, levels: list[int], args: argparse.Namespace) -> list[Measurement]:
    """Both servers up side by side on their own fresh databases of one database server started
    for the run; at each concurrency level, rounds alternate between them.

    The machine is shared: alternating short rounds (role, defaults, defaults, role, ...)
    spreads whatever else runs over both configurations instead of over one of them.
    """
    max_connections = args.max_connections or database_role_max_connections()
    with contextlib.ExitStack() as stack:
        env = stack.enter_context(database_server(backend, max_connections))
        servers = []
        for config in args.configs:
            uri = stack.enter_context(fresh_database(backend, env))
            servers.append(stack.enter_context(running_server(config, backend, uri, max_connections, args.role_vars)))
        for server in servers:
            # The defaults start job-runner processes: measure once everything is idle.
            waited = settle(server.proc.pid)
            print(f"{backend}/{server.config}: idle after {waited:.0f} s", file=sys.stderr, flush=True)
        out = []
        for level in levels:
            runs = {s.config: setup_runs(s.url, level) for s in servers}
            for op in ("log-metric", "log-batch"):
                for server in servers:  # unmeasured: the first calls of a level
                    workload(server, op, runs[server.config], 0, args.warmup, level, args.batch_size)
                totals = {s.config: Sample() for s in servers}
                for round_no in range(args.rounds):
                    order = servers if round_no % 2 == 0 else list(reversed(servers))
                    for server in order:
                        totals[server.config].add(
                            workload(
                                server,
                                op,
                                runs[server.config],
                                args.ramp,
                                args.seconds / args.rounds,
                                level,
                                args.batch_size,
                            )
                        )
                for server in servers:
                    m = measurement(server, op, level, totals[server.config])
                    m.pss_mb = round(pss_mb(server.proc.pid), 0)
                    m.processes = len(tree_pids(server.proc.pid))
                    out.append(m)
                    print(
                        f"{backend}/{level}/{server.config}/{op}: {m.requests} calls, {m.rps} req/s, call p95"
                        f" {m.p95_ms} ms, max {m.max_ms} ms; attempt p95 {m.attempt_p95_ms} ms, max"
                        f" {m.attempt_max_ms} ms; shed {m.shed}, retries max {m.retries_max}, errors {_kinds(m)},"
                        f" PSS {m.pss_mb} MB, server CPU {m.server_cpu_ms} ms a call, cores busy {m.cores_busy:.0%},"
                        f" connections {_spread(m)}, load {os.getloadavg()[0]:.1f}",
                        file=sys.stderr,
                        flush=True,
                    )
        return out


def role_var(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("mlflow_server_"):
        raise argparse.ArgumentTypeError(f"not mlflow_server_NAME=VALUE: {text!r}")
    return name, yaml.safe_load(value)


def _configs(text: str) -> list[str]:
    configs = [word for word in text.split(",") if word]
    if not configs or set(configs) - set(CONFIGS):
        raise argparse.ArgumentTypeError(f"choose from {CONFIGS}: {text!r}")
    return configs


def _levels(text: str) -> list[int]:
    try:
        levels = [int(word) for word in text.split(",") if word]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of client counts: {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"client counts must be >= 1: {text!r}")
    return levels


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose the servers and databases (also benchmarks/cpu_per_request.py's)."""
    parser.add_argument(
        "--max-connections",
        type=int,
        default=0,
        help="max_connections of the database servers (default: the database role's database_max_connections)",
    )
    parser.add_argument(
        "--role-var",
        type=role_var,
        action="append",
        default=[],
        metavar="mlflow_server_NAME=VALUE",
        help="a role variable for the role's server (repeatable), e.g. mlflow_server_request_concurrency=4",
    )
    parser.add_argument(
        "--configs", type=_configs, default=list(CONFIGS), help="role,defaults (default both; one to tune)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks tracking_server", description=__doc__.split("\n", maxsplit=1)[0]
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=20,
        help="measuring window per workload and configuration, split over the rounds (default 20)",
    )
    parser.add_argument(
        "--ramp", type=float, default=3, help="seconds of each round before its window opens (default 3)"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    parser.add_argument(
        "--sweep",
        type=_levels,
        nargs="?",
        const=[8, 32, 64, 128],
        default=None,
        help="client counts to measure in one run, comma-separated (default with no value: 8,32,64,128);"
        " replaces --concurrency",
    )
    parser.add_argument("--batch-size", type=int, default=100, help="metrics per log-batch request (default 100)")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="postgresql,mysql (default both)")
    parser.add_argument(
        "--warmup", type=float, default=3, help="unmeasured seconds of each workload before its rounds (default 3)"
    )
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds per workload (default 6)")
    add_server_arguments(parser)
    args = parser.parse_args(argv)
    args.role_vars = dict(args.role_var)
    backends = [b for b in args.backends.split(",") if b]
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        parser.error(f"--backends: unknown {sorted(unknown)}; choose from {BACKENDS}")
    levels = args.sweep or [args.concurrency]

    # SIGTERM ends the run like Ctrl-C: the servers and databases started are stopped and removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load_before = os.getloadavg()
    results: list[Measurement] = []
    for backend in backends:
        results += measure_backend(backend, levels, args)
    rat = ratios(results)
    print(table(results, rat))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = RESULTS / f"tracking_server-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "settings": vars(args),
                "cpus": os.cpu_count(),
                "load_average_before": load_before,
                "load_average_before_report": os.getloadavg(),
                "results": [asdict(m) for m in results],
                "ratios": rat,
            },
            indent=2,
        )
    )
    print(f"\nwritten to {out.relative_to(ROOT)}")
    return 1 if any(m.errors for m in results if m.config == "role") else 0


if __name__ == "__main__":
    sys.exit(main())
