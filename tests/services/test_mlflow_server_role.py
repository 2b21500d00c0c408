"""The mlflow_server role's server, exactly as rendered, on the real PostgreSQL and MariaDB.

The role's Deployment is rendered by a real ansible-playbook (tasks/manifests.yml). Its server
container's args and env (secretKeyRef resolved to the real backend URI of the fixture) start a
real ``mlflow server``; its init containers' commands run as they would in the pod. The role's
own smoke tasks (tasks/smoke.yml) then run against the server, and the Host check is probed:
a Host header the role allowed gets through, any other gets 403.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import mlflow
import pytest
import requests
import sqlalchemy
import yaml
from mlflow.entities import Metric
from selenium.common.exceptions import TimeoutException

from benchmarks import _role
from tests.harness.mlflow_server import (
    Server,
    free_port,
    fresh_database,
    group_members,
    wait_for_health,
)
from tests.harness.playbook import run_playbook
from tests.harness.role_files import role_file

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.services

NODE_ADDRESS = "10.20.30.40"
NODE_PORT = 30777
URI_SECRET = ("mlflow-database-uri", "uri")
AUTH_URI_SECRET = ("mlflow-auth-uri", "uri")
AUTH_SECRET = "mlflow-server-auth"


@pytest.fixture
def rendered_server(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start a rendered ``mlflow server`` argv as it is (bound where its ``--host``/``--port`` say,
    which the harness's ``mlflow_server`` fixture would replace) and wait for its /health, which
    lives below ``--static-prefix`` when there is one. Returns the server's base URL."""
    started: list[Server] = []

    def start(argv: list[str], env: dict[str, str], prefix: str = "") -> str:
        host, port = argv[argv.index("--host") + 1], int(argv[argv.index("--port") + 1])
        log_path = tmp_path / "server.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                argv,
                cwd=tmp_path,
                env=_role.base_env(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://{host}:{port}"
        server = Server(url, port, process, log_path, tmp_path, tmp_path / "artifacts", env["MLFLOW_BACKEND_STORE_URI"])
        started.append(server)
        wait_for_health(url + prefix, process=process, log_path=log_path, secret_source=server.backend_uri)
        return url

    start.started = started  # the servers, for a test that looks at their processes
    yield start
    for server in started:
        server.stop()


def _role_vars(tmp_path: Path, port: int, **extra: object) -> dict[str, object]:
    (tmp_path / "artifacts").mkdir(exist_ok=True)
    return {
        "mlflow_server_port": port,
        "mlflow_server_artifacts_mount_path": str(tmp_path / "artifacts"),
        "mlflow_server_auth_config_dir": str(tmp_path),
        # the admission gate's ConfigMap volume is written there (benchmarks/_role.py), as the kubelet would
        "mlflow_server_admission_gate_mount_path": str(tmp_path / "admission-gate"),
        "mlflow_server_node_port": NODE_PORT,
        "cluster_node_addresses": [NODE_ADDRESS],
        **extra,
    }


def _run_init(manifests: list[dict], name: str, secret_values: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    argv, env = _role.init_command(manifests, name, secret_values)
    return subprocess.run(
        argv, cwd=tmp_path, env=_role.base_env(env), capture_output=True, text=True, timeout=300, check=False
    )


def _smoke(base_url: str, **extra_vars: object):
    play = [
        {
            "name": "Smoke-check a running MLflow server with the role's tasks",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Run the role's smoke check",
                    "ansible.builtin.include_role": {"name": "mlops.mlflow_k8s.mlflow_server", "tasks_from": "smoke"},
                }
            ],
        }
    ]
    return run_playbook(
        play,
        extra_vars={
            "mlflow_server_smoke_url": base_url,
            "mlflow_server_url": base_url,
            "mlflow_server_smoke_retries": 3,
            **extra_vars,
        },
        timeout=300,
    )


@pytest.fixture
def auth_database(services: dict[str, str]) -> Iterator[str]:
    """A second fresh PostgreSQL database, for the basic-auth store."""
    with fresh_database("postgresql", services) as uri:
        yield uri


