"""Issue #27 on a real API server: the project namespace the project_runner role prepares.

Real pods, real Pod Security admission (the API server's PodSecurity plugin, enforcing the
labels the role puts on the namespace), a real MLflow server with basic auth (on loopback,
started here: the controller is all that talks to it) and real Secrets:

- a pod below "restricted" is refused in the project namespace (and the same pod is admitted,
  in a server-side dry run, in a namespace without the labels); a Job whose template is below
  it is created but gets no pod (FailedCreate naming PodSecurity);
- a Job rendered from the role's default template, as mlflow_project_job renders it, is
  admitted, runs to Complete as uid/gid 1000 with a writable HOME and a root filesystem it
  cannot write; its variant with the code-fetching init container is admitted (dry run);
- host volumes need project_runner_pod_security=privileged, given explicitly, and the role
  says the level is weaker than restricted;
- with basic auth, the project pods' MLflow user is created (not an admin), its password is
  generated once into a Secret of the project namespace and never rotated, set again in MLflow
  when MLflow lost it, no Secret of the project namespace holds the admin's password, EDIT on
  one experiment lets the user create runs there only, and teardown removes the Secret (the
  user only with purge).

Not shown here: what the NetworkPolicy admits. The rig's CNI does not enforce NetworkPolicy
(tests/manifests/test_project_runner_security.py proves the policy on rendered manifests); here
the API server only accepts it.
"""

from __future__ import annotations

import base64
import datetime
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client as k8s_client
from kubernetes import watch
from kubernetes.client.rest import ApiException

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import job as job_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import snapshot_job, tracking
from tests.cluster.conftest import WAIT_TIMEOUT, watch_until
from tests.harness.mlflow_server import start_server

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
# No CPU request: the node's 2 cores are shared with every other test (tests/cluster/test_project_job.py).
SMALL = {"requests": {"cpu": "0", "memory": "16Mi"}}
ADMIN = ("admin", "admin-password-of-the-platform")
RUNNER_SECRET = "mlflow-project-tracking"
# Prints its uid and gid, writes and reads HOME, and tries the root filesystem.
PROBE = (
    'id -u; id -g; echo home-ok > "$HOME/probe" && cat "$HOME/probe"; '
    "touch /probe 2>/dev/null && echo root-rw || echo root-ro"
)


def _role_play(role_vars: dict[str, Any], *, tasks_from: str | None = None) -> list[dict[str, Any]]:
    """A play that runs the role (or one of its entry points) and reports what it handed on."""
    include: dict[str, Any] = {"name": "mlops.mlflow_k8s.project_runner", "public": True}
    if tasks_from:
        include["tasks_from"] = tasks_from
    tasks: list[dict[str, Any]] = [{"name": "Run the role", "ansible.builtin.include_role": include}]
    if not tasks_from:
        tasks.append(
            {"name": "Report the Job template", "ansible.builtin.debug": {"var": "project_runner_job_template"}}
        )
    return [
        {
            "name": "The project runner",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": sys.executable, **role_vars},
            "tasks": tasks,
        }
    ]


def _bad_pod(name: str, image: str) -> dict[str, Any]:
    """A pod as an MLproject's author might like it: root, default capabilities, no seccomp."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": image, "command": ["true"]}]},
    }


def _rendered_job(template: dict[str, Any], image: str, command: list[str]) -> dict[str, Any]:
    """The role's template as mlflow_project_job renders a run's Job."""
    return job_utils.render_job(
        job_utils.load_template(template),
        name=job_utils.job_name("security-probe", datetime.datetime.now()),
        container_name="security-probe",
        image=image,
        command=command,
        run_env={"MLFLOW_RUN_ID": "0" * 32, "MLFLOW_TRACKING_URI": "http://mlflow:5000", "MLFLOW_EXPERIMENT_ID": "0"},
        labels={job_utils.LABEL_RUN_ID: "0" * 32},
    )


@pytest.fixture
def namespaces(make_namespace) -> Iterator[tuple[str, str]]:
    """(project namespace, platform namespace), both fresh and labelled for the run's cleanup."""
    with make_namespace("projects") as projects, make_namespace("platform") as platform:
        yield projects, platform


