"""Issue #27 on rendered manifests: the project namespace, its NetworkPolicy, its Job template.

A project is untrusted code. What the project_runner role renders for every case of
tests/manifests/cases/project_runner.yml is checked here against the roles it must fit:

- the Namespace carries the Pod Security admission labels of ``project_runner_pod_security``;
- the NetworkPolicy denies all ingress and all egress but DNS, the MLflow server's pods (the
  mlflow_server role's Deployment rendered with the same variables: namespace, labels, port) and
  ``project_runner_egress_extra``; no rule lets a pod reach the database role's pods or port;
- the Job template, as mlflow_project_job renders it (also with the init container that fetches
  the code), meets every rule of Pod Security "restricted" (``job.restricted_violations``, the
  check mlflow_project_job makes before it creates a Job; tests/unit/test_job.py covers each rule,
  and here it catches each breakage of the rendered template);
- no Secret of the platform is rendered into, or referenced from, the project namespace.

The rig's CNI does not enforce NetworkPolicy, so what the policy admits is proved here only;
tests/cluster/test_project_namespace_security.py proves Pod Security on the real API server.
"""

from __future__ import annotations

import copy
import datetime
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import job as job_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import snapshot_job
from tests.harness.playbook import run_playbook
from tests.manifests import harness

ROOT = Path(__file__).resolve().parents[2]
CASES = [case for case in harness.load_cases() if case.role == "project_runner"]
CASE_IDS = [case.name for case in CASES]
# The variables of another role a project_runner case shares with the platform it runs beside.
PLATFORM_PREFIXES = ("mlflow_k8s_", "mlflow_server_")
LEVELS = ("restricted", "baseline", "privileged")

# -- Rendering ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runner() -> dict[str, dict[str, Any]]:
    """{case name: {manifests, job_template}} of every project_runner case, from one ansible-playbook run."""
    hosts = {
        f"case-{i}": {
            **harness.stub_facts("project_runner", case.vars),
            **case.vars,
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
        }
        for i, case in enumerate(CASES)
    }
    play = [
        {
            "name": "Render the project runner",
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
                {"name": "Report the manifests", "ansible.builtin.debug": {"var": "project_runner_manifests"}},
                {"name": "Report the template", "ansible.builtin.debug": {"var": "project_runner_job_template"}},
            ],
        }
    ]
    result = run_playbook(play, inventory={"all": {"hosts": hosts}})
    assert result.rc == 0, result.summary()
    return {
        case.name: {
            "manifests": result.task("Report the manifests", f"case-{i}").result["project_runner_manifests"],
            "job_template": result.task("Report the template", f"case-{i}").result["project_runner_job_template"],
        }
        for i, case in enumerate(CASES)
    }


def _platform_vars(case: harness.Case) -> dict[str, Any]:
    return {k: v for k, v in case.vars.items() if k.startswith(PLATFORM_PREFIXES)}


@pytest.fixture(scope="module")
def platforms() -> dict[str, dict[str, list[dict[str, Any]]]]:
    """{project_runner case name: {mlflow_server, postgresql, mysql: manifests}}: the platform each
    case runs beside, rendered by those roles with the variables the case shares with them."""
    source = harness.CASES_DIR / "project_runner.yml"
    cases = []
    for case in CASES:
        shared = _platform_vars(case)
        cases.append(harness.Case("mlflow_server", case.name, shared, source))
        database = {k: v for k, v in shared.items() if k.startswith("mlflow_k8s_")}
        for engine in ("postgresql", "mysql"):
            cases.append(
                harness.Case("database", f"{case.name}-{engine}", {**database, "database_engine": engine}, source)
            )
    rendered = harness.render(cases)
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for case in CASES:
        parts = {}
        for key, case_id in (
            ("mlflow_server", f"mlflow_server/{case.name}"),
            ("postgresql", f"database/{case.name}-postgresql"),
            ("mysql", f"database/{case.name}-mysql"),
        ):
            result = rendered[case_id]
            assert result.error is None, f"{case_id}: {result.error}"
            parts[key] = result.manifests
        out[case.name] = parts
    return out


def _case(name: str) -> harness.Case:
    return next(case for case in CASES if case.name == name)