# Not marked controller: what ansible-core renders is checked on both lines by the manifests
# suite; starting the rendered server is the same on either.
def test_rendered_basic_auth_server_behind_a_static_prefix(
    postgres_backend_uri: str, auth_database: str, rendered_server: Callable[..., str], tmp_path: Path
) -> None:
    port = free_port()
    manifests = _role.render_manifests(
        _role_vars(
            tmp_path,
            port,
            mlflow_server_expose="ingress",
            mlflow_server_ingress_host="mlflow.example.org",
            mlflow_server_ingress_path="/mlflow",
            mlflow_server_auth_enabled=True,
            database_auth_uri_secret_name=AUTH_URI_SECRET[0],
            database_auth_uri_secret_key=AUTH_URI_SECRET[1],
        )
    )
    password = secrets.token_urlsafe(24)
    secret_values = {
        URI_SECRET: postgres_backend_uri,
        AUTH_URI_SECRET: auth_database,
        (AUTH_SECRET, "admin-username"): "admin",
        (AUTH_SECRET, "admin-password"): password,
        (AUTH_SECRET, "flask-secret-key"): secrets.token_hex(24),
    }
    assert password not in str(manifests)

    for init in ("db-upgrade", "auth-config"):
        done = _run_init(manifests, init, secret_values, tmp_path)
        assert done.returncode == 0, (init, done.stdout + done.stderr)
    ini = tmp_path / "basic_auth.ini"
    assert oct(ini.stat().st_mode & 0o777) == "0o600"
    # The init container created the auth schema and the admin, once, before any worker starts:
    # behind the admission gate `mlflow server` does not (it does only for --app-name basic-auth),
    # and two workers must not race for it.
    assert _auth_users(auth_database) == ["admin"]
    again = _run_init(manifests, "auth-config", secret_values, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr

    argv, env = _role.server_command(manifests, secret_values)
    assert argv[argv.index("--static-prefix") + 1] == "/mlflow"
    # basic auth's app behind the admission gate, loaded from the ConfigMap's entry point
    assert argv[argv.index("--app-name") + 1] == "admission-gate-basic-auth"
    assert env["PYTHONPATH"] == str(tmp_path / "admission-gate")
    url = rendered_server(argv, env, "/mlflow")
    base = f"{url}/mlflow"
    search = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
    host = {"Host": "mlflow.example.org"}
    assert requests.get(search, headers=host, timeout=30).status_code == 401
    assert requests.get(search, headers=host, auth=("admin", "wrong-password"), timeout=30).status_code == 401
    assert requests.get(search, headers=host, auth=("admin", password), timeout=30).status_code == 200
    assert requests.get(search, headers={"Host": "other.example.org"}, timeout=30).status_code == 403
    # The UI's POSTs from the Ingress origin pass the CORS check; other origins get 403.
    runs_search = f"{base}/ajax-api/2.0/mlflow/runs/search"
    for origin, status in (("http://mlflow.example.org", 200), ("http://evil.example.org", 403)):
        resp = requests.post(
            runs_search,
            headers={**host, "Origin": origin},
            auth=("admin", password),
            json={"experiment_ids": ["0"]},
            timeout=30,
        )
        assert resp.status_code == status, (origin, resp.status_code, resp.text[:200])

    done = _smoke(
        base,
        mlflow_server_smoke_host="mlflow.example.org",
        mlflow_server_auth_enabled=True,
        mlflow_server_auth_admin_user="admin",
        mlflow_server_auth_admin_password=password,
    )
    assert done.rc == 0, done.summary()
    assert done.changed == 0, done.summary()
    # One admin, in the auth store's own database, after two workers started.
    assert _auth_users(auth_database) == ["admin"]

    # The read-back of restore.yml/upgrade.yml (tasks/read_runs.yml) logs in as the admin too;
    # the password is in none of its output, and a wrong one is refused.
    read = _read_runs(base, password, expected=1)
    assert read.rc == 0, read.summary()
    assert read.task("mlops.mlflow_k8s.mlflow_server : List their runs").result["json"]["runs"]
    assert password not in read.stdout
    refused = _read_runs(base, "wrong-password", expected=1)
    assert refused.rc != 0 and refused.failed_tasks()[0].result.get("status") == 401, refused.summary()
    # upgrade.yml's read-back also asks /version: the release asked for passes, another fails
    # naming the image (an image written out with its own release upgrades nothing).
    same = _read_runs(base, password, expected=1, mlflow_server_read_runs_version=mlflow.__version__)
    assert same.rc == 0, same.summary()
    other = _read_runs(
        base, password, expected=1, mlflow_server_read_runs_version="3.0.0", mlflow_server_image="example/mlflow:pinned"
    )
    assert other.rc != 0, other.summary()
    message = other.failed_tasks()[0].msg
    assert f"/version {mlflow.__version__}, not 3.0.0" in message and "example/mlflow:pinned" in message, message


def _auth_users(uri: str) -> list[str]:
    engine = sqlalchemy.create_engine(uri)
    try:
        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text("SELECT username FROM users")).scalars().all()
    finally:
        engine.dispose()


def _read_runs(base: str, password: str, expected: int, **extra_vars: object):
    play = [
        {
            "name": "Read the runs back with the role's tasks",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Read the runs",
                    "ansible.builtin.include_role": {
                        "name": "mlops.mlflow_k8s.mlflow_server",
                        "tasks_from": "read_runs",
                    },
                }
            ],
        }
    ]
    return run_playbook(
        play,
        extra_vars={
            "mlflow_server_smoke_url": base,
            "mlflow_server_smoke_host": "mlflow.example.org",
            "mlflow_server_smoke_retries": 1,
            "mlflow_server_auth_enabled": True,
            "mlflow_server_auth_admin_user": "admin",
            "mlflow_server_auth_admin_password": password,
            "mlflow_server_read_runs_expected": expected,
            **extra_vars,
        },
        timeout=300,
    )


# --------------------------------------------------------------------------- the UI in a browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# Not loopback's 127.0.0.1: MLflow lets any localhost origin through, a node address it must be told.
UI_ADDRESS = "127.0.0.2"
# The UI asks whether basic auth is on; a server without it answers 404 (on every origin, localhost too).
UI_EXPECTED_ERRORS = {("GET", "/ajax-api/2.0/mlflow/users/current", 404)}
# MLflow 3.18's UI also asks its assistant panel (which the role does not set up: no provider) for
# its settings. Once, in CI, that answered 500; it did not happen again in runs here. Such an answer
# is MLflow's own only when the server logged the exception and its innermost frame is MLflow's,
# not the admission gate's (upstream_assistant_errors); anything else still fails the test.
UI_ASSISTANT_PREFIX = "/ajax-api/3.0/mlflow/assistant/"
ASGI_EXCEPTION = "Exception in ASGI application"


