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
image (``build: true``) and into the content hash, so every way ships the same code. At most
``MAX_MEMBERS`` files, the most the pod unpacks (snapshot_fetch.py).

The project is untrusted, the controller's other files are not its to ship (issue #27):

- a symbolic link whose target, every link of a chain resolved, is inside the project is
  packed as a regular file with its target's content (a link to a directory inside is not
  walked into, and not packed); one that leads outside the project, to a file, a directory or
  nothing, fails the call naming it: list it in ``.mlflowignore`` to leave it out.
  ``.mlflowignore`` itself is read the same way. Links inside that lead nowhere, fifos,
  sockets and devices are left out;
- every file is opened by ``open_project_file``: from the project directory one name at a
  time with ``O_NOFOLLOW`` (``O_NONBLOCK``, then a regular-file check), so a file or directory
  swapped for a link (or a fifo) between the listing and the read fails instead of leaking.

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

Patterns are matched by ``Pattern``, an automaton run over the path once: its steps grow with
the path's length times the pattern's, never exponentially (the regex it replaced took 3.6 s
for ``*a*a*a*a*a*a*a*a*a*a*a*a*b`` on a path of 26 characters, and grew exponentially with it).
A set (``[...]``) never matches ``/``, and one with nothing in it (``[]``, ``[!]``) is an
invalid pattern.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import gzip
import hashlib
import io
import os
import re
import shutil
import stat
import tarfile
import tempfile

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import snapshot_fetch
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
_MB = 1024 * 1024
DEFAULT_MAX_MB = snapshot_fetch.DEFAULT_MAX_BYTES // _MB
MAX_MEMBERS = snapshot_fetch.MAX_MEMBERS
_CHUNK = 1024 * 1024
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
# What a move of a Pattern accepts: _ANY character, a _NAME's (any but "/"), a 1-character
# string (that character) or a compiled set (one of its characters, never "/").
_ANY = None
_NAME = ""


