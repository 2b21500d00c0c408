# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Step 4 of a submission: bring the MLflow run up to date with its Job.

One map says which run status a Job outcome gives (:data:`JOB_TO_RUN`); one function
(:meth:`Reconciler.settle`) applies it, wherever the outcome was seen: at the end of a wait,
on a later call with the same identity, in ``mlflow_project_job_info`` with ``sync_run``, on
``state: absent``. The run's end time is the Job's: its Complete/Failed condition's
``lastTransitionTime``, else ``status.completionTime``, else the pod's container
``finishedAt``; only an outcome the module caused (a deletion, a timeout) ends it now.

Runs without a Job (:meth:`Reconciler.settle_orphans`): a run records, from its creation, the
name, namespace and cluster (API server URL) of the Job it is for (tracking.JOB_NAME_TAG,
tracking.JOB_NAMESPACE_TAG, :data:`CLUSTER_TAG`). A live run (RUNNING or SCHEDULED) of this
namespace and cluster whose Job does not exist, or belongs to another run, and that started more
than :data:`ORPHAN_GRACE` seconds ago (younger, its submitter may be creating the Job right now)
has nothing left that could end it: it ends FAILED with the reason :data:`JOB_NOT_FOUND` and a
sentence (:data:`ORPHAN_TAG`). Its submitter died before the Job, the Job's TTL removed it after
a ``wait: false``, or someone deleted it: the outcome is unknown, so the run's is not FINISHED.
One search of runs and the Job list the caller already has; bounded by :data:`MAX_RUNS`.

Runs that lost the race for their Job's name (:meth:`Reconciler.supersede`): the live runs of one
identity tagged with the name of the Job that now exists, other than that Job's run, can never
get a Job (the name is taken), whatever made them (a second submitter, MLflow's client retrying
runs/create). They end KILLED, tagged :data:`SUPERSEDED_TAG` with the run that has the Job.

Storing a pod's log as an artifact is a courtesy: when it fails, a warning says so and the run
ends as its Job did.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import datetime
import time

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import job as job_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import tracking
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.watch import FAILURE_REASON_TAG

# Job outcome -> MLflow run status. ``Deleted``: the Job went away (state: absent, or someone
# deleted it); ``TimedOut``: wait_timeout passed and on_timeout deleted it; ``Stuck``
# (watch.STUCK): a pod of the Job will never start or keeps crashing (pod_status decides).
JOB_TO_RUN = {
    "Complete": "FINISHED",
    "Failed": "FAILED",
    "Deleted": "KILLED",
    "TimedOut": "KILLED",
    "Stuck": "FAILED",
}
# Outcomes the module decided: the run ends when the module saw them (the Job has no end).
ENDED_NOW = ("Deleted", "TimedOut", "Stuck")

CLUSTER_TAG = "mlops.mlflow_k8s.job_cluster"  # MLflow run tag: the API server URL of the run's Job
ORPHAN_TAG = "mlops.mlflow_k8s.orphaned"  # ... why the module ended a run whose Job is gone
SUPERSEDED_TAG = "mlops.mlflow_k8s.superseded_by"  # ... the run that got the Job this run was for
JOB_NOT_FOUND = "JobNotFound"  # FAILURE_REASON_TAG of a run whose Job is gone
ORPHAN_GRACE = 600  # seconds a run may exist without its Job (code upload, a slow API server)
MAX_RUNS = 200  # live runs looked at per search
MAX_EXPERIMENTS = 500  # experiments searched when no experiment is given (mlflow_project_job_info)


def run_status(state):
    """The run status a Job outcome gives, or None while the Job has not ended."""
    return JOB_TO_RUN.get(state)


def job_end_time(job):
    """When the Job ended (RFC 3339), from its Complete/Failed condition or completionTime; None before."""
    status = (job or {}).get("status") or {}
    for condition in status.get("conditions") or []:
        ended = condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed")
        if ended and condition.get("lastTransitionTime"):
            return condition["lastTransitionTime"]
    return status.get("completionTime")


def to_millis(stamp):
    """RFC 3339 (``2026-11-22T15:30:00Z``, optionally with fractions or an offset) -> epoch ms."""
    text = str(stamp).strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    when = datetime.datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return calendar.timegm(when.utctimetuple()) * 1000 + when.microsecond // 1000


def run_id_of(job):
    return ((job or {}).get("metadata", {}).get("labels") or {}).get(job_utils.LABEL_RUN_ID)


def live_runs(tracker, experiment_ids, tags, max_results=MAX_RUNS):
    """The runs of ``experiment_ids`` that have not ended (RUNNING, SCHEDULED) and carry ``tags``
    (values of DNS names or hex: nothing to quote), oldest first: one search."""
    terms = ["attributes.status != '{0}'".format(status) for status in tracking.TERMINAL]
    terms += ["tags.`{0}` = '{1}'".format(key, value) for key, value in sorted(tags.items())]
    return list(
        tracker.client.search_runs(
            [str(e) for e in experiment_ids],
            " and ".join(terms),
            max_results=max_results,
            order_by=["attributes.start_time ASC"],
        )
    )