def upstream_assistant_errors(responses: list[dict], server_log: str) -> tuple[list[dict], str]:
    """The 5xx answers of MLflow's assistant endpoints that MLflow's own code raised, and why the
    others are not: each must have an ASGI exception in ``server_log`` whose last frame is in the
    ``mlflow`` package (every traceback passes through the gate, which wraps the app, so only the
    innermost frame tells whose code failed)."""
    assistant = [r for r in responses if r["status"] >= 500 and urlsplit(r["url"]).path.startswith(UI_ASSISTANT_PREFIX)]
    if not assistant:
        return [], ""
    tracebacks = server_log.split(ASGI_EXCEPTION)[1:]
    innermost = [re.findall(r'File "([^"]+)"', tb)[-1:] for tb in tracebacks]
    if not tracebacks or len(tracebacks) < len(assistant):
        return [], f"{len(assistant)} assistant 5xx answers, {len(tracebacks)} ASGI exceptions logged"
    ours = [frame for frame in innermost if not frame or "/site-packages/mlflow/" not in frame[0]]
    if ours:
        return [], f"an ASGI exception ends outside MLflow: {ours}"
    return assistant, ""


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[object]:
    """Headless Debian chromium driven through /usr/bin/chromedriver (no browser download), with
    a fresh profile, its network and console logs recorded; skipped only when they are missing."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.skip(
            "the UI test needs Debian's chromium and chromium-driver"
            f" (apt-get install chromium chromium-driver): {missing} missing"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-proxy-server",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _network_log(driver: object) -> tuple[list[dict], list[dict]]:
    """The browser's responses (url, method, status) and failed loads, from the DevTools network log."""
    requests_by_id: dict[str, dict] = {}
    responses, failures = [], []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent":
            requests_by_id[params["requestId"]] = params["request"]
        elif message["method"] == "Network.responseReceived":
            request = requests_by_id.get(params["requestId"], {})
            responses.append(
                {
                    "url": params["response"]["url"],
                    "method": request.get("method"),
                    "status": params["response"]["status"],
                }
            )
        elif message["method"] == "Network.loadingFailed":
            request = requests_by_id.get(params["requestId"], {})
            failures.append(
                {
                    "url": request.get("url"),
                    "error": params.get("errorText"),
                    "canceled": params.get("canceled"),
                    "type": params.get("type"),
                    "id": params["requestId"],
                }
            )
    return responses, failures


def test_only_mlflows_own_assistant_errors_are_let_through() -> None:
    """The UI test lets a 5xx of the assistant endpoints through only when the server logged an
    exception that ended in MLflow's code; one ending in the gate, or none at all, still fails it."""
    answer = {"url": "http://127.0.0.2:1/ajax-api/3.0/mlflow/assistant/config", "method": "GET", "status": 500}
    runs = {"url": "http://127.0.0.2:1/ajax-api/2.0/mlflow/runs/search", "method": "POST", "status": 500}

    def log(innermost: str) -> str:
        return (
            f"INFO: started\nERROR: {ASGI_EXCEPTION}\nTraceback (most recent call last):\n"
            '  File "/srv/admission-gate/mlflow_k8s_admission.py", line 402, in __call__\n'
            f'  File "{innermost}", line 9, in get_config\nOSError: boom\n'
        )

    mlflows = "/venv/lib/python3.13/site-packages/mlflow/server/assistant/api.py"
    assert upstream_assistant_errors([answer, runs], log(mlflows)) == ([answer], "")
    assert upstream_assistant_errors([runs], log(mlflows)) == ([], "")
    kept, why = upstream_assistant_errors([answer], log("/srv/admission-gate/mlflow_k8s_admission.py"))
    assert kept == [] and "outside MLflow" in why
    kept, why = upstream_assistant_errors([answer], "INFO: started\n")
    assert kept == [] and "0 ASGI exceptions" in why