def _one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [m for m in manifests if m["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {[harness.describe(m) for m in manifests]}"
    return found[0]


def _kinds(manifests: list[dict[str, Any]]) -> list[str]:
    return [m["kind"] for m in manifests]


def _project_namespace(case: harness.Case) -> str:
    return case.vars.get("project_runner_namespace", "mlflow-projects")


def _platform_namespace(case: harness.Case) -> str:
    return case.vars.get("mlflow_k8s_namespace", "mlflow")


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels and matchExpressions) selects ``labels``."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def egress_allows(
    policy: dict[str, Any], namespace_labels: dict[str, str], pod_labels: dict[str, str], port: int
) -> bool:
    """Whether the NetworkPolicy lets its pods open a TCP connection to a pod (in-cluster peers only)."""
    assert "Egress" in policy["spec"]["policyTypes"]
    for rule in policy["spec"].get("egress") or []:
        ports = rule.get("ports")
        if ports and not any(p.get("protocol", "TCP") == "TCP" and p.get("port") in (None, port) for p in ports):
            continue
        peers = rule.get("to")
        if not peers:
            return True  # a rule without `to` allows every destination
        for peer in peers:
            if "ipBlock" in peer:
                continue  # pod IPs of the platform are not what an operator's ipBlock names
            namespace_ok = (
                _selects(peer["namespaceSelector"], namespace_labels)
                if "namespaceSelector" in peer
                else (namespace_labels.get("kubernetes.io/metadata.name") == policy["metadata"]["namespace"])
            )
            if namespace_ok and _selects(peer.get("podSelector") or {}, pod_labels):
                return True
    return False


# -- The namespace --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASE_IDS)
def test_namespace_carries_the_pod_security_labels(runner, name):
    case = _case(name)
    manifests = runner[name]["manifests"]
    if case.vars.get("project_runner_create_namespace") is False:
        assert "Namespace" not in _kinds(manifests)
        return
    namespace = _one(manifests, "Namespace")
    level = case.vars.get("project_runner_pod_security", "restricted")
    assert namespace["metadata"]["name"] == _project_namespace(case)
    labels = namespace["metadata"]["labels"]
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == level
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == "latest"


def test_projects_run_outside_the_platform_namespace_by_default(runner):
    defaults = runner["defaults"]["manifests"]
    assert {m["metadata"].get("namespace", m["metadata"]["name"]) for m in defaults} == {"mlflow-projects"}
    assert runner["defaults"]["job_template"]["metadata"]["namespace"] == "mlflow-projects"
    # A platform elsewhere changes nothing about where projects run.
    assert runner["existing-namespace-gpu"]["job_template"]["metadata"]["namespace"] == "mlflow-projects"


