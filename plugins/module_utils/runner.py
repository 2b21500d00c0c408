# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What mlflow_project_job and mlflow_project_job_info do: the flows, one step per file.

A submission (``state: present``):

1. the plan (plan.py): project, entry point, parameters, template, names and identity,
   decided offline; a temporary clone of a git project is removed on every path;
2. the cluster (jobs_client.py): reachable, the namespace present, a Job of the same
   identity? (then step 4 on it, nothing new); a server-side dry run of the Job;
3. the tracking server (tracking.py) answers; the image is built if asked (image.py); the
   run is created, then the Job;
4. with ``wait``, the watch (watch.py) and the run's status from the Job's outcome
   (reconcile.py, one map).

Anything that fails after the run exists marks it FAILED and deletes what was created.
``state: absent`` deletes the Jobs found and kills their runs; ``info`` reads Jobs and,
only when asked (``sync_run``), settles their runs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import time

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import delivery as delivery_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import image as image_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import job as job_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import pod_status, snapshot_job, tracking, watch
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.args_common import auth_params
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.jobs_client import JobsClient
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.plan import PLANNED_RUN_ID, Plan, backend_context
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.reconcile import Reconciler, run_id_of

# Jobs of mlflow_project_job carry a run-id label (any value): info lists those.
PROJECT_JOBS_SELECTOR = job_utils.LABEL_RUN_ID


