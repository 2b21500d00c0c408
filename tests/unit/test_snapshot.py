"""The project snapshot: deterministic packing, .mlflowignore, the size limit, the fetch program.

Everything here is real: real files, real tar/gzip, and the init container's program
(snapshot_fetch.py) run both as functions and as ``python -c <source>`` exactly as the pod runs
it, against a loopback HTTP server that serves what a tracking server would.
"""

import hashlib
import http.server
import io
import os
import random
import re
import subprocess
import sys
import tarfile
import threading
import warnings
from pathlib import Path

import pytest

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import image as image_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import snapshot, snapshot_fetch, snapshot_job
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ProjectError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "wine-quality"


def _make_tree(root: Path, mtime: int) -> Path:
    files = {
        "MLproject": "name: t\nentry_points:\n  main:\n    command: python train.py\n",
        "train.py": "print('hi')\n",
        "run.sh": "#!/bin/sh\necho run\n",
        "pkg/__init__.py": "",
        "pkg/model.py": "W = 1\n",
        "data/small.csv": "a,b\n1,2\n",
        "dünn/ünïcode.txt": "x\n",
        "deep/" + "/".join(["d"] * 30) + "/long-name-" + "x" * 120 + ".txt": "long\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "run.sh").chmod(0o755)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    for path in root.rglob("*"):
        os.utime(path, (mtime, mtime))
    return root


def _pack_under_umask(tmp_path: Path, name: str, umask: int, mtime: int) -> snapshot.Snapshot:
    old = os.umask(umask)
    try:
        tree = _make_tree(tmp_path / name / "project", mtime)
    finally:
        os.umask(old)
    out = tmp_path / name / "out"
    out.mkdir()
    return snapshot.pack(str(tree), str(out))


def test_same_content_gives_the_same_bytes_whatever_the_mtimes_and_umask(tmp_path):
    first = _pack_under_umask(tmp_path, "a", 0o022, 1_600_000_000)
    second = _pack_under_umask(tmp_path, "b", 0o077, 1_700_000_123)
    one, two = Path(first.path).read_bytes(), Path(second.path).read_bytes()
    assert one == two
    assert first.sha256 == second.sha256 == hashlib.sha256(one).hexdigest()
    # The normalisation that makes it so, member by member.
    with tarfile.open(first.path) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert ".git/HEAD" not in [m.name for m in members]
    for member in members:
        assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (0, 0, 0, "", "")
        assert member.mode == (0o755 if member.name == "run.sh" else 0o644), member.name
    assert one[4:8] == b"\0\0\0\0"  # gzip header mtime


def test_content_changes_change_the_hash(tmp_path):
    tree = _make_tree(tmp_path / "p", 0)
    out = tmp_path / "out"
    out.mkdir()
    before = snapshot.pack(str(tree), str(out)).sha256
    (tree / "train.py").write_text("print('changed')\n")
    assert snapshot.pack(str(tree), str(out)).sha256 != before


IGNORE_CASES = [
    # (pattern lines, paths that stay, paths that go)
    (["*.csv"], ["train.py"], ["data/small.csv", "big.csv"]),
    (["data/"], ["train.py", "notdata/x.txt"], ["data/small.csv", "data/sub/y.txt"]),
    (["/big.csv"], ["data/big.csv"], ["big.csv"]),
    (["data/*.csv"], ["data/sub/z.csv", "data/keep.txt"], ["data/small.csv"]),
    (["data/**/*.csv"], ["data/keep.txt"], ["data/small.csv", "data/sub/z.csv"]),
    (["**/cache"], ["train.py"], ["cache/a", "data/cache/b"]),
    (["*.csv", "!keep.csv"], ["keep.csv", "data/keep.csv"], ["big.csv"]),
    (["data/", "!data/keep.txt"], ["train.py"], ["data/keep.txt"]),  # as git: no re-include below an excluded dir
    (["# a comment", "", "tr?in.py  "], ["big.csv"], ["train.py"]),
    (["[bc]ig.csv"], ["data/small.csv"], ["big.csv"]),
    (["[!b]ig.csv"], ["big.csv"], []),
    (["notes"], ["notes.txt"], ["notes", "data/notes"]),
    (["notes/"], ["notes"], []),  # a file named notes: directories only
    (["a[!x]b"], ["a/b"], ["acb", "d/acb"]),  # a set is one character of a name, never a "/"
]


@pytest.mark.parametrize(("lines", "kept", "gone"), IGNORE_CASES)
def test_mlflowignore(tmp_path, lines, kept, gone):
    for rel in set(kept + gone) | {"MLproject"}:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
    (tmp_path / ".mlflowignore").write_text("\n".join(lines) + "\n")
    files = snapshot.project_files(str(tmp_path))
    for rel in kept:
        assert rel in files, (lines, rel, files)
    for rel in gone:
        assert rel not in files, (lines, rel, files)
    assert ".mlflowignore" in files and "MLproject" in files


def test_git_and_build_leftovers_are_always_out(tmp_path):
    (tmp_path / "MLproject").write_text("name: t\n")
    for rel in (".git/config", "sub/.git", "__pycache__/m.pyc", "x.pyc", "mlruns/0/meta.yaml", ".venv/bin/python"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    assert snapshot.project_files(str(tmp_path)) == ["MLproject"]


def test_the_image_build_ships_the_same_files(tmp_path):
    tree = _make_tree(tmp_path / "p", 0)
    (tree / ".mlflowignore").write_text("data/\n")
    context = image_utils.build_context(str(tree), "base:1")
    with tarfile.open(fileobj=io.BytesIO(context)) as tar:
        names = [m.name.split("/", 1)[1] for m in tar.getmembers()]
    assert sorted(n for n in names if n != image_utils.DOCKERFILE_NAME) == snapshot.project_files(str(tree))
    assert "data/small.csv" not in names


def test_size_limit_names_the_option_and_the_size(tmp_path):
    (tmp_path / "MLproject").write_text("name: t\n")
    (tmp_path / "weights.bin").write_bytes(b"\0" * (3 * 1024 * 1024 + 1))
    with pytest.raises(ProjectError) as error:
        snapshot.pack(str(tmp_path), str(tmp_path), max_mb=3)
    assert error.value.option == "snapshot_max_mb"
    assert "3.0 MB" in error.value.message and "snapshot_max_mb=3" in error.value.message
    assert "weights.bin" in error.value.message and ".mlflowignore" in error.value.message
    assert not (tmp_path / snapshot.ARTIFACT_NAME).exists()
    assert snapshot.pack(str(tmp_path), str(tmp_path), max_mb=4).unpacked_size == 3 * 1024 * 1024 + 1 + 8


def _regex_oracle(pattern, anchored):
    """The regex the matcher replaced (a set made to refuse "/"): the semantics to keep."""
    out = []
    i = 0
    n = len(pattern)
    while i < n:
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == n:
            out.append("/.*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end < 0:
                out.append(re.escape(char))
                i += 1
                continue
            body = pattern[i + 1 : end]
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            if body in ("", "^"):  # was a "[" that swallowed the regex after it; now an invalid pattern
                raise re.error("empty set")
            out.append("(?!/)[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    return re.compile(("^" if anchored else "^(?:.*/)?") + "".join(out) + "$", re.DOTALL)


def test_pattern_matches_as_the_regex_it_replaced():
    chooser = random.Random(27)  # noqa: S311 (reproducible test inputs, not secrets)
    checked = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "[[" in a set, as before
        for _round in range(4000):
            text = "".join(chooser.choice("ab/*?[]!-") for _char in range(chooser.randint(1, 7)))
            anchored = chooser.random() < 0.5
            try:
                oracle = _regex_oracle(text, anchored)
            except re.error:
                with pytest.raises(re.error):
                    snapshot.Pattern(text, anchored)
                continue
            pattern = snapshot.Pattern(text, anchored)
            for _path in range(12):
                path = "".join(chooser.choice("ab/-!") for _char in range(chooser.randint(0, 9)))
                assert pattern.match(path) == bool(oracle.match(path)), (text, anchored, path)
                checked += 1
    assert checked > 20000


def test_bad_pattern_is_named(tmp_path):
    (tmp_path / ".mlflowignore").write_text("ok\n[z-a]\n")
    with pytest.raises(ProjectError) as error:
        snapshot.project_files(str(tmp_path))
    assert "line 2" in error.value.message


@pytest.mark.parametrize(
    ("artifact_uri", "expected"),
    [
        ("mlflow-artifacts:/1/abc/artifacts", "http://svc:5000/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/"),
        ("mlflow-artifacts://host:1/x/1/abc/artifacts", "http://svc:5000/api/2.0/mlflow-artifacts/artifacts/x/1/abc/"),
        (
            "http://h/p/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts",
            "http://svc:5000/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/",
        ),
        ("/var/mlruns/1/abc/artifacts", None),
        ("s3://bucket/1/abc/artifacts", None),
    ],
)
def test_artifact_url(artifact_uri, expected):
    url = snapshot.artifact_url("http://svc:5000/", artifact_uri)
    if expected is None:
        assert url is None
    else:
        assert url.startswith(expected) and url.endswith("/mlflow-project/code.tar.gz")


# -- the fetch program -------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}
    auth: str | None = None
    seen: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.seen.append((self.path, self.headers.get("Authorization")))
        if self.auth is not None and self.headers.get("Authorization") != self.auth:
            self.send_response(401)
            self.end_headers()
            return
        body = self.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    handler = type("Handler", (_Handler,), {"files": {}, "auth": None, "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _tree(root: Path) -> dict:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode & 0o777) for p in root.rglob("*") if p.is_file()
    }


def test_fetch_restores_the_tree(tmp_path, http_server):
    handler, base = http_server
    tree = _make_tree(tmp_path / "p", 0)
    packed = snapshot.pack(str(tree), str(tmp_path))
    handler.files["/a/code.tar.gz"] = Path(packed.path).read_bytes()
    dest = tmp_path / "code"
    count = snapshot_fetch.fetch(base + "/a/code.tar.gz", packed.sha256, str(dest), env={})
    assert count == len(packed.files)
    restored = _tree(dest)
    original = {
        k: (v[0], 0o755 if k == "run.sh" else 0o644) for k, v in _tree(tree).items() if not k.startswith(".git")
    }
    assert restored == original


def test_fetch_refuses_a_wrong_hash_and_leaves_no_download(tmp_path, http_server):
    handler, base = http_server
    handler.files["/a"] = b"not the archive"
    dest = tmp_path / "code"
    with pytest.raises(snapshot_fetch.FetchError, match="sha256"):
        snapshot_fetch.fetch(base + "/a", "0" * 64, str(dest), env={})
    assert list(dest.iterdir()) == []


def test_fetch_sends_basic_auth_and_names_a_refusal(tmp_path, http_server):
    handler, base = http_server
    handler.auth = "Basic dXNlcjpwYXNz"  # user:pass
    handler.files["/a"] = b"x"
    digest = hashlib.sha256(b"x").hexdigest()
    with pytest.raises(snapshot_fetch.FetchError, match="HTTP 401") as error:
        snapshot_fetch.fetch(base + "/a", digest, str(tmp_path / "c"), env={})
    assert "Secret" in str(error.value)
    with pytest.raises(snapshot_fetch.FetchError, match="HTTP 401") as error:
        env = {"MLFLOW_TRACKING_USERNAME": "user", "MLFLOW_TRACKING_PASSWORD": "wrong"}
        snapshot_fetch.fetch(base + "/a", digest, str(tmp_path / "c"), env=env)
    assert "wrong" not in str(error.value)
    part = tmp_path / "c" / snapshot_fetch.DOWNLOAD_NAME
    env = {"MLFLOW_TRACKING_USERNAME": "user", "MLFLOW_TRACKING_PASSWORD": "pass"}
    assert snapshot_fetch.download(base + "/a", str(part), env) == digest


def test_fetch_retries_an_unreachable_server_then_says_so(tmp_path):
    sleeps = []
    with pytest.raises(snapshot_fetch.FetchError, match="after 5 attempts"):
        snapshot_fetch.fetch("http://127.0.0.1:9/a", "0" * 64, str(tmp_path / "c"), env={}, sleep=sleeps.append)
    assert len(sleeps) == 4


def _archive(tmp_path: Path, add) -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        add(tar)
    return path


def _file(tar, name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    "add",
    [
        lambda tar: _file(tar, "/etc/evil"),
        lambda tar: _file(tar, "../evil"),
        lambda tar: _file(tar, "a/../../evil"),
        lambda tar: tar.addfile(_link("link", "/etc/passwd", tarfile.SYMTYPE)),
        lambda tar: tar.addfile(_link("hard", "/etc/passwd", tarfile.LNKTYPE)),
        lambda tar: (_file(tar, "good.txt"), tar.addfile(_link("dev", "", tarfile.CHRTYPE))),
    ],
    ids=["absolute", "dotdot", "nested-dotdot", "symlink", "hardlink", "device"],
)
def test_unpack_refuses_members_outside_the_directory(tmp_path, add):
    archive = _archive(tmp_path, add)
    dest = tmp_path / "code"
    dest.mkdir()
    with pytest.raises(snapshot_fetch.FetchError, match="refused"):
        snapshot_fetch.unpack(str(archive), str(dest))
    assert list(dest.iterdir()) == []  # checked before anything is written
    assert not (tmp_path / "evil").exists()


def _link(name, target, kind):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _run_script(env: dict) -> subprocess.CompletedProcess:
    """The init container's command, as the pod runs it: ``python -c <source>``, nothing else on the path."""
    job = snapshot_job.add_code_delivery(_job(), "http://unused", "0" * 64)
    command = job["spec"]["template"]["spec"]["initContainers"][0]["command"]
    assert command[:2] == ["python", "-c"]
    clean = {"PATH": os.environ.get("PATH", ""), **env}
    # -I: isolated, so not even this checkout's modules are importable; stdlib only.
    return subprocess.run(
        [sys.executable, "-I", "-c", command[2]], env=clean, capture_output=True, text=True, check=False
    )


def test_the_script_in_the_pod_spec_runs_alone(tmp_path, http_server):
    handler, base = http_server
    tree = _make_tree(tmp_path / "p", 0)
    packed = snapshot.pack(str(tree), str(tmp_path))
    handler.files["/s/code.tar.gz"] = Path(packed.path).read_bytes()
    handler.auth = "Basic dXNlcjpwYXNz"
    dest = tmp_path / "code"
    env = {
        "MLFLOW_SNAPSHOT_URL": base + "/s/code.tar.gz",
        "MLFLOW_SNAPSHOT_SHA256": packed.sha256,
        "MLFLOW_SNAPSHOT_DEST": str(dest),
        "MLFLOW_TRACKING_USERNAME": "user",
        "MLFLOW_TRACKING_PASSWORD": "pass",
    }
    done = _run_script(env)
    assert done.returncode == 0, done.stderr
    assert "pass" not in done.stdout + done.stderr
    assert sorted(_tree(dest)) == packed.files
    refused = _run_script({**env, "MLFLOW_TRACKING_PASSWORD": "nope", "MLFLOW_SNAPSHOT_DEST": str(tmp_path / "c2")})
    assert refused.returncode == 1 and "HTTP 401" in refused.stderr and "nope" not in refused.stderr
    missing = _run_script({"MLFLOW_SNAPSHOT_URL": "x"})
    assert missing.returncode == 2 and "MLFLOW_SNAPSHOT_SHA256 is not set" in missing.stderr


# -- the Job -----------------------------------------------------------------------------------


def _job():
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "p-1", "namespace": "ns"},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "p",
                            "image": "python:3.12-slim",
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["python", "train.py"],
                            "resources": {"requests": {"cpu": "250m"}},
                            "securityContext": {"allowPrivilegeEscalation": False},
                            "env": [{"name": "MLFLOW_RUN_ID", "value": "r"}],
                        }
                    ],
                }
            }
        },
    }


