"""Issue #27: what an untrusted value can make the module do, one test per attack.

Trusted: whoever writes the task's options. Untrusted: the project's code and MLproject, the
values of ``project_uri``, ``version`` and ``parameters`` (often passed on from whoever asked
for the run), and whatever can be written to MLflow or to Jobs in the namespace. Each test
names the attack; each failed on the code before the fix (the report of the change lists how).
"""

import http.server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from unittest import mock

import pytest
import yaml
from ansible.module_utils import basic

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import job as job_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import plan as plan_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import project as project_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ProjectError, TemplateError
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.plan import Plan
from ansible_collections.mlops.mlflow_k8s.plugins.modules import mlflow_project_job, mlflow_project_job_info
from tests.harness.module import run_module as run

PROJECTS = Path(__file__).parent / "fixtures" / "projects"
NO_CLUSTER = "/nonexistent/kubeconfig"
# Stands for the content of a controller file that must never reach a task's output.
MARKER = "root:x:0:0:CONTROLLER-SECRET-7f3a"
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "controller-secret"
    path.write_text(MARKER + "\nsecond line of it\n")
    return path


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env={**os.environ, **GIT_ENV})


@pytest.fixture
def repo(tmp_path):
    """A git repository with the wine project at its root, a tag v1 and a branch other."""
    path = tmp_path / "repo"
    shutil.copytree(PROJECTS / "wine", path)
    _git(path, "init", "-q", "-b", "main")
    _git(path, "add", ".")
    _git(path, "commit", "-q", "-m", "v1")
    _git(path, "tag", "v1")
    _git(path, "branch", "other")
    return path


# -- 1. options reach git --------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["--pathspec-from-file={secret}", "-f", "--orphan=evil", "-"])
def test_version_that_is_a_git_option_is_refused(repo, tmp_path, secret_file, version):
    version = version.format(secret=secret_file)
    with pytest.raises(ProjectError) as caught:
        project_utils.fetch_git_project(f"file://{repo}", version, str(tmp_path / "clone"))
    assert caught.value.option == "version"
    assert "starts with '-'" in caught.value.message
    assert MARKER not in str(caught.value) and "second line" not in str(caught.value)


def test_version_that_is_a_git_option_is_refused_by_the_module(repo, secret_file):
    args = {
        "project_uri": f"file://{repo}",
        "version": f"--pathspec-from-file={secret_file}",
        "image": "registry.local/wine:1",
        "parameters": {"alpha": 0.5},
        "tracking_uri": "http://127.0.0.1:9",
        "kubeconfig": NO_CLUSTER,
    }
    result = run(mlflow_project_job, args)
    assert result["failed"] and result["option"] == "version", result
    assert MARKER not in result["msg"]


@pytest.mark.parametrize(
    "uri",
    [
        "--upload-pack=touch {pwned}",
        "-oProxyCommand=touch {pwned}",
        "ssh://-oProxyCommand=touch%20{pwned}/repo.git",
        "git@-oProxyCommand=touch:repo.git",
    ],
)
def test_repo_uri_that_is_a_git_or_ssh_option_is_refused(tmp_path, uri):
    pwned = tmp_path / "pwned"
    with pytest.raises(ProjectError) as caught:
        project_utils.fetch_git_project(uri.format(pwned=pwned), None, str(tmp_path / "clone"))
    assert caught.value.option == "project_uri"
    assert "starts with '-'" in caught.value.message
    assert not pwned.exists() and not (tmp_path / "clone").exists()


def test_project_uri_starting_with_a_dash_is_refused_by_the_plan(tmp_path):
    with pytest.raises(ProjectError) as caught:
        Plan({"project_uri": "--upload-pack=touch /tmp/pwned", "image": "registry.local/x:1"})
    assert caught.value.option == "project_uri" and "starts with '-'" in caught.value.message


def test_project_uri_does_not_expand_controller_variables(monkeypatch, tmp_path):
    # type: path expanded $VARIABLES of the controller into a URI that git then sent to its host.
    monkeypatch.setenv("ATTACK_CONTROLLER_SECRET", "s3cr3t-from-the-controller")
    args = {
        "project_uri": "file:///nonexistent/$ATTACK_CONTROLLER_SECRET/repo.git",
        "image": "registry.local/wine:1",
        "tracking_uri": "http://127.0.0.1:9",
        "kubeconfig": NO_CLUSTER,
    }
    result = run(mlflow_project_job, args)
    assert result["failed"] and result["option"] == "project_uri", result
    assert "s3cr3t-from-the-controller" not in json.dumps(result)
    assert "$ATTACK_CONTROLLER_SECRET" in result["msg"]


