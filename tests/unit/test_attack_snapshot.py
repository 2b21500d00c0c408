"""Attacks on the code snapshot (issue #27), each test named for the attack it tries.

The project, its MLproject and .mlflowignore, and whatever is stored in MLflow are untrusted;
the operator running Ansible is trusted. Nothing the untrusted side controls may get a
controller file outside the project directory into an archive (or an error message), make a
pattern match run for ages, fill the controller's or the pod's disk or memory when a snapshot
is unpacked, or get the tracking credentials sent to another server.

Everything is real: files, links, fifos, tar.gz, gzip bombs, loopback HTTP servers.
"""

import gzip
import hashlib
import http.server
import io
import os
import tarfile
import threading
from pathlib import Path
from urllib.request import Request

import pytest

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import delivery, snapshot, snapshot_fetch
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import image as image_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ProjectError
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.tracking import Tracker

SECRET = b"controller-secret-4c7a9e: not the project's to ship\n"
MB = 1024 * 1024


@pytest.fixture
def secret(tmp_path):
    """A controller file outside the project, and a directory holding one."""
    outside = tmp_path / "controller"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (outside / "dir").mkdir()
    (outside / "dir" / "secret.txt").write_bytes(SECRET)
    return outside


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    (root / "sub").mkdir(parents=True)
    (root / "MLproject").write_text("name: t\nentry_points:\n  main:\n    command: python train.py\n")
    (root / "train.py").write_text("print('hi')\n")
    (root / "sub" / "x.txt").write_text("x\n")
    return root


def _packed_bytes(project: Path, out: Path) -> bytes:
    out.mkdir(exist_ok=True)
    return gzip.decompress(Path(snapshot.pack(str(project), str(out)).path).read_bytes())


def _refused_naming(project: Path, out: Path, name: str) -> ProjectError:
    out.mkdir(exist_ok=True)
    with pytest.raises(ProjectError) as error:
        snapshot.pack(str(project), str(out))
    assert name in error.value.message
    assert SECRET.strip().decode() not in error.value.message
    assert not (out / snapshot.ARTIFACT_NAME).exists() or SECRET not in _gunzip(out / snapshot.ARTIFACT_NAME)
    return error.value


def _gunzip(path: Path) -> bytes:
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError):
        return path.read_bytes()


# -- 1. links out of the project ---------------------------------------------------------------


def test_symlink_to_a_controller_file_is_not_packed(project, secret, tmp_path):
    (project / "leak.txt").symlink_to(secret / "secret.txt")
    error = _refused_naming(project, tmp_path / "out", "leak.txt")
    assert error.option == "project_uri" and "outside the project" in error.message
    assert ".mlflowignore" in error.message  # what to do about it


def test_relative_dotdot_symlink_is_not_packed(project, secret, tmp_path):
    (project / "sub" / "leak.txt").symlink_to(Path("..") / ".." / "controller" / "secret.txt")
    _refused_naming(project, tmp_path / "out", "sub/leak.txt")


def test_symlink_chain_that_ends_outside_is_not_packed(project, secret, tmp_path):
    (project / "hop2").symlink_to(secret / "secret.txt")
    (project / "hop1").symlink_to("hop2")
    _refused_naming(project, tmp_path / "out", "hop1")


def test_symlink_to_a_directory_outside_is_refused(project, secret, tmp_path):
    (project / "data").symlink_to(secret / "dir", target_is_directory=True)
    _refused_naming(project, tmp_path / "out", "data")


def test_symlinked_mlflowignore_to_a_controller_file_is_not_read(project, secret, tmp_path):
    # Its lines would come back in the error that names an invalid pattern.
    (secret / "secret.txt").write_bytes(b"[z-a] " + SECRET)
    (project / ".mlflowignore").symlink_to(secret / "secret.txt")
    with pytest.raises(ProjectError) as error:
        snapshot.project_files(str(project))
    assert ".mlflowignore" in error.value.message and "outside the project" in error.value.message
    assert "controller-secret" not in error.value.message


