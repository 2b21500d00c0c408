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
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import datetime
import time

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import job as job_utils
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import tracking

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


class Reconciler(object):
    """Settles runs from Job outcomes. ``jobs``: a JobsClient (logs, finished_at); ``clock``: epoch seconds."""

    def __init__(self, jobs, check_mode=False, clock=time.time):
        self.jobs = jobs
        self.check_mode = check_mode
        self.clock = clock

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
            tracker.log_text(run_id, text)
        if tags:
            tracker.set_tags(run_id, tags)
        return tracker.terminate(run_id, target, end_time=self.end_millis(job, state)), text
