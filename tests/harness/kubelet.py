"""A stand-in kubelet for clusters that have a control plane but no kubelet.

``SimKubelet`` registers a Node that looks Ready and schedulable, watches the Pods of one
namespace and plays the kubelet's part for them by writing their status: Pending -> Running
(init containers completed, every container running, Ready) and, for run-to-completion pods
(Jobs' pods, ``restartPolicy`` Never/OnFailure), on to Succeeded or Failed according to rules
the test sets. Pods of Deployments and StatefulSets stay Running and Ready, so rollout waits,
Job waits and Endpoints work as on a real cluster::

    with SimKubelet(api_client, namespace) as kubelet:
        kubelet.outcome("train", "fail", exit_code=3, log="Traceback ...")
        ... create a Job named train; it ends Failed with exit code 3 ...

What a kubelet refuses, it refuses here too, with the kubelet's wording and core/v1 Events
(source ``kubelet``): a container whose ``env``/``envFrom`` names a Secret or ConfigMap (or a
key) that does not exist, not marked optional, waits in ``CreateContainerConfigError``
(``secret "x" not found``, a ``Failed`` event); a Secret/ConfigMap volume that does not exist
keeps the pod in ``ContainerCreating`` with ``FailedMount`` events; an image under the reserved
``.invalid`` top-level domain (RFC 2606: it never resolves, so no real node can pull it either)
goes ``ErrImagePull`` then ``ImagePullBackOff``. Each is retried every ``retry`` seconds and
heals once the object appears, as on a real node. A pod that a scheduler marked
``PodScheduled=False`` (a missing PVC, no fitting node) is never bound by the helper.
Rule outcomes ``crashloop`` (the containers exit with ``exit_code`` again and again:
``CrashLoopBackOff`` with a growing ``restartCount``, ``lastState.terminated``, ``BackOff``
events, the rule's log) and ``pull-failure`` (every image of the pod fails to pull) apply to
every pod the rule matches, also those of Deployments and StatefulSets.

Nothing runs: no image is pulled, no command executed, no probe evaluated. A rule's ``log`` is
stored in the pod annotation ``standin.mlflow-k8s.test/log``, which the API stand-in
(tests/harness/kube) serves as ``pods/log``; a real API server has no such thing (it asks the
kubelet for logs), so on a real no-kubelet control plane logs are not available.

When a Ready node that is not simulated exists (a real kubelet), the helper steps aside: it
registers nothing and writes nothing (``active`` is False), and tests see real pods.

``python -m tests.harness.kubelet probe [KUBECONFIG]`` reports whether a kubeconfig's cluster
answers and what kind of cluster it is (used by tests/cluster/run).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

LOG = logging.getLogger(__name__)

SIMULATED_LABEL = "mlflow-k8s.test/simulated-kubelet"
LOG_ANNOTATION = "standin.mlflow-k8s.test/log"
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
OUTCOMES = ("succeed", "fail", "run", "crashloop", "pull-failure")
FAILING_OUTCOMES = ("crashloop", "pull-failure")  # apply to every pod, not only run-to-completion ones
UNPULLABLE_DOMAIN = ".invalid"  # RFC 2606: never resolves, so no node can pull from it
NODE_CAPACITY = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
_SELECTOR_TERM = re.compile(r"^\s*(!?)([A-Za-z0-9./_-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9._-]*))?\s*$")


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# Pure functions: nodes


def is_ready(node: Mapping[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def is_simulated(node: Mapping[str, Any]) -> bool:
    return ((node.get("metadata") or {}).get("labels") or {}).get(SIMULATED_LABEL) == "true"


def real_kubelet_nodes(nodes: list[Mapping[str, Any]]) -> list[str]:
    """Names of Ready nodes that are not simulated: nodes with a real kubelet behind them."""
    return [n["metadata"]["name"] for n in nodes if is_ready(n) and not is_simulated(n)]


def node_manifest(name: str, address: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                SIMULATED_LABEL: "true",
            },
        },
        "spec": {},
        "status": node_status(address),
    }


def node_status(address: str, at: str | None = None) -> dict[str, Any]:
    at = at or now_rfc3339()

    def condition(kind: str, status: str, reason: str) -> dict[str, str]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": "simulated by tests/harness/kubelet.py",
            "lastHeartbeatTime": at,
            "lastTransitionTime": at,
        }

    return {
        "capacity": dict(NODE_CAPACITY),
        "allocatable": dict(NODE_CAPACITY),
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID"),
            condition("Ready", "True", "KubeletReady"),
        ],
        "addresses": [{"type": "InternalIP", "address": address}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "architecture": "amd64",
            "bootID": "",
            "containerRuntimeVersion": "simulated://0",
            "kernelVersion": "",
            "kubeProxyVersion": "",
            "kubeletVersion": "v0.0.0-simulated",
            "machineID": "",
            "operatingSystem": "linux",
            "osImage": "simulated",
            "systemUUID": "",
        },
    }


# ---------------------------------------------------------------------------------------------
# Pure functions: rules


def parse_label_selector(text: str) -> list[tuple[str, str, str | None]]:
    """``a=b,c!=d,e,!f`` -> [(key, op, value)] with op in =, !=, exists, !exists."""
    terms = []
    for part in text.split(","):
        match = _SELECTOR_TERM.match(part)
        if not match:
            raise ValueError(f"not an equality-based label selector term: {part!r}")
        negate, key, op, value = match.groups()
        if op:
            if negate:
                raise ValueError(f"not a label selector term ('!' and an operator): {part!r}")
            terms.append((key, "!=" if op == "!=" else "=", value))
        else:
            terms.append((key, "!exists" if negate else "exists", None))
    return terms


def labels_match(terms: list[tuple[str, str, str | None]], labels: Mapping[str, str]) -> bool:
    for key, op, value in terms:
        if op == "=" and labels.get(key) != value:
            return False
        if op == "!=" and labels.get(key) == value:
            return False
        if op == "exists" and key not in labels:
            return False
        if op == "!exists" and key in labels:
            return False
    return True


def job_name_of(pod: Mapping[str, Any]) -> str | None:
    metadata = pod.get("metadata") or {}
    for ref in metadata.get("ownerReferences") or []:
        if ref.get("kind") == "Job":
            return ref.get("name")
    labels = metadata.get("labels") or {}
    return next((labels[k] for k in JOB_NAME_LABELS if labels.get(k)), None)


@dataclass(frozen=True)
class Rule:
    """What happens to the pods a selector matches.

    ``selector``: a Job name (its pods), a label selector string (``app=x,tier!=db``) or a
    dict of labels (all must match).
    """

    selector: str | Mapping[str, str]
    outcome: str = "succeed"
    exit_code: int = 0
    delay: float = 0.0
    log: str | Mapping[str, str] = ""

    def annotations(self) -> dict[str, str]:
        """The pod annotations that carry ``log``: one text, or one per container name."""
        if isinstance(self.log, Mapping):
            return {f"{LOG_ANNOTATION}.{container}": text for container, text in self.log.items()}
        return {LOG_ANNOTATION: self.log} if self.log else {}

    def matches(self, pod: Mapping[str, Any]) -> bool:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if isinstance(self.selector, Mapping):
            return all(labels.get(k) == v for k, v in self.selector.items())
        if any(ch in self.selector for ch in "=!,"):
            return labels_match(parse_label_selector(self.selector), labels)
        return job_name_of(pod) == self.selector


def make_rule(
    selector: str | Mapping[str, str],
    outcome: str = "succeed",
    exit_code: int | None = None,
    delay: float = 0.0,
    log: str | Mapping[str, str] = "",
) -> Rule:
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    if not selector:
        raise ValueError("selector must name a Job or give labels")
    if isinstance(selector, str) and any(ch in selector for ch in "=!,"):
        parse_label_selector(selector)  # fail now, not in the watch thread
    if exit_code is None:
        exit_code = 1 if outcome in ("fail", "crashloop") else 0
    if outcome == "succeed" and exit_code != 0:
        raise ValueError("outcome 'succeed' needs exit_code 0")
    if outcome == "fail" and exit_code == 0:
        raise ValueError("outcome 'fail' needs a non-zero exit_code")
    if outcome == "pull-failure" and exit_code:
        raise ValueError("outcome 'pull-failure' never starts a container: it has no exit_code")
    if delay < 0:
        raise ValueError("delay must be >= 0")
    if isinstance(log, Mapping):
        log = dict(log)
    return Rule(selector=selector, outcome=outcome, exit_code=exit_code, delay=float(delay), log=log)


DEFAULT_RULE = Rule(selector="*", outcome="succeed", exit_code=0)


def pick_rule(rules: list[Rule], pod: Mapping[str, Any]) -> Rule:
    """The last rule that matches ``pod``, else succeed with exit code 0."""
    for rule in reversed(rules):
        if rule.matches(pod):
            return rule
    return DEFAULT_RULE


def unschedulable(pod: Mapping[str, Any]) -> bool:
    """Whether a scheduler marked the pod ``PodScheduled=False`` (no node fits it)."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "PodScheduled" and c.get("status") == "False" for c in conditions)