def test_symlink_out_of_the_project_that_mlflowignore_lists_is_left_out(project, secret, tmp_path):
    (project / "leak.txt").symlink_to(secret / "secret.txt")
    (project / "data").symlink_to(secret / "dir", target_is_directory=True)
    (project / ".mlflowignore").write_text("leak.txt\ndata/\n")
    packed = _packed_bytes(project, tmp_path / "out")
    assert SECRET not in packed
    assert snapshot.project_files(str(project)) == [".mlflowignore", "MLproject", "sub/x.txt", "train.py"]


def test_symlink_inside_the_project_ships_its_target_as_a_file(project, tmp_path):
    (project / "alias.py").symlink_to("train.py")
    (project / "sub" / "up.py").symlink_to(Path("..") / "train.py")
    (project / "subdir-link").symlink_to("sub", target_is_directory=True)  # not walked into, as before
    files = snapshot.project_files(str(project))
    assert "alias.py" in files and "sub/up.py" in files and not any(f.startswith("subdir-link") for f in files)
    out = tmp_path / "out"
    out.mkdir()
    with tarfile.open(snapshot.pack(str(project), str(out)).path) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["alias.py"].isreg() and tar.extractfile("alias.py").read() == b"print('hi')\n"
        assert tar.extractfile("sub/up.py").read() == b"print('hi')\n"


def test_image_build_context_and_hash_do_not_follow_a_symlink_out(project, secret):
    (project / "leak.txt").symlink_to(secret / "secret.txt")
    for build in (image_utils.build_context, image_utils.content_hash):
        with pytest.raises(ProjectError, match="leak.txt"):
            build(str(project), "python:3.12-slim")


def test_file_swapped_for_a_symlink_after_listing_is_not_read(project, secret):
    files = snapshot.project_files(str(project))
    (project / "train.py").unlink()
    (project / "train.py").symlink_to(secret / "secret.txt")
    out = io.BytesIO()
    with pytest.raises(ProjectError, match="train.py"):
        snapshot.write_tar_gz(out, snapshot.project_entries(str(project), files))
    assert SECRET not in _gunzip_bytes(out.getvalue())


def test_directory_swapped_for_a_symlink_after_listing_is_not_read(project, secret):
    (secret / "dir" / "x.txt").write_bytes(SECRET)
    files = snapshot.project_files(str(project))
    (project / "sub" / "x.txt").unlink()
    (project / "sub").rmdir()
    (project / "sub").symlink_to(secret / "dir", target_is_directory=True)
    out = io.BytesIO()
    with pytest.raises(ProjectError, match="sub/x.txt"):
        snapshot.write_tar_gz(out, snapshot.project_entries(str(project), files))
    assert SECRET not in _gunzip_bytes(out.getvalue())


def test_link_swapped_in_between_the_check_and_the_open_is_not_followed(project, secret, monkeypatch):
    # The race itself: the path was checked while sub/ was a directory, and is a link when opened.
    # The open walks the names one by one with O_NOFOLLOW, so the check's answer cannot be used
    # against it.
    (secret / "dir" / "x.txt").write_bytes(SECRET)
    files = snapshot.project_files(str(project))
    (project / "sub" / "x.txt").unlink()
    (project / "sub").rmdir()
    (project / "sub").symlink_to(secret / "dir", target_is_directory=True)
    monkeypatch.setattr(snapshot, "_real_names", lambda root, relative: relative.split("/"), raising=False)
    out = io.BytesIO()
    with pytest.raises(ProjectError, match="sub/x.txt"):
        snapshot.write_tar_gz(out, snapshot.project_entries(str(project), files))
    assert SECRET not in _gunzip_bytes(out.getvalue())


