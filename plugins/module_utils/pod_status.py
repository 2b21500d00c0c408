# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a pod is stuck for good, and what to tell a person about it.

The one place that reads a pod's status the way ``kubectl describe pod`` shows it
(container ``state.waiting.reason``/``message``, ``restartCount``, ``lastState.terminated``,
the ``PodScheduled`` condition, the pod's events) and decides that waiting longer is
pointless: the state does not heal by itself. Every wait of the collection (the Job watch of
``mlflow_project_job``, ``workload_wait`` for the roles' rollouts) asks :func:`stuck` and
reports with :func:`describe`.

Stuck for good:

- ``CrashLoopBackOff`` once ``restartCount`` reaches ``max_restarts``;
- ``ErrImagePull``, ``ImagePullBackOff``, ``InvalidImageName``, ``ErrImageNeverPull``;
- ``CreateContainerConfigError`` (a missing Secret/ConfigMap or key in ``env``/``envFrom``)
  and ``CreateContainerError`` (except the runtime's known transient name-reservation and
  deadline errors);
- ``PodScheduled=False`` with reason ``Unschedulable``, with the scheduler's message
  (``persistentvolumeclaim "x" not found``), except while the scheduler only waits for a
  PVC to bind or a node to become ready;
- ``FailedMount`` events naming a missing Secret or ConfigMap volume, or a hostPath directory
  that is not on the node, once they have lasted
  ``mount_grace`` seconds (the kubelet retries a mount; a Secret created a moment late heals).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re
from dataclasses import dataclass
from typing import Optional

try:
    from kubernetes import client as k8s
    from kubernetes.client.rest import ApiException
except ImportError:  # pragma: no cover - the modules report the missing library themselves
    k8s = None
    ApiException = Exception

IMAGE_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
CONFIG_REASONS = ("CreateContainerConfigError", "CreateContainerError")
# CreateContainerError messages of a container runtime that a retry heals.
TRANSIENT_CREATE = ("failed to reserve container name", "context deadline exceeded")
# Unschedulable messages that the cluster heals by itself: a PVC being provisioned and bound,
# a node that is starting.
TRANSIENT_UNSCHEDULABLE = (
    "unbound immediate persistentvolumeclaims",
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "node.kubernetes.io/network-unavailable",
)
# A Secret or ConfigMap that does not exist, or a hostPath volume (a hostPath PV of type
# Directory) whose directory is not on the node: the kubelet retries, nothing else will heal it.
MISSING_VOLUME_SOURCE = re.compile(r'\b(secret|configmap) "[^"]+" not found|hostPath type check failed', re.IGNORECASE)
MAX_EVENTS = 5
MOUNT_GRACE = 30  # seconds


@dataclass(frozen=True)
class PodProblem:
    """A pod that will not become ready by itself, as a person needs to see it."""

    pod: str  # pod name
    reason: str  # CrashLoopBackOff, ImagePullBackOff, ErrImagePull, CreateContainerConfigError, ...
    message: str  # the kubelet's / scheduler's message
    container: Optional[str]  # noqa: UP045 (pylint of ansible-test reads no X | None here)
    events: tuple[str, ...]  # last events, "reason: message", oldest first

    def as_dict(self, log_tail=""):
        """The problem as a module result value (``log`` is the container's last lines)."""
        return {
            "pod": self.pod,
            "reason": self.reason,
            "message": self.message,
            "container": self.container,
            "events": list(self.events),
            "log": log_tail,
        }


def dig(obj, *path):
    """``obj[path[0]][path[1]]...``, None where a level is missing or not a dict."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _parse_time(value):
    if not value:
        return None
    if isinstance(value, datetime.datetime):
        moment = value
    else:
        try:
            moment = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment


def _now(now):
    if now is None:
        return datetime.datetime.now(datetime.timezone.utc)
    return _parse_time(now)


def _event_time(event):
    """When an event last happened (core/v1 events from the kubelet set lastTimestamp, the
    scheduler's events.k8s.io events set eventTime and series)."""
    for value in (
        event.get("lastTimestamp"),
        dig(event, "series", "lastObservedTime"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
        dig(event, "metadata", "creationTimestamp"),
    ):
        moment = _parse_time(value)
        if moment is not None:
            return moment
    return datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)


def _first_time(event):
    for value in (event.get("firstTimestamp"), event.get("eventTime"), dig(event, "metadata", "creationTimestamp")):
        moment = _parse_time(value)
        if moment is not None:
            return moment
    return _event_time(event)


def _pod_events(pod, events):
    """The events about this pod, oldest first."""
    name = dig(pod, "metadata", "name")
    uid = dig(pod, "metadata", "uid")
    mine = []
    for event in events or []:
        involved = event.get("involvedObject") or event.get("regarding") or {}
        if involved.get("kind") not in (None, "Pod") or involved.get("name") != name:
            continue
        if uid and involved.get("uid") and involved.get("uid") != uid:
            continue  # an earlier pod of the same name (a StatefulSet's db-0 before a restart)
        mine.append(event)
    return sorted(mine, key=_event_time)


def event_lines(pod, events, limit=MAX_EVENTS):
    """The pod's last ``limit`` events as ``reason: message``, oldest first."""
    lines = []
    for event in _pod_events(pod, events):
        line = "{0}: {1}".format(event.get("reason") or "", (event.get("message") or event.get("note") or "").strip())
        if lines and lines[-1] == line:
            continue
        lines.append(line)
    return tuple(lines[-limit:])


def _statuses(pod):
    """(container name, status dict, is_init) of init containers first, then containers."""
    status = pod.get("status") or {}
    for key, init in (("initContainerStatuses", True), ("containerStatuses", False)):
        for entry in status.get(key) or []:
            yield entry.get("name"), entry, init


def _terminated_text(entry):
    last = dig(entry, "lastState", "terminated")
    if not last:
        return ""
    text = "last exit code {0}".format(last.get("exitCode"))
    if last.get("reason"):
        text += " ({0})".format(last["reason"])
    if last.get("message"):
        text += ": " + last["message"].strip()
    return text


def _unschedulable(pod):
    for condition in dig(pod, "status", "conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return condition
    return None


def _missing_mount(pod, events, now, mount_grace):
    """The first FailedMount event naming a missing Secret/ConfigMap or hostPath directory, past the grace."""
    failed = [e for e in _pod_events(pod, events) if e.get("reason") == "FailedMount"]
    failed = [e for e in failed if MISSING_VOLUME_SOURCE.search(e.get("message") or "")]
    if not failed:
        return None
    started = min(_first_time(e) for e in failed)
    if (now - started).total_seconds() < mount_grace:
        return None
    return failed[-1]


def stuck(pod, events, *, max_restarts=3, now=None, mount_grace=MOUNT_GRACE):
    """The :class:`PodProblem` when ``pod`` is in a state that will not heal by itself, else None.

    ``pod`` and ``events`` are plain dicts as the API serves them (``events``: core/v1 Events
    of the namespace or of the pod; others are ignored). ``now`` (datetime or ISO string)
    defaults to the current time; it only matters for the FailedMount grace.
    """
    pod = as_dict(pod)
    events = [as_dict(e) for e in events or []]
    name = dig(pod, "metadata", "name") or ""
    if dig(pod, "metadata", "deletionTimestamp") or dig(pod, "status", "phase") in ("Succeeded", "Failed"):
        return None  # going away or finished: the owner (Job, ReplicaSet) decides what follows
    lines = event_lines(pod, events)
    for container, entry, _init in _statuses(pod):
        waiting = dig(entry, "state", "waiting") or {}
        reason = waiting.get("reason") or ""
        message = (waiting.get("message") or "").strip()
        if reason == "CrashLoopBackOff":
            if (entry.get("restartCount") or 0) < max_restarts:
                continue
            detail = _terminated_text(entry)
            message = "; ".join(part for part in (message, detail) if part)
            message += "; restarted {0} times".format(entry.get("restartCount"))
        elif reason in IMAGE_REASONS:
            image = entry.get("image")
            if image and image not in message:
                message = "{0} (image {1})".format(message, image).strip()
        elif reason in CONFIG_REASONS:
            if reason == "CreateContainerError" and any(t in message.lower() for t in TRANSIENT_CREATE):
                continue
        else:
            continue
        return PodProblem(pod=name, reason=reason, message=message, container=container, events=lines)
    condition = _unschedulable(pod)
    if condition is not None and condition.get("reason") == "Unschedulable":
        message = (condition.get("message") or "").strip()
        if not message:
            for event in reversed(_pod_events(pod, events)):
                if event.get("reason") == "FailedScheduling":
                    message = (event.get("message") or "").strip()
                    break
        if not any(t in message.lower() for t in TRANSIENT_UNSCHEDULABLE):
            return PodProblem(pod=name, reason="Unschedulable", message=message, container=None, events=lines)
    mount = _missing_mount(pod, events, _now(now), mount_grace)
    if mount is not None:
        return PodProblem(
            pod=name, reason="FailedMount", message=(mount.get("message") or "").strip(), container=None, events=lines
        )
    return None


class Failures(object):
    """What each container's earlier failures looked like, kept by one wait across its looks at
    the pods (issue #28: a slow crash loop is a long silence).

    A container that failed twice the same way (the same exit code and the same last log line,
    one restart after the other) is stuck for good, whatever the kubelet's back-off: the wait
    says so at the second failure, instead of after ``max_restarts``. A wait that never saw the
    first of the two (it started later) falls back on ``max_restarts``.
    """

    def __init__(self):
        self._signatures = {}  # (pod uid, container) -> {restart count: (exit code, last line)}

    def known(self, pod_uid, container, restarts):
        return restarts in self._signatures.get((pod_uid, container), {})

    def note(self, pod_uid, container, restarts, exit_code, last_line):
        """Record failure number ``restarts`` of the container."""
        self._signatures.setdefault((pod_uid, container), {})[restarts] = (exit_code, last_line)

    def repeated(self, pod_uid, container, restarts):
        """The signature failure ``restarts`` shares with the one before it, or None."""
        seen = self._signatures.get((pod_uid, container), {})
        now, before = seen.get(restarts), seen.get(restarts - 1)
        return now if now is not None and now == before else None


def failed_containers(pod):
    """(container, restart count, exit code) of every container whose last run failed."""
    for container, entry, _init in _statuses(as_dict(pod)):
        last = dig(entry, "lastState", "terminated") or {}
        restarts = entry.get("restartCount") or 0
        if restarts and last and last.get("exitCode") not in (None, 0):
            yield container, restarts, last.get("exitCode")


def last_line(text):
    """The last line with anything on it ('' for none)."""
    for line in reversed((text or "").splitlines()):
        if line.strip():
            return line.strip()
    return ""


def repeated_problem(pod, container, restarts, signature, events, hidden=False):
    """The :class:`PodProblem` of a container that failed twice the same way."""
    exit_code, line = signature
    shown = "(not shown)" if hidden else repr(line) if line else "(none)"
    message = "failed twice the same way (exit code {0}, last log line: {1}); restarted {2} times".format(
        exit_code, shown, restarts
    )
    pod = as_dict(pod)
    return PodProblem(
        pod=dig(pod, "metadata", "name") or "",
        reason="RepeatedFailure",
        message=message,
        container=container,
        events=event_lines(pod, events),
    )


def pending_reason(pod, events):
    """What the pod is waiting for, as progress text (``None`` once it runs with every
    container ready, or has finished)."""
    pod = as_dict(pod)
    events = [as_dict(e) for e in events or []]
    name = dig(pod, "metadata", "name") or ""
    phase = dig(pod, "status", "phase") or "Pending"
    if phase in ("Succeeded", "Failed"):
        return None
    condition = _unschedulable(pod)
    if condition is not None:
        text = condition.get("reason") or "not scheduled"
        if condition.get("message"):
            text += ": " + condition["message"].strip()
        return "pod {0}: {1}".format(name, text)
    for container, entry, _init in _statuses(pod):
        waiting = dig(entry, "state", "waiting")
        if waiting:
            text = waiting.get("reason") or "waiting"
            if waiting.get("message"):
                text += ": " + waiting["message"].strip()
            return "pod {0}: container {1}: {2}".format(name, container, text)
    mine = _pod_events(pod, events)
    if phase == "Pending":
        if mine:
            last = mine[-1]
            return "pod {0}: Pending: {1}: {2}".format(name, last.get("reason"), (last.get("message") or "").strip())
        return "pod {0}: Pending".format(name)
    for container, entry, _init in _statuses(pod):
        if not entry.get("ready") and not _init:
            return "pod {0}: container {1} is not ready yet".format(name, container)
    return None


def describe(problem, log_tail=""):
    """One human message: which pod, which state, the last events and the last log lines."""
    where = "pod {0}".format(problem.pod)
    if problem.container:
        where += " (container {0})".format(problem.container)
    text = "{0} is stuck in {1}: {2}".format(where, problem.reason, problem.message or "(no message)")
    if problem.events:
        text += "\nlast events:\n" + "\n".join("  " + line for line in problem.events)
    if log_tail and log_tail.strip():
        text += "\nlast log lines:\n" + "\n".join("  " + line for line in log_tail.rstrip().splitlines())
    return text


def as_dict(obj):
    """A kubernetes client model as the plain dict the API sends; dicts pass through."""
    if obj is None or isinstance(obj, dict):
        return obj
    if k8s is not None and hasattr(obj, "openapi_types"):
        return k8s.ApiClient().sanitize_for_serialization(obj)
    return obj


def _core(core_v1_or_client):
    if hasattr(core_v1_or_client, "list_namespaced_event"):
        return core_v1_or_client
    return k8s.CoreV1Api(core_v1_or_client)


def pod_events(core_v1_or_client, namespace, pod_name):
    """The core/v1 Events about pod ``pod_name`` as dicts (oldest first); [] when none can be read."""
    core = _core(core_v1_or_client)
    try:
        listed = core.list_namespaced_event(
            namespace,
            field_selector="involvedObject.kind=Pod,involvedObject.name=" + pod_name,
            _request_timeout=(10, 60),
        )
    except ApiException as exc:
        if getattr(exc, "status", None) in (403, 404):
            return []  # no right to read events: report the pod's own status only
        raise
    items = [as_dict(e) for e in (listed.items or [])]
    return sorted(items, key=_event_time)


def log_tail(core_v1_or_client, namespace, pod_name, container=None, lines=20, previous_first=False):
    """The container's last ``lines`` log lines ('' when there is none): the previous
    (crashed) container's when the current one has not written anything, or first with
    ``previous_first`` (the run that failed, not the one under way)."""
    if lines is not None and lines <= 0:
        return ""
    core = _core(core_v1_or_client)
    for previous in (True, False) if previous_first else (False, True):
        text = _read_log(core, namespace, pod_name, container, lines, previous=previous)
        if text.strip():
            return text
    return ""


def _read_log(core, namespace, pod_name, container, lines, previous):
    """One container's log tail, redacted; '' when there is none (waiting to start, no previous run)."""
    kwargs = {"tail_lines": lines, "_request_timeout": (10, 60), "previous": previous}
    if container:
        kwargs["container"] = container
    try:
        text = core.read_namespaced_pod_log(pod_name, namespace, **kwargs) or ""
    except ApiException as exc:
        if getattr(exc, "status", None) in (400, 404):
            return ""
        raise
    return redact(text) if text.strip() else ""


# What a database or a client may print with a credential in it: a quoted password after
# PASSWORD / IDENTIFIED BY (a server logging a failed statement), the password of a URI.
_SECRET_PATTERNS = (
    (re.compile(r"(?i)\b(password|identified\s+by)(\s+)('[^']*'|\"[^\"]*\")"), r"\1\2'***'"),
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), r"\1***@"),
)


def redact(text):
    """``text`` with the credentials it may carry masked (log lines go into task output)."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def check_pods(core_v1_or_client, namespace, pods, *, max_restarts=3, log_lines=20, now=None, failures=None):
    """Look at ``pods`` (dicts or models): ``(problem, log, progress)``.

    ``problem`` is the first stuck pod's :class:`PodProblem` (``None`` when none is stuck),
    ``log`` that pod's log tail, ``progress`` the pending reasons of the others (a list of
    strings). Events are read per pod only for pods that are not running and ready.
    ``failures``: the wait's :class:`Failures`; each new failure of a container costs one read
    of its previous log's last lines.
    """
    progress = []
    for listed in pods:
        pod = as_dict(listed)
        if _ready(pod) or dig(pod, "status", "phase") in ("Succeeded", "Failed"):
            continue
        name = dig(pod, "metadata", "name")
        events = pod_events(core_v1_or_client, namespace, name)
        problem = stuck(pod, events, max_restarts=max_restarts, now=now)
        if problem is None and failures is not None:
            problem = _repeated(core_v1_or_client, namespace, pod, events, failures, show_line=log_lines != 0)
        if problem is not None:
            tail_text = ""
            if problem.reason in ("CrashLoopBackOff", "RepeatedFailure"):
                tail_text = log_tail(
                    core_v1_or_client,
                    namespace,
                    name,
                    problem.container,
                    log_lines,
                    previous_first=problem.reason == "RepeatedFailure",
                )
            return problem, tail_text, progress
        reason = pending_reason(pod, events)
        if reason:
            progress.append(reason)
    return None, "", progress


def _repeated(core_v1_or_client, namespace, pod, events, failures, show_line=True):
    """Note the pod's new container failures in ``failures``; the problem of one that repeats
    (its last log line left out of the message unless ``show_line``: a wait told to print no
    log line, whose client may quote a credential, prints none here either)."""
    uid = dig(pod, "metadata", "uid") or dig(pod, "metadata", "name")
    name = dig(pod, "metadata", "name")
    for container, restarts, exit_code in failed_containers(pod):
        if not failures.known(uid, container, restarts):
            # The last line of the run that failed; redacted like every log line.
            text = _read_log(_core(core_v1_or_client), namespace, name, container, 5, previous=True)
            failures.note(uid, container, restarts, exit_code, last_line(text))
        signature = failures.repeated(uid, container, restarts)
        if signature is not None:
            shown = signature if show_line else (signature[0], "")
            return repeated_problem(pod, container, restarts, shown, events, hidden=not show_line)
    return None


def _ready(pod):
    for condition in dig(pod, "status", "conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False