def test_git_error_is_one_line_without_the_command_line(tmp_path):
    with pytest.raises(ProjectError) as caught:
        project_utils.fetch_git_project(f"file://{tmp_path}/missing", None, str(tmp_path / "clone"))
    message = str(caught.value)
    assert caught.value.option == "project_uri"
    assert "\n" not in message and "cmdline" not in message
    assert message.startswith(f"project_uri: cannot clone file://{tmp_path}/missing: fatal:"), message


def test_password_of_the_repo_uri_is_not_echoed(tmp_path):
    uri = "https://user:pa55-in-the-uri@127.0.0.1:9/repo.git"
    with pytest.raises(ProjectError) as caught:
        project_utils.fetch_git_project(uri, None, str(tmp_path / "clone"))
    assert "pa55-in-the-uri" not in str(caught.value)
    assert "https://***@127.0.0.1:9/repo.git" in str(caught.value)


def test_symlink_to_a_controller_file_in_the_repo_is_refused(repo, tmp_path, secret_file):
    # The snapshot (and a built image) follows links to files: the controller's file would be packed.
    (repo / "data.txt").symlink_to(secret_file)
    _git(repo, "add", "data.txt")
    _git(repo, "commit", "-q", "-m", "link")
    with pytest.raises(ProjectError) as caught:
        project_utils.fetch_git_project(f"file://{repo}", None, str(tmp_path / "clone"))
    assert caught.value.option == "project_uri" and "data.txt" in caught.value.message
    assert "points outside the repository" in caught.value.message


def test_subdir_that_is_a_link_out_of_the_clone_is_refused(repo, tmp_path):
    outside = tmp_path / "outside"
    shutil.copytree(PROJECTS / "wine", outside)
    (repo / "proj").symlink_to(outside)
    _git(repo, "add", "proj")
    _git(repo, "commit", "-q", "-m", "link")
    with pytest.raises(ProjectError) as caught:
        project_utils.fetch_git_project(f"file://{repo}#proj", None, str(tmp_path / "clone"))
    assert caught.value.option == "project_uri"


@pytest.mark.parametrize("version", ["v1", "other", "main"])
def test_versions_that_are_revisions_still_check_out(repo, tmp_path, version):
    directory = project_utils.fetch_git_project(f"file://{repo}", version, str(tmp_path / "clone"))
    assert project_utils.load_project(directory).name == "LogisticRegression"


def test_version_that_is_not_a_revision_nor_a_path_is_reported_without_git_output(repo, tmp_path):
    with pytest.raises(ProjectError) as caught:
        project_utils.fetch_git_project(f"file://{repo}", "MLproject", str(tmp_path / "clone"))
    # "MLproject" is a file of the repository, not a revision: after "--" git cannot take it as one.
    assert caught.value.option == "version" and "is not a branch, tag or commit" in caught.value.message


# -- 2. backend_config and job_template errors quote no file ---------------------------------------
def test_backend_config_parse_error_does_not_quote_the_file(secret_file):
    with pytest.raises(TemplateError) as caught:
        job_utils.load_backend_config(str(secret_file))
    message = str(caught.value)
    assert caught.value.option == "backend_config"
    assert message.startswith(f"backend_config: {secret_file} is not valid JSON (line 1, column 1): Expecting value")
    assert MARKER not in message and "second line" not in message


def test_backend_config_parse_error_of_the_module_does_not_quote_the_file(secret_file):
    args = {
        "project_uri": str(PROJECTS / "wine"),
        "image": "registry.local/wine:1",
        "parameters": {"alpha": 0.5},
        "backend_config": str(secret_file),
        "tracking_uri": "http://127.0.0.1:9",
        "kubeconfig": NO_CLUSTER,
    }
    result = run(mlflow_project_job, args)
    assert result["failed"] and result["option"] == "backend_config"
    assert MARKER not in json.dumps(result)


