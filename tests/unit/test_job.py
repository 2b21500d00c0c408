"""Job rendering: MLflow's replacements on MLflow's templates, DNS-1123 names, merges, OpenAPI validity."""

import copy
import datetime
import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.projects import kubernetes as mlflow_k8s

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import job as job_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import TemplateError
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.project import load_project

PROJECTS = Path(__file__).parent / "fixtures" / "projects"
WHEN = datetime.datetime(2026, 11, 22, 15, 30, 1, 123456)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Oldest and newest schema versions kubernetes-validate ships that we claim to support.
K8S_VERSIONS = ["1.32.0", "1.37.0"]  # tests/manifests/harness.py: oldest and newest supported
RUN_ENV = {"MLFLOW_RUN_ID": "0" * 32, "MLFLOW_TRACKING_URI": "http://mlflow:5000", "MLFLOW_EXPERIMENT_ID": "3"}


class _FixedDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return WHEN


def _template(path):
    return yaml.safe_load((PROJECTS / path).read_text())


def _render(template, project="sidecar-project", command=("python", "train.py"), **kwargs):
    own = {k: kwargs.pop(k) for k in ("namespace", "labels", "annotations", "overrides") if k in kwargs}
    own.setdefault("overrides", {}).update(kwargs)  # the rest are module options merged into the template
    return job_utils.render_job(
        template,
        name=job_utils.job_name(project, WHEN),
        container_name=job_utils.dns_label(project),
        image="registry/x:mlflow-abc@sha256:" + "1" * 64,
        command=list(command),
        run_env=dict(RUN_ENV),
        **own,
    )


@pytest.mark.parametrize("template_file", ["wine/kubernetes_job_template.yaml", "template_extra/job_template.yaml"])
def test_mlflows_replacements_on_mlflows_templates(monkeypatch, template_file):
    monkeypatch.setattr(mlflow_k8s, "datetime", _FixedDatetime)
    monkeypatch.delenv("KUBE_MLFLOW_TRACKING_URI", raising=False)
    template = _template(template_file)
    theirs = mlflow_k8s._get_kubernetes_job_definition(
        "sidecar-project",
        "registry/x:mlflow-abc",
        "sha256:" + "1" * 64,
        mlflow_k8s._get_run_command(["python train.py --epochs 3"]),
        dict(RUN_ENV),
        copy.deepcopy(template),
    )
    mine = _render(template, command=["python", "train.py", "--epochs", "3"])
    assert mine["metadata"]["name"] == theirs["metadata"]["name"]
    assert mine["metadata"]["namespace"] == theirs["metadata"]["namespace"]
    ours_c, their_c = mine["spec"]["template"]["spec"]["containers"], theirs["spec"]["template"]["spec"]["containers"]
    for key in ("name", "image", "command", "env", "volumeMounts"):
        assert ours_c[0].get(key) == their_c[0].get(key), key
    assert ours_c[1:] == their_c[1:]  # extra containers untouched
    assert mine["spec"]["template"]["spec"].get("volumes") == theirs["spec"]["template"]["spec"].get("volumes")
    assert mine["spec"]["backoffLimit"] == theirs["spec"]["backoffLimit"]


def test_command_is_an_argument_list_not_mlflows_quoted_tokens():
    # MLflow shell-quotes every token and then passes the list as argv: the process sees the quotes.
    theirs = mlflow_k8s._get_run_command(["python train.py --name 'two words'"])
    assert theirs[-1] == "'two words'"
    mine = _render(
        _template("wine/kubernetes_job_template.yaml"), command=["python", "train.py", "--name", "two words"]
    )
    assert mine["spec"]["template"]["spec"]["containers"][0]["command"][-1] == "two words"


def test_template_is_not_modified():
    template = _template("template_extra/job_template.yaml")
    before = copy.deepcopy(template)
    _render(template, env={"A": "1"}, resources={"limits": {"memory": "1Gi"}})
    assert template == before


