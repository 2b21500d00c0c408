# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the code snapshot and the MLproject's docker_env add to a rendered Job.

- ``add_code_delivery``: an init container on the project container's image that runs
  snapshot_fetch.py (its source as ``python -c``), an ``emptyDir`` volume mounted at
  ``/mlflow/projects/code`` in both, and that directory as the project container's
  ``workingDir``: the pod starts the entry point where a built image would have it.
- ``docker_env_env`` / ``docker_env_volumes``: ``docker_env.environment`` and
  ``docker_env.volumes`` as ``mlflow run`` passes them to ``docker run`` (``-e``, ``-v``):
  ``NAME`` copies the submitter's value, ``[NAME, value]`` sets one, ``host:container[:ro]``
  becomes a hostPath volume, only with ``allow_host_volumes``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import inspect
import os
import re

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import snapshot as snapshot_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import snapshot_fetch
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ProjectError, TemplateError
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.job import env_list

INIT_CONTAINER = "mlflow-project-code"
VOLUME = "mlflow-project-code"
HOST_VOLUME_PREFIX = "docker-env-volume-"
AUTH_OPTION = "tracking_auth_secret"
HOST_VOLUMES_OPTION = "allow_host_volumes"
ENV_KEY = "docker_env.environment"
VOLUMES_KEY = "docker_env.volumes"
# A copied value lands in the Job spec (and the module's result): no secrets that way.
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|PRIVATE|(^|_)KEY$|ACCESS_KEY", re.IGNORECASE)
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def fetch_script():
    """The init container's program: the source of snapshot_fetch.py, as ``python -c`` runs it."""
    return inspect.getsource(snapshot_fetch)


def auth_secret(spec):
    """``tracking_auth_secret`` as ``{name, username_key, password_key}`` (a name alone is fine)."""
    if not spec:
        return None
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or not spec.get("name"):
        raise TemplateError(AUTH_OPTION, "give the name of a Secret (and optionally username_key, password_key)")
    return {
        "name": str(spec["name"]),
        "username_key": str(spec.get("username_key") or "username"),
        "password_key": str(spec.get("password_key") or "password"),
    }


def auth_env(secret):
    """MLFLOW_TRACKING_USERNAME/PASSWORD from the Secret, by reference: no value in the pod spec."""
    if not secret:
        return []
    return [
        {
            "name": "MLFLOW_TRACKING_USERNAME",
            "valueFrom": {"secretKeyRef": {"name": secret["name"], "key": secret["username_key"]}},
        },
        {
            "name": "MLFLOW_TRACKING_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": secret["name"], "key": secret["password_key"]}},
        },
    ]


def init_container(main, url, sha256, secret=None):
    """The fetch step: same image, pull policy, resources and securityContext as ``main``."""
    container = {
        "name": INIT_CONTAINER,
        "image": main["image"],
        "command": ["python", "-c", fetch_script()],
        "env": [
            {"name": "MLFLOW_SNAPSHOT_URL", "value": url},
            {"name": "MLFLOW_SNAPSHOT_SHA256", "value": sha256},
            {"name": "MLFLOW_SNAPSHOT_DEST", "value": snapshot_utils.CODE_DIR},
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        ]
        + auth_env(secret),
        "volumeMounts": [{"name": VOLUME, "mountPath": snapshot_utils.CODE_DIR}],
    }
    for key in ("imagePullPolicy", "resources", "securityContext"):
        if main.get(key):
            container[key] = copy.deepcopy(main[key])
    return container


def add_code_delivery(job, url, sha256, secret=None):
    """The Job with the init container, the emptyDir and the working directory (a new dict)."""
    job = copy.deepcopy(job)
    pod = job["spec"]["template"]["spec"]
    main = pod["containers"][0]
    volumes = pod.setdefault("volumes", [])
    if any(v.get("name") == VOLUME for v in volumes):
        raise TemplateError("job_template", "the template already has a volume named {0}".format(VOLUME))
    volumes.append({"name": VOLUME, "emptyDir": {}})
    mounts = main.setdefault("volumeMounts", [])
    if any(m.get("mountPath") == snapshot_utils.CODE_DIR for m in mounts):
        raise TemplateError(
            "job_template", "the template mounts something at {0}, where the code goes".format(snapshot_utils.CODE_DIR)
        )
    mounts.append({"name": VOLUME, "mountPath": snapshot_utils.CODE_DIR})
    main["workingDir"] = snapshot_utils.CODE_DIR
    pod["initContainers"] = list(pod.get("initContainers") or []) + [init_container(main, url, sha256, secret)]
    return job