def test_code_delivery_in_the_job():
    secret = snapshot_job.auth_secret({"name": "mlflow-server-auth", "username_key": "admin-username"})
    job = snapshot_job.add_code_delivery(_job(), "http://svc/x", "ab" * 32, secret)
    pod = job["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    main = pod["containers"][0]
    assert init["image"] == main["image"] == "python:3.12-slim"
    assert init["imagePullPolicy"] == "IfNotPresent" and init["resources"] == main["resources"]
    assert init["securityContext"] == main["securityContext"]
    assert main["workingDir"] == snapshot.CODE_DIR == "/mlflow/projects/code"
    assert {"name": "mlflow-project-code", "emptyDir": {}} in pod["volumes"]
    for container in (init, main):
        assert {"name": "mlflow-project-code", "mountPath": "/mlflow/projects/code"} in container["volumeMounts"]
    env = {e["name"]: e for e in init["env"]}
    assert env["MLFLOW_SNAPSHOT_URL"]["value"] == "http://svc/x"
    assert env["MLFLOW_TRACKING_USERNAME"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlflow-server-auth",
        "key": "admin-username",
    }
    assert env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "password"
    assert "value" not in env["MLFLOW_TRACKING_PASSWORD"]
    assert [e["name"] for e in main["env"]] == ["MLFLOW_RUN_ID"]
    job = snapshot_job.add_auth_env(job, secret)
    main = job["spec"]["template"]["spec"]["containers"][0]
    assert [e["name"] for e in main["env"]] == ["MLFLOW_RUN_ID", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"]
    assert init["command"][2] == Path(snapshot_fetch.__file__).read_text()


def test_code_delivery_refuses_a_template_that_uses_the_code_dir():
    job = _job()
    job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "x", "mountPath": snapshot.CODE_DIR}]
    with pytest.raises(Exception, match="/mlflow/projects/code"):
        snapshot_job.add_code_delivery(job, "http://svc/x", "ab" * 32)


