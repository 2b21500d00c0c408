"""Image content hash, build context and tag logic for real; the Docker engine through a thin fake."""

import gzip
import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from mlflow.projects import docker as mlflow_docker

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import image as image_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ImageError

PROJECTS = Path(__file__).parent / "fixtures" / "projects"
REPO = "registry.local:5000/team/wine"


@pytest.fixture
def project(tmp_path):
    target = tmp_path / "wine"
    shutil.copytree(PROJECTS / "wine", target)
    return target


def _members(data):
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        return {m.name: (m.mode, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()}


def test_hash_is_stable_and_ignores_noise(project):
    first = image_utils.content_hash(str(project), "base:1")
    (project / "__pycache__").mkdir()
    (project / "__pycache__" / "train.cpython-313.pyc").write_bytes(b"\0junk")
    (project / ".git").mkdir()
    (project / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (project / "mlruns").mkdir()
    (project / "mlruns" / "meta.yaml").write_text("x")
    os.utime(project / "train.py", (0, 0))  # mtimes are not content
    assert image_utils.content_hash(str(project), "base:1") == first


@pytest.mark.parametrize("change", ["content", "new_file", "rename", "exec_bit", "base_image"])
def test_hash_changes_with_content(project, change):
    before = image_utils.content_hash(str(project), "base:1")
    base = "base:1"
    if change == "content":
        (project / "train.py").write_text("print('changed')\n")
    elif change == "new_file":
        (project / "data.csv").write_text("a\n")
    elif change == "rename":
        (project / "train.py").rename(project / "train2.py")
    elif change == "exec_bit":
        (project / "train.py").chmod(0o755)
    else:
        base = "base:2"
    assert image_utils.content_hash(str(project), base) != before


def test_build_context_is_reproducible_and_matches_mlflows_layout(project, tmp_path):
    one = image_utils.build_context(str(project), "python:3.12-slim")
    (project / "train.py").touch()  # a new mtime changes nothing
    two = image_utils.build_context(str(project), "python:3.12-slim")
    assert one == two
    mine = _members(one)

    dockerfile = mlflow_docker._GENERATED_DOCKERFILE_NAME
    theirs_path = mlflow_docker._create_docker_build_ctx(str(project), "FROM python:3.12-slim\n")
    try:
        with tarfile.open(theirs_path) as tar:
            theirs = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    finally:
        os.remove(theirs_path)
    # Same archive layout and file contents as MLflow's build context.
    assert set(mine) == set(theirs)
    for name, content in theirs.items():
        if not name.endswith(dockerfile):
            assert mine[name][1] == content
    ours_dockerfile = mine[f"{image_utils.CONTEXT_DIR}/{dockerfile}"][1].decode()
    assert ours_dockerfile.splitlines()[0] == "FROM python:3.12-slim"
    assert f"COPY {mlflow_docker._PROJECT_TAR_ARCHIVE_NAME}/ /mlflow/projects/code/" in ours_dockerfile
    assert "WORKDIR /mlflow/projects/code/" in ours_dockerfile


def test_build_context_keeps_executable_bits():
    members = _members(image_utils.build_context(str(PROJECTS / "all_types"), "python:3.12-slim"))
    assert members[f"{image_utils.CONTEXT_DIR}/steps.sh"][0] == 0o755
    assert members[f"{image_utils.CONTEXT_DIR}/run.py"][0] == 0o644


@pytest.mark.parametrize("repo", ["", "Registry/UPPER", "reg/x:tag", "reg/x@sha256:abc"])
def test_bad_repository_names_the_option(repo):
    with pytest.raises(ImageError) as caught:
        image_utils.image_tag(repo, "a" * 64)
    assert caught.value.option == "repository_uri"


def test_tag_from_hash_allows_registry_ports():
    assert image_utils.image_tag(REPO, "0123456789abcdef" + "f" * 48) == REPO + ":mlflow-0123456789abcdef"


# ---------------------------------------------------------------------------------------------
# FAKE: there is no Docker engine on this machine. This stands in for docker.DockerClient with
# the four calls ImageBuilder makes (login, images.get/get_registry_data/build/push), recording
# them. It proves the decisions (reuse, build once, push once, error mapping), not the engine.
# ---------------------------------------------------------------------------------------------
class NotFound(Exception):
    pass


class FakeImages:
    def __init__(self, registry, push_error=None):
        self.registry = registry  # tag -> digest, the "remote registry"
        self.local = {}
        self.calls = []
        self.push_error = push_error

    def get_registry_data(self, tag):
        self.calls.append(("get_registry_data", tag))
        if tag not in self.registry:
            raise NotFound(f"manifest for {tag} not found")
        return type("RegistryData", (), {"id": self.registry[tag]})()

    def get(self, tag):
        self.calls.append(("get", tag))
        if tag not in self.local:
            raise NotFound(tag)
        return self.local[tag]

    def build(self, **kwargs):
        self.calls.append(("build", kwargs["tag"]))
        members = _members(kwargs["fileobj"].getvalue())
        assert kwargs["dockerfile"] in members
        self.local[kwargs["tag"]] = object()
        return self.local[kwargs["tag"]], []

    def push(self, repository, tag, stream, decode):
        self.calls.append(("push", f"{repository}:{tag}"))
        if self.push_error:
            return iter([{"status": "Preparing"}, {"error": self.push_error}])
        self.registry[f"{repository}:{tag}"] = "sha256:" + "d" * 64
        return iter([{"status": "Pushed"}])


class FakeDocker:
    def __init__(self, registry=None, login_error=None, push_error=None):
        self.images = FakeImages(registry if registry is not None else {}, push_error)
        self.login_error = login_error
        self.logins = []

    def login(self, **kwargs):
        self.logins.append(kwargs)
        if self.login_error:
            raise RuntimeError(self.login_error)


def test_new_content_is_built_and_pushed_once_then_reused(project):
    docker = FakeDocker()
    first = image_utils.ImageBuilder(docker).ensure(str(project), "python:3.12-slim", REPO)
    assert (first.built, first.pushed) == (True, True)
    assert first.reference == first.tag + "@sha256:" + "d" * 64
    again = image_utils.ImageBuilder(docker).ensure(str(project), "python:3.12-slim", REPO)
    assert (again.built, again.pushed) == (False, False)
    assert again.reference == first.reference
    assert [c[0] for c in docker.images.calls].count("build") == 1
    assert [c[0] for c in docker.images.calls].count("push") == 1


def test_image_already_in_registry_is_neither_built_nor_pushed(project):
    tag = image_utils.image_tag(REPO, image_utils.content_hash(str(project), "python:3.12-slim"))
    docker = FakeDocker(registry={tag: "sha256:" + "e" * 64})
    result = image_utils.ImageBuilder(docker).ensure(str(project), "python:3.12-slim", REPO)
    assert result.digest == "sha256:" + "e" * 64
    assert [c[0] for c in docker.images.calls] == ["get_registry_data"]


def test_local_image_is_pushed_without_rebuilding(project):
    docker = FakeDocker()
    tag = image_utils.image_tag(REPO, image_utils.content_hash(str(project), "python:3.12-slim"))
    docker.images.local[tag] = object()
    result = image_utils.ImageBuilder(docker).ensure(str(project), "python:3.12-slim", REPO)
    assert (result.built, result.pushed) == (False, True)


def test_changed_content_gets_a_new_tag(project):
    docker = FakeDocker()
    first = image_utils.ImageBuilder(docker).ensure(str(project), "python:3.12-slim", REPO)
    (project / "train.py").write_text("print('v2')\n")
    second = image_utils.ImageBuilder(docker).ensure(str(project), "python:3.12-slim", REPO)
    assert second.tag != first.tag
    assert second.built


def test_login_refused_names_registry_username(project):
    docker = FakeDocker(login_error="unauthorized: incorrect username or password")
    with pytest.raises(ImageError) as caught:
        image_utils.ImageBuilder(docker).ensure(str(project), "b", REPO, {"username": "u", "password": "s3cr3t-pw"})
    assert caught.value.option == "registry_username"
    assert "s3cr3t-pw" not in caught.value.text()
    assert docker.images.calls == []  # nothing built before the login worked


def test_push_refused_names_registry_username(project):
    docker = FakeDocker(push_error="denied: requested access to the resource is denied")
    with pytest.raises(ImageError) as caught:
        image_utils.ImageBuilder(docker).ensure(str(project), "b", REPO)
    assert caught.value.option == "registry_username"
    assert "denied" in caught.value.message


def test_no_engine_names_build(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(ImageError) as caught:
        image_utils.docker_client()
    assert caught.value.option == "build"


def test_a_link_inside_the_project_hashes_and_builds_as_its_target(project, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    shutil.copy(project / "train.py", copy / "alias.py")
    (project / "alias.py").symlink_to("train.py")
    assert image_utils.content_hash(str(project), "base:1") == image_utils.content_hash(str(copy), "base:1")
    assert _members(image_utils.build_context(str(project), "base:1")) == _members(
        image_utils.build_context(str(copy), "base:1")
    )
