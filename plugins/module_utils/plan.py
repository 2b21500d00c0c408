# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Step 1 of a submission: everything that can be decided offline, before any request.

The project (a directory, or a git URI cloned into a temporary directory), the entry point
and its parameters, the backend config and the Job template, every name and label, and the
submission's identity. ``Plan`` is a context manager: the temporary clone is removed on every
path out, a failure inside ``__init__`` included::

    with Plan(params) as plan:
        manifest = plan.render(run_id, experiment_id, image, when)

Relative paths (``project_uri``, ``backend_config``, a ``job_template`` path) are resolved
against ``base_dir`` when given, else against the module's working directory: Ansible runs a
module of a playbook on the local connection in the playbook's directory, an ad-hoc call in
the current directory.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import posixpath
import shutil
import tempfile

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import delivery as delivery_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import image as image_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import job as job_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import snapshot_job
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ImageError, ProjectError
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.project import (
    check_not_an_option,
    fetch_git_project,
    is_git_uri,
    load_project,
)

PLANNED_RUN_ID = "planned"
RUN_ENV_NAMES = ("MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID")
# The run's own values, replaced by these when the Job is rendered for its identity.
_SHAPE_EXPERIMENT = "<experiment>"
_SHAPE_WHEN = datetime.datetime(2000, 1, 1)
# Module options merged into the template (job.render_job's ``overrides``).
OVERRIDES = (
    "service_account",
    "image_pull_secrets",
    "resources",
    "node_selector",
    "tolerations",
    "env",
    "env_from_secrets",
    "labels",
    "backoff_limit",
    "active_deadline_seconds",
    "ttl_seconds_after_finished",
)


ENV_ALLOW_OPTION = "environment_allow"
HOST_PATH_OPTION = "host_path_allow"


def check_copied_env(docker_env, allowed):
    """Refuse a bare ``NAME`` of ``docker_env.environment`` the operator did not allow (issue #27).

    As ``mlflow run``, a bare name copies the controller's value into the Job: the MLproject
    (untrusted) would pick which of the controller's variables (DATABASE_URL, MYSQL_PWD,
    PIP_INDEX_URL...) land in the Job spec. ``[NAME, value]`` pairs carry their value in the
    MLproject and are not concerned.
    """
    entries = (docker_env or {}).get("environment") or []
    if not isinstance(entries, list):
        return  # docker_env_env names the shape error
    allowed = set(str(name) for name in allowed or [])
    refused = sorted(set(entry for entry in entries if isinstance(entry, str) and entry not in allowed))
    if refused:
        raise ProjectError(
            ENV_ALLOW_OPTION,
            "the MLproject's docker_env.environment copies {0} from the controller's environment into the Job; "
            "only names the operator lists in {1} are copied (give a value as [NAME, value] in the MLproject, or "
            "with env)".format(", ".join(refused), ENV_ALLOW_OPTION),
        )


def _host_path(path, option, what):
    """``path`` absolute and normalised, with no ``..`` component, or a ProjectError naming ``option``."""
    text = str(path)
    if not text.startswith("/") or ".." in text.split("/"):
        raise ProjectError(option, "{0} {1!r} must be an absolute path without '..'".format(what, text))
    return "/" + posixpath.normpath(text).lstrip("/")


def _below(path, prefix):
    return prefix in (path, "/") or path.startswith(prefix + "/")


def host_path_allow(entries):
    """``host_path_allow`` as [(prefix, writable)]: ``/dir`` (read-only) or ``/dir:rw``, ``/dir:ro``."""
    out = []
    for entry in entries or []:
        text = str(entry)
        prefix, _sep, mode = text.partition(":")
        if mode not in ("", "ro", "rw"):
            raise ProjectError(HOST_PATH_OPTION, "{0!r} is not /host/dir[:ro|rw]".format(text))
        out.append((_host_path(prefix, HOST_PATH_OPTION, "the entry"), mode == "rw"))
    return out


