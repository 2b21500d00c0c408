# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait for a Job with a watch (not MLflow's 5-second poll), watch its pods, read their logs.

With a CoreV1Api, the wait also looks at the Job's pods (pod_status decides): a pod that will
never start or keeps crashing ends the wait at once with state ``Stuck`` and the pod's
problem, rather than at ``wait_timeout``; what the pods wait for meanwhile is kept as
progress.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import pod_status
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.job import job_state

try:
    from kubernetes import watch as k8s_watch
    from kubernetes.client.rest import ApiException
except ImportError:  # pragma: no cover
    k8s_watch = None
    ApiException = Exception

TERMINAL_STATES = ("Complete", "Failed")
WATCH_CHUNK = 300  # seconds a single watch request stays open before it is renewed
POD_CHECK = 2  # seconds between looks at the pods while one of them is not running and ready
HEALTHY_POD_CHECK = 30  # ... and once all are (a Job change triggers a look at once anyway)
MAX_PROGRESS = 10
STUCK = "Stuck"
FAILURE_REASON_TAG = "mlops.mlflow-k8s/failure-reason"  # MLflow run tag: why a stuck pod ended the run


class JobOutcome(tuple):
    """``(job, state, timed_out)`` as before, plus what the pods said.

    ``problem``: the stuck pod's PodProblem when ``state`` is ``Stuck``; ``log``: its log tail;
    ``progress``: the distinct pending reasons seen while waiting, oldest first.
    """

    def __new__(cls, job, state, timed_out, problem=None, log="", progress=()):
        self = tuple.__new__(cls, (job, state, timed_out))
        self.problem = problem
        self.log = log
        self.progress = tuple(progress)[-MAX_PROGRESS:]
        return self

    @property
    def job(self):
        return self[0]

    @property
    def state(self):
        return self[1]

    @property
    def timed_out(self):
        return self[2]


def read_job(batch, namespace, name):
    """The Job as a dict, or None when it does not exist."""
    try:
        job = batch.read_namespaced_job(name=name, namespace=namespace, _request_timeout=(10, 60))
    except ApiException as exc:
        if getattr(exc, "status", None) == 404:
            return None
        raise
    return batch.api_client.sanitize_for_serialization(job)


def wait_for_job(
    batch, namespace, name, timeout, clock=time.monotonic, job=None, core=None, max_restarts=3, progress=None
):
    """Block until the Job is Complete or Failed, deleted, one of its pods is stuck, or
    ``timeout`` seconds pass.

    Returns a :class:`JobOutcome`, which unpacks as ``(job_dict_or_None, state, timed_out)``
    where state is Complete, Failed, Running, Pending, Deleted or Stuck. Watches
    ``metadata.name=<name>`` from the resourceVersion read first, so an end that happens
    between the read and the watch is never missed; 410 Gone re-reads.
    ``job``: the Job as just created or listed, which saves the first read.
    ``core``: a CoreV1Api; with it the Job's pods are looked at every POD_CHECK seconds while
    one is not running and ready, and whenever the Job changes. ``max_restarts``: restarts of a
    crash-looping container after which it counts as stuck. ``progress``: called with each new
    pending reason (a string).
    """
    deadline = clock() + max(0, timeout)
    if job is None or not (job.get("metadata") or {}).get("resourceVersion"):
        job = read_job(batch, namespace, name)
    if job is None:
        return JobOutcome(None, "Deleted", False)
    pods = _PodWatch(core, namespace, name, clock, max_restarts, progress)
    while True:
        state = job_state(job)
        if state in TERMINAL_STATES:
            return pods.outcome(job, state, False)
        if pods.due():
            problem, log = pods.check()
            if problem is not None:
                return pods.outcome(job, STUCK, False, problem, log)
        remaining = deadline - clock()
        if remaining <= 0:
            return pods.outcome(job, state, True)
        resource_version = (job.get("metadata") or {}).get("resourceVersion")
        watcher = k8s_watch.Watch()
        seconds = max(1, int(pods.chunk(min(remaining, WATCH_CHUNK)) + 0.999))
        try:
            for event in watcher.stream(
                batch.list_namespaced_job,
                namespace,
                field_selector="metadata.name=" + name,
                resource_version=resource_version,
                timeout_seconds=seconds,
                allow_watch_bookmarks=True,
                _request_timeout=(10, seconds + 15),
            ):
                # Not deserialize=False: the client then fails on ERROR events (410 Gone) with a
                # KeyError (it looks for raw_object, which only the deserializing path sets).
                kind = event.get("type")
                obj = event.get("raw_object") or {}
                if kind == "BOOKMARK":
                    job.setdefault("metadata", {})["resourceVersion"] = obj.get("metadata", {}).get("resourceVersion")
                    continue
                if kind == "DELETED":
                    watcher.stop()
                    return pods.outcome(obj, "Deleted", False)
                if kind in ("ADDED", "MODIFIED"):
                    job = obj
                    if job_state(job) in TERMINAL_STATES or pods.changed():
                        watcher.stop()
                        break
                if clock() >= deadline:
                    watcher.stop()
                    break
        except ApiException as exc:
            if getattr(exc, "status", None) != 410:
                raise
            job = read_job(batch, namespace, name)  # our resourceVersion expired: start again from now
            if job is None:
                return pods.outcome(None, "Deleted", False)


