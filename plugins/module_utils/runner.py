# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What mlflow_project_job and mlflow_project_job_info do: plan, submit, wait, recover, delete.

Order of a submission: everything that can be checked offline (project, entry point,
parameters, template, names, backend config) -> cluster reachable, namespace present ->
tracking server reachable -> an existing Job of the same identity? -> image -> run -> Job.
Anything that fails after the run exists marks it FAILED and deletes what was created.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import re
import shutil
import tempfile

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import delivery as delivery_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import image as image_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import job as job_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import k8s_client, snapshot_job, tracking, watch
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.args_common import auth_params
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import (
    ClusterError,
    ImageError,
    ProjectError,
    TemplateError,
)
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.project import (
    fetch_git_project,
    is_git_uri,
    load_project,
)

PLANNED_RUN_ID = "planned"
RUN_ENV_NAMES = ("MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _check_dns(option, value, subdomain=False):
    limit = 253 if subdomain else 63
    pattern = _DNS_SUBDOMAIN if subdomain else re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    if not isinstance(value, str) or len(value) > limit or not pattern.match(value):
        raise TemplateError(
            option,
            "{0!r} is not a valid Kubernetes name (lower-case letters, digits and '-', at most {1})".format(
                value, limit
            ),
        )


class Plan(object):
    """Everything decided before touching the network."""

    def __init__(self, params, from_run=None):
        self.params = params
        self.from_run = from_run  # delivery.FromRun: the project is an earlier run's snapshot
        self.delivery = None
        backend = {}
        if params.get("backend_config"):
            backend = job_utils.load_backend_config(params["backend_config"])
        self.context = params.get("context") or backend.get("kube-context")
        self.repository_uri = params.get("repository_uri") or backend.get("repository-uri")
        template_source = params.get("job_template")
        template_option = "job_template"
        if template_source is None and backend.get("kube-job-template-path"):
            template_source = backend["kube-job-template-path"]
            template_option = "backend_config"
        self.template = job_utils.load_template(template_source, template_option)
        self.template_option = template_option

        self.source = None
        self.workdir = None
        project_uri = params.get("project_uri")
        if from_run is not None:
            project_uri = from_run.project_dir
            self.source = from_run.tags.get("mlflow.source.name")
        elif is_git_uri(project_uri):
            self.workdir = tempfile.mkdtemp(prefix="mlflow-project-")
            self.source = project_uri  # MLflow's source name for a remote project is its URI
            project_uri = fetch_git_project(project_uri, params.get("version"), os.path.join(self.workdir, "repo"))
        elif params.get("version"):
            raise ProjectError("version", "version is for a git project_uri; {0!r} is a directory".format(project_uri))
        self.project = load_project(project_uri)
        if not self.project.name:
            raise ProjectError("project_uri", "the MLproject has no name (MLflow needs it to name the Job)")
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
        else:  # the code travels as an artifact of the run (delivery.py); packed below, once all else is checked
            docker_env = self.project.docker_env or {}
            self.base_image = params.get("base_image") or docker_env.get("image")
            if not self.base_image:
                raise ImageError(
                    "base_image",
                    "the MLproject names no docker_env.image to run the code on: give base_image (an image with "
                    "Python), image (one that holds the code) or build: true",
                )
        self.entry_point = self.project.get_entry_point(params.get("entry_point") or "main")
        parameters = params.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ProjectError("parameters", "must be a mapping of parameter names to values")
        self.parameters = parameters
        self.argv = self.entry_point.argv(parameters)
        self.logged_parameters = self.entry_point.logged_parameters(parameters)

        for option in ("service_account",):
            if params.get(option):
                _check_dns(option, params[option], subdomain=True)
        for secret in params.get("image_pull_secrets") or []:
            _check_dns("image_pull_secrets", secret, subdomain=True)
        for secret in params.get("env_from_secrets") or []:
            _check_dns("env_from_secrets", secret, subdomain=True)
        self.namespace = params.get("namespace") or self.template.get("metadata", {}).get("namespace") or "default"
        _check_dns("namespace", self.namespace)
        self.content_hash = image_utils.content_hash(self.project.directory, self.base_image)
        experiment = params.get("experiment_id") or params.get("experiment_name") or ""
        self.identity = job_utils.identity(
            self.content_hash, self.entry_point.name, parameters, params.get("run_name"), str(experiment)
        )
        self.container_name = job_utils.dns_label(self.project.name)
        for item in job_utils.env_list(params.get("env")):
            if item["name"] in RUN_ENV_NAMES:
                raise TemplateError(
                    "env", "{0} is set by the module; use job_tracking_uri for the tracking URI".format(item["name"])
                )
        job_utils._check_labels(params.get("labels"), "labels")
        # docker_env.environment and docker_env.volumes, as mlflow run passes them to docker run.
        self.project_env = snapshot_job.docker_env_env(self.project.docker_env, reserved=RUN_ENV_NAMES)
        self.host_volumes = snapshot_job.docker_env_volumes(
            self.project.docker_env, params.get(snapshot_job.HOST_VOLUMES_OPTION)
        )
        self.auth_secret = snapshot_job.auth_secret(params.get(snapshot_job.AUTH_OPTION))
        if not self.build and not params.get("image"):
            self.delivery = delivery_utils.SnapshotDelivery(
                self.project, params, self.base_image, self.auth_secret, from_run
            )

    def cleanup(self):
        if self.delivery is not None:
            self.delivery.cleanup()
        if self.from_run is not None:
            self.from_run.cleanup()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def render(self, run_id, experiment_id, image_ref, job_tracking_uri, when, code_url=None):
        name = job_utils.job_name(self.project.name, when)
        labels = {
            job_utils.LABEL_RUN_ID: run_id,
            job_utils.LABEL_PROJECT: job_utils.label_value(self.container_name),
            job_utils.LABEL_IDENTITY: job_utils.identity_label(self.identity),
            "app.kubernetes.io/instance": job_utils.label_value(self.container_name),
        }
        annotations = {
            job_utils.ANNOTATION_IDENTITY: self.identity,
            job_utils.ANNOTATION_TRACKING_URI: self.params.get("tracking_uri") or "",
            job_utils.ANNOTATION_EXPERIMENT_ID: str(experiment_id),
            job_utils.ANNOTATION_PROJECT_NAME: self.project.name,
        }
        run_env = {
            "MLFLOW_RUN_ID": run_id,
            "MLFLOW_TRACKING_URI": job_tracking_uri,
            "MLFLOW_EXPERIMENT_ID": str(experiment_id),
        }
        overrides = dict(
            (key, self.params.get(key))
            for key in (
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
        )
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
            manifest = self.delivery.apply(
                manifest, code_url or self.delivery.planned_url(job_tracking_uri, experiment_id)
            )
        return manifest


class Runner(object):
    """One module call. Factories are injectable so unit tests can stand in for a Docker engine."""

    def __init__(self, params, check_mode=False, now=None, docker_factory=None, warn=None):
        self.params = params
        self.check_mode = check_mode
        self.now = now or datetime.datetime.now
        self.docker_factory = docker_factory or image_utils.docker_client
        self.warn = warn or (lambda msg: None)
        self.auth = auth_params(params)
        self._batch = None
        self._core = None

    # -- cluster ---------------------------------------------------------------------------
    def connect(self, context=None):
        from kubernetes import client as k8s

        auth = dict(self.auth)
        if context and not auth.get("context"):
            auth["context"] = context
        api = k8s_client.api_client(auth)
        self._batch = k8s.BatchV1Api(api)
        self._core = k8s.CoreV1Api(api)

    def _call(self, action, func, *args, **kwargs):
        namespace = kwargs.pop("_namespace", None)
        invalid_option = kwargs.pop("_invalid_option", None)
        kwargs.setdefault("_request_timeout", k8s_client.REQUEST_TIMEOUT)
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            if isinstance(exc, ClusterError):
                raise
            if invalid_option and type(exc).__name__ == "ValidationError":  # the client's own model check
                raise TemplateError(invalid_option, "the rendered Job is not a valid Job: {0}".format(exc)) from None
            if invalid_option and getattr(exc, "status", None) in (400, 422):
                raise TemplateError(
                    invalid_option, "the API server rejects the rendered Job: {0}".format(k8s_client._reason(exc))
                ) from None
            if _is_api_error(exc):
                raise k8s_client.describe_api_error(exc, self.auth, action, namespace) from None
            raise

    def dry_run(self, plan, manifest):
        """Server-side dry run of the Job: the API's own validation and admission, nothing stored."""
        return self._call(
            "validate the Job (server-side dry run)",
            self._batch.create_namespaced_job,
            plan.namespace,
            manifest,
            dry_run="All",
            _namespace=plan.namespace,
            _invalid_option=plan.template_option,
        )

    def check_namespace(self, namespace):
        try:
            self._core.read_namespace(namespace, _request_timeout=k8s_client.REQUEST_TIMEOUT)
        except Exception as exc:
            if getattr(exc, "status", None) == 403:
                return  # a namespaced user may not read Namespaces; the Job create will tell
            if _is_api_error(exc):
                raise k8s_client.describe_api_error(exc, self.auth, "read namespace " + namespace, namespace) from None
            raise

    def jobs(self, namespace, selector):
        result = self._call(
            "list Jobs in namespace " + namespace,
            self._batch.list_namespaced_job,
            namespace,
            label_selector=selector,
        )
        items = [self._batch.api_client.sanitize_for_serialization(j) for j in result.items]
        return sorted(items, key=lambda j: j["metadata"].get("creationTimestamp") or "", reverse=True)

    def delete_job(self, namespace, name):
        from kubernetes import client as k8s

        body = k8s.V1DeleteOptions(propagation_policy=self.params.get("propagation_policy") or "Foreground")
        try:
            self._batch.delete_namespaced_job(name, namespace, body=body, _request_timeout=k8s_client.REQUEST_TIMEOUT)
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return False
            if _is_api_error(exc):
                raise k8s_client.describe_api_error(exc, self.auth, "delete Job " + name) from None
            raise
        return True

    # -- results ---------------------------------------------------------------------------
    def describe(self, job, tracker=None, run=None):
        metadata = job.get("metadata") or {}
        labels = metadata.get("labels") or {}
        status = job.get("status") or {}
        result = {
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            "state": job_utils.job_state(job),
            "message": job_utils.job_condition_message(job),
            "run_id": labels.get(job_utils.LABEL_RUN_ID),
            "identity": (metadata.get("annotations") or {}).get(job_utils.ANNOTATION_IDENTITY),
            "start_time": status.get("startTime"),
            "completion_time": status.get("completionTime"),
            "succeeded": status.get("succeeded") or 0,
            "failed": status.get("failed") or 0,
        }
        if run is not None:
            result["run_status"] = run.get("status")
        return result

    def logs(self, namespace, name, container):
        try:
            return watch.pod_log(self._core, namespace, name, container=container)
        except Exception as exc:
            self.warn("could not read the log of Job {0}: {1}".format(name, exc))
            return ""

    def sync_run(self, tracker, job, state, container=None, logs=False):
        """Bring the MLflow run up to date with the Job; returns (changed, log_text)."""
        metadata = job.get("metadata") or {}
        run_id = (metadata.get("labels") or {}).get(job_utils.LABEL_RUN_ID)
        if not run_id or tracker is None:
            return False, ""
        target = {"Complete": "FINISHED", "Failed": "FAILED", "Deleted": "KILLED"}.get(state)
        if target is None:
            return False, ""
        run = tracker.get_run(run_id)
        if run["status"] in tracking.TERMINAL:
            return False, ""
        text = ""
        if logs and state != "Deleted" and not self.check_mode:
            text = self.logs(metadata.get("namespace"), metadata.get("name"), container)
            if text:
                tracker.log_text(run_id, text)
        if self.check_mode:
            return True, text
        return tracker.terminate(run_id, target), text

    # -- state=present ---------------------------------------------------------------------
    def present(self):
        from_run = None
        if self.params.get("from_run_id"):  # no checkout: the project is the earlier run's snapshot
            tracker = tracking.Tracker(self.params.get("tracking_uri"))
            tracker.check()
            from_run = delivery_utils.prepare_from_run(tracker, self.params["from_run_id"])
        try:
            plan = Plan(self.params, from_run)
        except BaseException:
            if from_run is not None:
                from_run.cleanup()
            raise
        try:
            return self._present(plan)
        finally:
            plan.cleanup()

    def _present(self, plan):
        params = self.params
        self.connect(plan.context)
        self.check_namespace(plan.namespace)
        tracker = tracking.Tracker(params.get("tracking_uri"))
        tracker.check()
        selector = "{0}={1}".format(job_utils.LABEL_IDENTITY, job_utils.identity_label(plan.identity))
        existing = [
            j
            for j in self.jobs(plan.namespace, selector)
            if (j["metadata"].get("annotations") or {}).get(job_utils.ANNOTATION_IDENTITY) == plan.identity
        ]
        if existing and not params.get("force"):
            return self._existing(plan, tracker, existing[0])

        experiment_id = tracker.experiment_id(
            params.get("experiment_name"), params.get("experiment_id"), create=not self.check_mode
        )
        job_tracking_uri = params.get("job_tracking_uri") or os.environ.get("KUBE_MLFLOW_TRACKING_URI") or tracker.uri
        tags = tracking.run_tags(
            plan.project.directory, plan.entry_point.name, run_name=params.get("run_name"), source=plan.source
        )
        if plan.delivery is not None:
            plan.delivery.check_store(tracker, experiment_id, job_tracking_uri)
            tags.update(plan.delivery.tags())
        when = self.now()
        if self.check_mode:
            image_ref = plan.base_image
            if plan.build:
                image_ref = (
                    image_utils.image_tag(plan.repository_uri, plan.content_hash) + "@sha256:<digest after push>"
                )
            manifest = plan.render(PLANNED_RUN_ID, experiment_id or "", image_ref, job_tracking_uri, when)
            self.dry_run(plan, manifest)
            result = {
                "changed": True,
                "job": manifest,
                "job_name": manifest["metadata"]["name"],
                "namespace": plan.namespace,
                "command": plan.argv,
                "identity": plan.identity,
                "run": {
                    "run_id": None,
                    "experiment_id": experiment_id,
                    "run_name": params.get("run_name"),
                    "status": "PLANNED",
                    "tags": tags,
                    "params": dict(plan.logged_parameters),
                },
                "diff": {"before": {}, "after": manifest},
            }
            if plan.delivery is not None:
                result["snapshot"] = plan.delivery.as_dict(
                    plan.delivery.planned_url(job_tracking_uri, experiment_id), False
                )
            return result

        # The API server checks the Job before anything exists (with the prebuilt image, or a placeholder).
        self.dry_run(plan, plan.render(PLANNED_RUN_ID, experiment_id, plan.base_image, job_tracking_uri, when))
        image_result = None
        image_ref = plan.base_image
        if plan.build:
            builder = image_utils.ImageBuilder(self.docker_factory(params.get("docker_host")))
            image_result = builder.ensure(
                plan.project.directory,
                plan.base_image,
                plan.repository_uri,
                {
                    "username": params.get("registry_username"),
                    "password": params.get("registry_password"),
                    "registry": params.get("registry_url"),
                },
            )
            image_ref = image_result.reference
            tags[tracking.tags_.MLFLOW_DOCKER_IMAGE_URI] = image_result.tag
            tags[tracking.tags_.MLFLOW_DOCKER_IMAGE_ID] = image_result.digest
        else:
            tags[tracking.tags_.MLFLOW_DOCKER_IMAGE_URI] = image_ref
        tags[tracking.IDENTITY_TAG] = plan.identity

        run_id = tracker.create_run(experiment_id, tags, plan.logged_parameters, run_name=params.get("run_name"))
        created = None
        try:
            code_url = None
            if plan.delivery is not None:  # a failed upload fails here: run FAILED below, no Job
                code_url = plan.delivery.upload(tracker, run_id, job_tracking_uri)
            manifest = plan.render(run_id, experiment_id, image_ref, job_tracking_uri, when, code_url)
            created = self._call(
                "create Job in namespace " + plan.namespace,
                self._batch.create_namespaced_job,
                plan.namespace,
                manifest,
                _namespace=plan.namespace,
                _invalid_option=plan.template_option,
            )
            created = self._batch.api_client.sanitize_for_serialization(created)
            tracker.set_tags(
                run_id,
                {tracking.JOB_NAME_TAG: manifest["metadata"]["name"], tracking.JOB_NAMESPACE_TAG: plan.namespace},
            )
            result = {
                "changed": True,
                "job": created,
                "job_name": created["metadata"]["name"],
                "namespace": plan.namespace,
                "command": plan.argv,
                "identity": plan.identity,
                "diff": {"before": {}, "after": manifest},
            }
            if image_result is not None:
                result["image"] = image_result.as_dict()
            if plan.delivery is not None:
                result["snapshot"] = plan.delivery.as_dict(code_url, True)
            if params.get("wait"):
                result.update(self._wait(plan, tracker, created))
            result["run"] = tracker.get_run(run_id)
            return result
        except BaseException:
            # Nothing half-made: the Job goes, the run says FAILED.
            if created is not None:
                try:
                    self.delete_job(plan.namespace, created["metadata"]["name"])
                except Exception as exc:  # report the first error, not this one
                    self.warn("could not delete Job {0}: {1}".format(created["metadata"]["name"], exc))
            try:
                tracker.terminate(run_id, "FAILED")
            except Exception as exc:
                self.warn("could not mark run {0} FAILED: {1}".format(run_id, exc))
            raise

    def _existing(self, plan, tracker, job):
        """A Job of the same identity exists: return it, bring its run up to date, wait if asked."""
        result = {
            "changed": False,
            "job": job,
            "job_name": job["metadata"]["name"],
            "namespace": plan.namespace,
            "command": plan.argv,
            "identity": plan.identity,
            "existing": True,
        }
        if self.params.get("wait") and not self.check_mode:
            result.update(self._wait(plan, tracker, job))
            result["changed"] = bool(result.get("run_synced") or result.get("job_deleted"))
        else:
            state = job_utils.job_state(job)
            synced, text = self.sync_run(tracker, job, state, plan.container_name, self.params.get("logs"))
            result["run_synced"] = synced
            result["changed"] = synced
            result["state"] = state
            if self.params.get("logs"):
                result["logs"] = watch.tail(text, self.params.get("log_tail_lines"))
        run_id = (job["metadata"].get("labels") or {}).get(job_utils.LABEL_RUN_ID)
        if run_id:
            result["run"] = tracker.get_run(run_id)
        return result

    def _wait(self, plan, tracker, job):
        name = job["metadata"]["name"]
        namespace = job["metadata"]["namespace"]
        try:
            final, state, timed_out = watch.wait_for_job(
                self._batch, namespace, name, self.params.get("wait_timeout") or 0, job=job
            )
        except Exception as exc:
            if _is_api_error(exc):
                raise k8s_client.describe_api_error(exc, self.auth, "watch Job " + name) from None
            raise
        out = {"state": state, "timed_out": timed_out}
        if final is not None:
            out["job"] = final
        run_id = (job["metadata"].get("labels") or {}).get(job_utils.LABEL_RUN_ID)
        want_logs = self.params.get("logs")
        text = ""
        if want_logs and state != "Deleted":
            text = self.logs(namespace, name, plan.container_name)
            if text and run_id:
                tracker.log_text(run_id, text)
        if want_logs:
            out["logs"] = watch.tail(text, self.params.get("log_tail_lines"))
        if timed_out:
            if self.params.get("on_timeout", "delete") == "delete":
                self.delete_job(namespace, name)
                out["job_deleted"] = True
                if run_id:
                    out["run_synced"] = tracker.terminate(run_id, "KILLED")
            return out
        if run_id:
            target = {"Complete": "FINISHED", "Failed": "FAILED", "Deleted": "KILLED"}[state]
            out["run_synced"] = tracker.terminate(run_id, target)
        return out

    # -- state=absent ----------------------------------------------------------------------
    def absent(self):
        params = self.params
        context = params.get("context")
        if params.get("backend_config"):
            context = context or job_utils.load_backend_config(params["backend_config"]).get("kube-context")
        namespace = params.get("namespace")
        if params.get("job_name"):
            selector = None
        elif params.get("run_id"):
            selector = "{0}={1}".format(job_utils.LABEL_RUN_ID, params["run_id"])
        else:
            plan = Plan(params)
            plan.cleanup()
            namespace = plan.namespace
            selector = "{0}={1}".format(job_utils.LABEL_IDENTITY, job_utils.identity_label(plan.identity))
        namespace = namespace or "default"
        _check_dns("namespace", namespace)
        self.connect(context)
        if selector is None:
            found = self._info_read(namespace, params["job_name"])
            jobs = [found] if found else []
        else:
            jobs = self.jobs(namespace, selector)
        tracker = None
        killed = []
        deleted = []
        for job in jobs:
            meta = job["metadata"]
            run_id = (meta.get("labels") or {}).get(job_utils.LABEL_RUN_ID)
            uri = params.get("tracking_uri") or (meta.get("annotations") or {}).get(job_utils.ANNOTATION_TRACKING_URI)
            if not self.check_mode:
                self.delete_job(namespace, meta["name"])
            deleted.append(meta["name"])
            if run_id and uri:
                tracker = tracking.Tracker(uri)
                run = tracker.get_run(run_id)
                if run["status"] not in tracking.TERMINAL:
                    if not self.check_mode:
                        tracker.terminate(run_id, "KILLED")
                    killed.append(run_id)
        return {
            "changed": bool(deleted),
            "deleted": deleted,
            "killed_runs": killed,
            "namespace": namespace,
            "diff": {"before": {"jobs": deleted}, "after": {"jobs": []}},
        }

    # -- info ------------------------------------------------------------------------------
    def info(self):
        params = self.params
        namespace = params.get("namespace") or "default"
        _check_dns("namespace", namespace)
        self.connect(params.get("context"))
        if params.get("name"):
            job = self._info_read(namespace, params["name"])
            jobs = [job] if job else []
        else:
            parts = ["app.kubernetes.io/name=mlflow-project"]
            if params.get("run_id"):
                parts.append("{0}={1}".format(job_utils.LABEL_RUN_ID, params["run_id"]))
            if params.get("label_selector"):
                parts.append(params["label_selector"])
            jobs = self.jobs(namespace, ",".join(parts))
        out = []
        changed = False
        trackers = {}
        for job in jobs:
            meta = job["metadata"]
            state = job_utils.job_state(job)
            uri = params.get("tracking_uri") or (meta.get("annotations") or {}).get(job_utils.ANNOTATION_TRACKING_URI)
            item = self.describe(job)
            run_id = item["run_id"]
            if run_id and uri:
                tracker = trackers.get(uri) or trackers.setdefault(uri, tracking.Tracker(uri))
                container = (job["spec"]["template"]["spec"]["containers"][0]).get("name")
                if params.get("sync_run"):
                    synced, _text = self.sync_run(tracker, job, state, container, params.get("logs"))
                    item["run_synced"] = synced
                    changed = changed or synced
                run = tracker.get_run(run_id)
                item["run_status"] = run["status"]
            if params.get("logs"):
                container = (job["spec"]["template"]["spec"]["containers"][0]).get("name")
                item["logs"] = watch.tail(self.logs(namespace, meta["name"], container), params.get("log_tail_lines"))
            out.append(item)
        return {"changed": changed, "jobs": out, "namespace": namespace}

    def _info_read(self, namespace, name):
        try:
            return watch.read_job(self._batch, namespace, name)
        except Exception as exc:
            if _is_api_error(exc):
                raise k8s_client.describe_api_error(exc, self.auth, "read Job " + name) from None
            raise


def _is_api_error(exc):
    """ApiException, or urllib3/socket errors from an unreachable API server."""
    if isinstance(exc, k8s_client.ApiException):  # and its subclasses (NotFoundException, ...)
        return True
    module = type(exc).__module__ or ""
    return module.startswith(("urllib3", "socket", "ssl")) or isinstance(exc, (OSError, ConnectionError))


__all__ = ["Plan", "Runner", "ClusterError"]
