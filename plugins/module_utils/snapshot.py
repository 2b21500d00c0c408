# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The project's code as a run artifact: which files, and a deterministic archive of them.

The third way a project's code reaches its pod (docs/mlflow_project_job.md): the module packs
the project directory into ``mlflow-project/code.tar.gz``, logs it as an artifact of the run,
tags the run with its sha256, and an init container fetches it (snapshot_fetch.py).

The archive is the same bytes for the same content, whatever the files' mtimes, owners or the
umask: entries sorted by path, regular files only, mtime 0, uid/gid 0 with empty names, mode
0755 for files executable by their owner and 0644 otherwise, gzip header mtime 0, no file name.

Which files: everything under the directory except ``.git`` (directory or file, at any depth),
the build leftovers image.py always left out (``__pycache__``, ``mlruns``, ``.venv``, ...,
``*.pyc``), and what the project's ``.mlflowignore`` lists. The same list goes into a built
image (``build: true``) and into the content hash, so every way ships the same code.

``.mlflowignore`` syntax (a subset of .gitignore's):

- one pattern a line; blank lines and lines starting with ``#`` are skipped; trailing spaces
  are dropped;
- ``*`` matches anything but ``/``, ``?`` one character but ``/``, ``[abc]``/``[!abc]`` a set,
  ``**`` any number of directories (``data/**``, ``**/cache``, ``a/**/b``);
- a pattern without ``/`` (other than a trailing one) matches a name at any depth
  (``*.csv``, ``checkpoints``); one with a ``/`` in it is matched against the whole path from
  the project's root (``data/raw``, ``/notes.txt``);
- a trailing ``/`` matches directories only; a matched directory is left out with all it holds;
- ``!pattern`` takes back what an earlier pattern left out (the last matching line wins), but
  not a file below a directory that is left out, as in git.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import hashlib
import io
import os
import re
import shutil
import stat
import tarfile
import tempfile

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ProjectError

ARTIFACT_DIR = "mlflow-project"
ARTIFACT_NAME = "code.tar.gz"
ARTIFACT_PATH = ARTIFACT_DIR + "/" + ARTIFACT_NAME
HASH_TAG = "mlops.mlflow_k8s.code_sha256"
CODE_DIR = "/mlflow/projects/code"  # MLflow's working directory in a project image
IGNORE_FILE = ".mlflowignore"
ALWAYS_EXCLUDED = (".git",)
EXCLUDED_DIRS = ("__pycache__", "mlruns", ".mypy_cache", ".pytest_cache", ".venv")
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
MAX_SIZE_OPTION = "snapshot_max_mb"
DEFAULT_MAX_MB = 200
_MB = 1024 * 1024
_CHUNK = 1024 * 1024


class IgnoreRules(object):
    """The patterns of a ``.mlflowignore`` (syntax in the module docstring)."""

    def __init__(self, lines=(), source=IGNORE_FILE):
        self.source = source
        self.rules = []  # (regex, negated, directories_only, text)
        for number, raw in enumerate(lines, 1):
            line = raw.rstrip("\n").rstrip("\r").rstrip(" ")
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            if negated:
                line = line[1:]
            if line.startswith("\\"):  # \# and \! for names that start with those
                line = line[1:]
            directories_only = line.endswith("/")
            line = line.rstrip("/")
            if not line:
                continue
            anchored = "/" in line
            line = line.lstrip("/")
            try:
                regex = re.compile(_translate(line, anchored))
            except re.error as exc:
                raise ProjectError(
                    "project_uri", "line {0} of {1}: {2!r} is not a valid pattern: {3}".format(number, source, raw, exc)
                ) from None
            self.rules.append((regex, negated, directories_only, raw.strip()))

    @classmethod
    def load(cls, directory):
        path = os.path.join(directory, IGNORE_FILE)
        if not os.path.isfile(path):
            return cls()
        try:
            with open(path, encoding="utf-8") as handle:
                return cls(handle.readlines(), path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ProjectError("project_uri", "cannot read {0}: {1}".format(path, exc)) from None

    def ignored(self, relative, is_dir):
        """Whether the path (``/``-separated, relative to the project) is left out."""
        result = False
        for regex, negated, directories_only, _text in self.rules:
            if directories_only and not is_dir:
                continue
            if regex.match(relative):
                result = not negated
        return result


def _translate(pattern, anchored):
    """A regex for one pattern: full match of the relative path (anchored) or of any suffix at a ``/``."""
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
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    body = "".join(out)
    return ("^" if anchored else "^(?:.*/)?") + body + "$"


def _excluded(name, is_dir):
    if name in ALWAYS_EXCLUDED:
        return True
    if is_dir:
        return name in EXCLUDED_DIRS
    return name.endswith(EXCLUDED_SUFFIXES)


def project_files(directory, rules=None):
    """Relative ``/`` paths of the project's files, sorted; ``rules`` default to its .mlflowignore.

    Symbolic links to files are followed (their content is packed, as MLflow's copytree does);
    links to directories are not walked into.
    """
    if rules is None:
        rules = IgnoreRules.load(directory)
    found = []
    for root, dirs, files in os.walk(directory):
        base = os.path.relpath(root, directory).replace(os.sep, "/")
        prefix = "" if base == "." else base + "/"
        dirs[:] = sorted(d for d in dirs if not _excluded(d, True) and not rules.ignored(prefix + d, True))
        for name in files:
            relative = prefix + name
            if _excluded(name, False) or rules.ignored(relative, False):
                continue
            if os.path.isfile(os.path.join(root, name)):  # no sockets, fifos or dangling links
                found.append(relative)
    return sorted(found)


def _mode(path):
    return 0o755 if os.stat(path).st_mode & stat.S_IXUSR else 0o644


def _member(name, size, mode):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write_tar_gz(fileobj, entries):
    """Write a deterministic gzipped tar of ``entries`` (``(name, path or bytes, mode)``, in order)."""
    # Two statements, not one with parentheses: module_utils stay importable on older targets.
    with gzip.GzipFile(filename="", fileobj=fileobj, mode="wb", mtime=0, compresslevel=6) as gz:  # noqa: SIM117
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, source, mode in entries:
                if isinstance(source, bytes):
                    tar.addfile(_member(name, len(source), mode), io.BytesIO(source))
                    continue
                with open(source, "rb") as handle:
                    size = os.fstat(handle.fileno()).st_size
                    tar.addfile(_member(name, size, mode), handle)


def project_entries(directory, files, prefix=""):
    """``(archive name, path, mode)`` for ``files`` of ``directory``, for write_tar_gz."""
    return [(prefix + rel, os.path.join(directory, rel), _mode(os.path.join(directory, rel))) for rel in files]


class Snapshot(object):
    """A packed project: the archive at ``path``, its ``sha256``, ``size`` (bytes) and ``files``."""

    def __init__(self, path, sha256, size, files, unpacked_size):
        self.path = path
        self.sha256 = sha256
        self.size = size
        self.files = files
        self.unpacked_size = unpacked_size

    def as_dict(self):
        return {
            "artifact_path": ARTIFACT_PATH,
            "sha256": self.sha256,
            "size": self.size,
            "unpacked_size": self.unpacked_size,
            "files": len(self.files),
        }


def check_size(directory, files, max_mb):
    """The files' total size in bytes; ProjectError naming ``snapshot_max_mb`` past the limit."""
    total = sum(os.stat(os.path.join(directory, rel)).st_size for rel in files)
    if max_mb is not None and max_mb > 0 and total > max_mb * _MB:
        biggest = sorted(files, key=lambda rel: -os.stat(os.path.join(directory, rel)).st_size)[:3]
        raise ProjectError(
            MAX_SIZE_OPTION,
            "the project's files add up to {0:.1f} MB, more than {1}={2} (largest: {3}); list data files "
            "in {4} and read them from elsewhere, or raise {1}".format(
                total / _MB, MAX_SIZE_OPTION, max_mb, ", ".join(biggest), IGNORE_FILE
            ),
        )
    return total


def pack(directory, dest_dir, max_mb=DEFAULT_MAX_MB):
    """Pack ``directory`` into ``dest_dir``/code.tar.gz (the artifact's name); returns a Snapshot."""
    files = project_files(directory)
    unpacked = check_size(directory, files, max_mb)
    path = os.path.join(dest_dir, ARTIFACT_NAME)
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        write_tar_gz(_HashingWriter(handle, digest), project_entries(directory, files))
    return Snapshot(path, digest.hexdigest(), os.path.getsize(path), files, unpacked)


class _HashingWriter(object):
    def __init__(self, handle, digest):
        self.handle = handle
        self.digest = digest

    def write(self, data):
        self.digest.update(data)
        return self.handle.write(data)

    def flush(self):
        self.handle.flush()


def artifact_url(job_tracking_uri, artifact_uri, path=ARTIFACT_PATH):
    """The URL of a run artifact on the tracking server's proxied artifact API, from the pod's side.

    ``artifact_uri`` is the run's (``mlflow-artifacts:/<experiment>/<run>/artifacts`` when the
    server proxies artifacts); None when the server does not serve this run's artifacts.
    MLflow 3.17 serves them at ``GET <server>/api/2.0/mlflow-artifacts/artifacts/<path>``
    (mlflow/server/artifact_router.py), relative to ``--artifacts-destination``.
    """
    from urllib.parse import quote, urlparse

    parsed = urlparse(str(artifact_uri or ""))
    anchor = "/api/2.0/mlflow-artifacts/artifacts/"
    if parsed.scheme == "mlflow-artifacts":
        root = parsed.path
    elif parsed.scheme in ("http", "https") and anchor in parsed.path:
        root = parsed.path.split(anchor, 1)[1]
    else:
        return None
    relative = "/".join(part for part in (root.strip("/"), path.strip("/")) if part)
    return str(job_tracking_uri).rstrip("/") + anchor.rstrip("/") + "/" + quote(relative)


def tempdir():
    return tempfile.mkdtemp(prefix="mlflow-snapshot-")


def remove(path):
    if path:
        shutil.rmtree(path, ignore_errors=True)


def log_snapshot(client, run_id, snap):
    """Upload the archive as the run's ``mlflow-project/code.tar.gz`` and tag the run with its sha256.

    ``client`` is an MlflowClient; its errors propagate (the caller marks the run FAILED).
    """
    client.log_artifact(run_id, snap.path, ARTIFACT_DIR)
    client.set_tag(run_id, HASH_TAG, snap.sha256)


def download_snapshot(client, run_id, dest_dir):
    """The archive of an earlier run, checked against its hash tag: (path, sha256).

    ProjectError naming ``from_run_id`` when the run has no snapshot or its bytes do not match.
    """
    from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.snapshot_fetch import FetchError, unpack

    run = client.get_run(run_id)
    expected = run.data.tags.get(HASH_TAG)
    if not expected:
        raise ProjectError(
            "from_run_id",
            "run {0} has no {1} tag: it was not submitted with its code as an artifact".format(run_id, HASH_TAG),
        )
    path = client.download_artifacts(run_id, ARTIFACT_PATH, dest_dir)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise ProjectError(
            "from_run_id",
            "the {0} of run {1} has sha256 {2}, its tag says {3}: refused".format(
                ARTIFACT_PATH, run_id, digest.hexdigest(), expected
            ),
        )
    project_dir = os.path.join(dest_dir, "project")
    os.makedirs(project_dir)
    try:
        unpack(path, project_dir)
    except FetchError as exc:
        raise ProjectError("from_run_id", "the snapshot of run {0}: {1}".format(run_id, exc)) from None
    files = project_files(project_dir)
    snap = Snapshot(path, expected, os.path.getsize(path), files, check_size(project_dir, files, None))
    return snap, project_dir, run