def runs_to_completion(pod: Mapping[str, Any]) -> bool:
    """Jobs' pods and bare pods with restartPolicy Never/OnFailure end; others run forever."""
    return (pod.get("spec") or {}).get("restartPolicy", "Always") != "Always"


# ---------------------------------------------------------------------------------------------
# Pure functions: pod status


def _condition(kind: str, status: str, at: str, reason: str | None = None) -> dict[str, Any]:
    condition = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": at}
    if reason:
        condition["reason"] = reason
    return condition


def _container_id(pod: Mapping[str, Any], name: str) -> str:
    return f"simulated://{(pod.get('metadata') or {}).get('uid', 'pod')}/{name}"


def running_status(pod: Mapping[str, Any], *, pod_ip: str, host_ip: str, at: str | None = None) -> dict[str, Any]:
    """The status a kubelet writes once every container started (Ready, init containers done)."""
    at = at or now_rfc3339()
    spec = pod.get("spec") or {}
    status = dict(pod.get("status") or {})
    init_statuses = []
    for container in spec.get("initContainers") or []:
        base = {
            "name": container["name"],
            "image": container.get("image", ""),
            "imageID": "simulated://" + container.get("image", ""),
            "containerID": _container_id(pod, container["name"]),
            "restartCount": 0,
        }
        if container.get("restartPolicy") == "Always":  # a sidecar: keeps running
            base.update(ready=True, started=True, state={"running": {"startedAt": at}})
        else:
            base.update(
                ready=True,
                started=False,
                state={"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": at, "finishedAt": at}},
            )
        init_statuses.append(base)
    statuses = [
        {
            "name": container["name"],
            "image": container.get("image", ""),
            "imageID": "simulated://" + container.get("image", ""),
            "containerID": _container_id(pod, container["name"]),
            "restartCount": 0,
            "ready": True,
            "started": True,
            "state": {"running": {"startedAt": at}},
        }
        for container in spec.get("containers") or []
    ]
    status.update(
        phase="Running",
        hostIP=host_ip,
        hostIPs=[{"ip": host_ip}],
        podIP=pod_ip,
        podIPs=[{"ip": pod_ip}],
        startTime=status.get("startTime") or at,
        conditions=[
            _condition("PodReadyToStartContainers", "True", at),
            _condition("Initialized", "True", at),
            _condition("Ready", "True", at),
            _condition("ContainersReady", "True", at),
            _condition("PodScheduled", "True", at),
        ],
        containerStatuses=statuses,
    )
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    return status