def add_auth_env(job, secret):
    """The project container with the tracking credentials of the Secret too, unless its env names them."""
    if not secret:
        return job
    job = copy.deepcopy(job)
    main = job["spec"]["template"]["spec"]["containers"][0]
    taken = set(e.get("name") for e in main.get("env") or [])
    main["env"] = list(main.get("env") or []) + [e for e in auth_env(secret) if e["name"] not in taken]
    return job


def docker_env_env(docker_env, environ=None, reserved=()):
    """``docker_env.environment`` as EnvVar dicts, as ``mlflow run`` passes it to ``docker run -e``."""
    environ = os.environ if environ is None else environ
    entries = (docker_env or {}).get("environment") or []
    if not isinstance(entries, list):
        raise ProjectError(ENV_KEY, "must be a list of names (copied) and [name, value] pairs (set)")
    out = []
    missing = []
    for entry in entries:
        if isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, (str, int, float)) for x in entry):
            name, value = str(entry[0]), str(entry[1])
        elif isinstance(entry, str):
            name = entry
            if _SECRET_NAME.search(name):
                raise ProjectError(
                    ENV_KEY,
                    "copies {0} from the submitter's environment into the Job spec, where anyone who can read "
                    "Jobs (and this task's output) sees it; put it in a Secret and give env_from_secrets, or env "
                    "with valueFrom".format(name),
                )
            value = environ.get(name)
            if value is None:
                missing.append(name)
                continue
        else:
            raise ProjectError(ENV_KEY, "{0!r} is neither a name nor a [name, value] pair".format(entry))
        if not _ENV_NAME.match(name):
            raise ProjectError(ENV_KEY, "{0!r} is not a valid environment variable name".format(name))
        if name in reserved:
            raise ProjectError(ENV_KEY, "{0} is set by the module; it cannot come from the MLproject".format(name))
        out.append({"name": name, "value": value})
    if missing:
        raise ProjectError(
            ENV_KEY,
            "the project expects {0} in the environment of the machine that submits it, as mlflow run does, "
            "but {1} not set".format(", ".join(missing), "it is" if len(missing) == 1 else "they are"),
        )
    return out


def docker_env_volumes(docker_env, allow_host_volumes=False):
    """``docker_env.volumes`` (``host:container[:ro|rw]``) as (volumes, volumeMounts) with hostPath."""
    entries = (docker_env or {}).get("volumes") or []
    if not entries:
        return [], []
    if not isinstance(entries, list) or not all(isinstance(v, str) for v in entries):
        raise ProjectError(VOLUMES_KEY, "must be a list of strings host:container[:ro]")
    if not allow_host_volumes:
        raise ProjectError(
            VOLUMES_KEY,
            "the MLproject mounts {0} from the host; on Kubernetes that is a hostPath volume on whichever node "
            "runs the pod: set {1}: true to mount them so, or remove them from the MLproject".format(
                ", ".join(entries), HOST_VOLUMES_OPTION
            ),
        )
    volumes = []
    mounts = []
    for index, entry in enumerate(entries):
        parts = entry.split(":")
        mode = "rw"
        if len(parts) == 3 and parts[2] in ("ro", "rw"):
            mode = parts.pop()
        if len(parts) != 2 or not parts[0].startswith("/") or not parts[1].startswith("/"):
            raise ProjectError(
                VOLUMES_KEY,
                "{0!r} is not host-path:container-path[:ro] with absolute paths (named Docker volumes do not "
                "exist on Kubernetes)".format(entry),
            )
        name = "{0}{1}".format(HOST_VOLUME_PREFIX, index)
        volumes.append({"name": name, "hostPath": {"path": parts[0]}})
        mount = {"name": name, "mountPath": parts[1]}
        if mode == "ro":
            mount["readOnly"] = True
        mounts.append(mount)
    return volumes, mounts


def merge_env(project_env, user_env):
    """The ``env`` to render: docker_env's entries, then the user's (``env`` wins on a name)."""
    user = env_list(user_env)
    names = set(item["name"] for item in user)
    return [item for item in project_env if item["name"] not in names] + user


def add_host_volumes(job, volumes, mounts):
    """The Job with docker_env's hostPath volumes mounted in the project container (a new dict)."""
    if not volumes:
        return job
    job = copy.deepcopy(job)
    pod = job["spec"]["template"]["spec"]
    main = pod["containers"][0]
    pod["volumes"] = list(pod.get("volumes") or []) + volumes
    main["volumeMounts"] = list(main.get("volumeMounts") or []) + mounts
    return job
