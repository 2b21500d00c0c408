# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What mlflow_project_job and mlflow_project_job_info do: the flows, one step per file.

A submission (``state: present``):

1. the plan (plan.py): project, entry point, parameters, template, names and identity,
   decided offline; a temporary clone of a git project is removed on every path;
2. the cluster (jobs_client.py): reachable, the namespace present, the project Jobs of the
   namespace listed once: a Job of the same identity? (then step 4 on it, nothing new); a
   server-side dry run of the Job;
3. the tracking server (tracking.py) answers; the image is built if asked (image.py); the
   run is created, then the Job;
4. with ``wait``, the watch (watch.py) and the run's status from the Job's outcome
   (reconcile.py, one map).

One Job per identity, decided by the API server. The Job's name comes from the identity
(``<project>-<first NAME_HASH hex of the identity>``; with ``force``, MLflow's
``<project>-<timestamp>``), so two submissions of one identity ask for one name and the API
server gives it once. Each run records from its creation the name, namespace and cluster of
the Job it is for. A submitter that finds the name taken before it made a run (the dry run
answers 409) makes none and carries on with that Job as with one it had listed. One that
made its run first and meets 409 at the create ends its own run KILLED, tagged with the run
that has the Job (reconcile.SUPERSEDED_TAG), and carries on with that Job. Whoever creates
the Job or meets it also ends any other live run of the identity made for that name (a
second run that MLflow's client made when it retried runs/create, a racing submitter's):
they can never have a Job. No lock object, no extra permission: a Job name is the lock.

What a failure may destroy. Before the Job exists (the code upload, the create refused), the
run is marked FAILED: nothing else exists. Once the Job exists, nothing the module meets
deletes it or ends its run except what the user asked for: ``on_timeout: delete`` at
wait_timeout, a stuck pod (on_timeout says), ``state: absent``. The API server going away
during the wait is ridden out until wait_timeout (watch.py); a log that cannot be read or
stored is a warning; any other failure (the API server still away at wait_timeout, the
tracking server away when the Job ended) fails the call naming the Job and the run, both
left as they are for the next call to settle. A create whose answer was lost is read back
by name: the Job is there (carry on), is not (FAILED), or nobody can tell (left RUNNING).

Runs whose Job is gone (a submitter killed between the run and the Job, a ``wait: false``
Job removed by its TTL, a Job someone deleted) end FAILED at the next call of either module
in that namespace: ``present`` looks in its experiment, ``info`` with ``sync_run`` in every
experiment, with reconcile.Reconciler.settle_orphans (a grace period spares runs whose Job is
being created right now). These looks are housekeeping: when they fail, a warning says so.

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
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import (
    pod_status,
    reconcile,
    snapshot_job,
    tracking,
    watch,
)
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.args_common import auth_params
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ClusterError, ProjectJobError
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.jobs_client import JobsClient
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.plan import PLANNED_RUN_ID, Plan, backend_context
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.reconcile import Reconciler, run_id_of

# Jobs of mlflow_project_job carry a run-id label (any value): info lists those.
PROJECT_JOBS_SELECTOR = job_utils.LABEL_RUN_ID
NAME_HASH = 16  # hex digits of the identity in a Job's name (64 bits)


def job_name_for(project_name, identity):
    """The one Job name of an identity: ``<project>-<hash>``, always a valid DNS-1123 label."""
    return job_utils.dns_label(project_name, identity[:NAME_HASH])


def identity_of(job):
    return (job["metadata"].get("annotations") or {}).get(job_utils.ANNOTATION_IDENTITY)


def _uncertain(error):
    """Whether a failed create may have created the Job all the same: the API server did not
    answer, or answered an error of its own (5xx, 408, 429) after which it may have stored it."""
    if not isinstance(error, ClusterError):
        return False
    status = error.details.get("status")
    return not status or status >= 500 or status in (408, 429)


