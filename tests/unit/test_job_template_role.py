"""The project_runner role's Job template, rendered by the role for each manifest case, then by the module.

The manifests harness validates what the role applies; the Job template is not applied but
handed to mlflow_project_job, so here it goes through the module's own rendering and the
OpenAPI schemas of the oldest and newest supported Kubernetes.
"""

import datetime
import json
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import job as job_utils
from tests.harness.playbook import run_playbook

ROOT = Path(__file__).resolve().parents[2]

CASES = yaml.safe_load((ROOT / "tests" / "manifests" / "cases" / "project_runner.yml").read_text())
VERSIONS = ["1.32.0", "1.37.0"]


@pytest.fixture(scope="module")
def templates():
    """{case name: project_runner_job_template} from one ansible-playbook run over every case."""
    hosts = {
        f"case-{i}": {**case["vars"], "ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        for i, case in enumerate(CASES)
    }
    play = [
        {
            "name": "Render the project runner's Job template",
            "hosts": "all",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Render the manifests",
                    "ansible.builtin.include_role": {
                        "name": "mlops.mlflow_k8s.project_runner",
                        "tasks_from": "manifests",
                    },
                },
                {"name": "Report the template", "ansible.builtin.debug": {"var": "project_runner_job_template"}},
            ],
        }
    ]
    result = run_playbook(play, inventory={"all": {"hosts": hosts}})
    assert result.rc == 0, result.summary()
    return {
        case["name"]: result.task("Report the template", f"case-{i}").result["project_runner_job_template"]
        for i, case in enumerate(CASES)
    }


@pytest.mark.parametrize("case", [c["name"] for c in CASES])
def test_role_template_renders_to_a_valid_job(templates, case):
    template = job_utils.load_template(templates[case])
    vars_ = next(c["vars"] for c in CASES if c["name"] == case)
    job = job_utils.render_job(
        template,
        name=job_utils.job_name("wine-quality", datetime.datetime(2026, 11, 22, 15, 0, 0)),
        container_name="wine-quality",
        image="registry.example.internal:5000/wine:1",
        command=["python", "train.py", "--alpha", "0.5"],
        run_env={"MLFLOW_RUN_ID": "a" * 32, "MLFLOW_TRACKING_URI": "http://mlflow:5000", "MLFLOW_EXPERIMENT_ID": "1"},
        labels={job_utils.LABEL_RUN_ID: "a" * 32},
    )
    job = json.loads(json.dumps(job))
    for version in VERSIONS:
        kubernetes_validate.validate(job, version, strict=True)
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == vars_.get("project_runner_service_account", "mlflow-project")
    # Projects run in a namespace of their own, whatever the platform's (issue #27).
    assert job["metadata"]["namespace"] == vars_.get("project_runner_namespace", "mlflow-projects")
    assert ("imagePullSecrets" in pod) == bool(vars_.get("project_runner_registry_server"))
    assert pod.get("nodeSelector", {}) == vars_.get("project_runner_node_selector", {})
    assert job["spec"].get("activeDeadlineSeconds") == vars_.get("project_runner_active_deadline_seconds")
    assert "{replaced" not in json.dumps(job)
    # Pod Security "restricted" (tests/manifests/test_project_runner_security.py checks every rule).
    user = vars_.get("project_runner_run_as_user", 1000)
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": user,
        "runAsGroup": vars_.get("project_runner_run_as_group", 1000),
        "fsGroup": vars_.get("project_runner_fs_group", 1000),
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = pod["containers"][0]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    # HOME is a writable emptyDir for a user the image may not know; the run's env follows it.
    env = [e["name"] for e in container["env"]]
    assert env[0] == "HOME" and env[-3:] == ["MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID"]
    home = next(e["value"] for e in container["env"] if e["name"] == "HOME")
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == home
    assert {"name": mount["name"], "emptyDir": {}} in pod["volumes"]
