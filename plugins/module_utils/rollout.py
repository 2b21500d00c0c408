# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait for a Deployment or StatefulSet rollout, or a Job, and fail as soon as a pod is stuck.

The logic of mlops.mlflow_k8s.workload_wait. A rollout is done when ``kubectl rollout status``
would say so; meanwhile the pods of the rollout are looked at every ``interval`` seconds and
pod_status decides whether one of them is stuck for good (then the wait ends at once with
the pod, its state, its last events and log lines). Jobs go through watch.wait_for_job.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import k8s_client, pod_status, watch
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.args_common import auth_params
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.job import job_condition_message
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.pod_status import dig

try:
    from kubernetes.client.rest import ApiException
except ImportError:  # pragma: no cover - the module reports the missing library
    ApiException = Exception

KINDS = ("Deployment", "StatefulSet", "Job")
# Seconds between looks at a rollout and its pods: the first look again after FIRST_INTERVAL,
# each pause twice the last, up to INTERVAL (a rollout with little to do is seen done at once,
# a long one costs the API server three reads every INTERVAL).
FIRST_INTERVAL = 0.25
INTERVAL = 2


class Outcome(object):
    """How a wait ended. ``state``: Ready, Complete, Failed, Stuck, TimedOut or Missing."""

    def __init__(self, state, obj=None, message="", problem=None, log="", progress=()):
        self.state = state
        self.obj = obj
        self.message = message
        self.problem = problem
        self.log = log
        self.progress = list(progress)

    @property
    def ok(self):
        return self.state in ("Ready", "Complete")