def test_backend_config_keys_of_another_json_file_are_not_quoted(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"ghp_TOKEN-AS-A-KEY": "x", "kube-contxt": "c"}))
    with pytest.raises(TemplateError) as caught:
        job_utils.load_backend_config(str(path))
    assert "ghp_TOKEN-AS-A-KEY" not in str(caught.value)
    assert "2 unknown key(s)" in caught.value.message
    assert "did you mean 'kube-context' for 'kube-contxt'" in caught.value.message


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"\xff\xfe" + MARKER.encode("utf-16-le"), "is not UTF-8 text"),  # a binary file: no traceback
        (b'{"kube-context": "' + b"x" * (1024 * 1024) + b'"}', "larger than 1 MiB"),  # /dev/zero, a disk image
    ],
)
def test_backend_config_that_is_a_binary_or_huge_file_is_refused_without_content(tmp_path, content, fragment):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(TemplateError) as caught:
        job_utils.load_backend_config(str(path))
    assert caught.value.option == "backend_config" and fragment in caught.value.message
    assert "CONTROLLER" not in str(caught.value)


def test_backend_config_values_must_be_strings(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"kube-context": {"user": MARKER}}))
    with pytest.raises(TemplateError) as caught:
        job_utils.load_backend_config(str(path))
    assert "kube-context" in caught.value.message and MARKER not in str(caught.value)


def test_job_template_yaml_error_does_not_quote_the_file(tmp_path):
    path = tmp_path / "template.yaml"
    path.write_text("apiVersion: batch/v1\nkind: *SECRETALIASNAME\n")
    with pytest.raises(TemplateError) as caught:
        job_utils.load_template(str(path))
    assert caught.value.option == "job_template"
    assert "SECRETALIASNAME" not in str(caught.value)
    assert f"{path} is not valid YAML (line 2, column 7)" in caught.value.message


# -- 3. mlflow_project_job_info and the tracking URI on a Job ------------------------------------
class _Recording(http.server.BaseHTTPRequestHandler):
    """A tracking server that someone who can edit Jobs pointed the annotation at: it keeps what it gets."""

    seen: list

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.seen.append((self.path, self.headers.get("Authorization")))
        body = json.dumps({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no"}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args):
        pass


@pytest.fixture
def foreign_server():
    seen = []
    handler = type("Handler", (_Recording,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def _job_naming(uri):
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "wine-1",
            "namespace": "team-a",
            "labels": {job_utils.LABEL_RUN_ID: "a" * 32},
            "annotations": {job_utils.ANNOTATION_TRACKING_URI: uri},
        },
        "spec": {"template": {"spec": {"containers": [{"name": "wine"}]}}},
        "status": {"conditions": [{"type": "Complete", "status": "True"}]},
    }


@pytest.fixture
def cluster_with(monkeypatch):
    """The runner's Jobs client replaced by one that holds the given Job (no cluster here)."""
    from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import runner as runner_utils

    held = {}

    class Jobs:
        def __init__(self, *args, **kwargs):
            self.deleted = []

        def list(self, namespace, selector):
            return [json.loads(json.dumps(held["job"]))]

        def read(self, namespace, name):
            return json.loads(json.dumps(held["job"]))

        def delete(self, namespace, name):
            return True

        def logs(self, namespace, name, container=None):
            return ""

    monkeypatch.setattr(runner_utils, "JobsClient", Jobs)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "controller-user")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "controller-password")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)

    def hold(job):
        held["job"] = job

    return hold


def _warnings_of(module, args):
    with mock.patch.object(basic.AnsibleModule, "warn") as warn:
        result = run(module, args)
    return result, [call.args[0] for call in warn.call_args_list]


def test_info_does_not_send_credentials_to_a_tracking_uri_from_a_job_annotation(cluster_with, foreign_server):
    url, seen = foreign_server
    cluster_with(_job_naming(url))
    result, warnings = _warnings_of(mlflow_project_job_info, {"namespace": "team-a", "sync_run": True})
    assert seen == []  # not contacted at all, with or without credentials
    assert not result.get("failed"), result
    (item,) = result["jobs"]
    assert item["recorded_tracking_uri"] == url and "run_status" not in item
    assert any(url in w and "not contacted" in w for w in warnings), warnings