class _PodWatch(object):
    """When and how wait_for_job looks at the Job's pods (nothing at all without ``core``)."""

    def __init__(self, core, namespace, name, clock, max_restarts, progress):
        self.core = core
        self.namespace = namespace
        self.name = name
        self.clock = clock
        self.max_restarts = max_restarts
        self.report = progress
        self.seen = []
        self.next_check = clock()

    def due(self):
        return self.core is not None and self.clock() >= self.next_check

    def changed(self):
        """The Job changed (a pod came, went, failed, turned ready): look at the pods now."""
        if self.core is None:
            return False
        self.next_check = self.clock()
        return True

    def chunk(self, seconds):
        """How long the next watch request may stay open."""
        if self.core is None:
            return seconds
        return max(1, min(seconds, self.next_check - self.clock()))

    def check(self):
        pods = job_pods(self.core, self.namespace, self.name)
        problem, log, pending = pod_status.check_pods(self.core, self.namespace, pods, max_restarts=self.max_restarts)
        for text in pending:
            if text not in self.seen:
                self.seen.append(text)
                if self.report is not None:
                    self.report(text)
        healthy = bool(pods) and not pending
        self.next_check = self.clock() + (HEALTHY_POD_CHECK if healthy else POD_CHECK)
        return problem, log

    def outcome(self, job, state, timed_out, problem=None, log=""):
        return JobOutcome(job, state, timed_out, problem=problem, log=log, progress=self.seen)


def job_pods(core, namespace, name):
    """The Job's pods, newest first (both the current and the legacy job-name label are tried)."""
    for selector in ("batch.kubernetes.io/job-name=" + name, "job-name=" + name):
        pods = core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=(10, 60)).items
        if pods:
            return sorted(pods, key=lambda p: p.metadata.creation_timestamp or 0, reverse=True)
    return []


def pod_log(core, namespace, job_name, container=None, tail_lines=None):
    """The newest pod's log (all of it, or the last ``tail_lines``); '' when there is none yet."""
    pods = job_pods(core, namespace, job_name)
    if not pods:
        return ""
    kwargs = {"_request_timeout": (10, 120)}
    if container:
        kwargs["container"] = container
    if tail_lines:
        kwargs["tail_lines"] = tail_lines
    try:
        return core.read_namespaced_pod_log(pods[0].metadata.name, namespace, **kwargs) or ""
    except ApiException as exc:
        if getattr(exc, "status", None) in (400, 404):
            return ""
        raise


def tail(text, lines):
    if not lines:
        return text
    parts = text.splitlines()
    return "\n".join(parts[-lines:])
