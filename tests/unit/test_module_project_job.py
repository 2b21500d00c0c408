"""The module entry points: every bad input is a fail_json naming an option, never a traceback."""

import http.server
import json
import os
import re
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.mlops.mlflow_k8s.plugins.modules import mlflow_project_job, mlflow_project_job_info
from tests.harness.module import run_module as run

PROJECTS = Path(__file__).parent / "fixtures" / "projects"
OPTIONS = frozenset(mlflow_project_job.argument_spec())
NO_CLUSTER = "/nonexistent/kubeconfig"


def wine(**extra):
    args = {
        "project_uri": str(PROJECTS / "wine"),
        "image": "registry.local/wine:1",
        "parameters": {"alpha": 0.5},
        "tracking_uri": "http://127.0.0.1:9",
        "kubeconfig": NO_CLUSTER,
    }
    args.update(extra)
    return args


def names_an_option(msg, options=OPTIONS):
    """The message starts with the option (ours) or names it as a word (ansible's argument spec errors)."""
    head = msg.split(":", 1)[0].split(".", 1)[0]
    return head in options or bool(options & set(re.split(r"[^A-Za-z0-9_]+", msg)))


@pytest.mark.parametrize(
    ("args", "option", "fragment"),
    [
        (wine(project_uri=str(PROJECTS)), "project_uri", "no MLproject"),
        (wine(project_uri=str(PROJECTS / "no_docker"), image=None, build=True), "build", "docker_env"),
        (wine(entry_point="nope"), "entry_point", "not an entry point"),
        (wine(parameters={}), "parameters", "alpha"),
        (wine(parameters={"alpha": "high"}), "parameters.alpha", "expected float"),
        (wine(job_template={"kind": "Job", "spec": {}}), "job_template", "no container"),
        (wine(job_template="/nonexistent/template.yaml"), "job_template", "cannot read"),
        (wine(namespace="Bad_Namespace"), "namespace", "not a valid Kubernetes name"),
        (wine(service_account="no spaces allowed"), "service_account", "not a valid"),
        (wine(backend_config="/nonexistent/kubernetes_config.json"), "backend_config", "cannot read"),
        (wine(project_uri=str(PROJECTS / "no_docker"), image=None), "base_image", "docker_env.image"),
        (wine(image=None, snapshot_max_mb=-1), "snapshot_max_mb", "negative"),
        (wine(from_run_id="0" * 32), "project_uri", "from_run_id"),
        (wine(project_uri=None, image=None, from_run_id="0" * 32, build=True), "build", "from_run_id"),
        (wine(image=None, tracking_auth_secret=["x"]), "tracking_auth_secret", "Secret name"),
        (wine(build=True), "image", "mutually exclusive"),
        (wine(image=None, build=True), "repository_uri", "repository_uri"),
        (wine(image=None, build=True, repository_uri="Reg/UPPER"), "repository_uri", "lower-case"),
        (wine(env={"MLFLOW_RUN_ID": "x"}), "env", "set by the module"),
        (wine(env={"bad name": "x"}), "env", "not a valid environment"),
        (wine(labels={"a": "b c"}), "labels", "not a valid value"),
        (wine(wait_timeout=-1), "wait_timeout", "negative"),
        (wine(), "kubeconfig", "no kubeconfig file"),
        (wine(kubeconfig=None, host="http://127.0.0.1:9"), "host", "cannot reach the Kubernetes API"),
    ],
)
def test_bad_input_fails_naming_the_option(args, option, fragment):
    result = run(mlflow_project_job, args)
    assert result["failed"]
    assert result["msg"].startswith(option + ": "), result["msg"]
    assert result["option"] == option
    assert fragment in result["msg"]


def test_argument_spec_errors_name_the_option():
    result = run(mlflow_project_job, wine(wait_timeout="soon"))
    assert result["failed"] and "wait_timeout" in result["msg"]
    result = run(mlflow_project_job, {"state": "present"})
    assert result["failed"] and "project_uri" in result["msg"]
    result = run(mlflow_project_job, {"state": "absent"})
    assert result["failed"] and "job_name" in result["msg"]


def test_password_is_not_logged():
    spec = mlflow_project_job.argument_spec()
    assert spec["registry_password"]["no_log"] is True
    assert spec["api_key"]["no_log"] is True