def terminated_status(pod: Mapping[str, Any], exit_code: int, at: str | None = None) -> dict[str, Any]:
    """The status once every container exited with ``exit_code`` (Succeeded when 0, else Failed)."""
    at = at or now_rfc3339()
    status = dict(pod.get("status") or {})
    reason = "Completed" if exit_code == 0 else "Error"
    statuses = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        previous = next((s for s in status.get("containerStatuses") or [] if s.get("name") == container["name"]), {})
        started_at = ((previous.get("state") or {}).get("running") or {}).get("startedAt", at)
        statuses.append(
            {
                "name": container["name"],
                "image": container.get("image", ""),
                "imageID": "simulated://" + container.get("image", ""),
                "containerID": _container_id(pod, container["name"]),
                "restartCount": 0,
                "ready": False,
                "started": False,
                "state": {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": reason,
                        "startedAt": started_at,
                        "finishedAt": at,
                    }
                },
            }
        )
    status.update(
        phase="Succeeded" if exit_code == 0 else "Failed",
        conditions=[
            _condition("PodReadyToStartContainers", "False", at),
            _condition("Initialized", "True", at, "PodCompleted"),
            _condition("Ready", "False", at, "PodCompleted"),
            _condition("ContainersReady", "False", at, "PodCompleted"),
            _condition("PodScheduled", "True", at),
        ],
        containerStatuses=statuses,
    )
    return status


# ---------------------------------------------------------------------------------------------
# Pure functions: what keeps a container from starting, in the kubelet's words


def full_reference(image: str) -> str:
    """``busybox`` -> ``docker.io/library/busybox:latest``, as containerd names what it pulls."""
    first, _sep, rest = image.partition("/")
    name = image
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        name = "docker.io/" + (image if rest else "library/" + image)
    if "@" not in name and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def unpullable(image: str) -> bool:
    """Whether the image's registry is under the reserved ``.invalid`` domain (never resolves)."""
    host = full_reference(image).split("/", 1)[0].split(":", 1)[0]
    return host.endswith(UNPULLABLE_DOMAIN)


def pull_error(image: str) -> str:
    """containerd's error for an image that cannot be pulled (no such host, or no such tag)."""
    ref = full_reference(image)
    host, _sep, path = ref.partition("/")
    if unpullable(image):
        repo, _sep, tag = path.rpartition(":")
        cause = (
            f'failed to do request: Head "https://{host}/v2/{repo}/manifests/{tag}": '
            f"dial tcp: lookup {host.split(':')[0]}: no such host"
        )
        code = "Unknown"
    else:
        cause, code = f"{ref}: not found", "NotFound"
    return (
        f'rpc error: code = {code} desc = failed to pull and unpack image "{ref}": '
        f'failed to resolve reference "{ref}": {cause}'
    )


def _keys(obj: Mapping[str, Any]) -> set[str]:
    return set(obj.get("data") or {}) | set(obj.get("binaryData") or {})


def config_error(container: Mapping[str, Any], namespace: str, lookup: Callable[[str, str], Any]) -> str | None:
    """The kubelet's CreateContainerConfigError message for a container whose ``env`` or
    ``envFrom`` names a Secret/ConfigMap (or a key of one) that does not exist and is not
    optional; None when every reference resolves. ``lookup(kind, name)``: the object or None."""
    for source in container.get("envFrom") or []:
        for field, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
            ref = source.get(field)
            if ref and lookup(kind, ref.get("name", "")) is None and not ref.get("optional"):
                return f'{kind.lower()} "{ref.get("name", "")}" not found'
    for env in container.get("env") or []:
        value_from = env.get("valueFrom") or {}
        for field, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
            ref = value_from.get(field)
            if not ref or ref.get("optional"):
                continue
            obj = lookup(kind, ref.get("name", ""))
            if obj is None:
                return f'{kind.lower()} "{ref.get("name", "")}" not found'
            if ref.get("key") not in _keys(obj):
                return f"couldn't find key {ref.get('key')} in {kind} {namespace}/{ref.get('name', '')}"
    return None


def mount_error(pod: Mapping[str, Any], lookup: Callable[[str, str], Any]) -> str | None:
    """The kubelet's FailedMount message for a Secret/ConfigMap volume that does not exist."""
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        for field, kind, key in (("secret", "Secret", "secretName"), ("configMap", "ConfigMap", "name")):
            source = volume.get(field)
            if source and not source.get("optional") and lookup(kind, source.get(key, "")) is None:
                return (
                    f'MountVolume.SetUp failed for volume "{volume.get("name")}" : '
                    f'{kind.lower()} "{source.get(key, "")}" not found'
                )
    return None