# -- The NetworkPolicy ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASE_IDS)
def test_network_policy_denies_all_but_dns_the_server_and_the_extras(runner, name):
    case = _case(name)
    manifests = runner[name]["manifests"]
    if case.vars.get("project_runner_network_policy") is False:
        assert "NetworkPolicy" not in _kinds(manifests)
        return
    policy = _one(manifests, "NetworkPolicy")
    spec = policy["spec"]
    assert policy["metadata"]["namespace"] == _project_namespace(case)
    assert spec["podSelector"] == {}  # every pod of the namespace
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in spec  # Ingress listed without rules: nothing comes in
    dns, server, *extra = spec["egress"]
    assert dns == {
        "to": [
            {
                "namespaceSelector": {
                    "matchLabels": {
                        "kubernetes.io/metadata.name": case.vars.get("project_runner_dns_namespace", "kube-system")
                    }
                },
                "podSelector": {"matchLabels": case.vars.get("project_runner_dns_pod_labels", {"k8s-app": "kube-dns"})},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    (peer,) = server["to"]
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": _platform_namespace(case)}}
    assert [p["protocol"] for p in server["ports"]] == ["TCP"]
    assert extra == case.vars.get("project_runner_egress_extra", [])


@pytest.mark.parametrize("name", [c.name for c in CASES if c.vars.get("project_runner_network_policy") is not False])
def test_network_policy_reaches_the_server_pods_and_nothing_of_the_database(runner, platforms, name):
    """The server rule selects exactly the pods the mlflow_server role's Deployment makes (rendered
    with the case's variables), on its container port; no rule selects the database's pods or port."""
    case = _case(name)
    policy = _one(runner[name]["manifests"], "NetworkPolicy")
    server_rule = policy["spec"]["egress"][1]
    deployment = _one(platforms[name]["mlflow_server"], "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    platform_ns = {"kubernetes.io/metadata.name": deployment["metadata"]["namespace"]}
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c.get("ports")]
    (server_port,) = [p["containerPort"] for p in container["ports"]]
    assert deployment["metadata"]["namespace"] == _platform_namespace(case)
    # The same labels the Deployment selects its pods by (and its Service routes to).
    assert server_rule["to"][0]["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert server_rule["ports"] == [{"protocol": "TCP", "port": server_port}]
    assert egress_allows(policy, platform_ns, pod_labels, server_port)
    for engine in ("postgresql", "mysql"):
        statefulset = _one(platforms[name][engine], "StatefulSet")
        db_labels = statefulset["spec"]["template"]["metadata"]["labels"]
        db_ns = {"kubernetes.io/metadata.name": statefulset["metadata"]["namespace"]}
        db_port = statefulset["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        assert statefulset["metadata"]["namespace"] == _platform_namespace(case)
        assert not egress_allows(policy, db_ns, db_labels, db_port), f"{engine}: a project pod reaches the database"
        # Nor any other pod of the platform on the database port, nor the database on the server's port.
        assert not egress_allows(policy, db_ns, pod_labels, db_port)
        assert not egress_allows(policy, db_ns, db_labels, server_port)
        # And the database's own policy admits no pod of another namespace.
        db_policy = _one(platforms[name][engine], "NetworkPolicy")
        for rule in db_policy["spec"]["ingress"]:
            assert all(set(peer) == {"podSelector"} for peer in rule["from"]), rule


def test_egress_allows_is_no_yes_machine():
    """The helper above on policies whose answer is known."""
    base = {"metadata": {"namespace": "p"}, "spec": {"podSelector": {}, "policyTypes": ["Egress"]}}
    deny = copy.deepcopy(base)
    assert not egress_allows(deny, {"kubernetes.io/metadata.name": "x"}, {"a": "b"}, 5432)
    anything = copy.deepcopy(base)
    anything["spec"]["egress"] = [{}]
    assert egress_allows(anything, {"kubernetes.io/metadata.name": "x"}, {"a": "b"}, 5432)
    same_ns = copy.deepcopy(base)
    same_ns["spec"]["egress"] = [{"to": [{"podSelector": {}}], "ports": [{"port": 5432}]}]
    assert egress_allows(same_ns, {"kubernetes.io/metadata.name": "p"}, {}, 5432)
    assert not egress_allows(same_ns, {"kubernetes.io/metadata.name": "x"}, {}, 5432)
    assert not egress_allows(same_ns, {"kubernetes.io/metadata.name": "p"}, {}, 5000)


# -- The Job template -----------------------------------------------------------------------------


def _rendered_job(template: dict[str, Any]) -> dict[str, Any]:
    """The template as mlflow_project_job renders a run's Job."""
    job = job_utils.render_job(
        job_utils.load_template(copy.deepcopy(template)),
        name=job_utils.job_name("wine-quality", datetime.datetime(2026, 11, 22, 15, 0, 0)),
        container_name="wine-quality",
        image="ghcr.io/mlflow/mlflow:v3.18.0-full",
        command=["python", "train.py", "--alpha", "0.5"],
        run_env={"MLFLOW_RUN_ID": "a" * 32, "MLFLOW_TRACKING_URI": "http://mlflow:5000", "MLFLOW_EXPERIMENT_ID": "1"},
        labels={job_utils.LABEL_RUN_ID: "a" * 32},
    )
    return json.loads(json.dumps(job))


@pytest.mark.parametrize("delivery", ["image", "snapshot"])
@pytest.mark.parametrize("name", CASE_IDS)
def test_job_template_passes_restricted(runner, name, delivery):
    """Whatever the namespace's level, the default template meets restricted; so does the Job
    with the init container that fetches the code (it copies the container's securityContext)."""
    job = _rendered_job(runner[name]["job_template"])
    if delivery == "snapshot":
        secret = snapshot_job.auth_secret("mlflow-project-tracking")  # as run_project.yml passes it
        job = snapshot_job.add_code_delivery(job, "http://mlflow:5000/code.tar.gz", "0" * 64, secret)
        assert [c["name"] for c in job["spec"]["template"]["spec"]["initContainers"]] == [snapshot_job.INIT_CONTAINER]
    pod = job["spec"]["template"]["spec"]
    assert job_utils.restricted_violations(pod, path="spec") == []
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsUser"] == _case(name).vars.get("project_runner_run_as_user", 1000)


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda p: p["securityContext"].pop("runAsNonRoot"), "spec.securityContext.runAsNonRoot must be true"),
        (lambda p: p["securityContext"].update(runAsUser=0), "spec.securityContext.runAsUser must not be 0"),
        (
            lambda p: p["securityContext"].pop("seccompProfile"),
            "spec.securityContext.seccompProfile.type must be RuntimeDefault",
        ),
        (
            lambda p: p["securityContext"].update(seccompProfile={"type": "Unconfined"}),
            "spec.securityContext.seccompProfile.type must not be Unconfined",
        ),
        (lambda p: p["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"), "allowPrivilegeEscalation"),
        (
            lambda p: p["containers"][0]["securityContext"].pop("capabilities"),
            "spec.containers[0].securityContext.capabilities.drop must hold ALL",
        ),
        (lambda p: p["containers"][0]["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]), "SYS_ADMIN"),
        (lambda p: p["containers"][0]["securityContext"].update(privileged=True), "privileged"),
        (lambda p: p.update(hostNetwork=True), "hostNetwork"),
        (lambda p: p["volumes"].append({"name": "h", "hostPath": {"path": "/data"}}), "hostPath"),
        (lambda p: p["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 80}]), "hostPort"),
        (
            lambda p: p.setdefault("initContainers", []).append({"name": "init", "image": "busybox"}),
            "spec.initContainers[0].securityContext.allowPrivilegeEscalation must be false",
        ),
    ],
    ids=[
        "root-allowed",
        "uid-0",
        "no-seccomp",
        "unconfined",
        "escalation",
        "capabilities",
        "sys-admin",
        "privileged",
        "host-network",
        "host-path",
        "host-port",
        "bare-init-container",
    ],
)
def test_restricted_check_catches_each_breakage(runner, breakage, expected):
    pod = _rendered_job(runner["defaults"]["job_template"])["spec"]["template"]["spec"]
    breakage(pod)
    errors = job_utils.restricted_violations(pod, path="spec")
    assert any(expected in e for e in errors), errors


# -- Secrets --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASE_IDS)
def test_no_platform_secret_in_the_project_namespace(runner, name):
    manifests = runner[name]["manifests"]
    secrets = [m["metadata"]["name"] for m in manifests if m["kind"] == "Secret"]
    registry = _case(name).vars.get("project_runner_registry_server")
    assert secrets == (["mlflow-project-registry"] if registry else [])
    text = json.dumps(runner[name]["job_template"])
    assert "secretKeyRef" not in text and "secretRef" not in text and "mlflow-server-auth" not in text


def test_run_project_hands_the_pods_the_runner_secret_not_the_admins():
    """playbooks/run_project.yml's tracking_auth_secret is the project runner's Secret (keys
    username/password, in the Job's namespace); the platform's admin Secret is named nowhere."""
    play = yaml.safe_load((ROOT / "playbooks" / "run_project.yml").read_text(encoding="utf-8"))[0]
    expression = play["vars"]["project_tracking_auth_secret"]
    assert "project_runner_auth_secret_name" in expression
    for admin in ("admin-username", "admin-password", "mlflow_server_auth_secret_name", "mlflow-server-auth"):
        assert admin not in yaml.safe_dump(play), admin


def test_runner_secret_template_validates(tmp_path):
    """tracking-secret.yaml.j2 (created at run time, not part of project_runner_manifests):
    the Secret's schema, the labels teardown finds it by, a password of 32 characters."""
    play = [
        {
            "name": "Render the runner Secret",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": sys.executable},
            "tasks": [
                {
                    "name": "Load the role's variables",
                    "ansible.builtin.include_role": {
                        "name": "mlops.mlflow_k8s.project_runner",
                        "tasks_from": "manifests",
                        "public": True,
                    },
                },
                {
                    "name": "Report the Secret",
                    "ansible.builtin.debug": {
                        "msg": "{{ lookup('ansible.builtin.template', secret_template) | from_yaml }}"
                    },
                    "vars": {"secret_template": str(ROOT / "roles/project_runner/templates/tracking-secret.yaml.j2")},
                },
            ],
        }
    ]
    result = run_playbook(play, inventory={"all": {"hosts": {"localhost": {"ansible_connection": "local"}}}})
    assert result.rc == 0, result.summary()
    secret = result.task("Report the Secret").result["msg"]
    for version in harness.KUBERNETES_VERSIONS:
        assert harness.schema_errors(secret, version) == []
    assert harness.convention_errors(secret) == []
    assert secret["metadata"]["namespace"] == "mlflow-projects"
    assert secret["metadata"]["labels"]["app.kubernetes.io/component"] == "tracking-credentials"
    assert secret["stringData"]["username"] == "runner-mlflow-projects"
    assert len(secret["stringData"]["password"]) == 32 and secret["stringData"]["password"].isalnum()