def test_info_reads_runs_from_the_operators_tracking_uri_only(cluster_with, foreign_server, monkeypatch):
    from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import tracking

    url, seen = foreign_server
    cluster_with(_job_naming(url))
    built = []

    class Tracker:  # thin: the operator's server, as far as this test needs it
        def __init__(self, uri):
            built.append(uri)

        def get_run(self, run_id):
            return {"status": "FINISHED"}

    monkeypatch.setattr(tracking, "Tracker", Tracker)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://operator.example:5000")  # the option's fallback
    result, warnings = _warnings_of(mlflow_project_job_info, {"namespace": "team-a"})
    assert built == ["http://operator.example:5000"] and seen == []
    (item,) = result["jobs"]
    assert item["run_status"] == "FINISHED" and item["recorded_tracking_uri"] == url
    assert any(url in w and "http://operator.example:5000" in w for w in warnings), warnings


def test_absent_does_not_send_credentials_to_a_tracking_uri_from_a_job_annotation(cluster_with, foreign_server):
    url, seen = foreign_server
    cluster_with(_job_naming(url))
    result, warnings = _warnings_of(mlflow_project_job, {"state": "absent", "namespace": "team-a", "run_id": "a" * 32})
    assert seen == []
    assert result["deleted"] == ["wine-1"] and result["killed_runs"] == [], result
    assert any(url in w for w in warnings), warnings


def test_tracking_guard_builds_trackers_for_the_operators_uri_only():
    built = []
    guard = job_utils.TrackingGuard("http://operator:5000/", lambda uri: built.append(uri) or uri)
    assert guard.tracker("http://operator:5000") == "http://operator:5000"
    assert guard.tracker("http://elsewhere:5000") is None
    assert guard.tracker(None) is None and built == ["http://operator:5000", None]  # None: Tracker's own error
    assert job_utils.TrackingGuard(None, built.append).tracker("http://elsewhere:5000") is None


# -- 4. docker_env.environment copies controller variables ----------------------------------------
def _project(tmp_path, **docker_env):
    directory = tmp_path / "attack"
    directory.mkdir()
    mlproject = {
        "name": "attack",
        "docker_env": {"image": "python:3.12-slim", **docker_env},
        "entry_points": {"main": {"command": "python -c 'print(1)'"}},
    }
    (directory / "MLproject").write_text(yaml.safe_dump(mlproject))
    return directory


def _params(directory, **extra):
    params = {
        "project_uri": str(directory),
        "image": "registry.local/attack:1",
        "tracking_uri": "http://127.0.0.1:9",
        "job_tracking_uri": "http://mlflow-server.mlflow.svc:5000",
    }
    params.update(extra)
    return params


def _main(plan):
    import datetime

    job = plan.render("r" * 32, "1", plan.base_image, datetime.datetime(2026, 12, 1))
    return job, job["spec"]["template"]["spec"]


@pytest.mark.parametrize("name", ["DATABASE_URL", "MYSQL_PWD", "PIP_INDEX_URL", "HOME"])
def test_bare_environment_name_copying_a_controller_variable_is_refused(tmp_path, monkeypatch, name):
    monkeypatch.setenv(name, "mysql://app:" + MARKER + "@db/app")
    directory = _project(tmp_path, environment=[name, ["MODE", "fast"]])
    with pytest.raises(ProjectError) as caught:
        Plan(_params(directory))
    assert caught.value.option == "environment_allow"
    assert name in caught.value.message and "environment_allow" in caught.value.message
    assert MARKER not in str(caught.value)


def test_environment_allow_lets_the_operator_copy_a_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "https://pypi.internal/simple")
    directory = _project(tmp_path, environment=["PIP_INDEX_URL", ["MODE", "fast"]])
    with Plan(_params(directory, environment_allow=["PIP_INDEX_URL"])) as plan:
        _job, pod = _main(plan)
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["PIP_INDEX_URL"] == "https://pypi.internal/simple" and env["MODE"] == "fast"


def test_environment_pairs_need_no_allowance(tmp_path):
    directory = _project(tmp_path, environment=[["MODE", "fast"]])
    with Plan(_params(directory)) as plan:
        _job, pod = _main(plan)
    assert {"name": "MODE", "value": "fast"} in pod["containers"][0]["env"]