def test_awkward_project_names_become_dns_labels():
    project = load_project(str(PROJECTS / "awkward"))
    assert len(project.name) == 80
    name = job_utils.job_name(project.name, WHEN)
    container = job_utils.dns_label(project.name)
    for value in (name, container):
        assert DNS_LABEL.match(value)
        assert len(value) <= 63
    assert name.endswith("-2026-11-22-15-30-01-123456")
    assert name.startswith("the-very-long-project")
    # The cut is marked by a hash of the original name, so two long names do not collide.
    other = job_utils.job_name(project.name[:-1] + "Q", WHEN)
    assert other != name


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_any_name_gives_a_dns_label(name):
    for value in (job_utils.job_name(name, WHEN), job_utils.dns_label(name)):
        assert len(value) <= 63
        assert DNS_LABEL.match(value), value


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=100))
def test_any_text_gives_a_label_value(text):
    value = job_utils.label_value(text)
    assert len(value) <= 63
    assert value == "" or re.match(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", value)


def test_short_valid_names_are_kept():
    assert job_utils.dns_label("wine-quality") == "wine-quality"
    assert job_utils.job_name("wine-quality", WHEN) == "wine-quality-2026-11-22-15-30-01-123456"
    assert job_utils.dns_label("LogisticRegression") == "logisticregression"


def test_run_env_is_appended_after_template_and_user_env():
    job = _render(_template("template_extra/job_template.yaml"), env={"LOG_LEVEL": "debug", "NEW": "x"})
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    names = [e["name"] for e in env]
    assert names == ["DATA_DIR", "LOG_LEVEL", "NEW", "MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID"]
    assert env[1] == {"name": "LOG_LEVEL", "value": "debug"}


def test_user_cannot_override_run_env():
    with pytest.raises(TemplateError) as caught:
        _render(_template("template_extra/job_template.yaml"), env={"MLFLOW_RUN_ID": "x"})
    assert caught.value.option == "env"


def test_env_from_secret_and_value_from():
    job = _render(
        copy.deepcopy(job_utils.DEFAULT_TEMPLATE),
        env=[{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        env_from_secrets=["aws-creds"],
    )
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "s", "key": "k"}
    assert container["envFrom"] == [{"secretRef": {"name": "aws-creds"}}]


def test_merge_options():
    job = _render(
        _template("template_extra/job_template.yaml"),
        namespace="team-b",
        labels={job_utils.LABEL_RUN_ID: "r1"},
        overrides={
            "service_account": "mlflow-project",
            "image_pull_secrets": ["regcred", "other"],
            "resources": {"limits": {"memory": "4Gi"}, "requests": {"cpu": 2}},
            "node_selector": {"accelerator": "nvidia"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "labels": {"team": "b", "cost-center": "42"},
            "backoff_limit": 0,
            "active_deadline_seconds": 600,
            "ttl_seconds_after_finished": 60,
        },
    )
    spec = job["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert job["metadata"]["namespace"] == "team-b"
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (0, 600, 60)
    assert pod["serviceAccountName"] == "mlflow-project"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "other"}]
    assert pod["nodeSelector"] == {"accelerator": "nvidia"}
    assert pod["schedulerName"] == "runai-scheduler"  # the template's own settings survive
    assert container["resources"] == {"limits": {"nvidia.com/gpu": 1, "memory": "4Gi"}, "requests": {"cpu": "2"}}
    for labels in (job["metadata"]["labels"], spec["template"]["metadata"]["labels"]):
        assert labels["team"] == "b"
        assert labels[job_utils.LABEL_RUN_ID] == "r1"
        assert labels["app.kubernetes.io/name"] == "mlflow-project"


@pytest.mark.parametrize("labels", [{"bad key!": "x"}, {"ok": "not valid value!"}, {"ok": "x" * 64}])
def test_bad_labels_name_the_option(labels):
    with pytest.raises(TemplateError) as caught:
        _render(copy.deepcopy(job_utils.DEFAULT_TEMPLATE), overrides={"labels": labels})
    assert caught.value.option == "labels"


@pytest.mark.parametrize(
    "resources", [{"": True}, {"limits": "2"}, {"limts": {"cpu": "1"}}, {"requests": ["cpu"]}], ids=repr
)
def test_bad_resources_name_the_option(resources):
    with pytest.raises(TemplateError) as caught:
        _render(copy.deepcopy(job_utils.DEFAULT_TEMPLATE), overrides={"resources": resources})
    assert caught.value.option == "resources"
    assert "limits and/or requests" in caught.value.message


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    "template",
    [
        "default",
        "wine/kubernetes_job_template.yaml",
        "template_extra/job_template.yaml",
    ],
)
def test_rendered_jobs_validate_against_openapi(version, template):
    source = copy.deepcopy(job_utils.DEFAULT_TEMPLATE) if template == "default" else _template(template)
    project = load_project(str(PROJECTS / "awkward"))
    job = job_utils.render_job(
        source,
        name=job_utils.job_name(project.name, WHEN),
        container_name=job_utils.dns_label(project.name),
        image="registry.local:5000/awkward:mlflow-0123@sha256:" + "a" * 64,
        command=project.get_entry_point("main").argv({"Data_File": "a b"}),
        run_env=dict(RUN_ENV),
        labels={job_utils.LABEL_RUN_ID: "f" * 32, job_utils.LABEL_IDENTITY: "e" * 40},
        annotations={job_utils.ANNOTATION_IDENTITY: "e" * 64},
        overrides={
            "resources": {"limits": {"nvidia.com/gpu": 1}},
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "env": {"A": 1},
            "env_from_secrets": ["s"],
            "ttl_seconds_after_finished": 10,
        },
    )
    job = json.loads(json.dumps(job))  # plain JSON types, as the API receives them
    kubernetes_validate.validate(job, version, strict=True)


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ({"kind": "Deployment", "spec": {}}, "only kind: Job"),
        ({"kind": "Job", "spec": {"template": {"spec": {"containers": []}}}}, "no container"),
        ({"kind": "Job", "spec": {"template": {"spec": {}}}}, "no container"),
        ({"kind": "Job"}, "no container"),
        ({"apiVersion": "batch/v2", "kind": "Job"}, "apiVersion"),
        ("not-a-file.yaml", "cannot read"),
    ],
)
def test_bad_templates_name_the_option(template, fragment):
    with pytest.raises(TemplateError) as caught:
        job_utils.load_template(template)
    assert caught.value.option == "job_template"
    assert fragment in caught.value.message