def test_project_namespace_admits_only_restricted_pods(playbook, namespaces, k8s, dyn, images):
    projects, platform = namespaces
    core, batch = k8s_client.CoreV1Api(k8s), k8s_client.BatchV1Api(k8s)
    result = playbook(
        _role_play(
            {
                "project_runner_namespace": projects,
                "project_runner_platform_namespace": platform,
                "project_runner_resources": SMALL,
            }
        )
    )
    assert result.rc == 0, result.summary()
    labels = core.read_namespace(projects).metadata.labels
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == "latest"
    # The API server took the NetworkPolicy (whether it is enforced is the CNI's business).
    policy = k8s_client.NetworkingV1Api(k8s).read_namespaced_network_policy("mlflow-project-isolation", projects)
    assert sorted(policy.spec.policy_types) == ["Egress", "Ingress"]
    assert [s.metadata.name for s in core.list_namespaced_secret(projects).items] == []

    # A pod below restricted: refused here by the labels; the same pod passes where there are none.
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(projects, _bad_pod("root-pod", images["busybox"]))
    assert refused.value.status == 403, refused.value.body
    message = json.loads(refused.value.body)["message"]
    assert 'violates PodSecurity "restricted:latest"' in message, message
    core.create_namespaced_pod(platform, _bad_pod("root-pod", images["busybox"]), dry_run="All")

    # A Job below restricted is stored, but its controller cannot create a pod.
    template = result.task("Report the Job template").result["project_runner_job_template"]
    bad_job = _rendered_job(template, images["busybox"], ["true"])
    bad_spec = bad_job["spec"]["template"]["spec"]
    del bad_spec["securityContext"]
    del bad_spec["containers"][0]["securityContext"]
    bad_job["metadata"]["name"] = "below-restricted"
    batch.create_namespaced_job(projects, bad_job)
    refusal = None
    for event in watch.Watch().stream(
        core.list_namespaced_event,
        projects,
        field_selector="involvedObject.name=below-restricted",
        timeout_seconds=int(WAIT_TIMEOUT),
    ):
        if event["object"].reason == "FailedCreate":
            refusal = event["object"].message
            break
    assert refusal and "violates PodSecurity" in refusal, refusal
    assert core.list_namespaced_pod(projects, label_selector="job-name=below-restricted").items == []

    # The default template: admitted, and the pod runs to the end as the template's user.
    job = _rendered_job(template, images["busybox"], ["sh", "-c", PROBE])
    name = job["metadata"]["name"]
    batch.create_namespaced_job(projects, job)
    done = watch_until(
        dyn,
        "batch/v1",
        "Job",
        projects,
        name,
        lambda obj: obj is not None and job_utils.job_state(obj) in ("Complete", "Failed"),
    )
    (pod,) = core.list_namespaced_pod(projects, label_selector=f"job-name={name}").items
    log = core.read_namespaced_pod_log(pod.metadata.name, projects)
    assert job_utils.job_state(done) == "Complete", (done.get("status"), log)
    assert log.split() == ["1000", "1000", "home-ok", "root-ro"], log
    assert pod.spec.security_context.run_as_non_root is True
    assert pod.spec.security_context.seccomp_profile.type == "RuntimeDefault"
    assert pod.spec.automount_service_account_token is False

    # With the init container that fetches the code (the default delivery): admitted too.
    secret = snapshot_job.auth_secret(RUNNER_SECRET)
    delivered = snapshot_job.add_code_delivery(job, "http://mlflow:5000/code.tar.gz", "0" * 64, secret)
    pod_body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "code-delivery", "labels": delivered["spec"]["template"]["metadata"]["labels"]},
        "spec": delivered["spec"]["template"]["spec"],
    }
    core.create_namespaced_pod(projects, pod_body, dry_run="All")


def test_host_volumes_need_privileged_given_explicitly(playbook, namespaces, k8s, tmp_path):
    projects, platform = namespaces
    project = tmp_path / "volumes"
    project.mkdir()
    (project / "MLproject").write_text(
        "name: volumes\ndocker_env:\n  image: busybox:1.37.0\n  volumes: ['/srv/data:/data']\n"
        "entry_points:\n  main:\n    command: ls /data\n"
    )
    refused = playbook(
        ROOT / "playbooks" / "run_project.yml",
        extra_vars={
            "project_uri": str(project),
            "project_host_path_allow": ["/srv/data"],
            "project_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "project_runner_namespace": projects,
            "project_runner_platform_namespace": platform,
        },
    )
    assert refused.rc != 0
    failed = refused.task("Check that host volumes come with a namespace that admits them")
    assert failed.failed and "project_runner_pod_security=privileged" in failed.msg, failed.msg
    assert "pod-security.kubernetes.io/enforce" not in (
        k8s_client.CoreV1Api(k8s).read_namespace(projects).metadata.labels
    )

    privileged = playbook(
        _role_play(
            {
                "project_runner_namespace": projects,
                "project_runner_platform_namespace": platform,
                "project_runner_pod_security": "privileged",
            }
        )
    )
    assert privileged.rc == 0, privileged.summary()
    warning = privileged.task("Say that the project namespace is below Pod Security restricted").msg
    assert warning.startswith("WARNING: project_runner_pod_security is privileged, weaker than restricted"), warning
    labels = k8s_client.CoreV1Api(k8s).read_namespace(projects).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"


# -- Basic auth -----------------------------------------------------------------------------------


@pytest.fixture
def auth_server() -> Iterator[str]:
    """A real `mlflow server --app-name basic-auth` on loopback (SQLite stores), admin ADMIN."""
    work = Path(tempfile.mkdtemp(prefix="mlflow-auth-"))
    config = work / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{work / 'auth.db'}\n"
        f"admin_username = {ADMIN[0]}\n"
        f"admin_password = {ADMIN[1]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
        encoding="utf-8",
    )
    server = start_server(
        f"sqlite:///{work / 'mlflow.db'}",
        args=["--app-name", "basic-auth"],
        workdir=work,
        env={"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_FLASK_SERVER_SECRET_KEY": "k" * 32},
    )
    try:
        yield server.url
    finally:
        server.stop()