def _text(error):
    return error.text() if isinstance(error, ProjectJobError) else "{0}: {1}".format(type(error).__name__, error)


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
        self.reconciler = Reconciler(self.jobs, check_mode=self.check_mode, clock=self.clock, warn=self.warn)
        return self.jobs

    @property
    def cluster(self):
        """The API server's URL, as runs record where their Job is (None when unknown)."""
        return getattr(self.jobs, "server", None) or None

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
        listed = jobs.list(plan.namespace, PROJECT_JOBS_SELECTOR)  # this identity's, and the orphans' check
        known = self._known_experiment(tracker)
        orphans = self._settle_orphans(tracker, [] if known is None else [known], plan.namespace, listed)
        existing = [j for j in listed if identity_of(j) == plan.identity]
        if existing and not params.get("force"):
            return self._noted(self._existing(plan, tracker, existing[0]), orphaned_runs=orphans)

        experiment_id = known
        if experiment_id is None:
            experiment_id = tracker.experiment_id(
                params.get("experiment_name"), params.get("experiment_id"), create=not self.check_mode
            )
        if params.get("tracking_grant_user") and not self.check_mode:
            # The pods' own MLflow user may write to this experiment, and to no other: granted before
            # the run exists, with the submitter's credentials (the pods never hold an admin's).
            tracker.grant_experiment_permission(
                params["tracking_grant_user"], experiment_id, "EDIT", option="tracking_grant_user"
            )
        tags = tracking.run_tags(
            plan.project.directory, plan.entry_point.name, run_name=params.get("run_name"), source=plan.source
        )
        if plan.delivery is not None:  # before the run exists: can the pod fetch the code?
            plan.delivery.check_store(tracker, experiment_id, plan.job_tracking_uri)
            tags.update(plan.delivery.tags())
        when = self.now()
        name = self._job_name(plan, when)
        if self.check_mode:
            return self._noted(self._planned(plan, name, experiment_id, tags, when, tracker), orphaned_runs=orphans)

        # The API server checks the Job before anything exists (with the prebuilt image, or a placeholder),
        # and says whether its name was taken since the list: then that Job is this submission's.
        placeholder = self._render(plan, name, PLANNED_RUN_ID, experiment_id, plan.base_image, when)
        taken = self._if_taken(plan, tracker, placeholder)
        if taken is not None:
            return self._noted(taken, orphaned_runs=orphans)
        image_result = self._image(plan) if plan.build else None
        if image_result is not None:
            image_ref = image_result.reference
            tags[tracking.tags_.MLFLOW_DOCKER_IMAGE_URI] = image_result.tag
            tags[tracking.tags_.MLFLOW_DOCKER_IMAGE_ID] = image_result.digest
        else:
            image_ref = plan.base_image
            tags[tracking.tags_.MLFLOW_DOCKER_IMAGE_URI] = image_ref
        tags[tracking.IDENTITY_TAG] = plan.identity
        tags[tracking.JOB_NAME_TAG] = name  # from the start: a run whose Job never came is found by it
        tags[tracking.JOB_NAMESPACE_TAG] = plan.namespace
        if self.cluster:
            tags[reconcile.CLUSTER_TAG] = self.cluster

        run_id = tracker.create_run(experiment_id, tags, plan.logged_parameters, run_name=params.get("run_name"))
        # Until the Job exists, a failure leaves the run FAILED and nothing else. Stopped (an interrupt,
        # SystemExit) nobody knows whether the create happened: the run stays, and the next call ends it
        # if its Job never came (reconcile.Reconciler.settle_orphans).
        try:
            code_url = None
            if plan.delivery is not None:  # a failed upload fails here: the run ends FAILED, no Job
                code_url = plan.delivery.upload(tracker, run_id, plan.job_tracking_uri)
            manifest = self._render(plan, name, run_id, experiment_id, image_ref, when, code_url=code_url)
            created, unknown = self._create(plan, manifest, run_id)
        except Exception:
            self._undo(tracker, run_id)
            raise
        if unknown is not None:
            return self._left(plan, name, run_id, unknown, {"changed": True})
        superseded = self._supersede(tracker, experiment_id, plan, created)
        if run_id_of(created) != run_id:  # another submission of this identity got the name first
            result = self._noted(self._lost(plan, tracker, run_id, created), orphaned_runs=orphans)
            return self._noted(result, superseded_runs=[r for r in superseded if r != run_id])

        # The Job exists: from here on nothing deletes it or ends its run but what the user asked for.
        result = self._result(plan, created, changed=True)
        result["diff"] = {"before": {}, "after": manifest}
        if image_result is not None:
            result["image"] = image_result.as_dict()
        if plan.delivery is not None:
            result["snapshot"] = plan.delivery.as_dict(code_url, True)
        try:
            if params.get("wait"):
                result.update(self._wait(plan, tracker, created))
            result["run"] = tracker.get_run(run_id)
        except Exception as exc:
            return self._left(plan, name, run_id, exc, result)
        return self._noted(result, orphaned_runs=orphans, superseded_runs=superseded)

    def _job_name(self, plan, when):
        """The identity's one name; with ``force`` (another Job of the same identity), MLflow's own."""
        if self.params.get("force"):
            return job_utils.job_name(plan.project.name, when)
        return job_name_for(plan.project.name, plan.identity)

    @staticmethod
    def _render(plan, name, run_id, experiment_id, image_ref, when, code_url=None):
        manifest = plan.render(run_id, experiment_id, image_ref, when, code_url=code_url)
        manifest["metadata"]["name"] = name
        return manifest

    def _known_experiment(self, tracker):
        """The experiment's id when it exists (None, and no error: creating a Job says what is wrong)."""
        try:
            return tracker.experiment_id(
                self.params.get("experiment_name"), self.params.get("experiment_id"), create=False
            )
        except ProjectJobError:
            return None

    def _if_taken(self, plan, tracker, manifest):
        """The server-side dry run of ``manifest``. When its name is taken by a Job of this identity
        (made since the list), that Job's result, as for a Job found by the list; else None."""
        if self.jobs.dry_run(plan.namespace, manifest, plan.template_option) is not False:
            return None
        found = self.jobs.read(plan.namespace, manifest["metadata"]["name"])
        if found is None:  # gone again since: the name is free
            return None
        self._check_identity(plan, found)
        return self._existing(plan, tracker, found)

    def _create(self, plan, manifest, run_id):
        """Create the Job: ``(job, None)`` with the Job of that name (ours, or the one that took the
        name first), or ``(None, error)`` when nobody can tell whether ours was created. Raises when
        it surely was not."""
        name = manifest["metadata"]["name"]
        try:
            job = self.jobs.create(plan.namespace, manifest, plan.template_option)
        except ProjectJobError as exc:
            if not _uncertain(exc):
                raise
            try:  # the answer was lost, not necessarily the Job: look
                job = self.jobs.read(plan.namespace, name)
            except Exception:
                return None, exc
            if job is None:
                raise
            if run_id_of(job) == run_id:
                return job, None
        else:
            if job is not None:
                return job, None
            job = self.jobs.read(plan.namespace, name)  # 409: whose is it?
            if job is None:
                raise ClusterError(
                    "namespace",
                    "Job {0}/{1} existed when this call created its own and is gone now: run the task again".format(
                        plan.namespace, name
                    ),
                )
        self._check_identity(plan, job)
        return job, None

    @staticmethod
    def _check_identity(plan, job):
        if identity_of(job) != plan.identity:
            raise ClusterError(
                "namespace",
                "Job {0}/{1} exists and is not this submission's (its identity is {2!r}): delete it, or set "
                "force: true to run another Job beside it".format(
                    plan.namespace, job["metadata"]["name"], identity_of(job)
                ),
            )

    def _lost(self, plan, tracker, run_id, job):
        """Another submission of this identity made the Job: our run ends KILLED, pointing to its
        run, and this call goes on with that Job as with one it had listed."""
        winner = run_id_of(job)
        try:
            tracker.set_tags(run_id, {reconcile.SUPERSEDED_TAG: winner})
            tracker.terminate(run_id, "KILLED")
        except Exception as exc:
            self.warn("could not mark run {0} KILLED (superseded by run {1}): {2}".format(run_id, winner, exc))
        result = self._existing(plan, tracker, job)
        result["changed"] = True  # a run was made, and ended
        result["superseded_run_id"] = run_id
        return result

    def _supersede(self, tracker, experiment_id, plan, job):
        try:
            return self.reconciler.supersede(tracker, experiment_id, plan.identity, job, self.cluster)
        except Exception as exc:  # housekeeping: the next call tries again
            self.warn("could not look for other runs of Job {0}: {1}".format(job["metadata"]["name"], exc))
            return []

    def _settle_orphans(self, tracker, experiments, namespace, listed):
        try:
            return self.reconciler.settle_orphans(tracker, experiments, namespace, self.cluster, listed)
        except Exception as exc:  # housekeeping: the next call tries again
            self.warn("could not look for runs whose Job is gone in namespace {0}: {1}".format(namespace, exc))
            return []

    @staticmethod
    def _noted(result, **lists):
        """``result`` with each non-empty list of runs the call ended on the way (then changed)."""
        for key, value in lists.items():
            if value:
                result[key] = value
                result["changed"] = True
        return result

    def _left(self, plan, name, run_id, error, result=None):
        """The Job exists (or may) and something failed: a failed result naming both, nothing deleted."""
        out = dict(result or {})
        out.update(
            failed=True,
            job_name=name,
            namespace=plan.namespace,
            run_id=run_id,
            msg=(
                "Job {0}/{1} of run {2}: {3}. The Job and the run are left as they are (nothing was deleted, the run "
                "was not ended): the next mlflow_project_job call with the same inputs, or mlflow_project_job_info "
                "with sync_run=true, settles the run from its Job".format(plan.namespace, name, run_id, _text(error))
            ),
        )
        return out

    def _planned(self, plan, name, experiment_id, tags, when, tracker):
        """Check mode: the Job and the run as they would be, the Job dry-run by the API server."""
        image_ref = plan.base_image
        if plan.build:
            image_ref = image_utils.image_tag(plan.repository_uri, plan.content_hash) + "@sha256:<digest after push>"
        manifest = self._render(plan, name, PLANNED_RUN_ID, experiment_id or "", image_ref, when)
        taken = self._if_taken(plan, tracker, manifest)
        if taken is not None:
            return taken
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

    def _undo(self, tracker, run_id):
        """The run will have no Job: it says FAILED (an error here is a warning; the next call's
        look for runs without a Job ends it then)."""
        try:
            tracker.terminate(run_id, "FAILED")
        except Exception as exc:  # report the first error, not this one
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
            try:
                result.update(self._wait(plan, tracker, job))
            except Exception as exc:
                return self._left(plan, job["metadata"]["name"], run_id_of(job), exc, result)
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
        result = {"changed": changed, "jobs": out, "namespace": namespace}
        if params.get("sync_run"):
            narrowed = params.get("name") or params.get("run_id") or params.get("label_selector")
            listed = jobs.list(namespace, PROJECT_JOBS_SELECTOR) if narrowed else found
            self._noted(result, orphaned_runs=self._info_orphans(namespace, listed, trackers))
        return result

    def _info_orphans(self, namespace, listed, trackers):
        """Runs of ``namespace`` whose Job is gone, in every experiment of ``tracking_uri`` (else of
        each tracking server the namespace's Jobs name), ended (reconcile.Reconciler.settle_orphans)."""
        if self.params.get("tracking_uri"):
            chosen = [trackers.get(self.params["tracking_uri"]) or self.tracker_factory(self.params["tracking_uri"])]
        else:
            chosen = []
            for job in listed:
                tracker = self._tracker_of(job, trackers)
                if tracker is not None and tracker not in chosen:
                    chosen.append(tracker)
        ended = []
        for tracker in chosen:
            try:
                experiments = reconcile.experiment_ids(tracker)
            except Exception as exc:  # housekeeping: the next call tries again
                self.warn("could not list the experiments of {0}: {1}".format(getattr(tracker, "uri", tracker), exc))
                continue
            ended.extend(self._settle_orphans(tracker, experiments, namespace, listed))
        return ended


__all__ = ["Plan", "Runner", "describe"]