def experiment_ids(tracker, max_results=MAX_EXPERIMENTS):
    """The active experiments of the tracking server (at most ``max_results``)."""
    return [e.experiment_id for e in tracker.client.search_experiments(max_results=max_results)]


class Reconciler(object):
    """Settles runs from Job outcomes. ``jobs``: a JobsClient (logs, finished_at); ``clock``: epoch
    seconds; ``warn``: where a failure that changes no outcome (storing a log) is reported."""

    def __init__(self, jobs, check_mode=False, clock=time.time, warn=None):
        self.jobs = jobs
        self.check_mode = check_mode
        self.clock = clock
        self.warn = warn or (lambda msg: None)

    def end_millis(self, job, state):
        if state not in ENDED_NOW:
            stamp = job_end_time(job)
            if not stamp and self.jobs is not None:
                meta = job.get("metadata") or {}
                stamp = self.jobs.finished_at(meta.get("namespace"), meta.get("name"))
            if stamp:
                return to_millis(stamp)
        return int(self.clock() * 1000)

    def settle(self, tracker, job, state, container=None, logs=False, tags=None, text=None):
        """Give the Job's run the status ``state`` calls for; returns ``(changed, log_text)``.

        A run that already has a terminal status is left alone. With ``logs``, the pod's log is
        read (``text``: read already, before the Job was deleted) and, when the run is settled
        now, stored as its artifact. ``tags`` are set on the run before it is ended (a reason,
        say). In check mode nothing is written and ``changed`` says whether it would have been.
        """
        run_id = run_id_of(job)
        target = run_status(state)
        meta = job.get("metadata") or {}
        if text is None:
            text = ""
            if logs and target is not None and state not in ENDED_NOW and self.jobs is not None:
                text = self.jobs.logs(meta.get("namespace"), meta.get("name"), container)
        if not run_id or tracker is None or target is None:
            return False, text
        if tracker.get_run(run_id)["status"] in tracking.TERMINAL:
            return False, text
        if self.check_mode:
            return True, text
        if text:
            try:
                tracker.log_text(run_id, text)
            except Exception as exc:  # the log is a courtesy; the run's status is not
                self.warn(
                    "could not store the log of run {0} (its status is set all the same): {1}".format(run_id, exc)
                )
        if tags:
            tracker.set_tags(run_id, tags)
        return tracker.terminate(run_id, target, end_time=self.end_millis(job, state)), text

    def settle_orphans(self, tracker, experiments, namespace, cluster, jobs, grace=ORPHAN_GRACE):
        """End the live runs of ``namespace`` on ``cluster`` whose Job is not among ``jobs`` (every
        project Job of the namespace, as listed) or belongs to another run, once they are older than
        ``grace`` seconds; returns their ids (in check mode: the ones it would end)."""
        if not experiments or not cluster:
            return []
        owners = dict((j["metadata"]["name"], run_id_of(j)) for j in jobs)
        found = live_runs(tracker, experiments, {tracking.JOB_NAMESPACE_TAG: namespace})
        cutoff = (self.clock() - grace) * 1000
        ended = []
        for run in found:
            run_id = run.info.run_id
            name = run.data.tags.get(tracking.JOB_NAME_TAG)
            if not name or run.data.tags.get(CLUSTER_TAG) != cluster or owners.get(name) == run_id:
                continue
            if (run.info.start_time or 0) > cutoff:
                continue  # its submitter may be creating the Job right now
            if name in owners:
                why = "Job {0}/{1} on {2} belongs to run {3}, not to this run".format(
                    namespace, name, cluster, owners[name]
                )
            else:
                why = (
                    "Job {0}/{1} on {2} does not exist (never created, removed by its TTL, or deleted): "
                    "its outcome is unknown".format(namespace, name, cluster)
                )
            if not self.check_mode:
                tracker.set_tags(run_id, {FAILURE_REASON_TAG: JOB_NOT_FOUND, ORPHAN_TAG: why})
                tracker.terminate(run_id, "FAILED")
            ended.append(run_id)
        return ended

    def supersede(self, tracker, experiment, identity, job, cluster):
        """End the other live runs of ``identity`` that were for ``job``'s name: KILLED, tagged with
        ``job``'s run. Returns their ids."""
        meta = job["metadata"]
        winner = run_id_of(job)
        tags = {
            tracking.IDENTITY_TAG: identity,
            tracking.JOB_NAME_TAG: meta["name"],
            tracking.JOB_NAMESPACE_TAG: meta["namespace"],
        }
        ended = []
        for run in live_runs(tracker, [experiment], tags):
            if run.info.run_id == winner or run.data.tags.get(CLUSTER_TAG) != cluster:
                continue
            if not self.check_mode:
                tracker.set_tags(run.info.run_id, {SUPERSEDED_TAG: winner})
                tracker.terminate(run.info.run_id, "KILLED")
            ended.append(run.info.run_id)
        return ended