def test_copied_variable_is_refused_by_the_module_before_the_cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://x:" + MARKER + "@db/x")
    args = dict(_params(_project(tmp_path, environment=["DATABASE_URL"])), kubeconfig=NO_CLUSTER)
    result = run(mlflow_project_job, args)
    assert result["failed"] and result["option"] == "environment_allow", result  # not kubeconfig: nothing reached
    assert "DATABASE_URL" in result["msg"] and MARKER not in json.dumps(result)


# -- 5. host volumes -------------------------------------------------------------------------------
PRIVILEGED_TEMPLATE = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "x", "image": "x"}]}}},
}


def test_allow_host_volumes_no_longer_admits_the_hosts_root(tmp_path):
    directory = _project(tmp_path, volumes=["/:/host"])
    with pytest.raises(ProjectError) as caught:
        Plan(_params(directory, allow_host_volumes=True, pod_security="privileged", job_template=PRIVILEGED_TEMPLATE))
    assert caught.value.option == "host_path_allow"


@pytest.mark.parametrize(
    ("volume", "option"),
    [
        ("/:/host", "host_path_allow"),
        ("/srv/database:/data", "host_path_allow"),  # a sibling that shares the prefix's letters
        ("/srv/data/../../etc:/etc-of-the-host", "docker_env.volumes"),
        ("/srv/data/../data/../../root:/r", "docker_env.volumes"),
        ("/srv:/srv", "host_path_allow"),
        ("/etc/kubernetes:/k:ro", "host_path_allow"),
        ("/scratch/run/link:/x", "host_path_allow"),  # below a writable entry: pods may have left a link there
    ],
)
def test_host_volume_outside_host_path_allow_is_refused(tmp_path, volume, option):
    directory = _project(tmp_path, volumes=[volume])
    params = _params(
        directory,
        allow_host_volumes=True,  # admitted every one of them before; now a deprecated no-op
        host_path_allow=["/srv/data", "/scratch/run:rw"],
        pod_security="privileged",
        job_template=PRIVILEGED_TEMPLATE,
    )
    with pytest.raises(ProjectError) as caught:
        Plan(params)
    assert caught.value.option == option


@pytest.mark.parametrize(
    ("volume", "path", "read_only"),
    [
        ("/srv/data:/data", "/srv/data", True),  # read-only entry: read-only, whatever the MLproject says
        ("/srv/data/set-1/:/data:ro", "/srv/data/set-1", True),
        ("/srv//data/./set-2:/data", "/srv/data/set-2", True),
        ("/scratch/run:/out", "/scratch/run", False),
        ("/scratch/run:/out:ro", "/scratch/run", True),
    ],
)
def test_host_volume_inside_host_path_allow_is_mounted_as_allowed(tmp_path, volume, path, read_only):
    directory = _project(tmp_path, volumes=[volume])
    params = _params(
        directory,
        host_path_allow=["/srv/data", "/scratch/run:rw"],
        pod_security="privileged",
        job_template=PRIVILEGED_TEMPLATE,
    )
    with Plan(params) as plan:
        _job, pod = _main(plan)
    (host,) = [v for v in pod["volumes"] if "hostPath" in v]
    assert host["hostPath"] == {"path": path}
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == host["name"]]
    assert bool(mount.get("readOnly")) is read_only


def test_read_write_volume_on_a_read_only_entry_is_refused(tmp_path):
    directory = _project(tmp_path, volumes=["/srv/data:/data:rw"])
    with pytest.raises(ProjectError) as caught:
        Plan(_params(directory, host_path_allow=["/srv/data"], pod_security="privileged"))
    assert caught.value.option == "host_path_allow" and "read-only" in caught.value.message


def test_host_volumes_need_pod_security_privileged(tmp_path):
    directory = _project(tmp_path, volumes=["/srv/data:/data"])
    with pytest.raises(ProjectError) as caught:
        Plan(_params(directory, host_path_allow=["/srv/data"]))
    assert caught.value.option == "pod_security"


@pytest.mark.parametrize("entry", ["srv/data", "/srv/../etc", "/srv/data:rwx"])
def test_bad_host_path_allow_entry_names_the_option(tmp_path, entry):
    directory = _project(tmp_path, volumes=["/srv/data:/data"])
    with pytest.raises(ProjectError) as caught:
        Plan(_params(directory, host_path_allow=[entry], pod_security="privileged"))
    assert caught.value.option == "host_path_allow"


