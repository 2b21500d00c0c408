# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait for a Job with a watch (not MLflow's 5-second poll), watch its pods, read their logs.

With a CoreV1Api, the wait also looks at the Job's pods (pod_status decides): a pod that will
never start or keeps crashing ends the wait at once with state ``Stuck`` and the pod's
problem, rather than at ``wait_timeout``; what the pods wait for meanwhile is kept as
progress.

The wait outlives the API server: a Job runs on whether or not anyone can see it, so a
connection refused or reset, a timeout, a 5xx or 429, or a watch whose resourceVersion expired
(410 Gone) never ends it. After any of them the Job is listed again and watched from the list's
resourceVersion (never the Job's own, which is as old as the Job's last change and expires
again at once); between failed attempts the wait backs off (FIRST_BACKOFF doubling up to
MAX_BACKOFF) until ``timeout``. If the API server is still away then, the last error is raised:
that is not a timeout (nobody knows the Job's state), and the caller must not act as if it were.
A refusal (401, 403) is retried for AUTH_GRACE seconds only (an API server that has just started
may refuse until its caches are filled); anything else (400, 404 of the list itself) is raised at
once. A Job that the list no longer shows was deleted: state ``Deleted``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import http.client
import time

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import pod_status
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.job import job_state

try:
    from kubernetes import watch as k8s_watch
    from kubernetes.client.rest import ApiException
except ImportError:  # pragma: no cover
    k8s_watch = None
    ApiException = Exception
try:
    from urllib3.exceptions import HTTPError as Urllib3Error
except ImportError:  # pragma: no cover
    Urllib3Error = OSError

TERMINAL_STATES = ("Complete", "Failed")
WATCH_CHUNK = 300  # seconds a single watch request stays open before it is renewed
POD_CHECK = 2  # seconds between looks at the pods while one of them is not running and ready
HEALTHY_POD_CHECK = 30  # ... and once all are (a Job change triggers a look at once anyway)
MAX_PROGRESS = 10
STUCK = "Stuck"
FIRST_BACKOFF = 1  # seconds before the first retry after the API server failed us; doubles each time
MAX_BACKOFF = 30  # ... up to this
AUTH_GRACE = 30  # seconds a 401/403 in a row is retried (an API server just started), then raised
EARLY_CLOSE = 1  # a watch closed with no event sooner than this (seconds) counts as a failure
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


def list_job(batch, namespace, name):
    """``(job dict or None, the list's resourceVersion)``: the Job as it is now, and where a watch
    that misses nothing from now on starts."""
    found = batch.list_namespaced_job(namespace, field_selector="metadata.name=" + name, _request_timeout=(10, 60))
    found = batch.api_client.sanitize_for_serialization(found)
    items = found.get("items") or []
    return (items[0] if items else None), (found.get("metadata") or {}).get("resourceVersion")


def wait_for_job(
    batch,
    namespace,
    name,
    timeout,
    clock=time.monotonic,
    job=None,
    core=None,
    max_restarts=3,
    progress=None,
    sleep=time.sleep,
    retrying=None,
):
    """Block until the Job is Complete or Failed, deleted, one of its pods is stuck, or
    ``timeout`` seconds pass.

    Returns a :class:`JobOutcome`, which unpacks as ``(job_dict_or_None, state, timed_out)``
    where state is Complete, Failed, Running, Pending, Deleted or Stuck. Watches
    ``metadata.name=<name>`` from the resourceVersion listed first, so an end that happens
    between the list and the watch is never missed. ``job``: the Job as just created or listed,
    which saves the first list. ``core``: a CoreV1Api; with it the Job's pods are looked at every
    POD_CHECK seconds while one is not running and ready, and whenever the Job changes.
    ``max_restarts``: restarts of a crash-looping container after which it counts as stuck.
    ``progress``: called with each new pending reason (a string). ``sleep``: how to wait between
    attempts; ``retrying(error, attempt, delay)``: called before each of those waits.

    What the API server failing does to the wait: the module docstring. When it is still failing
    at ``timeout``, its last error is raised.
    """
    deadline = clock() + max(0, timeout)
    version = ((job or {}).get("metadata") or {}).get("resourceVersion")
    pods = _PodWatch(core, namespace, name, clock, max_restarts, progress)
    backoff = _Backoff(clock, sleep, deadline, retrying)
    while True:
        try:
            if job is None or not version:
                job, version = list_job(batch, namespace, name)
                if job is None:
                    return pods.outcome(None, "Deleted", False)
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
            seconds = max(1, int(pods.chunk(min(remaining, WATCH_CHUNK)) + 0.999))
            opened = clock()
            ended, job, version, events = _watch_once(
                batch, namespace, name, job, version, seconds, pods, clock, deadline
            )
            if ended is not None:
                return ended
            if not events and clock() - opened < min(seconds, EARLY_CLOSE):
                raise WatchClosed("the API server closed the watch of Job {0} at once".format(name))
            backoff.ok()
        except Exception as exc:
            backoff.after(exc)  # raises when the wait cannot go on
            version = None  # list again: what happened while we could not see?


class WatchClosed(Exception):
    """A watch ended at once with nothing in it: an API server shutting down, or a proxy in the way."""


def _watch_once(batch, namespace, name, job, version, seconds, pods, clock, deadline):
    """One watch request from ``version``: ``(outcome or None, job, version, events seen)``."""
    watcher = k8s_watch.Watch()
    events = 0
    for event in watcher.stream(
        batch.list_namespaced_job,
        namespace,
        field_selector="metadata.name=" + name,
        resource_version=version,
        timeout_seconds=seconds,
        allow_watch_bookmarks=True,
        _request_timeout=(10, seconds + 15),
    ):
        # Not deserialize=False: the client then fails on ERROR events (410 Gone) with a
        # KeyError (it looks for raw_object, which only the deserializing path sets).
        if not event:  # a line cut short when the connection broke
            continue
        events += 1
        kind = event.get("type")
        obj = event.get("raw_object") or {}
        if kind == "BOOKMARK":
            version = (obj.get("metadata") or {}).get("resourceVersion") or version
            continue
        if kind == "DELETED":
            watcher.stop()
            return pods.outcome(obj, "Deleted", False), job, version, events
        if kind in ("ADDED", "MODIFIED"):
            job = obj
            version = (obj.get("metadata") or {}).get("resourceVersion") or version
            if job_state(job) in TERMINAL_STATES or pods.changed():
                watcher.stop()
                break
        if clock() >= deadline:
            watcher.stop()
            break
    return None, job, version, events


def transient(exc):
    """Whether ``exc`` is the API server (or the way to it) failing for a while: worth trying again."""
    if isinstance(exc, ApiException):
        status = getattr(exc, "status", None)
        return not status or status in (408, 410, 429) or status >= 500
    return isinstance(exc, (WatchClosed, Urllib3Error, OSError, http.client.HTTPException))


def refused(exc):
    return isinstance(exc, ApiException) and getattr(exc, "status", None) in (401, 403)


class _Backoff(object):
    """How wait_for_job goes on after the API server failed it (see the module docstring)."""

    def __init__(self, clock, sleep, deadline, report):
        self.clock = clock
        self.sleep = sleep
        self.deadline = deadline
        self.report = report
        self.failures = 0
        self.refused_since = None

    def ok(self):
        """The API server answered: the next failure starts the back-off again."""
        self.failures = 0
        self.refused_since = None

    def after(self, exc):
        """Wait before the next attempt, or raise ``exc`` when there is none."""
        now = self.clock()
        if refused(exc):
            self.refused_since = now if self.refused_since is None else self.refused_since
            if now - self.refused_since >= AUTH_GRACE:
                raise exc
        elif not transient(exc):
            raise exc
        self.failures += 1
        if getattr(exc, "status", None) == 410 and self.failures == 1:
            return  # expired, not failing: list again at once
        delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (self.failures - 1), self.deadline - now)
        if delay <= 0:
            raise exc
        if self.report is not None:
            self.report(exc, self.failures, delay)
        self.sleep(delay)


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
        self.failures = pod_status.Failures()

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
        problem, log, pending = pod_status.check_pods(
            self.core, self.namespace, pods, max_restarts=self.max_restarts, failures=self.failures
        )
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