def test_docker_env_environment_as_mlflow_run():
    docker_env = {"image": "x", "environment": [["SET_ME", "v"], "COPY_ME", ["NUM", 3]]}
    env = snapshot_job.docker_env_env(docker_env, {"COPY_ME": "from-host"})
    assert env == [
        {"name": "SET_ME", "value": "v"},
        {"name": "COPY_ME", "value": "from-host"},
        {"name": "NUM", "value": "3"},
    ]
    with pytest.raises(ProjectError) as error:
        snapshot_job.docker_env_env(docker_env, {})
    assert error.value.option == "docker_env.environment" and "COPY_ME" in error.value.message
    with pytest.raises(ProjectError, match="Secret"):
        snapshot_job.docker_env_env({"environment": ["AWS_SECRET_ACCESS_KEY"]}, {"AWS_SECRET_ACCESS_KEY": "s"})
    with pytest.raises(ProjectError, match="set by the module"):
        snapshot_job.docker_env_env({"environment": [["MLFLOW_RUN_ID", "x"]]}, {}, reserved=("MLFLOW_RUN_ID",))
    merged = snapshot_job.merge_env(env, {"SET_ME": "user"})
    assert merged[-1] == {"name": "SET_ME", "value": "user"} and len(merged) == 3


def test_docker_env_volumes_only_when_allowed():
    docker_env = {"image": "x", "volumes": ["/data:/data:ro", "/scratch:/tmp/scratch"]}
    with pytest.raises(ProjectError) as error:
        snapshot_job.docker_env_volumes(docker_env)
    assert error.value.option == "docker_env.volumes" and "allow_host_volumes" in error.value.message
    volumes, mounts = snapshot_job.docker_env_volumes(docker_env, allow_host_volumes=True)
    assert volumes == [
        {"name": "docker-env-volume-0", "hostPath": {"path": "/data"}},
        {"name": "docker-env-volume-1", "hostPath": {"path": "/scratch"}},
    ]
    assert mounts == [
        {"name": "docker-env-volume-0", "mountPath": "/data", "readOnly": True},
        {"name": "docker-env-volume-1", "mountPath": "/tmp/scratch"},
    ]
    with pytest.raises(ProjectError, match="named Docker volumes"):
        snapshot_job.docker_env_volumes({"volumes": ["cache:/cache"]}, allow_host_volumes=True)
    job = snapshot_job.add_host_volumes(_job(), volumes, mounts)
    assert job["spec"]["template"]["spec"]["volumes"] == volumes


def test_example_snapshot_is_small_and_complete(tmp_path):
    packed = snapshot.pack(str(EXAMPLE), str(tmp_path))
    assert {"MLproject", "train.py", "data/wine-quality-sample.csv"} <= set(packed.files)