def test_backend_config_as_mlflow_reads_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow resolves the template path from the working directory
    config = job_utils.load_backend_config(str(PROJECTS / "wine" / "kubernetes_config.json"))
    assert config["kube-context"] == "microk8s"
    assert config["repository-uri"] == "registry.example.com/mlflow/wine"
    # ... and we also find it beside the config file.
    template = job_utils.load_template(config["kube-job-template-path"])
    assert template["metadata"]["namespace"] == "mlflowonkube"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("{not json", "is not valid JSON (line 1, column 2)"), ("[]", "JSON object"), ('{"x": 1}', "1 unknown key")],
)
def test_bad_backend_config_names_the_option(tmp_path, content, fragment):
    path = tmp_path / "kubernetes_config.json"
    path.write_text(content)
    with pytest.raises(TemplateError) as caught:
        job_utils.load_backend_config(str(path))
    assert caught.value.option == "backend_config"
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("conditions", "extra", "state"),
    [
        ([{"type": "Complete", "status": "True"}], {}, "Complete"),
        ([{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}], {}, "Complete"),
        ([{"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}], {}, "Failed"),
        ([{"type": "FailureTarget", "status": "True"}], {"active": 1}, "Running"),
        ([{"type": "Complete", "status": "False"}], {}, "Pending"),
        ([], {"startTime": "2026-11-22T15:00:00Z"}, "Running"),
    ],
)
def test_job_state_from_conditions(conditions, extra, state):
    status = dict(extra, conditions=conditions)
    assert job_utils.job_state({"status": status}) == state


def test_identity_changes_with_each_part():
    base = job_utils.identity("c" * 64, "main", {"a": 1}, "r")
    assert base == job_utils.identity("c" * 64, "main", {"a": "1"}, "r")  # as MLflow, values are strings
    variants = [
        job_utils.identity("d" * 64, "main", {"a": 1}, "r"),
        job_utils.identity("c" * 64, "other", {"a": 1}, "r"),
        job_utils.identity("c" * 64, "main", {"a": 2}, "r"),
        job_utils.identity("c" * 64, "main", {"a": 1}, "s"),
        job_utils.identity("c" * 64, "main", {"a": 1}, "r", "exp"),
    ]
    assert len({base, *variants}) == 6


SEED_BACKEND_CONFIG = """\
 {
    "kube-context": "<kube-context name>", # get kube-context name from ~/.kube/config
    "kube-job-template-path": "<kubernetes_job_template.yaml path>",
    "repository-uri": "<Docker image name>"
 }
"""


def test_backend_config_with_the_seeds_comment_names_file_line_and_comments(tmp_path):
    # seeds/000 shows kubernetes_config.json with a '#' comment; copied verbatim it is not JSON.
    path = tmp_path / "kubernetes_config.json"
    path.write_text(SEED_BACKEND_CONFIG)
    with pytest.raises(TemplateError) as caught:
        job_utils.load_backend_config(str(path))
    message = caught.value.message
    assert caught.value.option == "backend_config"
    assert message.startswith(f"{path} is not valid JSON (line 2, column 44): Expecting property name"), message
    assert "JSON has no comments" in message
    assert "get kube-context" not in message  # the file's content is never quoted (issue #27)


def test_pod_level_resources_are_warned_about_naming_the_field():
    template = json.loads(json.dumps(job_utils.DEFAULT_TEMPLATE))
    assert job_utils.template_warnings(template) == []
    template["spec"]["template"]["spec"]["resources"] = {"limits": {"memory": "512Mi"}}
    (warning,) = job_utils.template_warnings(template, "backend_config")
    assert warning.startswith("backend_config: spec.template.spec.resources")
    assert "spec.template.spec.containers[0].resources" in warning


def test_labels_of_the_template_and_the_user_are_kept_ours_are_added():
    template = json.loads(json.dumps(job_utils.DEFAULT_TEMPLATE))
    mine = {"app.kubernetes.io/instance": "team-a", "app.kubernetes.io/name": "trainer"}
    template["metadata"]["labels"] = dict(mine)
    template["spec"]["template"]["metadata"] = {"labels": dict(mine)}
    job = job_utils.render_job(
        template,
        name="p-1",
        container_name="p",
        image="i",
        command=["true"],
        run_env={"MLFLOW_RUN_ID": "r"},
        labels={job_utils.LABEL_RUN_ID: "r", job_utils.LABEL_PROJECT: "p"},
        overrides={"labels": {"team": "a"}},
    )
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert labels["app.kubernetes.io/instance"] == "team-a" and labels["app.kubernetes.io/name"] == "trainer"
        assert labels["team"] == "a" and labels["app.kubernetes.io/part-of"] == "mlflow-k8s"
        assert labels[job_utils.LABEL_RUN_ID] == "r" and labels[job_utils.LABEL_PROJECT] == "p"


def test_our_label_prefix_is_reserved():
    with pytest.raises(TemplateError) as caught:
        job_utils.check_labels({job_utils.LABEL_RUN_ID: "x"}, "labels")
    assert caught.value.option == "labels" and "set by the module" in caught.value.message


def test_identity_changes_with_the_job_shape():
    base = job_utils.identity("c" * 64, "main", {"a": 1}, "r", job={"image": "a:1"})
    assert base != job_utils.identity("c" * 64, "main", {"a": 1}, "r", job={"image": "a:2"})
    assert base == job_utils.identity("c" * 64, "main", {"a": 1}, "r", job={"image": "a:1"})


# -- Pod Security (issue #27): restricted_violations names every offending field -------------------
def _restricted_pod():
    """A pod spec that meets restricted: the built-in template's, with an init container like it."""
    pod = copy.deepcopy(job_utils.DEFAULT_TEMPLATE["spec"]["template"]["spec"])
    init = copy.deepcopy(pod["containers"][0])
    init["name"] = "init"
    pod["initContainers"] = [init]
    pod["volumes"] = [{"name": "code", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}]
    return pod


P = "spec.template.spec"
C0 = P + ".containers[0].securityContext"


def _set(pod, dotted, value):
    """Set ``dotted`` (``containers.0.securityContext.privileged``) in ``pod``; ``...`` deletes it."""
    keys = [int(k) if k.isdigit() else k for k in dotted.split(".")]
    target = pod
    for key in keys[:-1]:
        target = target[key] if isinstance(key, int) else target.setdefault(key, {})
    if value is Ellipsis:
        target.pop(keys[-1], None)
    else:
        target[keys[-1]] = value


@pytest.mark.parametrize(
    ("change", "value", "field"),
    [
        ("securityContext.runAsNonRoot", False, P + ".securityContext.runAsNonRoot"),
        ("securityContext.runAsNonRoot", ..., P + ".securityContext.runAsNonRoot"),
        ("containers.0.securityContext.runAsNonRoot", False, C0 + ".runAsNonRoot"),
        ("securityContext.runAsUser", 0, P + ".securityContext.runAsUser"),
        ("containers.0.securityContext.runAsUser", 0, C0 + ".runAsUser"),
        ("containers.0.securityContext.allowPrivilegeEscalation", True, C0 + ".allowPrivilegeEscalation"),
        ("containers.0.securityContext.allowPrivilegeEscalation", ..., C0 + ".allowPrivilegeEscalation"),
        (
            "initContainers.0.securityContext.allowPrivilegeEscalation",
            ...,
            P + ".initContainers[0].securityContext.allowPrivilegeEscalation",
        ),
        ("containers.0.securityContext.capabilities", ..., C0 + ".capabilities.drop"),
        ("containers.0.securityContext.capabilities.drop", ["NET_RAW"], C0 + ".capabilities.drop"),
        ("containers.0.securityContext.capabilities.add", ["CHOWN"], C0 + ".capabilities.add"),
        ("containers.0.securityContext.capabilities.add", ["SYS_ADMIN"], C0 + ".capabilities.add"),
        ("securityContext.seccompProfile", ..., P + ".securityContext.seccompProfile.type"),
        ("securityContext.seccompProfile.type", "Unconfined", P + ".securityContext.seccompProfile.type"),
        ("containers.0.securityContext.seccompProfile", {"type": "Unconfined"}, C0 + ".seccompProfile.type"),
        ("containers.0.securityContext.privileged", True, C0 + ".privileged"),
        ("hostNetwork", True, P + ".hostNetwork"),
        ("hostPID", True, P + ".hostPID"),
        ("hostIPC", True, P + ".hostIPC"),
        ("volumes.0", {"name": "root", "hostPath": {"path": "/"}}, P + ".volumes[0].hostPath"),
        ("volumes.1", {"name": "nfs", "nfs": {"server": "s", "path": "/"}}, P + ".volumes[1].nfs"),
        ("containers.0.ports", [{"containerPort": 80, "hostPort": 80}], P + ".containers[0].ports[0].hostPort"),
        ("containers.0.securityContext.procMount", "Unmasked", C0 + ".procMount"),
        ("containers.0.securityContext.seLinuxOptions", {"type": "spc_t"}, C0 + ".seLinuxOptions.type"),
        ("containers.0.securityContext.appArmorProfile", {"type": "Unconfined"}, C0 + ".appArmorProfile.type"),
        ("securityContext.sysctls", [{"name": "kernel.msgmax", "value": "1"}], P + ".securityContext.sysctls[0]"),
        (
            "securityContext.windowsOptions",
            {"hostProcess": True},
            P + ".securityContext.windowsOptions.hostProcess",
        ),
    ],
)
def test_each_restricted_violation_is_named_by_its_field(change, value, field):
    pod = _restricted_pod()
    assert job_utils.restricted_violations(pod) == []
    _set(pod, change, value)
    violations = job_utils.restricted_violations(pod)
    assert [v for v in violations if v.startswith(field + " ") or v.startswith(field + ":")], violations


def test_net_bind_service_is_the_one_capability_restricted_adds():
    pod = _restricted_pod()
    _set(pod, "containers.0.securityContext.capabilities.add", ["NET_BIND_SERVICE"])
    assert job_utils.restricted_violations(pod) == []


def test_container_settings_stand_in_for_the_pods():
    pod = _restricted_pod()
    del pod["securityContext"]["runAsNonRoot"], pod["securityContext"]["seccompProfile"]
    for container in pod["containers"] + pod["initContainers"]:
        container["securityContext"].update(runAsNonRoot=True, seccompProfile={"type": "Localhost"})
    assert job_utils.restricted_violations(pod) == []
    pod["initContainers"][0]["securityContext"].pop("runAsNonRoot")
    assert job_utils.restricted_violations(pod) == [
        P + ".securityContext.runAsNonRoot must be true (or each container's)"
    ]


def test_baseline_allows_what_only_restricted_forbids():
    pod = _restricted_pod()
    pod["securityContext"] = {}
    pod["containers"][0]["securityContext"] = {"capabilities": {"add": ["CHOWN"]}}
    pod["volumes"].append({"name": "nfs", "nfs": {"server": "s", "path": "/"}})
    assert job_utils.baseline_violations(pod) == []
    assert len(job_utils.restricted_violations(pod)) > 4
    pod["hostNetwork"] = True
    assert job_utils.baseline_violations(pod) == [P + ".hostNetwork must not be true (a host namespace)"]


def test_apparmor_annotation_of_the_pod_template_is_checked():
    job = copy.deepcopy(job_utils.DEFAULT_TEMPLATE)
    job["spec"]["template"]["metadata"] = {
        "annotations": {"container.apparmor.security.beta.kubernetes.io/x": "unconfined"}
    }
    (violation,) = job_utils.pod_security_violations(job, "baseline")
    assert violation.startswith("spec.template.metadata.annotations[container.apparmor.security.beta.kubernetes.io/x]")
    assert job_utils.pod_security_violations(job, "privileged") == []


def test_check_pod_security_names_the_option_and_every_field():
    template = copy.deepcopy(job_utils.DEFAULT_TEMPLATE)
    pod = template["spec"]["template"]["spec"]
    pod["hostPID"] = True
    pod["containers"][0]["securityContext"]["privileged"] = True
    with pytest.raises(TemplateError) as caught:
        job_utils.check_pod_security(template, "restricted", "job_template")
    assert caught.value.option == "job_template"
    assert P + ".hostPID" in caught.value.message and C0 + ".privileged" in caught.value.message
    assert caught.value.details["violations"] == job_utils.pod_security_violations(template, "restricted")
    job_utils.check_pod_security(template, "privileged", "job_template")


def test_template_security_context_survives_rendering():
    # render_job replaces name, image, command and env only: the securityContext stays as the template has it.
    job = _render(copy.deepcopy(job_utils.DEFAULT_TEMPLATE), overrides={"env": {"A": "1"}, "resources": {}})
    assert job_utils.pod_security_violations(job, "restricted") == []
    assert (
        job["spec"]["template"]["spec"]["securityContext"]
        == job_utils.DEFAULT_TEMPLATE["spec"]["template"]["spec"]["securityContext"]
    )