def _container(job):
    containers = ((job.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or [{}]
    return containers[0].get("name")


def describe(job):
    """A Job as the modules report it."""
    metadata = job.get("metadata") or {}
    status = job.get("status") or {}
    return {
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace"),
        "state": job_utils.job_state(job),
        "message": job_utils.job_condition_message(job),
        "run_id": run_id_of(job),
        "identity": (metadata.get("annotations") or {}).get(job_utils.ANNOTATION_IDENTITY),
        "start_time": status.get("startTime"),
        "completion_time": status.get("completionTime"),
        "succeeded": status.get("succeeded") or 0,
        "failed": status.get("failed") or 0,
    }


class Runner(object):
    """One module call. ``jobs_factory(auth, context)`` and ``tracker_factory(uri)`` are injectable
    (unit tests pass thin fakes), as are ``docker_factory`` (no Docker engine here), ``now`` (Job
    names) and ``clock`` (epoch seconds: when a run the module ended itself ends)."""

    def __init__(
        self,
        params,
        check_mode=False,
        now=None,
        docker_factory=None,
        warn=None,
        jobs_factory=None,
        tracker_factory=None,
        clock=None,
    ):
        self.params = params
        self.check_mode = check_mode
        self.now = now or datetime.datetime.now
        self.docker_factory = docker_factory or image_utils.docker_client
        self.warn = warn or (lambda msg: None)
        self.jobs_factory = jobs_factory or (
            lambda auth, context: JobsClient(
                auth, context, propagation_policy=params.get("propagation_policy"), warn=self.warn
            )
        )
        self.tracker_factory = tracker_factory or tracking.Tracker
        self.clock = clock or time.time
        self.jobs = None
        self.reconciler = None

    def connect(self, context=None):
        self.jobs = self.jobs_factory(auth_params(self.params), context)
        self.reconciler = Reconciler(self.jobs, check_mode=self.check_mode, clock=self.clock)
        return self.jobs

    # -- state=present ---------------------------------------------------------------------
    def present(self):
        from_run = None
        if self.params.get("from_run_id"):  # no checkout: the project is the earlier run's snapshot
            tracker = self.tracker_factory(self.params.get("tracking_uri"))
            tracker.check()
            from_run = delivery_utils.prepare_from_run(tracker, self.params["from_run_id"])
        with Plan(self.params, from_run) as plan:
            for message in plan.warnings:
                self.warn(message)
            return self._present(plan)

    def _present(self, plan):
        params = self.params
        jobs = self.connect(plan.context)
        jobs.check_namespace(plan.namespace)
        tracker = self.tracker_factory(params.get("tracking_uri"))
        tracker.check()
        existing = [
            j
            for j in jobs.list(plan.namespace, plan.selector())
            if (j["metadata"].get("annotations") or {}).get(job_utils.ANNOTATION_IDENTITY) == plan.identity
        ]
        if existing and not params.get("force"):
            return self._existing(plan, tracker, existing[0])

        experiment_id = tracker.experiment_id(
            params.get("experiment_name"), params.get("experiment_id"), create=not self.check_mode
        )
        tags = tracking.run_tags(
            plan.project.directory, plan.entry_point.name, run_name=params.get("run_name"), source=plan.source
        )
        if plan.delivery is not None:  # before the run exists: can the pod fetch the code?
            plan.delivery.check_store(tracker, experiment_id, plan.job_tracking_uri)
            tags.update(plan.delivery.tags())
        when = self.now()
        if self.check_mode:
            return self._planned(plan, experiment_id, tags, when)

        # The API server checks the Job before anything exists (with the prebuilt image, or a placeholder).
        placeholder = plan.render(PLANNED_RUN_ID, experiment_id, plan.base_image, when)
        jobs.dry_run(plan.namespace, placeholder, plan.template_option)
        image_result = self._image(plan) if plan.build else None
        if image_result is not None:
            image_ref = image_result.reference
            tags[tracking.tags_.MLFLOW_DOCKER_IMAGE_URI] = image_result.tag
            tags[tracking.tags_.MLFLOW_DOCKER_IMAGE_ID] = image_result.digest
        else:
            image_ref = plan.base_image
            tags[tracking.tags_.MLFLOW_DOCKER_IMAGE_URI] = image_ref
        tags[tracking.IDENTITY_TAG] = plan.identity

        run_id = tracker.create_run(experiment_id, tags, plan.logged_parameters, run_name=params.get("run_name"))
        created = None
        try:
            code_url = None
            if plan.delivery is not None:  # a failed upload fails here: the run ends FAILED, no Job
                code_url = plan.delivery.upload(tracker, run_id, plan.job_tracking_uri)
            manifest = plan.render(run_id, experiment_id, image_ref, when, code_url=code_url)
            created = jobs.create(plan.namespace, manifest, plan.template_option)
            tracker.set_tags(
                run_id,
                {tracking.JOB_NAME_TAG: manifest["metadata"]["name"], tracking.JOB_NAMESPACE_TAG: plan.namespace},
            )
            result = self._result(plan, created, changed=True)
            result["diff"] = {"before": {}, "after": manifest}
            if image_result is not None:
                result["image"] = image_result.as_dict()
            if plan.delivery is not None:
                result["snapshot"] = plan.delivery.as_dict(code_url, True)
            if params.get("wait"):
                result.update(self._wait(plan, tracker, created))
            result["run"] = tracker.get_run(run_id)
            return result
        except BaseException:
            self._undo(plan, tracker, run_id, created)
            raise

    def _planned(self, plan, experiment_id, tags, when):
        """Check mode: the Job and the run as they would be, the Job dry-run by the API server."""
        image_ref = plan.base_image
        if plan.build:
            image_ref = image_utils.image_tag(plan.repository_uri, plan.content_hash) + "@sha256:<digest after push>"
        manifest = plan.render(PLANNED_RUN_ID, experiment_id or "", image_ref, when)
        self.jobs.dry_run(plan.namespace, manifest, plan.template_option)
        result = self._result(plan, manifest, changed=True)
        result["run"] = {
            "run_id": None,
            "experiment_id": experiment_id,
            "run_name": self.params.get("run_name"),
            "status": "PLANNED",
            "tags": tags,
            "params": dict(plan.logged_parameters),
        }
        result["diff"] = {"before": {}, "after": manifest}
        if plan.delivery is not None:
            planned = plan.delivery.planned_url(plan.job_tracking_uri, experiment_id)
            result["snapshot"] = plan.delivery.as_dict(planned, False)
        return result

    def _image(self, plan):
        params = self.params
        builder = image_utils.ImageBuilder(self.docker_factory(params.get("docker_host")))
        return builder.ensure(
            plan.project.directory,
            plan.base_image,
            plan.repository_uri,
            {
                "username": params.get("registry_username"),
                "password": params.get("registry_password"),
                "registry": params.get("registry_url"),
            },
        )

    def _undo(self, plan, tracker, run_id, created):
        """Nothing half-made: the Job goes, the run says FAILED (errors here are warnings)."""
        if created is not None:
            try:
                self.jobs.delete(plan.namespace, created["metadata"]["name"])
            except Exception as exc:  # report the first error, not this one
                self.warn("could not delete Job {0}: {1}".format(created["metadata"]["name"], exc))
        try:
            tracker.terminate(run_id, "FAILED")
        except Exception as exc:
            self.warn("could not mark run {0} FAILED: {1}".format(run_id, exc))

    @staticmethod
    def _result(plan, job, changed):
        return {
            "changed": changed,
            "job": job,
            "job_name": job["metadata"]["name"],
            "namespace": plan.namespace,
            "command": plan.argv,
            "identity": plan.identity,
        }

    def _existing(self, plan, tracker, job):
        """A Job of the same identity exists: return it, bring its run up to date, wait if asked."""
        result = self._result(plan, job, changed=False)
        result["existing"] = True
        if self.params.get("wait") and not self.check_mode:
            result.update(self._wait(plan, tracker, job))
        else:
            state = job_utils.job_state(job)
            synced, text = self.reconciler.settle(
                tracker, job, state, plan.container_name, logs=self.params.get("logs")
            )
            result.update(state=state, run_synced=synced)
            if self.params.get("logs"):
                result["logs"] = watch.tail(text, self.params.get("log_tail_lines"))
        result["changed"] = bool(result.get("run_synced") or result.get("job_deleted"))
        run_id = run_id_of(job)
        if run_id:
            result["run"] = tracker.get_run(run_id)
        return result

    def _wait(self, plan, tracker, job):
        """Watch the Job to its end (or the timeout), then settle its run."""
        name = job["metadata"]["name"]
        namespace = job["metadata"]["namespace"]
        outcome = self.jobs.wait(namespace, name, self.params.get("wait_timeout") or 0, job=job)
        final, state, timed_out = outcome
        out = {"state": state, "timed_out": timed_out}
        if final is not None:
            out["job"] = final
        if state == watch.STUCK:
            return self._end_stuck_job(tracker, final or job, outcome, out)
        want_logs = self.params.get("logs")
        text = ""
        if want_logs and state != "Deleted":
            text = self.jobs.logs(namespace, name, plan.container_name)
            if not text.strip() and state == "Failed" and plan.delivery is not None:
                # The entry point never started: the init container's log says why (fetch, hash, unpack).
                text = self.jobs.logs(namespace, name, snapshot_job.INIT_CONTAINER)
        if want_logs:
            out["logs"] = watch.tail(text, self.params.get("log_tail_lines"))
        if timed_out:
            if self.params.get("on_timeout", "delete") != "delete":
                return out
            self.jobs.delete(namespace, name)
            out["job_deleted"] = True
            state = "TimedOut"
        out["run_synced"], _text = self.reconciler.settle(
            tracker, final or job, state, plan.container_name, logs=want_logs, text=text
        )
        return out

    def _end_stuck_job(self, tracker, job, outcome, out):
        """A pod of the Job will not start or keeps crashing (watch.STUCK, pod_status decides):
        fail now, not at wait_timeout, with the pod's reason, events and log tail; the run is
        FAILED (reconcile.JOB_TO_RUN) with the reason as the tag watch.FAILURE_REASON_TAG and the
        description as its log artifact; the Job is deleted or kept as on_timeout says."""
        meta = job["metadata"]
        problem = outcome.problem
        log_tail = watch.tail(outcome.log, self.params.get("log_tail_lines"))
        text = pod_status.describe(problem, log_tail)
        out.update(
            failed=True,
            msg="Job {0}: {1}".format(meta["name"], text),
            stuck=problem.as_dict(log_tail),
            pending_reasons=list(outcome.progress),
        )
        if self.params.get("logs"):
            out["logs"] = log_tail
        if self.params.get("on_timeout", "delete") == "delete":
            self.jobs.delete(meta["namespace"], meta["name"])
            out["job_deleted"] = True
        out["run_synced"], _text = self.reconciler.settle(
            tracker, job, watch.STUCK, tags={watch.FAILURE_REASON_TAG: problem.reason}, text=text + "\n"
        )
        return out

    # -- state=absent ----------------------------------------------------------------------
    def absent(self):
        params = self.params
        context = backend_context(params)
        namespace = params.get("namespace")
        if params.get("job_name"):
            selector = None
        elif params.get("run_id"):
            selector = "{0}={1}".format(job_utils.LABEL_RUN_ID, params["run_id"])
        else:
            with Plan(params) as plan:
                namespace = plan.namespace
                selector = plan.selector()
        namespace = namespace or "default"
        job_utils.check_dns("namespace", namespace)
        jobs = self.connect(context)
        if selector is None:
            found = jobs.read(namespace, params["job_name"])
            found_jobs = [found] if found else []
        else:
            found_jobs = jobs.list(namespace, selector)
        trackers = {}
        killed = []
        deleted = []
        for job in found_jobs:
            meta = job["metadata"]
            if not meta.get("deletionTimestamp"):  # one still terminating was deleted before
                if not self.check_mode:
                    jobs.delete(namespace, meta["name"])
                deleted.append(meta["name"])
            tracker = self._tracker_of(job, trackers)
            if tracker is not None and self.reconciler.settle(tracker, job, "Deleted")[0]:
                killed.append(run_id_of(job))
        return {
            "changed": bool(deleted or killed),
            "deleted": deleted,
            "killed_runs": killed,
            "namespace": namespace,
            "diff": {"before": {"jobs": deleted}, "after": {"jobs": []}},
        }

    def _tracker_of(self, job, trackers):
        """The tracker of the Job's run (``tracking_uri``, else the URI recorded on the Job), or None."""
        annotations = job["metadata"].get("annotations") or {}
        uri = self.params.get("tracking_uri") or annotations.get(job_utils.ANNOTATION_TRACKING_URI)
        if not uri or not run_id_of(job):
            return None
        if uri not in trackers:
            trackers[uri] = self.tracker_factory(uri)
        return trackers[uri]

    # -- info ------------------------------------------------------------------------------
    def info(self):
        params = self.params
        namespace = params.get("namespace") or "default"
        job_utils.check_dns("namespace", namespace)
        jobs = self.connect(params.get("context"))
        if params.get("name"):
            job = jobs.read(namespace, params["name"])
            found = [job] if job else []
        else:
            parts = [PROJECT_JOBS_SELECTOR]
            if params.get("run_id"):
                parts = ["{0}={1}".format(job_utils.LABEL_RUN_ID, params["run_id"])]
            if params.get("label_selector"):
                parts.append(params["label_selector"])
            found = jobs.list(namespace, ",".join(parts))
        out = []
        changed = False
        trackers = {}
        for job in found:
            item = describe(job)
            container = _container(job)
            tracker = self._tracker_of(job, trackers)
            text = None
            if tracker is not None and params.get("sync_run"):
                synced, text = self.reconciler.settle(tracker, job, item["state"], container, logs=params.get("logs"))
                item["run_synced"] = synced
                changed = changed or synced
            if tracker is not None:
                item["run_status"] = tracker.get_run(item["run_id"])["status"]
            if params.get("logs"):
                if not text:
                    text = jobs.logs(namespace, job["metadata"]["name"], container)
                item["logs"] = watch.tail(text, params.get("log_tail_lines"))
            out.append(item)
        return {"changed": changed, "jobs": out, "namespace": namespace}


__all__ = ["Plan", "Runner", "describe"]
