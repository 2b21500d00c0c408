# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The init container's program: fetch the project snapshot, check its hash, unpack it safely.

This file is the whole program: the module puts its source into the init container as
``python -c <source>`` (snapshot_job.py), so it runs on any image with Python 3.6 or later,
with the standard library only (urllib, hashlib, tarfile): no mlflow CLI, no curl, no shell.

Its inputs are environment variables of the init container:

- ``MLFLOW_SNAPSHOT_URL``: the artifact on the tracking server's proxied artifact API;
- ``MLFLOW_SNAPSHOT_SHA256``: the archive's sha256 (the run's tag);
- ``MLFLOW_SNAPSHOT_DEST``: the directory to unpack into (the emptyDir, /mlflow/projects/code);
- ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (basic auth, from a Secret) or
  ``MLFLOW_TRACKING_TOKEN`` (bearer), as the MLflow client reads them;
- ``MLFLOW_TRACKING_INSECURE_TLS`` / ``MLFLOW_TRACKING_SERVER_CERT_PATH``, as MLflow reads them;
- ``MLFLOW_SNAPSHOT_MAX_BYTES``: the most bytes of files the snapshot may unpack to, the
  submission's ``snapshot_max_mb`` in bytes (delivery.py sets it; ``0`` lifts it; unset:
  ``DEFAULT_MAX_BYTES``, the option's default).

What the server sends is untrusted until its sha256 matches, and ``unpack`` (which the controller
uses too, for ``from_run_id``) trusts no archive:

- the download stops past ``stream_limit``: the byte limit plus room for the tar headers of
  ``MAX_MEMBERS`` members and gzip's overhead (1.5 times the default limit);
- members must be regular files or directories with relative names and no ``..``: anything
  else (absolute paths, links, devices, fifos) fails before a byte of it is written;
- at most ``MAX_MEMBERS`` members and at most the byte limit of file content: checked on the
  headers before anything is written, and again on the bytes as they are written; the
  decompressed stream stops at ``stream_limit`` and no single read of it (so no pax or long-name
  header) may be larger than ``MAX_READ``: a gzip bomb, or a pax header of gigabytes, fails with
  an error naming the limit before it fills a disk or memory;
- credentials go only where they were given: a redirect to another origin (scheme, host or
  port), https to http included, is followed without the ``Authorization`` header, and one to
  anything but http(s) is not followed.

No credential is ever printed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import gzip
import hashlib
import os
import ssl
import sys
import tarfile
import time
import zlib

try:
    from urllib.error import HTTPError, URLError
    from urllib.parse import urlparse
    from urllib.request import HTTPRedirectHandler, HTTPSHandler, Request, build_opener
except ImportError:  # pragma: no cover - Python 2 has no place in a pod
    HTTPRedirectHandler = object

DOWNLOAD_NAME = ".mlflow-snapshot.tar.gz.part"
ATTEMPTS = 5
CHUNK = 1024 * 1024
MAX_BYTES_ENV = "MLFLOW_SNAPSHOT_MAX_BYTES"
DEFAULT_MAX_BYTES = 200 * 1024 * 1024  # snapshot_max_mb's default, in bytes
MAX_MEMBERS = 50000  # files and directories of one snapshot
MAX_READ = CHUNK  # the largest single read of the tar stream: file data comes in CHUNKs, headers are smaller
HEADER_ROOM = 2048  # per member: its header, a pax header for a long or non-ASCII name, padding


class FetchError(Exception):
    """What went wrong, in words for the pod's log (never with a credential in them)."""


def _headers(env):
    headers = {"User-Agent": "mlops.mlflow_k8s-snapshot-fetch"}
    user = env.get("MLFLOW_TRACKING_USERNAME")
    password = env.get("MLFLOW_TRACKING_PASSWORD")
    token = env.get("MLFLOW_TRACKING_TOKEN")
    if user and password is not None:
        pair = "{0}:{1}".format(user, password).encode("utf-8")
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    elif token:
        headers["Authorization"] = "Bearer " + token
    return headers


def _ssl_context(env):
    if env.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        # The user asked for it, as MLflow's client allows with the same variable.
        return ssl._create_unverified_context()  # noqa: S323
    cafile = env.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None
    return ssl.create_default_context(cafile=cafile)