def start_problems(
    pod: Mapping[str, Any],
    lookup: Callable[[str, str], Any],
    *,
    attempt: int = 0,
    pull_all: bool = False,
) -> tuple[dict[str, tuple[str, str]], list[tuple[str, str, str | None]]] | None:
    """What keeps the pod's containers from starting on this ``attempt`` (0 = the first):
    ``(waiting, events)`` with ``waiting[container] = (reason, message)`` and events as
    ``(reason, message, fieldPath)``; None when they can start. Volumes first (no container
    starts before they mount), then init containers in order (a failing one stops the rest),
    then the app containers: image pulls (``pull_all``: every image fails), then env refs."""
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    mount = mount_error(pod, lookup)
    if mount:
        return {}, [("FailedMount", mount, None)]
    spec = pod.get("spec") or {}
    waiting: dict[str, tuple[str, str]] = {}
    events: list[tuple[str, str, str | None]] = []
    groups = [("initContainers", c) for c in spec.get("initContainers") or []]
    groups += [("containers", c) for c in spec.get("containers") or []]
    for field, container in groups:
        name, image = container["name"], container.get("image", "")
        path = f"spec.{field}{{{name}}}"
        if pull_all or unpullable(image):
            if attempt == 0:
                reason = "ErrImagePull"
                message = pull_error(image)
                events += [
                    ("Pulling", f'Pulling image "{image}"', path),
                    ("Failed", f'Failed to pull image "{image}": {message}', path),
                ]
            else:
                reason, message = "ImagePullBackOff", f'Back-off pulling image "{image}"'
                events.append(("BackOff", message, path))
            events.append(("Failed", f"Error: {reason}", path))
            waiting[name] = (reason, message)
        else:
            error = config_error(container, namespace, lookup)
            if error:
                waiting[name] = ("CreateContainerConfigError", error)
                events.append(("Failed", f"Error: {error}", path))
        if field == "initContainers" and name in waiting:
            break
    return (waiting, events) if waiting else None


def waiting_status(
    pod: Mapping[str, Any],
    waiting: Mapping[str, tuple[str, str]],
    at: str | None = None,
) -> dict[str, Any]:
    """The status while containers cannot start: phase Pending, the named containers waiting
    with their reason, the others ``ContainerCreating`` (``PodInitializing`` behind a waiting
    init container); no container named means the sandbox itself waits (volumes)."""
    at = at or now_rfc3339()
    spec = pod.get("spec") or {}
    status = dict(pod.get("status") or {})
    init_names = [c["name"] for c in spec.get("initContainers") or []]
    blocked_init = next((n for n in init_names if n in waiting), None)

    def entry(container: Mapping[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": container["name"],
            "image": container.get("image", ""),
            "imageID": "",
            "restartCount": 0,
            "ready": False,
            "started": False,
            "state": state,
            "lastState": {},
        }

    def waits(reason: str, message: str = "") -> dict[str, Any]:
        return {"waiting": {"reason": reason, **({"message": message} if message else {})}}

    mounted = bool(waiting)  # nothing named: the volumes did not mount, no container ran
    init_statuses, passed = [], mounted
    for container in spec.get("initContainers") or []:
        name = container["name"]
        if name in waiting:
            init_statuses.append(entry(container, waits(*waiting[name])))
            passed = False
        elif passed:
            done = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": at, "finishedAt": at}}
            init_statuses.append(entry(container, done))
        else:
            init_statuses.append(entry(container, waits("PodInitializing")))
    statuses = []
    for container in spec.get("containers") or []:
        name = container["name"]
        if name in waiting and not blocked_init:
            statuses.append(entry(container, waits(*waiting[name])))
        elif init_names and not passed:
            statuses.append(entry(container, waits("PodInitializing")))
        else:
            statuses.append(entry(container, waits("ContainerCreating")))
    unready = [c["name"] for c in spec.get("containers") or []]
    not_ready = f"containers with unready status: [{' '.join(unready)}]"
    conditions = [
        _condition("PodReadyToStartContainers", "True" if mounted else "False", at),
        _condition("Initialized", "True" if passed or not init_names else "False", at),
        _condition("Ready", "False", at, "ContainersNotReady"),
        _condition("ContainersReady", "False", at, "ContainersNotReady"),
        _condition("PodScheduled", "True", at),
    ]
    for cond in conditions[2:4]:
        cond["message"] = not_ready
    if conditions[1]["status"] == "False":
        conditions[1]["reason"] = "ContainersNotInitialized"
        conditions[1]["message"] = f"containers with incomplete status: [{' '.join(init_names)}]"
    status.update(phase="Pending", conditions=conditions, containerStatuses=statuses)
    status.setdefault("startTime", at)
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    return status


def crashloop_status(
    pod: Mapping[str, Any], exit_code: int, restarts: int, *, pod_ip: str, host_ip: str, at: str | None = None
) -> dict[str, Any]:
    """The status of a pod whose containers exited ``restarts`` times and wait to be restarted:
    phase Running, ``CrashLoopBackOff`` with the kubelet's back-off message, ``restartCount``,
    ``lastState.terminated`` with the exit code; init containers done; not Ready."""
    at = at or now_rfc3339()
    meta = pod.get("metadata") or {}
    status = running_status(pod, pod_ip=pod_ip, host_ip=host_ip, at=at)
    back_off = min(10 * 2 ** max(restarts - 1, 0), 300)
    for entry in status["containerStatuses"]:
        entry.update(
            ready=False,
            started=False,
            restartCount=restarts,
            state={
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": (
                        f"back-off {back_off}s restarting failed container={entry['name']} "
                        f"pod={meta.get('name')}_{meta.get('namespace')}({meta.get('uid')})"
                    ),
                }
            },
            lastState={
                "terminated": {
                    "exitCode": exit_code,
                    "reason": "Completed" if exit_code == 0 else "Error",
                    "startedAt": at,
                    "finishedAt": at,
                    "containerID": entry["containerID"],
                }
            },
        )
    unready = "containers with unready status: [" + " ".join(e["name"] for e in status["containerStatuses"]) + "]"
    for cond in status["conditions"]:
        if cond["type"] in ("Ready", "ContainersReady"):
            cond.update(status="False", reason="ContainersNotReady", message=unready)
    return status


