# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait for a Job with a watch (not MLflow's 5-second poll) and read its pods' logs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.job import job_state

try:
    from kubernetes import watch as k8s_watch
    from kubernetes.client.rest import ApiException
except ImportError:  # pragma: no cover
    k8s_watch = None
    ApiException = Exception

TERMINAL_STATES = ("Complete", "Failed")
WATCH_CHUNK = 300  # seconds a single watch request stays open before it is renewed


def read_job(batch, namespace, name):
    """The Job as a dict, or None when it does not exist."""
    try:
        job = batch.read_namespaced_job(name=name, namespace=namespace, _request_timeout=(10, 60))
    except ApiException as exc:
        if getattr(exc, "status", None) == 404:
            return None
        raise
    return batch.api_client.sanitize_for_serialization(job)


def wait_for_job(batch, namespace, name, timeout, clock=time.monotonic, job=None):
    """Block until the Job is Complete or Failed, deleted, or ``timeout`` seconds pass.

    Returns ``(job_dict_or_None, state, timed_out)`` where state is Complete, Failed, Running,
    Pending or Deleted. Watches ``metadata.name=<name>`` from the resourceVersion read first, so
    an end that happens between the read and the watch is never missed; 410 Gone re-reads.
    ``job``: the Job as just created or listed, which saves the first read.
    """
    deadline = clock() + max(0, timeout)
    if job is None or not (job.get("metadata") or {}).get("resourceVersion"):
        job = read_job(batch, namespace, name)
    if job is None:
        return None, "Deleted", False
    while True:
        state = job_state(job)
        if state in TERMINAL_STATES:
            return job, state, False
        remaining = deadline - clock()
        if remaining <= 0:
            return job, state, True
        resource_version = (job.get("metadata") or {}).get("resourceVersion")
        watcher = k8s_watch.Watch()
        seconds = max(1, int(min(remaining, WATCH_CHUNK) + 0.999))
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
                    return obj, "Deleted", False
                if kind in ("ADDED", "MODIFIED"):
                    job = obj
                    if job_state(job) in TERMINAL_STATES:
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
                return None, "Deleted", False


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