def test_file_swapped_for_a_fifo_does_not_hang_the_controller(project):
    files = snapshot.project_files(str(project))
    fifo = project / "train.py"
    fifo.unlink()
    os.mkfifo(fifo)
    outcome = []

    def pack():
        try:
            snapshot.write_tar_gz(io.BytesIO(), snapshot.project_entries(str(project), files))
            outcome.append("packed")
        except ProjectError as exc:
            outcome.append(exc.message)

    thread = threading.Thread(target=pack, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # blocked in open(): release it, then fail
        with open(fifo, "wb"):
            pass
        thread.join(10)
        pytest.fail("opening a fifo swapped into the project blocked the controller")
    assert outcome and "train.py" in outcome[0] and "not a regular file" in outcome[0]


def _gunzip_bytes(data: bytes) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError):
        return data


# -- 2. .mlflowignore patterns that backtrack ----------------------------------------------------


PATHOLOGICAL = "*a" * 12 + "*b"  # 12 stars: a backtracking matcher tries ~C(60, 12) splits of 60 a's


def test_mlflowignore_pattern_with_many_stars_matches_in_linear_steps():
    path = "a" * 60
    pattern = snapshot.Pattern(PATHOLOGICAL, anchored=False)
    matched, steps = pattern.run(path)
    assert not matched
    assert pattern.run("a" * 59 + "b")[0]
    # Each character of the path costs at most one pass over the pattern's states.
    assert steps <= (len(path) + 1) * (4 * len(PATHOLOGICAL) + 8)


def test_mlflowignore_with_a_pathological_pattern_does_not_stall_the_walk(tmp_path):
    deep = tmp_path / ("a" * 30) / ("a" * 29)
    deep.mkdir(parents=True)
    (deep / "a").write_text("x")
    (tmp_path / ".mlflowignore").write_text(PATHOLOGICAL + "\n" + "**" + "a**" * 10 + "b\n")
    assert snapshot.project_files(str(tmp_path)) == [".mlflowignore", "a" * 30 + "/" + "a" * 29 + "/a"]


# -- 3. archives that would fill the disk or memory when unpacked --------------------------------


def _zeros(size):
    """A file object of ``size`` zero bytes, without holding them."""

    class Zeros(io.RawIOBase):
        left = size

        def readable(self):
            return True

        def readinto(self, buffer):
            n = min(len(buffer), self.left)
            buffer[:n] = b"\0" * n
            self.left -= n
            return n

    return io.BufferedReader(Zeros())


