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
- ``MLFLOW_TRACKING_INSECURE_TLS`` / ``MLFLOW_TRACKING_SERVER_CERT_PATH``, as MLflow reads them.

Members must be regular files or directories with relative names and no ``..``: anything else
(absolute paths, links, devices) fails the fetch before a byte of it is written. No credential
is ever printed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import os
import ssl
import sys
import tarfile
import time

try:
    from urllib.error import HTTPError, URLError
    from urllib.request import HTTPSHandler, Request, build_opener
except ImportError:  # pragma: no cover - Python 2 has no place in a pod
    pass

DOWNLOAD_NAME = ".mlflow-snapshot.tar.gz.part"
ATTEMPTS = 5
CHUNK = 1024 * 1024


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


def download(url, dest_file, env, attempts=ATTEMPTS, sleep=time.sleep, timeout=60):
    """Stream ``url`` into ``dest_file``; returns the sha256 of what was written.

    Connection errors and 5xx answers are retried (the server may be rolling); 4xx are not.
    """
    if not url.startswith(("http://", "https://")):
        raise FetchError("{0!r} is not an http(s) URL of the tracking server".format(url))
    last = None
    for attempt in range(1, attempts + 1):
        try:
            request = Request(url, headers=_headers(env))  # noqa: S310 (http(s) only, checked above)
            # The standard library's opener: this runs in the pod, where Ansible's open_url is not.
            handlers = [HTTPSHandler(context=_ssl_context(env))] if url.startswith("https://") else []
            with build_opener(*handlers).open(request, timeout=timeout) as response:
                digest = hashlib.sha256()
                with open(dest_file, "wb") as handle:
                    while True:
                        chunk = response.read(CHUNK)
                        if not chunk:
                            break
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


def unpack(archive, dest):
    """Unpack ``archive`` (tar.gz) into ``dest``: every member checked first, then written."""
    with tarfile.open(archive, mode="r:gz") as tar:
        members = tar.getmembers()
        for member in members:
            _check_member(member)
        root = os.path.realpath(dest)
        for member in members:
            target = os.path.realpath(os.path.join(root, member.name))
            if target != root and not target.startswith(root + os.sep):
                raise FetchError("the snapshot member {0!r} lands outside {1}: refused".format(member.name, dest))
            if member.isdir():
                if not os.path.isdir(target):
                    os.makedirs(target)
                continue
            parent = os.path.dirname(target)
            if not os.path.isdir(parent):
                os.makedirs(parent)
            source = tar.extractfile(member)
            with open(target, "wb") as handle:
                while True:
                    chunk = source.read(CHUNK)
                    if not chunk:
                        break
                    handle.write(chunk)
            os.chmod(target, 0o755 if member.mode & 0o100 else 0o644)
        return len(members)


def fetch(url, sha256, dest, env=None, sleep=time.sleep):
    """Download, verify and unpack the snapshot into ``dest``; returns the number of members."""
    env = os.environ if env is None else env
    if not os.path.isdir(dest):
        os.makedirs(dest)
    part = os.path.join(dest, DOWNLOAD_NAME)
    try:
        got = download(url, part, env, sleep=sleep)
        if got != sha256:
            raise FetchError(
                "the snapshot's sha256 is {0}, the run says {1}: refused (changed on the server?)".format(got, sha256)
            )
        return unpack(part, dest)
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