def max_bytes_from_env(env):
    """The byte limit the submission set (``MLFLOW_SNAPSHOT_MAX_BYTES``): None when lifted (``0``)."""
    value = env.get(MAX_BYTES_ENV)
    if value is None or value == "":
        return DEFAULT_MAX_BYTES
    try:
        limit = int(value)
    except ValueError:
        raise FetchError("{0}={1!r} is not a number of bytes".format(MAX_BYTES_ENV, value)) from None
    return limit if limit > 0 else None


def stream_limit(max_bytes, max_members=MAX_MEMBERS):
    """The most bytes the archive, or its tar stream, of a snapshot within the limits takes; None: no limit."""
    if not max_bytes:
        return None
    return max_bytes + max_bytes // 256 + max_members * HEADER_ROOM + CHUNK


def _too_big(what, limit):
    return FetchError(
        "{0} more than {1} bytes ({2:.1f} MB), the most a snapshot within snapshot_max_mb may take: refused".format(
            what, limit, limit / (1024.0 * 1024.0)
        )
    )


def _origin(url):
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    try:
        port = parsed.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = None
    return scheme, (parsed.hostname or "").lower(), port


class RedirectHandler(HTTPRedirectHandler):
    """urllib's redirects, but the credentials stay with the origin they were given for (module docstring)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = HTTPRedirectHandler.redirect_request(self, req, fp, code, msg, headers, newurl)
        if new is None or urlparse(new.full_url).scheme.lower() not in ("http", "https"):
            return None  # not followed: the 3xx is the answer
        if _origin(new.full_url) != _origin(req.full_url):
            new.remove_header("Authorization")
        return new


def download(url, dest_file, env, attempts=ATTEMPTS, sleep=time.sleep, timeout=60, limit=None):
    """Stream ``url`` into ``dest_file``; returns the sha256 of what was written.

    Connection errors and 5xx answers are retried (the server may be rolling); 4xx are not. Past
    ``limit`` bytes (None: no limit) the download stops, and is not retried.
    """
    if not url.startswith(("http://", "https://")):
        raise FetchError("{0!r} is not an http(s) URL of the tracking server".format(url))
    last = None
    for attempt in range(1, attempts + 1):
        try:
            request = Request(url, headers=_headers(env))  # noqa: S310 (http(s) only, checked above)
            # The standard library's opener: this runs in the pod, where Ansible's open_url is not.
            handlers = [HTTPSHandler(context=_ssl_context(env))] if url.startswith("https://") else []
            with build_opener(RedirectHandler(), *handlers).open(request, timeout=timeout) as response:
                digest = hashlib.sha256()
                received = 0
                with open(dest_file, "wb") as handle:
                    while True:
                        chunk = response.read(CHUNK)
                        if not chunk:
                            break
                        received += len(chunk)
                        if limit is not None and received > limit:
                            raise _too_big("the download sent", limit)
                        digest.update(chunk)
                        handle.write(chunk)
                return digest.hexdigest()
        except HTTPError as exc:
            if exc.code in (401, 403):
                raise FetchError(
                    "the tracking server refused the snapshot download (HTTP {0}): check the Secret that "
                    "holds MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD".format(exc.code)
                ) from None
            if exc.code == 404:
                raise FetchError(
                    "the tracking server has no snapshot at {0} (HTTP 404): was the run's artifact deleted?".format(url)
                ) from None
            if exc.code < 500:
                raise FetchError("the tracking server answered HTTP {0} for {1}".format(exc.code, url)) from None
            last = "HTTP {0}".format(exc.code)
        except (URLError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        if attempt < attempts:
            sleep(min(2**attempt, 30))
    raise FetchError("cannot download {0} after {1} attempts: {2}".format(url, attempts, last))


def _check_member(member):
    name = member.name
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise FetchError("the snapshot holds {0!r}, a path outside its directory: refused".format(name))
    if not (member.isreg() or member.isdir()):
        raise FetchError("the snapshot holds {0!r}, which is not a regular file or directory: refused".format(name))


class _Bounded(object):
    """The decompressed tar stream for tarfile: no read larger than MAX_READ, no byte past ``limit``."""

    def __init__(self, raw, limit):
        self.raw = raw
        self.limit = limit

    def _check(self, end):
        if self.limit is not None and end > self.limit:
            raise _too_big("the snapshot's tar stream holds", self.limit)

    def read(self, size=-1):
        if size is None or size < 0 or size > MAX_READ:
            raise FetchError("the snapshot holds a header of more than {0} bytes: refused".format(MAX_READ))
        self._check(self.raw.tell() + size)
        return self.raw.read(size)

    def seek(self, offset, whence=0):
        if whence == 0:
            self._check(offset)
        return self.raw.seek(offset, whence)

    def tell(self):
        return self.raw.tell()


def _members(tar, max_bytes, max_members):
    """Every member, checked, before anything is written: the limits apply as the headers come."""
    members = []
    declared = 0
    for member in tar:
        if len(members) >= max_members:
            raise FetchError(
                "the snapshot holds more than {0} entries, the most one may hold: refused".format(max_members)
            )
        _check_member(member)
        declared += member.size
        if max_bytes and declared > max_bytes:
            raise _too_big("the snapshot's files hold", max_bytes)
        members.append(member)
    return members


def _write(source, target, written, max_bytes):
    """Copy one member's data into a new ``target`` (never through a link); the running byte count."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as handle:
        while True:
            chunk = source.read(CHUNK)
            if not chunk:
                return written
            written += len(chunk)
            if max_bytes and written > max_bytes:
                raise _too_big("the snapshot's files hold", max_bytes)
            handle.write(chunk)