def _tar_gz(path: Path, members) -> Path:
    """A tar.gz of ``(TarInfo, data file or None)``, written as given (the attacker's own archive)."""
    with (
        gzip.GzipFile(path, "wb", compresslevel=1) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for info, data in members:
            tar.addfile(info, data)
    return path


def _info(name, size=0, kind=tarfile.REGTYPE):
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    return info


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """A gzip bomb: a few hundred KB that unpack to one file larger than snapshot_max_mb's default."""
    size = snapshot.DEFAULT_MAX_MB * MB + MB
    path = _tar_gz(tmp_path_factory.mktemp("bomb") / "code.tar.gz", [(_info("weights.bin", size), _zeros(size))])
    assert path.stat().st_size < 2 * MB
    return path


def _entries(root: Path) -> list:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_gzip_bomb_stops_at_the_default_limit_naming_it(bomb, tmp_path):
    dest = tmp_path / "code"
    dest.mkdir()
    with pytest.raises(snapshot_fetch.FetchError) as error:
        snapshot_fetch.unpack(str(bomb), str(dest))
    assert "snapshot_max_mb" in str(error.value) and "200.0 MB" in str(error.value)
    assert _entries(dest) == []  # refused on its header, before a byte is written


def test_gzip_bomb_stops_at_the_limit_the_pod_is_given(bomb, tmp_path, http_server):
    handler, base = http_server
    data = bomb.read_bytes()
    handler.files["/code.tar.gz"] = data
    dest = tmp_path / "code"
    env = {snapshot_fetch.MAX_BYTES_ENV: str(5 * MB)}
    with pytest.raises(snapshot_fetch.FetchError, match=r"5242880 bytes \(5.0 MB\)"):
        snapshot_fetch.fetch(base + "/code.tar.gz", hashlib.sha256(data).hexdigest(), str(dest), env=env)
    assert _entries(dest) == []


def test_gzip_bomb_past_the_header_check_stops_on_the_bytes_written(tmp_path, monkeypatch):
    # Were the headers' sizes not to be trusted (or their check gone), the count is on the bytes
    # as they are written.
    archive = _tar_gz(tmp_path / "bomb.tar.gz", [(_info("a.bin", 8 * MB), _zeros(8 * MB))])
    checked = snapshot_fetch._members
    monkeypatch.setattr(snapshot_fetch, "_members", lambda tar, max_bytes, max_members: checked(tar, None, max_members))
    dest = tmp_path / "code"
    dest.mkdir()
    with pytest.raises(snapshot_fetch.FetchError, match=r"files hold more than 1048576 bytes \(1.0 MB\)"):
        snapshot_fetch.unpack(str(archive), str(dest), max_bytes=MB)
    assert (dest / "a.bin").stat().st_size <= MB


def test_archive_with_too_many_members_stops_at_the_limit(tmp_path):
    archive = _tar_gz(tmp_path / "many.tar.gz", [(_info(f"f{i}"), None) for i in range(60)])
    dest = tmp_path / "code"
    dest.mkdir()
    with pytest.raises(snapshot_fetch.FetchError, match="more than 50 entries"):
        snapshot_fetch.unpack(str(archive), str(dest), max_members=50)
    assert _entries(dest) == []
    assert snapshot_fetch.unpack(str(archive), str(dest), max_members=60) == 60


def test_pax_header_of_64_mb_is_refused_before_it_is_read_into_memory(tmp_path):
    archive = _tar_gz(tmp_path / "pax.tar.gz", [(_info("x", 64 * MB, tarfile.XHDTYPE), _zeros(64 * MB))])
    dest = tmp_path / "code"
    dest.mkdir()
    with pytest.raises(snapshot_fetch.FetchError, match="header of more than"):
        snapshot_fetch.unpack(str(archive), str(dest))


@pytest.mark.parametrize(
    ("name", "kind"),
    [("/etc/cron.d/evil", tarfile.REGTYPE), ("a/../../evil", tarfile.REGTYPE), ("pipe", tarfile.FIFOTYPE)],
    ids=["absolute", "dotdot", "fifo"],
)
def test_archive_member_outside_or_not_a_file_is_refused(tmp_path, name, kind):
    archive = _tar_gz(tmp_path / "evil.tar.gz", [(_info("ok.txt", 1), io.BytesIO(b"x")), (_info(name, 0, kind), None)])
    dest = tmp_path / "code"
    dest.mkdir()
    with pytest.raises(snapshot_fetch.FetchError, match="refused"):
        snapshot_fetch.unpack(str(archive), str(dest))
    assert _entries(dest) == []


def test_download_larger_than_the_limit_is_cut_off(tmp_path, http_server):
    handler, base = http_server
    handler.files["/big"] = b"\0" * (4 * MB)
    part = tmp_path / "part"
    with pytest.raises(snapshot_fetch.FetchError, match=r"the download sent more than 1048576 bytes"):
        snapshot_fetch.download(base + "/big", str(part), {}, limit=MB)
    assert part.stat().st_size <= MB
    # fetch sets the limit from the pod's byte limit, and removes what it downloaded
    assert snapshot_fetch.stream_limit(200 * MB) < 1.5 * 200 * MB
    with pytest.raises(snapshot_fetch.FetchError, match="sha256"):
        snapshot_fetch.fetch(base + "/big", "0" * 64, str(tmp_path / "code"), env={})
    assert _entries(tmp_path / "code") == []


def test_gzip_bomb_from_an_earlier_run_stops_on_the_controller(bomb, tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = tracker.client.create_experiment("e", artifact_location=str(tmp_path / "artifacts"))
    run = tracker.client.create_run(experiment).info.run_id
    tracker.client.log_artifact(run, str(bomb), snapshot.ARTIFACT_DIR)
    tracker.client.set_tag(run, snapshot.HASH_TAG, hashlib.sha256(bomb.read_bytes()).hexdigest())
    with pytest.raises(ProjectError) as error:
        delivery.prepare_from_run(tracker, run).cleanup()
    assert error.value.option == "from_run_id"
    assert "snapshot_max_mb" in error.value.message and "200.0 MB" in error.value.message


# -- 4. credentials on redirects -----------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}
    seen: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.seen.append((self.path, self.headers.get("Authorization")))
        status, value = self.routes.get(self.path, (404, b""))
        self.send_response(status)
        if status in (301, 302, 303, 307, 308):
            self.send_header("Location", value)
            value = b""
        self.send_header("Content-Length", str(len(value)))
        self.end_headers()
        self.wfile.write(value)

    def log_message(self, *args):
        pass


def _serve(routes):
    handler = type("Handler", (_Handler,), {"routes": routes, "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def servers():
    made = []

    def start(routes):
        made.append(_serve(routes))
        return made[-1][1:]

    yield start
    for server, _handler, _base in made:
        server.shutdown()
        server.server_close()


class _Files(http.server.BaseHTTPRequestHandler):
    files: dict = {}

    def do_GET(self):  # noqa: N802
        body = self.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    handler = type("Handler", (_Files,), {"files": {}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


AUTH = {"MLFLOW_TRACKING_USERNAME": "user", "MLFLOW_TRACKING_PASSWORD": "pass"}


def test_credentials_are_not_forwarded_on_a_redirect_to_another_port(servers, tmp_path):
    body = b"the archive"
    other, other_base = servers({"/b": (200, body)})
    tracking, tracking_base = servers({"/a": (302, other_base + "/b")})
    got = snapshot_fetch.download(tracking_base + "/a", str(tmp_path / "part"), AUTH)
    assert got == hashlib.sha256(body).hexdigest()
    assert tracking.seen == [("/a", "Basic dXNlcjpwYXNz")]
    assert other.seen == [("/b", None)]


def test_credentials_are_kept_on_a_redirect_within_the_same_origin(servers, tmp_path):
    tracking, base = servers({"/a": (302, "/b"), "/b": (200, b"x")})
    snapshot_fetch.download(base + "/a", str(tmp_path / "part"), AUTH)
    assert tracking.seen == [("/a", "Basic dXNlcjpwYXNz"), ("/b", "Basic dXNlcjpwYXNz")]


@pytest.mark.parametrize(
    ("newurl", "kept"),
    [
        ("https://mlflow.example:443/b", True),
        ("https://MLFLOW.example/b", True),
        ("http://mlflow.example:443/b", False),  # https to http, same host and port
        ("http://mlflow.example/b", False),
        ("https://mlflow.example:8443/b", False),
        ("https://evil.example/b", False),
    ],
)
def test_credentials_are_not_forwarded_on_a_downgrade_or_another_origin(newurl, kept):
    request = Request("https://mlflow.example/a", headers={"Authorization": "Bearer t0ken"})
    new = snapshot_fetch.RedirectHandler().redirect_request(request, io.BytesIO(), 302, "Found", {}, newurl)
    assert new.has_header("Authorization") is kept


def test_redirect_to_a_non_http_url_is_not_followed(servers, tmp_path):
    _tracking, base = servers({"/a": (302, "ftp://127.0.0.1/code.tar.gz")})
    with pytest.raises(snapshot_fetch.FetchError, match="HTTP 302"):
        snapshot_fetch.download(base + "/a", str(tmp_path / "part"), AUTH)