def host_volumes(docker_env, allow, pod_security):
    """``docker_env.volumes`` as (volumes, volumeMounts), each admitted by ``host_path_allow`` (issue #27).

    A volume ``src:dst[:ro|rw]`` is mounted when ``src`` (absolute, no ``..``, normalised) is an
    allowed directory or lies below a read-only one, and read-only unless its entry says ``rw``
    (then ``:rw`` or no mode mounts it writable; ``:rw`` on a read-only entry is refused). A
    writable entry admits that directory only, and nothing below a writable entry is admitted
    through a broader one: a pod that can write there can plant a symbolic link, which the node
    would follow for the next pod. hostPath volumes break Pod Security baseline and restricted,
    so ``pod_security: privileged`` is needed too.
    """
    entries = (docker_env or {}).get("volumes") or []
    if not entries:
        return [], []
    allowed = host_path_allow(allow)
    if not allowed:
        raise ProjectError(
            HOST_PATH_OPTION,
            "the MLproject mounts host paths (docker_env.volumes: {0}); on Kubernetes they are hostPath volumes "
            "of whichever node runs the pod: list the host directories it may mount in {1} (allow_host_volumes "
            "alone admits none), or remove them from the MLproject".format(
                ", ".join(str(e) for e in entries), HOST_PATH_OPTION
            ),
        )
    volumes, mounts = snapshot_job.docker_env_volumes(docker_env, True)  # the shape of each entry
    writable_dirs = [prefix for prefix, writable in allowed if writable]
    for entry, volume, mount in zip(entries, volumes, mounts, strict=True):
        source = _host_path(volume["hostPath"]["path"], snapshot_job.VOLUMES_KEY, "the host path of")
        wants_rw = entry.endswith(":rw")
        match = None  # (prefix, writable), a writable one preferred
        for prefix, writable in allowed:
            if source == prefix:
                candidate = (prefix, writable)
            elif not writable and _below(source, prefix) and not any(_below(source, d) for d in writable_dirs):
                candidate = (prefix, False)
            else:
                continue
            if match is None or candidate[1]:
                match = candidate
        if match is None:
            raise ProjectError(
                HOST_PATH_OPTION,
                "the MLproject mounts the host path {0} (docker_env.volumes), which is not an allowed directory "
                "nor below a read-only one of {1}".format(source, HOST_PATH_OPTION),
            )
        if wants_rw and not match[1]:
            raise ProjectError(
                HOST_PATH_OPTION,
                "the MLproject mounts {0} read-write (docker_env.volumes), but {1} allows {2} read-only "
                "(add ':rw' to that entry to allow it)".format(source, HOST_PATH_OPTION, match[0]),
            )
        volume["hostPath"]["path"] = source
        if match[1] and not entry.endswith(":ro"):
            mount.pop("readOnly", None)
        else:
            mount["readOnly"] = True
    if pod_security != "privileged":
        raise ProjectError(
            "pod_security",
            "the MLproject mounts host paths (docker_env.volumes), hostPath volumes, which Pod Security {0} forbids "
            "(baseline too): set pod_security: privileged to mount them (the namespace must admit such pods)".format(
                pod_security
            ),
        )
    return volumes, mounts


def resolve_path(path, base_dir=None):
    """``path`` made absolute against ``base_dir`` (default: the working directory)."""
    if not path or os.path.isabs(path):
        return path
    return os.path.abspath(os.path.join(base_dir or os.getcwd(), path))