def test_ui_runs_page_works_at_the_printed_url(
    postgres_backend_uri: str, rendered_server: Callable[..., str], chromium: object, tmp_path: Path
) -> None:
    """Issue 9 point 1: at the URL the playbook prints (a node address with the NodePort), the
    runs page of the UI shows a logged run and no request fails (MLflow 3 answers the UI's
    POST /ajax-api/2.0/mlflow/runs/search with 403 when its origin is not allowed)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = free_port(UI_ADDRESS)
    # The node address and NodePort are where this server listens: the printed URL reaches it.
    rendered = _role.render(
        _role_vars(tmp_path, port, cluster_node_addresses=[UI_ADDRESS], mlflow_server_node_port=port)
    )
    printed_url = rendered["url"]
    assert printed_url == f"http://{UI_ADDRESS}:{port}"
    argv, env = _role.server_command(rendered["manifests"], {URI_SECRET: postgres_backend_uri}, host=UI_ADDRESS)
    assert rendered_server(argv, env) == printed_url

    client = mlflow.MlflowClient(tracking_uri=printed_url)
    experiment_id = client.create_experiment(f"ui-{secrets.token_hex(4)}")
    run_name = f"ui-run-{secrets.token_hex(4)}"
    run = client.create_run(experiment_id, run_name=run_name)
    client.log_metric(run.info.run_id, "loss", 0.25)
    client.set_terminated(run.info.run_id)

    chromium.get("about:blank")
    chromium.get_log("performance")  # drop the start-up tab's own requests
    chromium.get_log("browser")
    chromium.get(f"{printed_url}/#/experiments/{experiment_id}/runs")
    try:
        WebDriverWait(chromium, 90, poll_frequency=0.5).until(
            lambda d: d.find_elements(By.XPATH, f"//*[contains(text(), '{run_name}')]")
        )
        shown = True
    except TimeoutException:
        shown = False
    responses, failures = _network_log(chromium)
    server_log = rendered_server.started[0].log_path.read_text(errors="replace")
    upstream, not_upstream = upstream_assistant_errors(responses, server_log)
    expected = upstream + [
        r for r in responses if (r["method"], urlsplit(r["url"]).path, r["status"]) in UI_EXPECTED_ERRORS
    ]
    console = [
        e
        for e in chromium.get_log("browser")
        if e["level"] == "SEVERE" and not any(e["message"].startswith(r["url"] + " ") for r in expected)
    ]
    ours = [r for r in responses if r["url"].startswith(printed_url)]
    searches = [r for r in ours if "/ajax-api/2.0/mlflow/runs/search" in r["url"] and r["method"] == "POST"]
    bad = [r for r in responses if r["status"] >= 400 and r not in expected]
    report = f"bad responses {bad}, failed loads {failures}, console errors {console}"
    if bad:
        logged = server_log.split(ASGI_EXCEPTION, 1)[1][-4000:] if ASGI_EXCEPTION in server_log else "none"
        report += f"; {not_upstream}; server exceptions: {logged}"
    assert searches, f"the runs page never searched runs; responses {ours}"
    assert all(r["status"] == 200 for r in searches), report
    assert not bad, report
    assert not [f for f in failures if not f["canceled"]], report
    assert not console, report
    assert shown, f"run {run_name} not in the runs table after 90 s; {report}"


# --------------------------------------------------------------------------- sizing: pool, workers, max_connections


def _render_error(tmp_path: Path, **role_vars: object) -> str:
    with pytest.raises(_role.RenderError) as refused:
        _role.render(_role_vars(tmp_path, 5000, **role_vars))
    return str(refused.value)


@pytest.mark.controller  # runs the role's tasks: .ci/run repeats it on Python 3.11
def test_role_refuses_a_pool_that_can_deadlock_log_batch(tmp_path: Path) -> None:
    # Without the gate: MLflow's old per-worker pool, 10 + 10 for 40 request threads that hold two connections each.
    message = _render_error(
        tmp_path, mlflow_server_admission_gate=False, mlflow_server_db_pool_size=10, mlflow_server_db_max_overflow=10
    )
    assert "mlflow_server_db_pool_size + mlflow_server_db_max_overflow = 10 + 10 = 20" in message, message
    assert "2 connections x 40 request threads per worker (no admission gate) = 80" in message, message
    assert "mlflow_server_db_max_overflow to at least 70" in message, message
    # Behind the gate the pool follows K: 16 requests a worker need 32.
    message = _render_error(
        tmp_path, mlflow_server_request_concurrency=16, mlflow_server_db_pool_size=10, mlflow_server_db_max_overflow=10
    )
    assert "= 10 + 10 = 20 is less than 2 connections x 16 requests per worker" in message, message
    assert "(mlflow_server_request_concurrency, the admission gate) = 32" in message, message
    assert "mlflow_server_db_max_overflow to at least 22, or lower mlflow_server_request_concurrency" in message, (
        message
    )


@pytest.mark.controller  # runs the role's tasks: .ci/run repeats it on Python 3.11
@pytest.mark.parametrize(
    ("role_vars", "expected"),
    [
        ({"mlflow_server_request_concurrency": 41}, "mlflow_server_request_concurrency must be 1..40"),
        ({"mlflow_server_request_concurrency": 0}, "(now 0)"),
        ({"mlflow_server_request_queue_seconds": 0}, "mlflow_server_request_queue_seconds must be 1..60 (now 0)"),
        ({"mlflow_server_request_queue_seconds": 61}, "(now 61)"),
        ({"mlflow_server_keep_alive_seconds": 1}, "mlflow_server_keep_alive_seconds 2..3600 (now 1)"),
        (
            {
                "mlflow_server_auth_enabled": True,
                "database_auth_uri_secret_name": AUTH_URI_SECRET[0],
                "mlflow_server_job_execution": True,
            },
            "mlflow_server_auth_enabled with mlflow_server_job_execution needs mlflow_server_admission_gate=false",
        ),
    ],
)
def test_role_refuses_admission_gate_settings_out_of_range(
    tmp_path: Path, role_vars: dict[str, object], expected: str
) -> None:
    message = _render_error(tmp_path, **role_vars)
    assert expected in message, message


@pytest.mark.controller  # runs the role's tasks: .ci/run repeats it on Python 3.11
@pytest.mark.parametrize("older_than", ["30 days", "--help", "7d1x", "-1d"])
def test_role_refuses_a_gc_age_mlflow_cannot_read(tmp_path: Path, older_than: str) -> None:
    """It goes to `mlflow gc --older-than` as it is, with no shell between: an option-looking or
    malformed value is refused before anything is rendered, naming the variable."""
    message = _render_error(tmp_path, mlflow_server_gc_enabled=True, mlflow_server_gc_older_than=older_than)
    assert "mlflow_server_gc_older_than must be an age in MLflow's #d#h#m#s form" in message, message
    assert f"(now '{older_than}')" in message, message


@pytest.mark.controller  # runs the role's tasks: .ci/run repeats it on Python 3.11
def test_role_refuses_more_connections_than_the_database_accepts(tmp_path: Path) -> None:
    # The database role's fact: a database that accepts 30 connections, a server that may open
    # 3 workers x 2 connections x 4 requests (the gate's K) + 10.
    message = _render_error(tmp_path, database_connection_limit=30)
    assert "1 pods (1 replicas) x 3 workers (mlflow_server_workers) x 8 connections per worker" in message, message
    assert "= 24, plus mlflow_server_db_connection_headroom 10 = 34" in message, message
    assert "max_connections 30" in message and "database_max_connections to at least 34" in message, message
    assert "or mlflow_server_request_concurrency" in message, message
    # Without the gate every request thread may hold two: 3 x 80 + 10.
    message = _render_error(tmp_path, database_connection_limit=100, mlflow_server_admission_gate=False)
    assert "x 80 connections per worker" in message and "= 240, plus" in message, message
    # Basic auth's store has its own engine (one connection per request thread, at most its
    # pool of 20 + 1); a rolling update (ReadWriteMany) runs one pod more than the replicas.
    message = _render_error(
        tmp_path,
        database_connection_limit=200,
        mlflow_server_auth_enabled=True,
        database_auth_uri_secret_name=AUTH_URI_SECRET[0],
        storage_artifacts_access_modes=["ReadWriteMany"],
        mlflow_server_replicas=2,
    )
    assert "3 pods (2 replicas + 1 rolling-update surge) x 3 workers" in message, message
    assert "x 29 connections per worker (8 for the tracking store + 21 for basic auth) = 261" in message, message


@pytest.mark.controller  # runs the role's tasks: .ci/run repeats it on Python 3.11
def test_role_sizing_fits_the_database_role_defaults(tmp_path: Path) -> None:
    defaults = yaml.safe_load((ROOT / "roles" / "database" / "defaults" / "main.yml").read_text())
    limit = int(defaults["database_max_connections"])
    auth = {"mlflow_server_auth_enabled": True, "database_auth_uri_secret_name": AUTH_URI_SECRET[0]}
    for extra, requests_per_worker in (({}, 4), (auth, 4), ({"mlflow_server_admission_gate": False}, 40)):
        manifests = _role.render_manifests(_role_vars(tmp_path, 5000, database_connection_limit=limit, **extra))
        env = {
            e["name"]: e.get("value")
            for e in _role.deployment(manifests)["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        pool = int(env["MLFLOW_SQLALCHEMYSTORE_POOL_SIZE"]) + int(env["MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"])
        assert pool >= 2 * requests_per_worker, (extra, env)
        if requests_per_worker < 40:
            assert env["MLFLOW_K8S_ADMISSION_CONCURRENCY"] == str(requests_per_worker)


def test_rendered_server_serves_more_log_batch_clients_than_request_threads(
    mysql_backend_uri: str, mlflow_server: Callable[..., Server], tmp_path: Path
) -> None:
    """One worker, 44 concurrent log-batch clients: more than its 40 request threads, each
    holding two pooled connections. With a pool below 2 x 40 (MLflow's 5 + 10, or 10 + 10)
    the threads hold one connection each and wait for a second: SQLAlchemy's pool timeout
    fails them after 30 s. With the role's pool every request succeeds; the excess waits its turn."""
    # Without the admission gate (which would queue the excess and shed it with 503): the pool rule alone.
    manifests = _role.render_manifests(
        _role_vars(tmp_path, 5000, mlflow_server_workers=1, mlflow_server_admission_gate=False)
    )
    args, env = _role.server_args_and_env(manifests, {URI_SECRET: mysql_backend_uri})
    assert "--app-name" not in args
    server = mlflow_server(mysql_backend_uri, args=args, env=env)
    experiment = requests.post(
        f"{server.url}/api/2.0/mlflow/experiments/create", json={"name": "pool"}, timeout=60
    ).json()["experiment_id"]
    run_id = requests.post(
        f"{server.url}/api/2.0/mlflow/runs/create", json={"experiment_id": experiment}, timeout=60
    ).json()["run"]["info"]["run_id"]
    clients = 44
    barrier = threading.Barrier(clients)

    def log_batch(client: int) -> list[tuple[int, str]]:
        session = requests.Session()
        barrier.wait()
        answers = []
        for round_no in range(2):
            metrics = [
                {"key": f"m{client}", "value": float(i), "timestamp": 0, "step": round_no * 200 + i} for i in range(200)
            ]
            resp = session.post(
                f"{server.url}/api/2.0/mlflow/runs/log-batch", json={"run_id": run_id, "metrics": metrics}, timeout=300
            )
            answers.append((resp.status_code, resp.text[:200]))
        return answers

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        answers = [a for result in pool.map(log_batch, range(clients)) for a in result]
    failed = [a for a in answers if a[0] != 200]
    assert not failed, f"{len(failed)} of {len(answers)} log-batch requests failed: {failed[:3]}"


# --------------------------------------------------------------------------- the admission gate

GATE_FILE = role_file("mlflow_server", "mlflow_k8s_admission")
LAUNCHER_FILE = role_file("mlflow_server", "mlflow_k8s_exec")


@pytest.mark.controller  # runs the role's tasks: .ci/run repeats it on Python 3.11
def test_rendered_gate_configmap_carries_the_repo_file_and_rolls_the_pods(tmp_path: Path) -> None:
    """The ConfigMap holds files/mlflow_k8s_admission.py as it is, and the dist-info whose
    entry points `mlflow server --app-name` finds; the pod mounts it on PYTHONPATH with K and W
    as env, and its template carries the checksum of that content (new content, new pods)."""
    manifests = _role.render_manifests(
        _role_vars(tmp_path, 5000, mlflow_server_request_concurrency=12, mlflow_server_request_queue_seconds=7)
    )
    config_map = next(m for m in manifests if m["kind"] == "ConfigMap")
    assert config_map["metadata"]["name"] == "mlflow-server-admission-gate"
    assert config_map["data"]["mlflow_k8s_admission.py"] == GATE_FILE.read_text()
    assert "admission-gate = mlflow_k8s_admission:create_app" in config_map["data"]["entry_points.txt"]
    assert [m["kind"] for m in manifests].index("ConfigMap") < [m["kind"] for m in manifests].index("Deployment")
    template = _role.deployment(manifests)["spec"]["template"]
    volume = next(v for v in template["spec"]["volumes"] if v["name"] == "admission-gate")
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    assert {i["path"] for i in volume["configMap"]["items"]} == {
        "mlflow_k8s_admission.py",
        "mlflow_k8s_exec.py",
        "mlflow_k8s_admission-1.0.dist-info/METADATA",
        "mlflow_k8s_admission-1.0.dist-info/entry_points.txt",
    }
    container = template["spec"]["containers"][0]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "admission-gate")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PYTHONPATH"] == mount["mountPath"] and mount["readOnly"] is True
    assert (env["MLFLOW_K8S_ADMISSION_CONCURRENCY"], env["MLFLOW_K8S_ADMISSION_QUEUE_SECONDS"]) == ("12", "7")
    assert container["args"][container["args"].index("--app-name") + 1] == "admission-gate"
    # the launcher from the same volume: uvicorn takes over the `mlflow server` process
    assert config_map["data"]["mlflow_k8s_exec.py"] == LAUNCHER_FILE.read_text()
    assert container["command"] == ["python", "-m", "mlflow_k8s_exec", "server"]
    checksum = template["metadata"]["annotations"]["mlops.mlflow-k8s/admission-gate-checksum"]
    assert checksum == hashlib.sha256(json.dumps(config_map["data"]).encode()).hexdigest()

    # Off: MLflow's own app, no ConfigMap, no volume (the behaviour before the gate).
    off = _role.render_manifests(_role_vars(tmp_path, 5000, mlflow_server_admission_gate=False))
    assert "ConfigMap" not in [m["kind"] for m in off]
    template = _role.deployment(off)["spec"]["template"]
    assert "--app-name" not in template["spec"]["containers"][0]["args"]
    assert template["spec"]["containers"][0]["command"] == ["mlflow", "server"]
    assert "admission-gate" not in json.dumps(template)
    # Job execution on: MLflow's job runners need the `mlflow server` process; it stays.
    jobs = _role.render_manifests(_role_vars(tmp_path, 5000, mlflow_server_job_execution=True))
    assert _role.deployment(jobs)["spec"]["template"]["spec"]["containers"][0]["command"] == ["mlflow", "server"]


