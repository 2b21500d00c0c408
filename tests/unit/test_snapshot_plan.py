"""The snapshot way in the Job the runner renders (offline: the Plan touches no network).

Every rendered Job is validated against the OpenAPI schemas of the oldest and newest
Kubernetes we support (tests/manifests/harness.py), init container and volumes included.
"""

import json
import shutil
from pathlib import Path

import pytest

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import job as job_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import snapshot
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ProjectError
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.plan import Plan
from tests.manifests.harness import KUBERNETES_VERSIONS, schema_errors

PROJECTS = Path(__file__).parent / "fixtures" / "projects"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "wine-quality"
URL = "http://mlflow-server.mlflow.svc:5000/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts/mlflow-project/code.tar.gz"


def params(**extra):
    base = {
        "project_uri": str(EXAMPLE),
        "parameters": {"alpha": 0.5},
        "tracking_uri": "http://127.0.0.1:9",
        "job_tracking_uri": "http://mlflow-server.mlflow.svc:5000",
        "snapshot_max_mb": 200,
        "allow_host_volumes": False,
    }
    base.update(extra)
    return base


def render(plan, code_url=URL):
    import datetime

    when = datetime.datetime(2026, 12, 1, 12, 0, 0)
    job = plan.render("r" * 32, "1", plan.base_image, when, code_url=code_url)
    return json.loads(json.dumps(job))


@pytest.fixture
def plan_of():
    made = []

    def make(**extra):
        plan = Plan(params(**extra))
        made.append(plan)
        return plan

    yield make
    for plan in made:
        plan.cleanup()


def _valid(job):
    errors = [e for version in KUBERNETES_VERSIONS for e in schema_errors(job, version)]
    assert errors == []