# -- 6. pod security -------------------------------------------------------------------------------
def test_default_job_meets_pod_security_restricted(tmp_path):
    assert job_utils.restricted_violations(job_utils.DEFAULT_TEMPLATE["spec"]["template"]["spec"]) == []
    with Plan(_params(_project(tmp_path), image=None)) as plan:  # the snapshot's init container too
        job, pod = _main(plan)
    assert [c["name"] for c in pod["initContainers"]] == ["mlflow-project-code"]
    assert job_utils.pod_security_violations(job, "restricted") == []


def test_mlproject_cannot_make_the_pod_privileged(tmp_path):
    # docker_env is the MLproject's only say in the pod: keys beyond image/environment/volumes go nowhere.
    directory = _project(
        tmp_path,
        privileged=True,
        hostNetwork=True,
        hostPID=True,
        securityContext={"privileged": True, "runAsUser": 0},
        capabilities={"add": ["SYS_ADMIN"]},
        environment=[["LD_PRELOAD", "/x.so"]],
    )
    with Plan(_params(directory, image=None)) as plan:
        job, _pod = _main(plan)
    assert job_utils.pod_security_violations(job, "restricted") == []


def test_template_that_breaks_restricted_is_refused_before_anything_is_created():
    template = json.loads(json.dumps(job_utils.DEFAULT_TEMPLATE))
    template["spec"]["template"]["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    args = {
        "project_uri": str(PROJECTS / "wine"),
        "image": "registry.local/wine:1",
        "parameters": {"alpha": 0.5},
        "job_template": template,
        "tracking_uri": "http://127.0.0.1:9",
        "kubeconfig": NO_CLUSTER,
    }
    result = run(mlflow_project_job, args)
    assert result["failed"] and result["option"] == "job_template", result  # not kubeconfig: nothing reached
    assert "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation" in result["msg"]
    assert "restricted" in result["msg"]
    allowed = run(mlflow_project_job, dict(args, pod_security="privileged"))
    assert allowed["option"] == "kubeconfig", allowed


def test_seed_template_breaks_restricted_and_passes_baseline():
    seed = job_utils.load_template(str(PROJECTS / "wine" / "kubernetes_job_template.yaml"))
    assert job_utils.pod_security_violations(seed, "baseline") == []
    with pytest.raises(TemplateError) as caught:
        job_utils.check_pod_security(seed, "restricted", "backend_config")
    assert caught.value.option == "backend_config"
    assert "spec.template.spec.securityContext.runAsNonRoot" in caught.value.message


def test_plan_checks_pod_security_of_a_backend_config_template(tmp_path):
    config = tmp_path / "kubernetes_config.json"
    config.write_text(json.dumps({"kube-job-template-path": str(PROJECTS / "wine" / "kubernetes_job_template.yaml")}))
    params = dict(_params(PROJECTS / "wine", backend_config=str(config)), parameters={"alpha": 0.5})
    with pytest.raises(TemplateError) as caught:
        Plan(params)
    assert caught.value.option == "backend_config"
    with Plan(dict(params, pod_security="baseline")) as plan:
        assert plan.pod_security == "baseline"


def test_allow_host_volumes_alone_warns(tmp_path):
    with Plan(_params(_project(tmp_path), allow_host_volumes=True)) as plan:
        assert any("host_path_allow" in w for w in plan.warnings)


def test_plan_module_options_exist_in_the_module():
    spec = mlflow_project_job.argument_spec()
    assert spec["host_path_allow"] == {"type": "list", "elements": "str", "default": []}
    assert spec["environment_allow"]["type"] == "list" and spec["environment_allow"]["default"] == []
    assert spec["pod_security"]["default"] == "restricted"
    assert spec["project_uri"]["type"] == "str"  # "path" expanded $VARIABLES
    assert plan_utils.ENV_ALLOW_OPTION in spec and plan_utils.HOST_PATH_OPTION in spec
    assert mlflow_project_job_info.argument_spec()["tracking_uri"]["fallback"][1] == ["MLFLOW_TRACKING_URI"]