def rollout_status(obj):
    """``(done, text)`` for a Deployment or StatefulSet dict, as ``kubectl rollout status``."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    name = dig(obj, "metadata", "name")
    if (status.get("observedGeneration") or 0) < (dig(obj, "metadata", "generation") or 0):
        return False, "waiting for the {0} spec update to be observed".format(kind)
    want = spec.get("replicas", 1)
    updated = status.get("updatedReplicas") or 0
    if kind == "Deployment":
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
                return False, "deployment {0} exceeded its progress deadline".format(name)
        if updated < want:
            return False, "{0} of {1} updated replicas are available".format(updated, want)
        if (status.get("replicas") or 0) > updated:
            return False, "{0} old replicas are pending termination".format(status["replicas"] - updated)
        if (status.get("availableReplicas") or 0) < updated:
            return False, "{0} of {1} updated replicas are available".format(
                status.get("availableReplicas") or 0, updated
            )
        return True, "deployment {0} successfully rolled out".format(name)
    strategy = spec.get("updateStrategy") or {}
    ready = status.get("readyReplicas") or 0
    if ready < want:
        return False, "{0} of {1} pods are ready".format(ready, want)
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        partition = (strategy.get("rollingUpdate") or {}).get("partition") or 0
        if want - partition > updated:
            return False, "{0} of {1} pods are updated".format(updated, want - partition)
        if not partition and status.get("updateRevision") != status.get("currentRevision"):
            return False, "waiting for the rolling update to finish"
    return True, "statefulset {0} rolled out".format(name)


def failed_permanently(obj):
    """A Deployment past its progressDeadlineSeconds will not roll out by itself."""
    return obj.get("kind") == "Deployment" and rollout_status(obj)[1].endswith("exceeded its progress deadline")


def selector_string(obj, extra=None):
    labels = dict(dig(obj, "spec", "selector", "matchLabels") or {})
    labels.update(extra or {})
    return ",".join("{0}={1}".format(k, v) for k, v in sorted(labels.items()))


class Waiter(object):
    """One wait. ``apps``/``core``/``batch``: AppsV1Api, CoreV1Api, BatchV1Api."""

    def __init__(self, apps, core, batch, *, max_restarts=3, log_lines=20, clock=time.monotonic, sleep=time.sleep):
        self.apps = apps
        self.core = core
        self.batch = batch
        self.max_restarts = max_restarts
        self.log_lines = log_lines
        self.clock = clock
        self.sleep = sleep

    def wait(self, kind, namespace, name, timeout):
        if kind == "Job":
            return self._job(namespace, name, timeout)
        return self._rollout(kind, namespace, name, timeout)

    def _job(self, namespace, name, timeout):
        outcome = watch.wait_for_job(
            self.batch, namespace, name, timeout, clock=self.clock, core=self.core, max_restarts=self.max_restarts
        )
        job, state, timed_out = outcome
        if state == watch.STUCK:
            return Outcome("Stuck", job, problem=outcome.problem, log=outcome.log, progress=outcome.progress)
        if state == "Deleted":
            return Outcome("Missing", job, "Job {0}/{1} does not exist (or was deleted)".format(namespace, name))
        if timed_out:
            return Outcome(
                "TimedOut", job, "Job {0}/{1} is still {2}".format(namespace, name, state), progress=outcome.progress
            )
        if state == "Failed":
            return Outcome("Failed", job, self._failed_job_text(namespace, name, job), progress=outcome.progress)
        return Outcome("Complete", job, "Job {0}/{1} completed".format(namespace, name), progress=outcome.progress)

    def job_log(self, namespace, name):
        """The log of every container of the Job's newest pod, init containers first in their
        order, one after the other (credentials masked); '' when there is no pod."""
        pods = watch.job_pods(self.core, namespace, name)
        if not pods:
            return ""
        spec = dig(pod_status.as_dict(pods[0]), "spec") or {}
        containers = [c.get("name") for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])]
        return pod_status.redact("".join(watch.pod_log(self.core, namespace, name, container=c) for c in containers))

    def _failed_job_text(self, namespace, name, job):
        text = "Job {0}/{1} failed: {2}".format(namespace, name, job_condition_message(job) or "no reason given")
        pods = watch.job_pods(self.core, namespace, name)
        if pods:
            pod = pod_status.as_dict(pods[0])
            pod_name = dig(pod, "metadata", "name")
            lines = pod_status.event_lines(pod, pod_status.pod_events(self.core, namespace, pod_name))
            if lines:
                text += "\nlast events of pod {0}:\n".format(pod_name) + "\n".join("  " + line for line in lines)
            tail = pod_status.log_tail(self.core, namespace, pod_name, lines=self.log_lines)
            if tail.strip():  # already redacted
                text += "\nlast log lines:\n" + "\n".join("  " + line for line in tail.rstrip().splitlines())
        return text

    def _read(self, kind, namespace, name):
        read = self.apps.read_namespaced_deployment if kind == "Deployment" else self.apps.read_namespaced_stateful_set
        try:
            obj = read(name, namespace, _request_timeout=(10, 60))
        except ApiException as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise
        obj = pod_status.as_dict(obj)
        obj.setdefault("kind", kind)
        return obj

    def _pods(self, kind, namespace, obj):
        """The pods whose health decides the rollout: a Deployment's newest ReplicaSet's, a
        StatefulSet's all (its rolling update waits for every pod, old ones included)."""
        extra = None
        if kind == "Deployment":
            revision = (dig(obj, "metadata", "annotations") or {}).get("deployment.kubernetes.io/revision")
            sets = self.apps.list_namespaced_replica_set(
                namespace, label_selector=selector_string(obj), _request_timeout=(10, 60)
            ).items
            for listed in sets:
                rs = pod_status.as_dict(listed)
                owners = dig(rs, "metadata", "ownerReferences") or []
                mine = any(o.get("uid") == dig(obj, "metadata", "uid") for o in owners)
                rs_revision = (dig(rs, "metadata", "annotations") or {}).get("deployment.kubernetes.io/revision")
                if mine and rs_revision == revision:
                    extra = {"pod-template-hash": (dig(rs, "metadata", "labels") or {}).get("pod-template-hash")}
            if extra is None:
                return []  # the new ReplicaSet is not there yet
        selector = selector_string(obj, extra)
        return self.core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=(10, 60)).items

    def _rollout(self, kind, namespace, name, timeout):
        deadline = self.clock() + max(0, timeout)
        seen = []
        obj = None
        pause = FIRST_INTERVAL
        failures = pod_status.Failures()
        while True:
            obj = self._read(kind, namespace, name)
            if obj is None:
                return Outcome("Missing", None, "{0} {1}/{2} does not exist".format(kind, namespace, name))
            done, text = rollout_status(obj)
            if done:
                return Outcome("Ready", obj, text, progress=seen)
            if failed_permanently(obj):
                return Outcome("Failed", obj, "{0} {1}/{2}: {3}".format(kind, namespace, name, text), progress=seen)
            problem, log, pending = pod_status.check_pods(
                self.core,
                namespace,
                self._pods(kind, namespace, obj),
                max_restarts=self.max_restarts,
                log_lines=self.log_lines,
                failures=failures,
            )
            if problem is not None:
                return Outcome("Stuck", obj, problem=problem, log=log, progress=seen)
            for line in [text] + pending:
                if line not in seen:
                    seen.append(line)
            if self.clock() >= deadline:
                message = "{0} {1}/{2} not ready after {3} s: {4}".format(kind, namespace, name, timeout, text)
                if pending:
                    message += "; " + "; ".join(pending)
                return Outcome("TimedOut", obj, message, progress=seen)
            self.sleep(min(pause, max(0.0, deadline - self.clock())))
            pause = min(pause * 2, INTERVAL)