def event_manifest(
    pod: Mapping[str, Any],
    reason: str,
    message: str,
    *,
    node: str,
    kind: str = "Warning",
    field_path: str | None = None,
    at: str | None = None,
) -> dict[str, Any]:
    """A core/v1 Event about ``pod`` as the kubelet's event recorder writes it."""
    at = at or now_rfc3339()
    meta = pod.get("metadata") or {}
    involved = {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    if field_path:
        involved["fieldPath"] = field_path
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta.get('name')}.{uuid.uuid4().hex[:16]}", "namespace": meta.get("namespace")},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": kind,
        "count": 1,
        "firstTimestamp": at,
        "lastTimestamp": at,
        "source": {"component": "kubelet", "host": node},
        "reportingComponent": "kubelet",
        "reportingInstance": node,
    }


def _comparable(status: Mapping[str, Any] | None) -> Any:
    """A status without its timestamps: what decides whether a write changes anything."""
    if isinstance(status, Mapping):
        return {k: _comparable(v) for k, v in status.items() if k not in _TIME_FIELDS}
    if isinstance(status, list):
        return [_comparable(v) for v in status]
    return status


_TIME_FIELDS = {"lastTransitionTime", "lastProbeTime", "startTime", "startedAt", "finishedAt"}


# ---------------------------------------------------------------------------------------------
# Cluster probing


def new_api_client(kubeconfig: str, context: str | None = None):
    from kubernetes import config

    return config.new_client_from_config(config_file=kubeconfig, context=context or None)


def probe(kubeconfig: str, timeout: float = 5.0) -> tuple[bool, str]:
    """Whether the cluster of ``kubeconfig`` answers /version within ``timeout`` seconds."""
    try:
        api = new_api_client(kubeconfig)
        from kubernetes import client

        try:
            version = client.VersionApi(api).get_code(_request_timeout=timeout)
        finally:
            api.close()
    except Exception as error:  # any failure means "not reachable", with its reason
        return False, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return True, f"{version.git_version} ({version.platform})"


def classify(api_client) -> str:
    """'standin' for the API stand-in of tests/harness/kube, else 'real-kubelet' when a Ready
    node with a real kubelet exists, else 'no-kubelet'."""
    from kubernetes import client
    from kubernetes.dynamic import DynamicClient

    if client.VersionApi(api_client).get_code(_request_timeout=10).compiler == "standin":
        return "standin"
    dyn = DynamicClient(api_client)
    nodes = dyn.request("get", "/api/v1/nodes").to_dict().get("items") or []
    return "real-kubelet" if real_kubelet_nodes(nodes) else "no-kubelet"


# ---------------------------------------------------------------------------------------------
# The helper


_ids = itertools.count(1)


def _transient(error: Exception) -> bool:
    """Connection trouble and write conflicts: worth a retry, not a report."""
    status = getattr(error, "status", None)
    if status is not None:
        return status in (409, 429, 500, 503, 504)
    return isinstance(error, (OSError, TimeoutError)) or type(error).__module__.startswith("urllib3")