class Plan(object):
    """Everything decided before touching the network (see the module docstring)."""

    def __init__(self, params, from_run=None):
        self.params = params
        self.warnings = []
        self.workdir = None
        self.from_run = from_run  # delivery.FromRun: the project is an earlier run's snapshot
        self.delivery = None  # delivery.SnapshotDelivery: the code travels as an artifact of the run
        try:
            self._decide(params)
        except BaseException:
            self.cleanup()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def cleanup(self):
        if self.delivery is not None:
            self.delivery.cleanup()
        if self.from_run is not None:
            self.from_run.cleanup()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    # -- deciding --------------------------------------------------------------------------
    def _decide(self, params):
        base_dir = params.get("base_dir")
        if base_dir and not os.path.isdir(base_dir):
            raise ProjectError("base_dir", "{0!r} is not a directory".format(base_dir))
        backend = {}
        if params.get("backend_config"):
            backend = job_utils.load_backend_config(resolve_path(params["backend_config"], base_dir), base_dir)
        self.context = params.get("context") or backend.get("kube-context")
        self.repository_uri = params.get("repository_uri") or backend.get("repository-uri")
        template_source = params.get("job_template")
        template_option = "job_template"
        if isinstance(template_source, str):
            template_source = resolve_path(template_source, base_dir)
        if template_source is None and backend.get("kube-job-template-path"):
            template_source = backend["kube-job-template-path"]
            template_option = "backend_config"
        self.template = job_utils.load_template(template_source, template_option)
        self.template_option = template_option
        self.pod_security = params.get("pod_security") or "restricted"
        job_utils.check_pod_security(self.template, self.pod_security, template_option)
        self.warnings.extend(job_utils.template_warnings(self.template, template_option))
        if params.get(snapshot_job.HOST_VOLUMES_OPTION):
            self.warnings.append(
                "{0} is deprecated and admits no host path by itself: name the host directories an MLproject may "
                "mount in host_path_allow (with pod_security: privileged)".format(snapshot_job.HOST_VOLUMES_OPTION)
            )

        self.source = None
        project_uri = params.get("project_uri")
        if self.from_run is not None:
            project_uri = self.from_run.project_dir
            self.source = self.from_run.tags.get("mlflow.source.name")
        elif project_uri is not None and str(project_uri).startswith("-"):
            check_not_an_option("project_uri", project_uri)
        elif is_git_uri(project_uri):
            self.workdir = tempfile.mkdtemp(prefix="mlflow-project-")
            self.source = project_uri  # MLflow's source name for a remote project is its URI
            project_uri = fetch_git_project(project_uri, params.get("version"), os.path.join(self.workdir, "repo"))
        elif params.get("version"):
            raise ProjectError("version", "version is for a git project_uri; {0!r} is a directory".format(project_uri))
        else:
            project_uri = self._local_project(project_uri, base_dir)
        self.project = load_project(project_uri)
        if not self.project.name:
            raise ProjectError("project_uri", "the MLproject has no name (MLflow needs it to name the Job)")
        self._image(params)
        self.entry_point = self.project.get_entry_point(params.get("entry_point") or "main")
        parameters = params.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ProjectError("parameters", "must be a mapping of parameter names to values")
        self.parameters = parameters
        self.argv = self.entry_point.argv(parameters)
        self.logged_parameters = self.entry_point.logged_parameters(parameters)

        for option in ("service_account",):
            if params.get(option):
                job_utils.check_dns(option, params[option], subdomain=True)
        for option in ("image_pull_secrets", "env_from_secrets"):
            for secret in params.get(option) or []:
                job_utils.check_dns(option, secret, subdomain=True)
        self.namespace = params.get("namespace") or self.template.get("metadata", {}).get("namespace") or "default"
        job_utils.check_dns("namespace", self.namespace)
        job_utils.check_env(params.get("env"))
        job_utils.check_labels(params.get("labels"), "labels")
        self.container_name = job_utils.dns_label(self.project.name)
        # What the pod uses: the option, MLflow's KUBE_MLFLOW_TRACKING_URI, the submitter's URI.
        self.job_tracking_uri = (
            params.get("job_tracking_uri")
            or os.environ.get("KUBE_MLFLOW_TRACKING_URI")
            or params.get("tracking_uri")
            or ""
        )
        # docker_env.environment and docker_env.volumes, as mlflow run passes them to docker run.
        check_copied_env(self.project.docker_env, params.get("environment_allow"))
        self.project_env = snapshot_job.docker_env_env(self.project.docker_env, reserved=RUN_ENV_NAMES)
        self.host_volumes = host_volumes(self.project.docker_env, params.get("host_path_allow"), self.pod_security)
        self.auth_secret = snapshot_job.auth_secret(params.get(snapshot_job.AUTH_OPTION))
        if not self.build and not params.get("image"):  # packed last: everything cheaper is checked
            self.delivery = delivery_utils.SnapshotDelivery(
                self.project, params, self.base_image, self.auth_secret, self.from_run
            )
        self.content_hash = image_utils.content_hash(self.project.directory, self.base_image)
        experiment = params.get("experiment_id") or params.get("experiment_name") or ""
        shape = self._shape()
        # The template passed above; this is the Job with what the module and the MLproject add
        # (init container, volumes, env): none of it may weaken the pod.
        job_utils.check_pod_security(shape, self.pod_security, "pod_security")
        self.identity = job_utils.identity(
            self.content_hash,
            self.entry_point.name,
            parameters,
            params.get("run_name"),
            str(experiment),
            job=shape,
        )

    def _local_project(self, project_uri, base_dir):
        # ~ is expanded as for a path option; $VARIABLES are not (issue #27: the value may come from
        # whoever asked for the run, and the controller's environment is not theirs to read).
        path = resolve_path(os.path.expanduser(project_uri) if project_uri else project_uri, base_dir)
        if not path or not os.path.isdir(path):
            where = (
                "base_dir"
                if base_dir
                else "the module's working directory (a playbook's directory, or the current one)"
            )
            raise ProjectError(
                "project_uri",
                "{0!r} is not a directory (looked for {1}; a relative path is relative to {2})".format(
                    project_uri, path, where
                ),
            )
        return path

    def _image(self, params):
        self.build = bool(params.get("build"))
        if self.build:
            if not self.project.docker_env:
                raise ProjectError("build", "build: true needs a docker_env with an image in the MLproject")
            if not self.repository_uri:
                raise ImageError(
                    "repository_uri", "build: true needs repository_uri (or repository-uri in backend_config)"
                )
            self.base_image = params.get("base_image") or self.project.docker_env["image"]
            image_utils.image_tag(self.repository_uri, "0" * 64)  # validates repository_uri
        elif params.get("image"):
            self.base_image = params["image"]
        else:  # the code travels as an artifact of the run (delivery.py)
            docker_env = self.project.docker_env or {}
            self.base_image = params.get("base_image") or docker_env.get("image")
            if not self.base_image:
                raise ImageError(
                    "base_image",
                    "the MLproject names no docker_env.image to run the code on: give base_image (an image with "
                    "Python), image (one that holds the code) or build: true",
                )

    def _shape(self):
        """The Job as it would be rendered, without the values of one run (name, run id, experiment id).

        The image stands as the built tag (from the content hash) or the prebuilt reference.
        """
        image = self.base_image
        if self.build:
            image = image_utils.image_tag(self.repository_uri, self.content_hash)
        shape = self.render(PLANNED_RUN_ID, _SHAPE_EXPERIMENT, image, _SHAPE_WHEN, identity="")
        shape["metadata"].pop("name", None)
        return shape

    # -- rendering -------------------------------------------------------------------------
    def render(self, run_id, experiment_id, image_ref, when, identity=None, code_url=None):
        """The Job manifest of one run (``identity``: the label value, by default this plan's).

        ``code_url``: where the init container fetches the code (after the upload); by default the
        URL it will have, with ``<run id>`` in place of the run.
        """
        identity = self.identity if identity is None else identity
        name = job_utils.job_name(self.project.name, when)
        labels = {
            job_utils.LABEL_RUN_ID: run_id,
            job_utils.LABEL_PROJECT: job_utils.label_value(self.container_name),
            job_utils.LABEL_IDENTITY: job_utils.identity_label(identity),
        }
        annotations = {
            job_utils.ANNOTATION_IDENTITY: identity,
            job_utils.ANNOTATION_TRACKING_URI: self.params.get("tracking_uri") or "",
            job_utils.ANNOTATION_EXPERIMENT_ID: str(experiment_id),
            job_utils.ANNOTATION_PROJECT_NAME: self.project.name,
        }
        run_env = {
            "MLFLOW_RUN_ID": run_id,
            "MLFLOW_TRACKING_URI": self.job_tracking_uri,
            "MLFLOW_EXPERIMENT_ID": str(experiment_id),
        }
        overrides = dict((key, self.params.get(key)) for key in OVERRIDES)
        overrides["env"] = snapshot_job.merge_env(self.project_env, self.params.get("env"))
        manifest = job_utils.render_job(
            self.template,
            name=name,
            container_name=self.container_name,
            image=image_ref,
            command=self.argv,
            run_env=run_env,
            namespace=self.namespace,
            labels=labels,
            annotations=annotations,
            overrides=overrides,
        )
        manifest = snapshot_job.add_host_volumes(manifest, *self.host_volumes)
        manifest = snapshot_job.add_auth_env(manifest, self.auth_secret)
        if self.delivery is not None:
            url = code_url or self.delivery.planned_url(self.job_tracking_uri, experiment_id)
            manifest = self.delivery.apply(manifest, url)
        return manifest

    def selector(self):
        """The label selector of Jobs of this plan's identity."""
        return "{0}={1}".format(job_utils.LABEL_IDENTITY, job_utils.identity_label(self.identity))


def backend_context(params):
    """The kube context of ``context`` or the backend config, without planning a submission."""
    if params.get("context") or not params.get("backend_config"):
        return params.get("context")
    path = resolve_path(params["backend_config"], params.get("base_dir"))
    return job_utils.load_backend_config(path, params.get("base_dir")).get("kube-context")