def describe_outcome(kind, namespace, name, outcome):
    """The one message for a wait that did not end well (None when it did)."""
    if outcome.ok:
        return None
    if outcome.state == "Stuck":
        return "{0} {1}/{2}: {3}".format(kind, namespace, name, pod_status.describe(outcome.problem, outcome.log))
    return outcome.message


def run(params, check_mode=False, waiter=None):
    """The module's whole call: the result dict (``failed`` and ``msg`` when the wait failed)."""
    kind, namespace, name, timeout = params["kind"], params["namespace"], params["name"], params["timeout"]
    what = "{0} {1}/{2}".format(kind, namespace, name)
    result = {"changed": False, "kind": kind, "namespace": namespace, "name": name}
    if check_mode:  # the object may not exist yet: nothing is read
        goal = "to complete" if kind == "Job" else "to roll out"
        result.update(
            state="Planned",
            msg="would wait up to {0} s for {1} {2}, failing early on a stuck pod".format(timeout, what, goal),
        )
        return result
    if waiter is None:
        from kubernetes import client as k8s

        api = k8s_client.api_client(auth_params(params))
        waiter = Waiter(
            k8s.AppsV1Api(api),
            k8s.CoreV1Api(api),
            k8s.BatchV1Api(api),
            max_restarts=params["max_restarts"],
            log_lines=params["log_lines"],
        )
    try:
        outcome = waiter.wait(kind, namespace, name, timeout)
        if params.get("job_log") and kind == "Job" and outcome.state in ("Complete", "Failed"):
            result["log"] = waiter.job_log(namespace, name)
    except Exception as exc:
        if k8s_client.is_api_error(exc):
            raise k8s_client.describe_api_error(exc, auth_params(params), "wait for " + what, namespace) from None
        raise
    result.update(state=outcome.state, pending_reasons=outcome.progress)
    if outcome.obj is not None:
        result["status"] = outcome.obj.get("status") or {}
    if outcome.problem is not None:
        result["stuck"] = outcome.problem.as_dict(outcome.log)
    failure = describe_outcome(kind, namespace, name, outcome)
    if failure:
        result.update(failed=True, msg=failure)
    else:
        result["msg"] = outcome.message
    return result