def _secret_values(core, namespace: str, name: str) -> dict[str, str]:
    secret = core.read_namespaced_secret(name, namespace)
    return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}


def _user(url: str, username: str, auth: tuple[str, str]) -> requests.Response:
    return requests.get(f"{url}/api/2.0/mlflow/users/get", params={"username": username}, auth=auth, timeout=30)


def test_project_pods_get_an_mlflow_user_of_their_own(playbook, namespaces, k8s, auth_server, monkeypatch):
    projects, platform = namespaces
    core = k8s_client.CoreV1Api(k8s)
    core.create_namespaced_secret(
        platform,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "mlflow-server-auth"},
            "stringData": {"admin-username": ADMIN[0], "admin-password": ADMIN[1], "flask-secret-key": "k" * 32},
        },
    )
    role_vars = {
        "project_runner_namespace": projects,
        "project_runner_platform_namespace": platform,
        "project_runner_auth_enabled": True,
        "project_runner_tracking_uri": auth_server,
    }
    first = playbook(_role_play(role_vars))
    assert first.rc == 0, first.summary()
    username = f"runner-{projects}"
    credentials = _secret_values(core, projects, RUNNER_SECRET)
    assert credentials["username"] == username and len(credentials["password"]) == 32
    login = _user(auth_server, username, (username, credentials["password"]))
    assert login.status_code == 200, login.text
    assert login.json()["user"]["is_admin"] is False
    # The admin's credentials never reach the project namespace.
    for secret in core.list_namespaced_secret(projects).items:
        values = [base64.b64decode(v).decode(errors="replace") for v in (secret.data or {}).values()]
        assert ADMIN[1] not in values, secret.metadata.name
    version = core.read_namespaced_secret(RUNNER_SECRET, projects).metadata.resource_version

    again = playbook(_role_play(role_vars))
    assert again.rc == 0 and again.changed == 0, again.summary()
    assert core.read_namespaced_secret(RUNNER_SECRET, projects).metadata.resource_version == version

    # MLflow lost the password (an admin changed it): the Secret's is set again, never a new one.
    changed = requests.patch(
        f"{auth_server}/api/2.0/mlflow/users/update-password",
        json={"username": username, "password": "another-password-entirely"},
        auth=ADMIN,
        timeout=30,
    )
    assert changed.status_code == 200, changed.text
    repaired = playbook(_role_play(role_vars))
    assert repaired.rc == 0, repaired.summary()
    assert [t.name.split(" : ")[-1] for t in repaired.changed_tasks()] == [
        "Set the project runner's MLflow password from its Secret"
    ]
    assert _user(auth_server, username, (username, credentials["password"])).status_code == 200
    assert core.read_namespaced_secret(RUNNER_SECRET, projects).metadata.resource_version == version

    # EDIT on one experiment, granted with the operator's (admin's) credentials: runs there only.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    tracker = tracking.Tracker(auth_server)
    granted, other = tracker.experiment_id("granted"), tracker.experiment_id("not-granted")
    assert tracker.grant_experiment_permission(username, granted) is True
    assert tracker.grant_experiment_permission(username, granted) is False
    as_runner = (username, credentials["password"])
    for experiment, expected in ((granted, 200), (other, 403)):
        created = requests.post(
            f"{auth_server}/api/2.0/mlflow/runs/create", json={"experiment_id": experiment}, auth=as_runner, timeout=30
        )
        assert created.status_code == expected, (experiment, created.text)

    # Teardown: the NetworkPolicy and the Secret go, the MLflow user stays (no purge).
    teardown_vars = {k: v for k, v in role_vars.items() if k != "project_runner_auth_enabled"}
    kept = playbook(_role_play(teardown_vars, tasks_from="teardown"))
    assert kept.rc == 0, kept.summary()
    assert [s.metadata.name for s in core.list_namespaced_secret(projects).items] == []
    assert k8s_client.NetworkingV1Api(k8s).list_namespaced_network_policy(projects).items == []
    assert _user(auth_server, username, ADMIN).status_code == 200

    # The next run makes a new password and sets it in MLflow for the user that stayed.
    renewed = playbook(_role_play(role_vars))
    assert renewed.rc == 0, renewed.summary()
    new = _secret_values(core, projects, RUNNER_SECRET)
    assert new["password"] != credentials["password"]
    assert _user(auth_server, username, (username, new["password"])).status_code == 200

    purged = playbook(_role_play({**teardown_vars, "project_runner_purge": True}, tasks_from="teardown"))
    assert purged.rc == 0, purged.summary()
    assert _user(auth_server, username, ADMIN).status_code == 404
    assert [s.metadata.name for s in core.list_namespaced_secret(projects).items] == []