class SimKubelet:
    """Plays the kubelet for the pods of ``namespace`` (see the module's docstring).

    ``bind_grace``: seconds an unscheduled pod waits for a scheduler before the helper binds it
    to its node itself (never one a scheduler marked unschedulable). ``heartbeat``: seconds
    between Lease renewals and Ready heartbeats (the node lifecycle controller marks a silent
    node NotReady after about 40 s). ``retry``: seconds between start attempts of a pod that
    cannot start, and between the restarts of a crash-looping one (a kubelet backs off from
    10 s to 5 min; tests need the states, not the wait).
    """

    def __init__(
        self,
        api_client,
        namespace: str,
        *,
        node_name: str | None = None,
        bind_grace: float = 2.0,
        heartbeat: float = 10.0,
        watch_timeout: int = 2,
        retry: float = 1.0,
    ) -> None:
        from kubernetes.dynamic import DynamicClient

        self.api_client = api_client
        self.namespace = namespace
        self.node_name = node_name or f"sim-kubelet-{uuid.uuid4().hex[:8]}"
        serial = next(_ids) % 250 + 1
        self.node_address = f"10.250.{serial}.1"
        self._ip_prefix = f"10.251.{serial}."
        self.bind_grace = bind_grace
        self.heartbeat = heartbeat
        self.watch_timeout = watch_timeout
        self.retry = retry
        self.active = False
        self.steps_aside = False
        self.real_nodes: list[str] = []
        self.errors: list[str] = []
        self._dyn = DynamicClient(api_client)
        self._rules: list[Rule] = []
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._pods: dict[str, dict[str, Any]] = {}  # name -> newest object seen
        self._first_seen: dict[str, float] = {}  # uid -> monotonic time
        self._running_since: dict[str, float] = {}  # uid -> monotonic time
        self._logged: set[tuple[str, int]] = set()
        self._retry_at: dict[str, float] = {}  # uid -> when a pod that cannot start is looked at again
        self._attempts: dict[str, int] = {}  # uid -> start attempts that failed
        self._restarts: dict[str, int] = {}  # uid -> crashes of a crash-looping pod
        self._events: dict[tuple[str, str, str, str | None], tuple[str, int]] = {}  # -> (name, count)
        self._due: list[tuple[float, int, str]] = []  # (monotonic time, seq, pod name)
        self._seq = itertools.count()
        self._ips = itertools.count(2)
        self._sim_nodes: dict[str, bool] = {}
        self._threads: list[threading.Thread] = []
        self._watcher: Any = None

    # -- public API ---------------------------------------------------------------------------

    def __enter__(self) -> SimKubelet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def outcome(
        self,
        selector: str | Mapping[str, str],
        outcome: str = "succeed",
        exit_code: int | None = None,
        delay: float = 0.0,
        log: str | Mapping[str, str] = "",
    ) -> Rule:
        """Decide what happens to the pods ``selector`` matches (the last rule added wins).

        ``outcome``: ``succeed`` (exit 0), ``fail`` (``exit_code``, default 1), ``run`` (stay
        Running), ``crashloop`` (exit ``exit_code``, default 1, and be restarted with back-off,
        forever; a restartPolicy Never pod just ends Failed) or ``pull-failure`` (no image of
        the pod can be pulled). ``delay``: seconds between Running and the end. ``log``: the
        pod's log text, or a dict of texts by container name.
        ``succeed``/``fail``/``run`` apply to run-to-completion pods (pods with restartPolicy
        Always always run); ``crashloop`` and ``pull-failure`` to every pod they match.
        """
        rule = make_rule(selector, outcome, exit_code, delay, log)
        with self._lock:
            self._rules.append(rule)
            for name in self._pods:
                self._schedule(name, 0.0)
        return rule

    def start(self) -> SimKubelet:
        nodes = self._request("get", "/api/v1/nodes").get("items") or []
        self.real_nodes = real_kubelet_nodes(nodes)
        if self.real_nodes:
            self.steps_aside = True
            LOG.info("real kubelet(s) on %s: SimKubelet steps aside", self.real_nodes)
            return self
        self._register_node()
        self.active = True
        for target, name in ((self._watch_loop, "watch"), (self._work_loop, "work"), (self._beat_loop, "beat")):
            thread = threading.Thread(target=target, name=f"{self.node_name}-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        if not self.active:
            return
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        response = getattr(self._watcher, "_resp", None)  # end the watch now, not at its timeout
        if response is not None:
            with contextlib.suppress(Exception):
                response.close()
        for thread in self._threads:
            # The watch thread ends at its next server-side timeout (watch_timeout) on its own,
            # doing nothing more: waiting for it would only slow every test's teardown.
            if not thread.name.endswith("-watch"):
                thread.join(timeout=30)
        self.active = False
        # Pods on a node that goes away would hang in Terminating on a real API server.
        try:
            pods = self._request("get", f"/api/v1/namespaces/{self.namespace}/pods").get("items") or []
            for pod in pods:
                if (pod.get("spec") or {}).get("nodeName") == self.node_name:
                    self._delete_pod(pod["metadata"]["name"])
        except Exception as error:  # clean-up goes on
            self._error(f"clean-up of pods: {error}")
        for path in (
            f"/api/v1/nodes/{self.node_name}",
            f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node_name}",
        ):
            try:
                self._request("delete", path)
            except Exception as error:
                if getattr(error, "status", None) != 404:
                    self._error(f"delete {path}: {error}")

    # -- API access ---------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None, **params: Any) -> dict[str, Any]:
        result = self._dyn.request(method, path, body=body, **params)
        return result.to_dict() if hasattr(result, "to_dict") else (result or {})

    def _error(self, message: str) -> None:
        LOG.warning("SimKubelet %s: %s", self.node_name, message)
        self.errors.append(message)

    def _register_node(self) -> None:
        node = node_manifest(self.node_name, self.node_address)
        self._request("post", "/api/v1/nodes", body=node)
        current = self._request("get", f"/api/v1/nodes/{self.node_name}")
        current["status"] = node["status"]
        self._request("put", f"/api/v1/nodes/{self.node_name}/status", body=current)
        self._sim_nodes[self.node_name] = True
        self._renew_lease()

    def _renew_lease(self) -> None:
        path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            lease = self._request("get", f"{path}/{self.node_name}")
            lease.setdefault("spec", {})["renewTime"] = now
            self._request("put", f"{path}/{self.node_name}", body=lease)
        except NotFoundError:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.node_name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": self.node_name, "leaseDurationSeconds": 40, "renewTime": now},
            }
            self._request("post", path, body=body)

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                self._renew_lease()
                node = self._request("get", f"/api/v1/nodes/{self.node_name}")
                node["status"] = node_status(self.node_address)
                self._request("put", f"/api/v1/nodes/{self.node_name}/status", body=node)
            except Exception as error:
                if _transient(error):  # the next beat retries; 40 s of grace are 4 beats
                    LOG.info("SimKubelet %s: heartbeat missed: %s", self.node_name, error)
                else:
                    self._error(f"heartbeat: {error}")

    # -- watch and work -----------------------------------------------------------------------

    def _schedule(self, name: str, delay: float) -> None:
        # caller holds self._lock
        heapq.heappush(self._due, (time.monotonic() + delay, next(self._seq), name))
        self._lock.notify_all()

    def _watch_loop(self) -> None:
        from kubernetes import watch
        from kubernetes.dynamic.exceptions import DynamicApiError

        pods_resource = self._dyn.resources.get(api_version="v1", kind="Pod")
        resource_version = None
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    listing = self._request("get", f"/api/v1/namespaces/{self.namespace}/pods")
                    resource_version = listing["metadata"].get("resourceVersion")
                    with self._lock:
                        self._pods = {p["metadata"]["name"]: p for p in listing.get("items") or []}
                        for name in self._pods:
                            self._schedule(name, 0.0)
                watcher = self._watcher = watch.Watch()
                for event in self._dyn.watch(
                    pods_resource,
                    namespace=self.namespace,
                    resource_version=resource_version,
                    timeout=self.watch_timeout,
                    watcher=watcher,
                ):
                    pod = event["raw_object"]
                    name = pod["metadata"]["name"]
                    resource_version = pod["metadata"].get("resourceVersion", resource_version)
                    with self._lock:
                        if event["type"] == "DELETED":
                            self._pods.pop(name, None)
                        else:
                            self._pods[name] = pod
                            self._schedule(name, 0.0)
                    if self._stop.is_set():
                        watcher.stop()
            except Exception as error:
                if self._stop.is_set():
                    return
                status = getattr(error, "status", None)
                if status == 410 or (isinstance(error, DynamicApiError) and error.status == 410):
                    resource_version = None  # expired: list again
                    continue
                if _transient(error):  # the connection dropped: list again and watch on
                    LOG.info("SimKubelet %s: watch interrupted: %s", self.node_name, error)
                else:
                    self._error(f"watch: {error}")
                resource_version = None
                self._stop.wait(1.0)

    def _work_loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                while not self._stop.is_set():
                    if self._due and self._due[0][0] <= time.monotonic():
                        name = heapq.heappop(self._due)[2]
                        pod = self._pods.get(name)
                        if pod is not None:
                            break
                        continue
                    timeout = self._due[0][0] - time.monotonic() if self._due else None
                    self._lock.wait(timeout)
                else:
                    return
            try:
                self._reconcile(pod)
            except Exception as error:  # reported; the next event retries
                self._error(f"pod {name}: {error}")

    def _is_simulated_node(self, name: str) -> bool:
        if name not in self._sim_nodes:
            from kubernetes.dynamic.exceptions import NotFoundError

            try:
                self._sim_nodes[name] = is_simulated(self._request("get", f"/api/v1/nodes/{name}"))
            except NotFoundError:
                return False
        return self._sim_nodes[name]

    def _reconcile(self, cached: dict[str, Any]) -> None:
        from kubernetes.dynamic.exceptions import NotFoundError

        try:  # decide on the newest state, not on a watch event that may be behind our own writes
            pod = self._request("get", f"/api/v1/namespaces/{self.namespace}/pods/{cached['metadata']['name']}")
        except NotFoundError:
            return
        metadata = pod["metadata"]
        name, uid = metadata["name"], metadata.get("uid", metadata["name"])
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        node = spec.get("nodeName")
        now = time.monotonic()
        if metadata.get("deletionTimestamp"):
            if node and self._is_simulated_node(node):
                self._delete_pod(name)
            return
        if not node:
            if unschedulable(pod):  # a scheduler looked and found no fit: not ours to overrule
                return
            first = self._first_seen.setdefault(uid, now)
            if now - first < self.bind_grace:
                with self._lock:
                    self._schedule(name, first + self.bind_grace - now)
                return
            self._bind(name)
            return
        if not self._is_simulated_node(node):
            return
        phase = status.get("phase", "Pending")
        with self._lock:
            rule = pick_rule(self._rules, pod)
        crashes = rule.outcome == "crashloop" and spec.get("restartPolicy", "Always") != "Never"
        if phase == "Pending":
            if self._later(name, uid, now):
                return
            if self._cannot_start(pod, rule):
                self._retry_at[uid] = now + self.retry
                with self._lock:
                    self._schedule(name, self.retry)
                return
            if crashes:
                self._crash(pod, rule, now)
                return
            pod_ip = self._ip_prefix + str(next(self._ips) % 250 + 2)
            self._write_status(name, lambda p: running_status(p, pod_ip=pod_ip, host_ip=self.node_address))
            self._running_since[uid] = now
            self._annotate_log(name, uid, rule)
            return
        if phase != "Running":
            return
        self._annotate_log(name, uid, rule)
        if crashes:
            if not self._later(name, uid, now):
                self._crash(pod, rule, now)
            return
        if not runs_to_completion(pod) or rule.outcome in ("run", "pull-failure"):
            return
        since = self._running_since.setdefault(uid, now)
        if now - since < rule.delay:
            with self._lock:
                self._schedule(name, since + rule.delay - now)
            return
        self._write_status(name, lambda p: terminated_status(p, rule.exit_code))

    def _later(self, name: str, uid: str, now: float) -> bool:
        """Whether the pod's next attempt is still to come (and is scheduled)."""
        due = self._retry_at.get(uid, 0.0)
        if now >= due:
            return False
        with self._lock:
            self._schedule(name, due - now)
        return True

    def _lookup(self, namespace: str) -> Callable[[str, str], Any]:
        from kubernetes.dynamic.exceptions import NotFoundError

        cache: dict[tuple[str, str], Any] = {}

        def lookup(kind: str, name: str) -> Any:
            if (kind, name) not in cache:
                plural = {"Secret": "secrets", "ConfigMap": "configmaps"}[kind]
                try:
                    cache[kind, name] = self._request("get", f"/api/v1/namespaces/{namespace}/{plural}/{name}")
                except NotFoundError:
                    cache[kind, name] = None
            return cache[kind, name]

        return lookup

    def _cannot_start(self, pod: dict[str, Any], rule: Rule) -> bool:
        """Write the waiting status and the kubelet's events when the pod cannot start yet."""
        meta = pod["metadata"]
        uid = meta.get("uid", meta["name"])
        attempt = self._attempts.get(uid, 0)
        problems = start_problems(
            pod, self._lookup(meta["namespace"]), attempt=attempt, pull_all=rule.outcome == "pull-failure"
        )
        if problems is None:
            return False
        waiting, events = problems
        self._attempts[uid] = attempt + 1
        for reason, message, field_path in events:  # events first: whoever sees the status finds them
            kind = "Normal" if reason == "Pulling" else "Warning"
            self._record(pod, reason, message, kind, field_path)
        self._write_status(meta["name"], lambda p: waiting_status(p, waiting))
        return True

    def _crash(self, pod: dict[str, Any], rule: Rule, now: float) -> None:
        """The pod's containers exited (again): CrashLoopBackOff, one restart more."""
        meta = pod["metadata"]
        name, uid = meta["name"], meta.get("uid", meta["name"])
        restarts = self._restarts[uid] = self._restarts.get(uid, 0) + 1
        pod_ip = (pod.get("status") or {}).get("podIP") or self._ip_prefix + str(next(self._ips) % 250 + 2)
        self._annotate_log(name, uid, rule)
        for container in (pod.get("spec") or {}).get("containers") or []:
            message = (
                f"Back-off restarting failed container {container['name']} in pod {name}_{meta['namespace']}({uid})"
            )
            self._record(pod, "BackOff", message, "Warning", f"spec.containers{{{container['name']}}}")
        self._write_status(
            name,
            lambda p: crashloop_status(p, rule.exit_code, restarts, pod_ip=pod_ip, host_ip=self.node_address),
        )
        self._retry_at[uid] = now + self.retry
        with self._lock:
            self._schedule(name, self.retry)

    def _record(self, pod: dict[str, Any], reason: str, message: str, kind: str, field_path: str | None) -> None:
        """Record an Event as the kubelet's recorder does: a repeat raises ``count``."""
        meta = pod["metadata"]
        key = (meta.get("uid", meta["name"]), reason, message, field_path)
        path = f"/api/v1/namespaces/{self.namespace}/events"
        seen = self._events.get(key)
        if seen is None:
            body = event_manifest(pod, reason, message, node=self.node_name, kind=kind, field_path=field_path)
            self._request("post", path, body=body)
            self._events[key] = (body["metadata"]["name"], 1)
            return
        event_name, count = seen
        self._request(
            "patch",
            f"{path}/{event_name}",
            body={"count": count + 1, "lastTimestamp": now_rfc3339()},
            content_type="application/merge-patch+json",
        )
        self._events[key] = (event_name, count + 1)

    def _bind(self, name: str) -> None:
        from kubernetes.dynamic.exceptions import ConflictError

        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": self.namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        with contextlib.suppress(ConflictError):  # a scheduler bound it meanwhile
            self._request("post", f"/api/v1/namespaces/{self.namespace}/pods/{name}/binding", body=body)

    def _write_status(self, name: str, build: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

        path = f"/api/v1/namespaces/{self.namespace}/pods/{name}"
        for _attempt in range(5):
            try:
                current = self._request("get", path)
                status = build(current)
                if _comparable(status) == _comparable(current.get("status")):
                    return  # nothing changed but times: a kubelet writes nothing then either
                current["status"] = status
                self._request("put", path + "/status", body=current)
                return
            except ConflictError:
                continue
            except NotFoundError:
                return
        self._error(f"pod {name}: status update kept conflicting")

    def _annotate_log(self, name: str, uid: str, rule: Rule) -> None:
        annotations = rule.annotations()
        if not annotations or (uid, id(rule)) in self._logged:
            return
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            self._request(
                "patch",
                f"/api/v1/namespaces/{self.namespace}/pods/{name}",
                body={"metadata": {"annotations": annotations}},
                content_type="application/merge-patch+json",
            )
            self._logged.add((uid, id(rule)))
        except NotFoundError:
            return

    def _delete_pod(self, name: str) -> None:
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            self._request(
                "delete",
                f"/api/v1/namespaces/{self.namespace}/pods/{name}",
                body={"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0},
            )
        except NotFoundError:
            return


def _main(argv: list[str]) -> int:
    import os

    if len(argv) < 2 or argv[1] != "probe":
        print("usage: python -m tests.harness.kubelet probe [KUBECONFIG]", file=sys.stderr)
        return 2
    kubeconfig = argv[2] if len(argv) > 2 else os.environ.get("KUBECONFIG", "")
    if not kubeconfig:
        print("no kubeconfig: KUBECONFIG is not set")
        return 1
    ok, detail = probe(kubeconfig)
    if not ok:
        print(f"{kubeconfig} does not answer /version: {detail}")
        return 1
    api = new_api_client(kubeconfig)
    try:
        kind = classify(api)
    except Exception as error:
        kind = f"unknown ({error})"
    finally:
        api.close()
    print(json.dumps({"kubeconfig": kubeconfig, "version": detail, "kind": kind}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