class _Refusing(http.server.BaseHTTPRequestHandler):
    """A real HTTP server that answers every API request with one status, as a refusing API server does."""

    status = 401

    def do_GET(self):  # noqa: N802 - http.server's naming
        body = json.dumps(
            {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": self.status, "message": "nope"}
        ).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(params=[401, 404])
def refusing_api(request):
    handler = type("Handler", (_Refusing,), {"status": request.param})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield request.param, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_cluster_refusal_and_missing_namespace_are_readable(refusing_api):
    status, url = refusing_api
    result = run(mlflow_project_job, wine(kubeconfig=None, host=url, api_key="token", namespace="absent-ns"))
    assert result["failed"]
    if status == 401:
        assert result.get("option") == "api_key", result
        assert "401 Unauthorized" in result["msg"]
    else:
        assert result["option"] == "namespace"
        assert "namespace 'absent-ns' does not exist" in result["msg"]
    assert "token" not in result["msg"]


def test_info_module_fails_readably_without_cluster():
    result = run(mlflow_project_job_info, {"kubeconfig": NO_CLUSTER})
    assert result["failed"]
    assert result["msg"].startswith("kubeconfig: ")


# No NUL: AnsibleModule itself refuses it (syslog of the invocation) before the module's code runs.
_text = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=20)
# Integers within 64 bits and no infinite floats: for an int option, ansible-core's own
# check_type_int raises OverflowError on float('inf') and on a list holding an int of 2**63 or
# more (Decimal(list)), inside AnsibleModule's argument validation, before any module code runs
# (seen with ansible-core 2.21): an upstream traceback this test cannot be about.
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=False),
    _text,
)
_json = st.recursive(
    _scalar, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(_text, c, max_size=3)), max_leaves=8
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    project=st.sampled_from(["wine", "awkward", "all_types", "template_extra", "no_docker", "missing"]),
    entry_point=st.one_of(st.sampled_from(["main", "second", "Other_Entry", "run.py"]), _text),
    parameters=st.dictionaries(
        st.sampled_from(["alpha", "l1_ratio", "f", "i", "u", "n", "epochs", "x"]), _json, max_size=4
    ),
    optional=st.dictionaries(
        st.sampled_from(
            [
                "namespace",
                "service_account",
                "image",
                "build",
                "repository_uri",
                "job_template",
                "env",
                "labels",
                "resources",
                "node_selector",
                "tolerations",
                "image_pull_secrets",
                "backoff_limit",
                "wait_timeout",
                "run_name",
                "experiment_name",
                "on_timeout",
                "state",
                "entry_point",
            ]
        ),
        _json,
        max_size=6,
    ),
)
def test_fuzzed_options_never_give_a_traceback(project, entry_point, parameters, optional):
    args = {
        "project_uri": str(PROJECTS / project),
        "entry_point": entry_point,
        "parameters": parameters,
        "image": "registry.local/x:1",
        "tracking_uri": "http://127.0.0.1:9",
        "kubeconfig": NO_CLUSTER,
    }
    args.update(optional)
    result = run(mlflow_project_job, args)
    # Nothing exists to submit to, so every call fails; each must fail by naming an option.
    assert result.get("failed"), result
    assert not result["msg"].startswith("unexpected error"), result["msg"]
    assert names_an_option(result["msg"]), result["msg"]


@settings(max_examples=100, deadline=None)
@given(
    optional=st.dictionaries(
        st.sampled_from(["namespace", "name", "run_id", "label_selector", "tracking_uri", "logs", "log_tail_lines"]),
        _json,
        max_size=4,
    )
)
def test_fuzzed_info_options_never_give_a_traceback(optional):
    result = run(mlflow_project_job_info, {"kubeconfig": NO_CLUSTER, **optional})
    assert result.get("failed"), result
    assert not result["msg"].startswith("unexpected error"), result["msg"]
    assert names_an_option(result["msg"], set(mlflow_project_job_info.argument_spec())), result["msg"]


def test_git_project_is_cloned_then_removed(tmp_path, monkeypatch):
    import shutil
    import subprocess
    import tempfile

    from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import plan

    repo = tmp_path / "repo"
    shutil.copytree(PROJECTS / "wine", repo)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e",
    }
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "c"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env=env)
    made = []
    original = tempfile.mkdtemp

    def mkdtemp(**kwargs):
        made.append(original(dir=tmp_path, **kwargs))
        return made[-1]

    monkeypatch.setattr(plan.tempfile, "mkdtemp", mkdtemp)
    result = run(mlflow_project_job, wine(project_uri=f"file://{repo}"))
    # The plan (clone, MLproject, parameters) succeeded: the first failure is the missing cluster.
    assert result["option"] == "kubeconfig", result
    assert len(made) == 1 and not os.path.exists(made[0])
    # The plan itself fails after the clone: the clone goes too.
    result = run(mlflow_project_job, wine(project_uri=f"file://{repo}", entry_point="nope"))
    assert result["option"] == "entry_point", result
    assert len(made) == 2 and not os.path.exists(made[1])
    result = run(mlflow_project_job, wine(version="v1"))
    assert result["option"] == "version"


@pytest.mark.parametrize("module", [mlflow_project_job, mlflow_project_job_info], ids=lambda m: m.__name__)
def test_documentation_matches_the_argument_spec(module):
    """Each option (the new ones of issue #27 among them) documented with its type, default and choices."""
    import yaml

    from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.args_common import AUTH_OPTIONS

    documented = yaml.safe_load(module.DOCUMENTATION)["options"]
    spec = {k: v for k, v in module.argument_spec().items() if k not in AUTH_OPTIONS}
    assert set(documented) == set(spec)
    for name, option in spec.items():
        doc = documented[name]
        assert doc.get("type") == option.get("type", "str"), name
        assert doc.get("default") == option.get("default"), name
        assert doc.get("choices") == option.get("choices"), name
        assert doc.get("elements") == option.get("elements"), name
    yaml.safe_load(module.RETURN)
    yaml.safe_load(module.EXAMPLES)