def unpack(archive, dest, max_bytes=DEFAULT_MAX_BYTES, max_members=MAX_MEMBERS):
    """Unpack ``archive`` (tar.gz) into ``dest`` within the limits (module docstring); the number of members.

    ``max_bytes`` None or 0: no byte limit. Every member is checked before the first is written.
    """
    root = os.path.realpath(dest)
    try:
        with open(archive, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            stream = _Bounded(gz, stream_limit(max_bytes, max_members))
            with tarfile.open(fileobj=stream, mode="r:") as tar:
                members = _members(tar, max_bytes, max_members)
                written = 0
                for member in members:
                    target = os.path.realpath(os.path.join(root, member.name))
                    if target != root and not target.startswith(root + os.sep):
                        raise FetchError(
                            "the snapshot member {0!r} lands outside {1}: refused".format(member.name, dest)
                        )
                    if member.isdir():
                        if not os.path.isdir(target):
                            os.makedirs(target)
                        continue
                    parent = os.path.dirname(target)
                    if not os.path.isdir(parent):
                        os.makedirs(parent)
                    written = _write(tar.extractfile(member), target, written, max_bytes)
                    os.chmod(target, 0o755 if member.mode & 0o100 else 0o644)
                return len(members)
    except (EOFError, zlib.error, tarfile.TarError) as exc:
        raise FetchError("the snapshot is not a valid tar.gz: {0}".format(exc)) from None


def fetch(url, sha256, dest, env=None, sleep=time.sleep):
    """Download, verify and unpack the snapshot into ``dest``; returns the number of members."""
    env = os.environ if env is None else env
    if not os.path.isdir(dest):
        os.makedirs(dest)
    part = os.path.join(dest, DOWNLOAD_NAME)
    max_bytes = max_bytes_from_env(env)
    try:
        got = download(url, part, env, sleep=sleep, limit=stream_limit(max_bytes))
        if got != sha256:
            raise FetchError(
                "the snapshot's sha256 is {0}, the run says {1}: refused (changed on the server?)".format(got, sha256)
            )
        return unpack(part, dest, max_bytes)
    finally:
        if os.path.exists(part):
            os.remove(part)


def main(env=None):
    env = os.environ if env is None else env
    try:
        url = env["MLFLOW_SNAPSHOT_URL"]
        sha256 = env["MLFLOW_SNAPSHOT_SHA256"]
        dest = env["MLFLOW_SNAPSHOT_DEST"]
    except KeyError as exc:
        sys.stderr.write("mlflow-snapshot: {0} is not set\n".format(exc.args[0]))
        return 2
    try:
        count = fetch(url, sha256, dest, env)
    except (FetchError, OSError, tarfile.TarError) as exc:
        sys.stderr.write("mlflow-snapshot: {0}\n".format(exc))
        return 1
    sys.stdout.write("mlflow-snapshot: {0} entries of {1} unpacked into {2}\n".format(count, sha256[:12], dest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