class _SlowUpload:
    """An artifact upload through the server's proxy that announces ``size`` bytes and sends 1 kB:
    it stays inside MLflow (holding one of the gate's slots) until ``finish``."""

    def __init__(self, url: str, name: str, size: int = 1_000_000) -> None:
        parts = urlsplit(url)
        self.size, self.sent = size, 1024
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=120)
        head = (
            f"PUT /api/2.0/mlflow-artifacts/artifacts/gate/{name}.bin HTTP/1.1\r\n"
            f"Host: {parts.netloc}\r\nContent-Length: {size}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + b"x" * self.sent)

    def status(self) -> tuple[int, dict[str, str]]:
        """The answer's status and headers (read as far as the blank line)."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            data += chunk
        lines = data.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}

    def finish(self) -> int:
        self.sock.sendall(b"x" * (self.size - self.sent))
        try:
            return self.status()[0]
        finally:
            self.sock.close()


def _gated_server(backend_uri: str, rendered_server: Callable[..., str], tmp_path: Path, **role_vars: object) -> str:
    role_vars.setdefault("mlflow_server_workers", 1)
    manifests = _role.render_manifests(_role_vars(tmp_path, free_port(), **role_vars))
    argv, env = _role.server_command(manifests, {URI_SECRET: backend_uri})
    assert argv[argv.index("--app-name") + 1] == "admission-gate"
    return rendered_server(argv, env)


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def test_uvicorn_takes_over_the_mlflow_server_process_and_stops_on_sigterm(
    postgres_backend_uri: str, rendered_server: Callable[..., str], tmp_path: Path
) -> None:
    """The rendered command, `python -m mlflow_k8s_exec server ...` from the ConfigMap's content:
    MLflow's CLI prepares the server, and its process becomes uvicorn's supervisor, the
    container's main process; no `mlflow server` parent stays beside the workers holding a
    worker's memory. It serves, and SIGTERM to that one process (what the kubelet sends) stops
    every worker and it exits 0."""
    manifests = _role.render_manifests(_role_vars(tmp_path, free_port(), mlflow_server_workers=2))
    argv, env = _role.server_command(manifests, {URI_SECRET: postgres_backend_uri})
    assert argv[1:4] == ["-m", "mlflow_k8s_exec", "server"]
    url = rendered_server(argv, env)
    server = rendered_server.started[-1]
    pid = server.process.pid

    main = _cmdline(pid)
    assert main[1:3] == ["-m", "uvicorn"], main
    assert "mlflow_k8s_admission:create_app" in main
    members = group_members(pid)
    commands = {member: " ".join(_cmdline(member)) for member in members}
    assert not [c for c in commands.values() if "mlflow_k8s_exec" in c or "mlflow server" in c], commands
    workers = {member for member, c in commands.items() if "multiprocessing.spawn" in c}
    # the supervisor, multiprocessing's resource tracker and the two workers: nothing else
    assert len(workers) == 2 and len(members) == 4, commands
    search = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(search, timeout=30).status_code == 200

    os.kill(pid, signal.SIGTERM)
    assert server.process.wait(timeout=60) == 0, server.log_tail()
    # uvicorn joins its workers before it exits: none may be left once the supervisor is gone
    assert not workers & group_members(pid), "workers outlived the supervisor"
    # the resource tracker leaves on its own when it reads EOF from the supervisor's pipe, a moment
    # later (in a pod the kernel would end it with PID 1 anyway); it must not linger
    deadline = time.monotonic() + 10
    while (left := group_members(pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, {member: commands.get(member) for member in left}


def test_gate_holds_at_most_k_and_sheds_the_rest_fast_with_retry_after(
    postgres_backend_uri: str, rendered_server: Callable[..., str], tmp_path: Path
) -> None:
    """The rendered server with the gate loaded through --app-name from the ConfigMap's content
    (written as the volume would be, PYTHONPATH as the pod sets it), one worker, K = 2, W = 2 s:
    two slow uploads take both slots; a third request waits W and gets 503 with Retry-After and
    MLflow's error body, never a 30 s hang; /health answers meanwhile; when the uploads finish,
    requests go through again."""
    queue_seconds = 2
    url = _gated_server(
        postgres_backend_uri,
        rendered_server,
        tmp_path,
        mlflow_server_request_concurrency=2,
        mlflow_server_request_queue_seconds=queue_seconds,
    )
    search = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(search, timeout=30).status_code == 200
    held = [_SlowUpload(url, f"held-{i}") for i in range(2)]
    # A third upload queues behind them and is shed after W: at most K inside at once.
    third = _SlowUpload(url, "third")
    began = time.monotonic()
    status, headers = third.status()
    waited = time.monotonic() - began
    third.sock.close()
    assert status == 503, (status, headers)
    assert int(headers["retry-after"]) >= 1
    assert waited < queue_seconds + 30, f"the shed answer took {waited:.1f} s"  # loose: not a 30 s pool hang

    answer = requests.post(f"{url}/api/2.0/mlflow/experiments/create", json={"name": "shed"}, timeout=60)
    assert answer.status_code == 503, answer.text[:300]
    assert answer.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert int(answer.headers["Retry-After"]) >= 1
    # never held: the probes and the UI
    assert requests.get(f"{url}/health", timeout=30).status_code == 200
    assert requests.get(f"{url}/version", timeout=30).status_code == 200
    assert requests.get(f"{url}/", timeout=30).status_code == 200

    assert [upload.finish() for upload in held] == [200, 200]
    assert requests.get(search, timeout=30).status_code == 200
    # the shed create never reached MLflow
    assert (
        requests.get(f"{url}/api/2.0/mlflow/experiments/get-by-name?experiment_name=shed", timeout=30).status_code
        == 404
    )


@pytest.fixture
def one_slot_server(
    postgres_backend_uri: str,
    rendered_server: Callable[..., str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[str, mlflow.MlflowClient, str, Callable[[], int]]:
    """The gated server with one worker, K = 1 and W = 1 s; an MlflowClient with its default
    retries and a run of it; a count of the retries urllib3 has logged."""
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER"):
        monkeypatch.delenv(name, raising=False)
    url = _gated_server(
        postgres_backend_uri,
        rendered_server,
        tmp_path,
        mlflow_server_request_concurrency=1,
        mlflow_server_request_queue_seconds=1,
    )
    client = mlflow.MlflowClient(tracking_uri=url)
    run_id = client.create_run(client.create_experiment(f"gate-{secrets.token_hex(4)}")).info.run_id
    caplog.set_level(logging.DEBUG, logger="urllib3")

    def retried() -> int:
        return sum("Incremented Retry" in r.getMessage() for r in caplog.records)

    return url, client, run_id, retried


def test_mlflow_client_with_default_retries_completes_every_call_behind_a_full_gate(
    one_slot_server: tuple[str, mlflow.MlflowClient, str, Callable[[], int]],
) -> None:
    """K = 1, W = 1 s, one worker, its slot held by a slow upload: eight MlflowClient().log_batch
    callers are shed with 503 + Retry-After, MLflow's client (its default 7 retries, Retry-After
    honoured, POST retried) sleeps and retries, and once the slot is free every call completes."""
    url, client, run_id, retried = one_slot_server
    holder = _SlowUpload(url, "holder")
    callers = 8

    def log(caller: int) -> None:
        for step in range(2):
            metrics = [Metric(f"m{caller}", float(i), 0, step * 100 + i) for i in range(100)]
            client.log_batch(run_id, metrics=metrics)

    with concurrent.futures.ThreadPoolExecutor(callers) as pool:
        calls = [pool.submit(log, caller) for caller in range(callers)]
        # the slot stays held until MLflow's client has been shed and retried at least once
        for _poll in range(600):
            if retried() or all(c.done() for c in calls):
                break
            time.sleep(0.1)
        assert holder.finish() == 200
        failures = [c.exception() for c in calls if c.exception() is not None]
    assert not failures, failures[:3]
    assert retried() > 0, "MLflow's client was never shed: the gate did not hold the excess"
    history = client.get_metric_history(run_id, "m0")
    assert len(history) == 200


def test_gate_spreads_keep_alive_connections_over_the_workers(
    postgres_backend_uri: str, rendered_server: Callable[..., str], tmp_path: Path
) -> None:
    """Two workers share one listening socket and whichever accepts first keeps a keep-alive
    connection: eight clients that connect at once tend to land on one worker. Behind the gate a
    worker serving two connections more than the other answers with Connection: close, so the
    clients, reconnecting, end up spread over both, and every call still succeeds. A call the gate
    sheds (503 with Retry-After, when the machine is too busy to serve it in time: CI runs real
    pods beside this) is retried after Retry-After, as MLflow's client does; any other answer
    fails the test."""
    url = _gated_server(postgres_backend_uri, rendered_server, tmp_path, mlflow_server_workers=2)
    port = int(url.rsplit(":", 1)[1])
    search = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    clients = 8
    stop = threading.Event()
    closes, failures, served = [0], [], [0]

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                answer = session.get(search, timeout=30)
                if answer.status_code == 503 and "retry-after" in answer.headers:
                    stop.wait(float(answer.headers["retry-after"]))
                elif answer.status_code != 200:
                    failures.append(answer.status_code)
                else:
                    served[0] += 1
                closes[0] += answer.headers.get("connection", "").lower() == "close"

    threads = [threading.Thread(target=client) for number in range(clients)]
    for thread in threads:
        thread.start()
    try:
        # Until the connections are spread and every client has had an answer (a busy machine
        # serves the first calls late), or 60 s.
        spread, deadline = [], time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.25)
            spread = _role.connections_by_process(port)
            even = len(spread) == 2 and sum(spread) == clients and spread[0] - spread[1] <= 2
            if even and served[0] >= clients:
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not failures, failures[:5]
    assert served[0] >= clients, f"{served[0]} calls served"
    # (how many it let go depends on how the kernel first spread them: 0 when it was even)
    assert len(spread) == 2 and spread[0] - spread[1] <= 2, f"connections per worker: {spread}, let go: {closes[0]}"


def test_mlflow_client_retries_a_shed_call_on_the_same_connection(
    one_slot_server: tuple[str, mlflow.MlflowClient, str, Callable[[], int]],
    tmp_path: Path,
) -> None:
    """The gate queues the retry of a shed call by when the call first came, and it knows the
    retry by its connection (tests/unit/test_admission_gate.py shows the order). This is the real
    half: K = 1, W = 1 s, one worker whose slot a slow upload has held for a while, so Retry-After
    is longer than uvicorn's default 5 s keep-alive; MLflow's client sleeps it and retries, and
    uvicorn's access log shows the 503 and the 200 of that call from the same client port: the
    role's --timeout-keep-alive kept the connection open through the sleep."""
    url, client, run_id, retried = one_slot_server
    holder = _SlowUpload(url, "holder")
    time.sleep(7)  # Retry-After counts the age of the oldest request in flight: above 5 s now
    began = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        call = pool.submit(client.log_batch, run_id, metrics=[Metric("m", 1.0, 0, 0)])
        for _poll in range(600):
            if retried() or call.done():
                break
            time.sleep(0.1)
        assert holder.finish() == 200
        call.result(timeout=120)
    took = time.monotonic() - began
    assert took > 6, f"the call took {took:.1f} s: Retry-After was not above uvicorn's default keep-alive"
    log = (tmp_path / "server.log").read_text()
    batches = [line for line in log.splitlines() if "/api/2.0/mlflow/runs/log-batch" in line]
    statuses = [(line.split(" - ")[0].split()[-1], line.rsplit('"', 1)[-1].split()[0]) for line in batches]
    assert [status for _address, status in statuses] == ["503", "200"], batches
    assert statuses[0][0] == statuses[1][0], f"the retry came on another connection: {batches}"