class Pattern(object):
    """One ``.mlflowignore`` pattern (without ``!`` and trailing ``/``), matched against a whole path.

    ``anchored``: matched from the project's root; otherwise at any ``/``. The pattern becomes
    an automaton: ``moves[n]`` are the (accepted, next) character moves of node ``n``,
    ``skips[n]`` the nodes reached without a character. ``run`` follows every node at once, so
    each character of the path costs one pass over the nodes; the sets of nodes seen are
    cached per instance (bounded), which makes the usual walk a dictionary lookup a character.
    """

    _CACHE = 4096

    def __init__(self, pattern, anchored):
        self.moves = [[]]
        self.skips = [[]]
        self._cache = {}
        end = 0 if anchored else self._dirs(0)  # ^(?:.*/)?
        i = 0
        n = len(pattern)
        while i < n:
            char = pattern[i]
            if pattern.startswith("**/", i):
                end = self._dirs(end)
                i += 3
            elif pattern.startswith("/**", i) and i + 3 == n:  # /.*
                end = self._step(end, "/")
                self.moves[end].append((_ANY, end))
                i += 3
            elif pattern.startswith("**", i):
                end = self._star(end, _ANY)
                i += 2
            elif char == "*":
                end = self._star(end, _NAME)
                i += 1
            elif char == "?":
                end = self._step(end, _NAME)
                i += 1
            elif char == "[":
                close = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "^") else i + 1)
                if close < 0:
                    end = self._step(end, char)
                    i += 1
                    continue
                body = pattern[i + 1 : close]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                end = self._step(end, re.compile("[" + body.replace("\\", "\\\\") + "]"))
                i = close + 1
            else:
                end = self._step(end, char)
                i += 1
        self.accept = end
        self.start = self._closure((0,))

    def _node(self):
        self.moves.append([])
        self.skips.append([])
        return len(self.moves) - 1

    def _step(self, node, accepted):
        nxt = self._node()
        self.moves[node].append((accepted, nxt))
        return nxt

    def _star(self, node, accepted):
        """``[^/]*`` or ``.*``: a loop, then on."""
        loop = self._node()
        self.skips[node].append(loop)
        self.moves[loop].append((accepted, loop))
        return loop

    def _dirs(self, node):
        """``(?:.*/)?``: nothing, or anything that ends with ``/``."""
        inner = self._node()
        nxt = self._node()
        self.skips[node].extend((nxt, inner))
        self.moves[inner].extend(((_ANY, inner), ("/", nxt)))
        return nxt

    def _closure(self, nodes):
        seen = set(nodes)
        todo = list(nodes)
        while todo:
            for nxt in self.skips[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return frozenset(seen)

    def run(self, path):
        """(whether ``path`` matches, the steps it took: moves tried and characters read)."""
        nodes = self.start
        steps = 0
        for char in path:
            key = (nodes, char)
            after = self._cache.get(key)
            if after is None:
                reached = []
                for node in nodes:
                    for accepted, nxt in self.moves[node]:
                        steps += 1
                        if _accepts(accepted, char):
                            reached.append(nxt)
                after = self._closure(reached)
                if len(self._cache) < self._CACHE:
                    self._cache[key] = after
            steps += 1
            if not after:
                return False, steps
            nodes = after
        return self.accept in nodes, steps

    def match(self, path):
        return self.run(path)[0]


def _accepts(accepted, char):
    if accepted is _ANY:
        return True
    if char == "/":
        return accepted == "/"
    if accepted == _NAME:
        return True
    if isinstance(accepted, str):
        return accepted == char
    return accepted.match(char) is not None


class IgnoreRules(object):
    """The patterns of a ``.mlflowignore`` (syntax in the module docstring)."""

    def __init__(self, lines=(), source=IGNORE_FILE):
        self.source = source
        self.rules = []  # (Pattern, negated, directories_only, text)
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
                pattern = Pattern(line, anchored)
            except re.error as exc:
                raise ProjectError(
                    "project_uri", "line {0} of {1}: {2!r} is not a valid pattern: {3}".format(number, source, raw, exc)
                ) from None
            self.rules.append((pattern, negated, directories_only, raw.strip()))

    @classmethod
    def load(cls, directory):
        path = os.path.join(directory, IGNORE_FILE)
        if not os.path.isfile(path):
            return cls()
        try:
            with io.TextIOWrapper(open_project_file(directory, IGNORE_FILE), encoding="utf-8") as handle:
                return cls(handle.readlines(), path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ProjectError("project_uri", "cannot read {0}: {1}".format(path, exc)) from None

    def ignored(self, relative, is_dir):
        """Whether the path (``/``-separated, relative to the project) is left out."""
        result = False
        for pattern, negated, directories_only, _text in self.rules:
            if directories_only and not is_dir:
                continue
            if pattern.match(relative):
                result = not negated
        return result


def _excluded(name, is_dir):
    if name in ALWAYS_EXCLUDED:
        return True
    if is_dir:
        return name in EXCLUDED_DIRS
    return name.endswith(EXCLUDED_SUFFIXES)


def project_files(directory, rules=None):
    """Relative ``/`` paths of the project's files, sorted; ``rules`` default to its .mlflowignore.

    A link that leads outside the project fails the call (module docstring); one inside is
    listed when it leads to a file; a link to a directory is not walked into.
    """
    root = os.path.realpath(directory)
    if rules is None:
        rules = IgnoreRules.load(root)
    found = []
    for current, dirs, files in os.walk(root):
        base = os.path.relpath(current, root).replace(os.sep, "/")
        prefix = "" if base == "." else base + "/"
        dirs[:] = sorted(d for d in dirs if not _excluded(d, True) and not rules.ignored(prefix + d, True))
        for name in dirs:
            if os.path.islink(os.path.join(current, name)):
                _real_names(root, prefix + name)  # fails when it leads outside; never walked into
        for name in files:
            relative = prefix + name
            if _excluded(name, False) or rules.ignored(relative, False):
                continue
            path = os.path.join(current, name)
            if os.path.islink(path):
                _real_names(root, relative)
            if os.path.isfile(path):  # no sockets, fifos or dangling links
                found.append(relative)
    return sorted(found)


def _real_names(root, relative):
    """The names from ``root`` to where ``relative`` really is, links resolved; ProjectError outside ``root``."""
    real = os.path.realpath(os.path.join(root, relative))
    inner = os.path.relpath(real, root)
    if inner == os.pardir or inner.startswith(os.pardir + os.sep):
        raise ProjectError(
            "project_uri",
            "{0} is a symbolic link that leads outside the project, to {1}: refused, its content is not the "
            "project's to ship; list it in {2}, or replace it with the file".format(relative, real, IGNORE_FILE),
        )
    return [] if inner == os.curdir else inner.split(os.sep)


def open_project_file(directory, relative):
    """``relative`` of the project, open for binary reading; ProjectError when it is not a file inside.

    Walked from the directory one name at a time with ``O_NOFOLLOW``, along the path its links
    resolve to (``_real_names``), so a link swapped in after that check is not followed.
    """
    root = os.path.realpath(directory)
    names = _real_names(root, relative)
    try:
        node = os.open(root, _OPEN_DIR)
        try:
            for name in names[:-1]:
                parent, node = node, os.open(name, _OPEN_DIR, dir_fd=node)
                os.close(parent)
            fd = os.open(names[-1] if names else os.curdir, _OPEN_FILE, dir_fd=node)
        finally:
            os.close(node)
    except OSError as exc:
        raise ProjectError(
            "project_uri",
            "cannot read {0} of the project: {1} (a link, or changed while it was read?)".format(
                relative, exc.strerror
            ),
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ProjectError(
            "project_uri", "{0} of the project is not a regular file (any more): refused".format(relative)
        )
    return os.fdopen(fd, "rb")


def file_mode(st_mode):
    """The archive's mode for a file: 0755 when its owner may execute it, else 0644."""
    return 0o755 if st_mode & stat.S_IXUSR else 0o644


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
    """Write a deterministic gzipped tar of ``entries``, in order.

    An entry is ``(name, bytes, mode)``, or ``(name, opener, None)``: ``opener()`` gives an
    open binary file (project_entries), whose mode (file_mode) and size come from that file.
    """
    # Two statements, not one with parentheses: module_utils stay importable on older targets.
    with gzip.GzipFile(filename="", fileobj=fileobj, mode="wb", mtime=0, compresslevel=6) as gz:  # noqa: SIM117
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, source, mode in entries:
                if isinstance(source, bytes):
                    tar.addfile(_member(name, len(source), mode), io.BytesIO(source))
                    continue
                with source() as handle:
                    status = os.fstat(handle.fileno())
                    tar.addfile(_member(name, status.st_size, file_mode(status.st_mode)), handle)


def project_entries(directory, files, prefix=""):
    """``(archive name, opener, None)`` for ``files`` of ``directory``, for write_tar_gz."""
    return [(prefix + rel, functools.partial(open_project_file, directory, rel), None) for rel in files]


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


def max_bytes(max_mb):
    """``snapshot_max_mb`` in bytes; None when it lifts the limit (0, or not given)."""
    return max_mb * _MB if max_mb is not None and max_mb > 0 else None


def check_size(directory, files, max_mb):
    """The files' total size in bytes; ProjectError naming ``snapshot_max_mb`` past the limit.

    More than MAX_MEMBERS files, whatever ``max_mb``, fail too: the pod would not unpack them.
    """
    if len(files) > MAX_MEMBERS:
        raise ProjectError(
            "project_uri",
            "the project has {0} files, more than the {1} a snapshot may hold; list what the run does not need "
            "in {2}".format(len(files), MAX_MEMBERS, IGNORE_FILE),
        )
    total = sum(os.stat(os.path.join(directory, rel)).st_size for rel in files)
    if max_bytes(max_mb) is not None and total > max_bytes(max_mb):
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


def download_snapshot(client, run_id, dest_dir, max_mb=DEFAULT_MAX_MB):
    """The archive of an earlier run, checked against its hash tag, unpacked: (Snapshot, directory, run).

    ProjectError naming ``from_run_id`` when the run has no snapshot, its bytes do not match, or
    it is larger than ``max_mb`` (``snapshot_max_mb``) allows: the server's listing is checked
    before the download, and snapshot_fetch.unpack's limits apply to what it unpacks.
    """
    limit = max_bytes(max_mb)
    run = client.get_run(run_id)
    expected = run.data.tags.get(HASH_TAG)
    if not expected:
        raise ProjectError(
            "from_run_id",
            "run {0} has no {1} tag: it was not submitted with its code as an artifact".format(run_id, HASH_TAG),
        )
    archive_limit = snapshot_fetch.stream_limit(limit)
    listed = [f.file_size for f in client.list_artifacts(run_id, ARTIFACT_DIR) if f.path == ARTIFACT_PATH]
    if archive_limit is not None and listed and (listed[0] or 0) > archive_limit:
        raise ProjectError(
            "from_run_id",
            "the {0} of run {1} is {2} bytes, more than {3} bytes, the most a snapshot within {4}={5} takes: "
            "refused".format(ARTIFACT_PATH, run_id, listed[0], archive_limit, MAX_SIZE_OPTION, max_mb),
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
        snapshot_fetch.unpack(path, project_dir, limit)
    except snapshot_fetch.FetchError as exc:
        raise ProjectError("from_run_id", "the snapshot of run {0}: {1}".format(run_id, exc)) from None
    files = project_files(project_dir)
    snap = Snapshot(path, expected, os.path.getsize(path), files, check_size(project_dir, files, None))
    return snap, project_dir, run