def test_the_example_runs_on_its_docker_env_image_with_its_code_fetched(plan_of):
    plan = plan_of()
    assert plan.delivery is not None
    assert plan.base_image == plan.project.docker_env["image"]
    job = render(plan)
    _valid(job)
    pod = job["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    main = pod["containers"][0]
    assert init["image"] == main["image"] == plan.project.docker_env["image"]
    assert main["workingDir"] == "/mlflow/projects/code"
    assert main["command"][:2] == ["python", "train.py"]
    env = {e["name"]: e.get("value") for e in init["env"]}
    assert env["MLFLOW_SNAPSHOT_URL"] == URL
    assert env["MLFLOW_SNAPSHOT_SHA256"] == plan.delivery.snapshot.sha256
    assert {"name": "mlflow-project-code", "emptyDir": {}} in pod["volumes"]
    # The packed archive is the project, and is cleaned up with the plan.
    archive = Path(plan.delivery.snapshot.path)
    assert archive.exists() and "train.py" in plan.delivery.snapshot.files
    plan.cleanup()
    assert not archive.exists()


def test_check_mode_url_has_placeholders_and_is_valid(plan_of):
    plan = plan_of()
    job = render(plan, code_url=None)
    _valid(job)
    url = job["spec"]["template"]["spec"]["initContainers"][0]["env"][0]["value"]
    assert url.endswith("/1/<run id>/artifacts/mlflow-project/code.tar.gz")


def test_image_and_build_have_no_init_container(plan_of):
    plan = plan_of(image="registry.local/wine:1")
    assert plan.delivery is None
    job = render(plan)
    assert "initContainers" not in job["spec"]["template"]["spec"]
    assert "workingDir" not in job["spec"]["template"]["spec"]["containers"][0]


def test_base_image_overrides_docker_env(plan_of):
    plan = plan_of(base_image="mirror.local/python:3.12")
    job = render(plan)
    assert job["spec"]["template"]["spec"]["initContainers"][0]["image"] == "mirror.local/python:3.12"
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "mirror.local/python:3.12"


def test_no_docker_env_and_no_base_image_is_named():
    with pytest.raises(Exception) as error:
        Plan(params(project_uri=str(PROJECTS / "no_docker")))
    assert error.value.option == "base_image"


def test_auth_secret_by_reference_in_both_containers(plan_of):
    plan = plan_of(tracking_auth_secret={"name": "mlflow-server-auth", "password_key": "admin-password"})
    job = render(plan)
    _valid(job)
    pod = job["spec"]["template"]["spec"]
    for container in (pod["initContainers"][0], pod["containers"][0]):
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
        assert refs["MLFLOW_TRACKING_PASSWORD"] == {"name": "mlflow-server-auth", "key": "admin-password"}
        assert refs["MLFLOW_TRACKING_USERNAME"] == {"name": "mlflow-server-auth", "key": "username"}


def test_size_limit_fails_the_plan_before_anything(tmp_path):
    project = tmp_path / "wine"
    shutil.copytree(EXAMPLE, project)
    (project / "data" / "big.bin").write_bytes(b"\0" * (2 * 1024 * 1024))
    with pytest.raises(ProjectError) as error:
        Plan(params(project_uri=str(project), snapshot_max_mb=1))
    assert error.value.option == "snapshot_max_mb" and "big.bin" in error.value.message


def test_docker_env_environment_and_volumes(plan_of, monkeypatch):
    extras = str(PROJECTS / "docker_env_extras")
    # A bare name copies the controller's value: only names the operator allows (issue #27).
    with pytest.raises(ProjectError) as error:
        plan_of(project_uri=extras)
    assert error.value.option == "environment_allow" and "DOCKER_ENV_TEST_COPIED" in error.value.message
    allowed = {"environment_allow": ["DOCKER_ENV_TEST_COPIED"]}
    with pytest.raises(ProjectError) as error:
        plan_of(project_uri=extras, **allowed)
    assert error.value.option == "docker_env.environment" and "DOCKER_ENV_TEST_COPIED" in error.value.message
    monkeypatch.setenv("DOCKER_ENV_TEST_COPIED", "copied")
    with pytest.raises(ProjectError) as error:
        plan_of(project_uri=extras, **allowed)
    assert error.value.option == "host_path_allow" and "/srv/data" in error.value.message
    with pytest.raises(ProjectError) as error:
        plan_of(project_uri=extras, host_path_allow=["/srv"], **allowed)
    assert error.value.option == "pod_security"  # hostPath breaks baseline and restricted
    privileged = json.loads(json.dumps(job_utils.DEFAULT_TEMPLATE))
    plan = plan_of(
        project_uri=extras,
        host_path_allow=["/srv"],
        pod_security="privileged",
        job_template=privileged,
        env={"MODE": "from-the-user"},
        **allowed,
    )
    job = render(plan)
    _valid(job)
    pod = job["spec"]["template"]["spec"]
    main = pod["containers"][0]
    env = [(e["name"], e.get("value")) for e in main["env"]]
    # The user's env wins over the MLproject's; MLflow's run variables come last.
    assert env[:2] == [("DOCKER_ENV_TEST_COPIED", "copied"), ("MODE", "from-the-user")]
    assert [name for name, _value in env[-3:]] == ["MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID"]
    assert {"name": "docker-env-volume-0", "hostPath": {"path": "/srv/data"}} in pod["volumes"]
    assert {"name": "docker-env-volume-0", "mountPath": "/data", "readOnly": True} in main["volumeMounts"]


def test_same_content_same_identity(plan_of, tmp_path):
    first = plan_of()
    copy = tmp_path / "wine"
    shutil.copytree(EXAMPLE, copy)
    second = plan_of(project_uri=str(copy))
    assert first.identity == second.identity
    assert first.delivery.snapshot.sha256 == second.delivery.snapshot.sha256
    assert Path(first.delivery.snapshot.path).read_bytes() == Path(second.delivery.snapshot.path).read_bytes()
    assert snapshot.ARTIFACT_PATH == "mlflow-project/code.tar.gz"
