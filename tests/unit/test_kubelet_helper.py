"""The no-kubelet helper's decisions (tests/harness/kubelet.py), without a cluster.

The objects it writes are checked against the real OpenAPI schema (kubernetes-validate,
strict), the same oracle the manifests harness uses.
"""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import pod_status
from tests.harness.kubelet import (
    DEFAULT_RULE,
    SIMULATED_LABEL,
    config_error,
    crashloop_status,
    event_manifest,
    full_reference,
    labels_match,
    make_rule,
    mount_error,
    node_manifest,
    parse_label_selector,
    pick_rule,
    real_kubelet_nodes,
    running_status,
    runs_to_completion,
    start_problems,
    terminated_status,
    unpullable,
    unschedulable,
    waiting_status,
)

ROOT = Path(__file__).resolve().parents[2]

NEWEST = "1.37"


def _pod(name="train-abcde", job="train", restart="Never", init=(), containers=("main",), labels=None):
    metadata = {"name": name, "namespace": "ns", "uid": "1234", "labels": dict(labels or {})}
    if job:
        metadata["labels"].update({"batch.kubernetes.io/job-name": job, "job-name": job})
        metadata["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "Job", "name": job, "uid": "9", "controller": True}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "restartPolicy": restart,
            "nodeName": "sim-kubelet-x",
            "initContainers": [{"name": n, "image": "busybox", **extra} for n, extra in init],
            "containers": [{"name": n, "image": "busybox"} for n in containers],
        },
        "status": {"phase": "Pending"},
    }


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=a", {"app": "a"}, True),
        ("app==a", {"app": "a"}, True),
        ("app=a", {"app": "b"}, False),
        ("app!=a", {"app": "b"}, True),
        ("app!=a", {}, True),
        ("app", {"app": ""}, True),
        ("!app", {"app": "x"}, False),
        ("app=a,tier!=db", {"app": "a", "tier": "web"}, True),
        ("app=a,tier!=db", {"app": "a", "tier": "db"}, False),
    ],
)
def test_label_selectors(selector, labels, expected):
    assert labels_match(parse_label_selector(selector), labels) is expected


@pytest.mark.parametrize("selector", ["app in (a,b)", "a=b=c", "!a=b", ""])
def test_label_selector_rejects_what_it_cannot_read(selector):
    with pytest.raises(ValueError, match="selector"):
        parse_label_selector(selector)


def test_rules_match_jobs_by_owner_label_or_labels():
    pod = _pod(labels={"app.kubernetes.io/name": "mlflow-project"})
    assert make_rule("train").matches(pod)
    assert not make_rule("other").matches(pod)
    assert make_rule("app.kubernetes.io/name=mlflow-project").matches(pod)
    assert make_rule({"app.kubernetes.io/name": "mlflow-project"}).matches(pod)
    assert not make_rule({"app.kubernetes.io/name": "postgresql"}).matches(pod)
    by_label_only = _pod(job=None, labels={"job-name": "train"})
    assert make_rule("train").matches(by_label_only)


def test_last_matching_rule_wins_and_default_succeeds():
    pod = _pod()
    first = make_rule("train", "run")
    second = make_rule("job-name=train", "fail", exit_code=2)
    unrelated = make_rule("other", "fail")
    assert pick_rule([first, second, unrelated], pod) is second
    assert pick_rule([second, first], pod) is first
    assert pick_rule([unrelated], pod) is DEFAULT_RULE
    assert DEFAULT_RULE.outcome == "succeed" and DEFAULT_RULE.exit_code == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"outcome": "crash"}, "outcome must be one of"),
        ({"outcome": "succeed", "exit_code": 1}, "needs exit_code 0"),
        ({"outcome": "fail", "exit_code": 0}, "non-zero"),
        ({"delay": -1}, "delay"),
    ],
)
def test_make_rule_rejects_contradictions(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_rule("train", **kwargs)


def test_make_rule_defaults_exit_codes():
    assert make_rule("a", "fail").exit_code == 1
    assert make_rule("a", "succeed").exit_code == 0
    assert make_rule("a", "run").exit_code == 0


def test_only_run_to_completion_pods_end():
    assert runs_to_completion(_pod(restart="Never"))
    assert runs_to_completion(_pod(restart="OnFailure"))
    assert not runs_to_completion(_pod(job=None, restart="Always"))
    pod = _pod(job=None)
    del pod["spec"]["restartPolicy"]  # the API's default is Always
    assert not runs_to_completion(pod)


def test_running_status_is_ready_with_init_containers_done():
    pod = _pod(init=[("migrate", {}), ("proxy", {"restartPolicy": "Always"})], containers=("main", "sidecar"))
    status = running_status(pod, pod_ip="10.251.1.5", host_ip="10.250.1.1", at="2026-01-01T00:00:00Z")
    assert status["phase"] == "Running"
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Ready"] == conditions["ContainersReady"] == conditions["Initialized"] == "True"
    init = {s["name"]: s for s in status["initContainerStatuses"]}
    assert init["migrate"]["state"]["terminated"]["exitCode"] == 0
    assert "running" in init["proxy"]["state"]  # a sidecar keeps running
    assert [s["name"] for s in status["containerStatuses"]] == ["main", "sidecar"]
    assert all(s["ready"] and "running" in s["state"] for s in status["containerStatuses"])
    assert status["podIP"] == "10.251.1.5" and status["hostIP"] == "10.250.1.1"
    pod["status"] = status
    kubernetes_validate.validate(pod, NEWEST, strict=True)


@pytest.mark.parametrize(("exit_code", "phase", "reason"), [(0, "Succeeded", "Completed"), (3, "Failed", "Error")])
def test_terminated_status(exit_code, phase, reason):
    pod = _pod()
    pod["status"] = running_status(pod, pod_ip="10.251.1.5", host_ip="10.250.1.1", at="2026-01-01T00:00:00Z")
    status = terminated_status(pod, exit_code, at="2026-01-01T00:01:00Z")
    assert status["phase"] == phase
    terminated = status["containerStatuses"][0]["state"]["terminated"]
    assert terminated == {
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": "2026-01-01T00:00:00Z",
        "finishedAt": "2026-01-01T00:01:00Z",
    }
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "False"
    pod["status"] = status
    kubernetes_validate.validate(pod, NEWEST, strict=True)


def test_node_manifest_is_a_valid_ready_simulated_node():
    node = node_manifest("sim-kubelet-1", "10.250.1.1")
    assert node["metadata"]["labels"][SIMULATED_LABEL] == "true"
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "sim-kubelet-1"
    assert real_kubelet_nodes([node]) == []  # simulated: never taken for a real kubelet
    kubernetes_validate.validate(node, NEWEST, strict=True)


def test_real_kubelet_nodes_are_ready_and_not_simulated():
    def node(name, ready, simulated=False):
        labels = {SIMULATED_LABEL: "true"} if simulated else {}
        return {
            "metadata": {"name": name, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
        }

    nodes = [node("real", True), node("down", False), node("sim", True, simulated=True), {"metadata": {"name": "new"}}]
    assert real_kubelet_nodes(nodes) == ["real"]


def test_log_annotations_one_text_or_per_container():
    assert make_rule("a", log="x\n").annotations() == {"standin.mlflow-k8s.test/log": "x\n"}
    assert make_rule("a", log={"main": "m", "init": "i"}).annotations() == {
        "standin.mlflow-k8s.test/log.main": "m",
        "standin.mlflow-k8s.test/log.init": "i",
    }
    assert make_rule("a").annotations() == {}


def test_connection_trouble_and_conflicts_are_retried_not_reported():
    import urllib3
    from kubernetes.client.rest import ApiException

    from tests.harness.kubelet import _transient

    assert _transient(urllib3.exceptions.ProtocolError("connection reset"))
    assert _transient(ConnectionResetError())
    assert _transient(ApiException(status=409))
    assert not _transient(ApiException(status=422))  # the API refused what we wrote: a bug
    assert not _transient(KeyError("status"))


# -- what keeps a container from starting: the kubelet's wording, valid objects, and what
# -- pod_status (the collection's own decision) makes of them


def _lookup(objects):
    return lambda kind, name: objects.get((kind, name))


SECRET = {"metadata": {"name": "db"}, "data": {"password": "c2VjcmV0"}}
CONFIG = {"metadata": {"name": "cfg"}, "data": {"url": "x"}}


@pytest.mark.parametrize(
    ("container", "message"),
    [
        ({"envFrom": [{"secretRef": {"name": "gone"}}]}, 'secret "gone" not found'),
        ({"envFrom": [{"configMapRef": {"name": "gone"}}]}, 'configmap "gone" not found'),
        (
            {"env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}]},
            'secret "gone" not found',
        ),
        (
            {"env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "user"}}}]},
            "couldn't find key user in Secret ns/db",
        ),
        (
            {"env": [{"name": "U", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope"}}}]},
            "couldn't find key nope in ConfigMap ns/cfg",
        ),
        ({"envFrom": [{"secretRef": {"name": "gone", "optional": True}}]}, None),
        ({"env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}}}]}, None),
        (
            {
                "envFrom": [{"secretRef": {"name": "db"}}, {"configMapRef": {"name": "cfg"}}],
                "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
            },
            None,
        ),
    ],
)
def test_config_error_words_missing_references_as_the_kubelet(container, message):
    objects = {("Secret", "db"): SECRET, ("ConfigMap", "cfg"): CONFIG}
    assert config_error({"name": "main", **container}, "ns", _lookup(objects)) == message


def test_mount_error_for_missing_secret_and_configmap_volumes():
    pod = _pod()
    pod["spec"]["volumes"] = [
        {"name": "creds", "secret": {"secretName": "db"}},
        {"name": "c", "configMap": {"name": "x"}},
    ]
    assert mount_error(pod, _lookup({("Secret", "db"): SECRET})) == (
        'MountVolume.SetUp failed for volume "c" : configmap "x" not found'
    )
    pod["spec"]["volumes"][1]["configMap"]["optional"] = True
    assert mount_error(pod, _lookup({("Secret", "db"): SECRET})) is None


def test_images_under_the_invalid_domain_cannot_be_pulled():
    assert full_reference("busybox") == "docker.io/library/busybox:latest"
    assert full_reference("bitnami/postgresql:16") == "docker.io/bitnami/postgresql:16"
    assert full_reference("localhost:5000/x") == "localhost:5000/x:latest"
    assert unpullable("registry.invalid/mlflow-k8s/nothing:0")
    assert unpullable("no-such.invalid:5000/x@sha256:00")
    assert not unpullable("busybox:1.37.0") and not unpullable("invalid/x:1")


def test_pull_failure_then_back_off_with_events():
    pod = _pod(containers=("main",))
    pod["spec"]["containers"][0]["image"] = "registry.invalid/x:0"
    waiting, events = start_problems(pod, _lookup({}), attempt=0)
    reason, message = waiting["main"]
    assert reason == "ErrImagePull"
    assert message.startswith('rpc error: code = Unknown desc = failed to pull and unpack image "registry.invalid/x:0"')
    assert "lookup registry.invalid: no such host" in message
    assert [e[0] for e in events] == ["Pulling", "Failed", "Failed"]
    assert events[-1][1:] == ("Error: ErrImagePull", "spec.containers{main}")
    waiting, events = start_problems(pod, _lookup({}), attempt=1)
    assert waiting == {"main": ("ImagePullBackOff", 'Back-off pulling image "registry.invalid/x:0"')}
    assert [(e[0], e[1]) for e in events] == [
        ("BackOff", 'Back-off pulling image "registry.invalid/x:0"'),
        ("Failed", "Error: ImagePullBackOff"),
    ]
    # pull_all (the rule outcome) fails an image that exists
    waiting, _events = start_problems(_pod(), _lookup({}), pull_all=True)
    assert "docker.io/library/busybox:latest: not found" in waiting["main"][1]


def test_a_failing_init_container_stops_the_others():
    pod = _pod(init=[("fetch", {"envFrom": [{"secretRef": {"name": "gone"}}]}), ("later", {})])
    waiting, events = start_problems(pod, _lookup({}))
    assert waiting == {"fetch": ("CreateContainerConfigError", 'secret "gone" not found')}
    assert events == [("Failed", 'Error: secret "gone" not found', "spec.initContainers{fetch}")]
    status = waiting_status(pod, waiting, at="2026-01-01T00:00:00Z")
    states = {s["name"]: s["state"] for s in status["initContainerStatuses"] + status["containerStatuses"]}
    assert states["later"] == states["main"] == {"waiting": {"reason": "PodInitializing"}}
    assert {c["type"]: c["status"] for c in status["conditions"]}["Initialized"] == "False"
    assert start_problems(_pod(), _lookup({})) is None


@pytest.mark.parametrize(
    ("waiting", "reason"),
    [
        ({"main": ("CreateContainerConfigError", 'secret "gone" not found')}, "CreateContainerConfigError"),
        ({"main": ("ImagePullBackOff", 'Back-off pulling image "registry.invalid/x:0"')}, "ImagePullBackOff"),
        ({}, None),  # volumes not mounted: ContainerCreating, not stuck by status alone
    ],
)
def test_waiting_status_is_valid_and_what_pod_status_reads(waiting, reason):
    pod = _pod(restart="Always", job=None)
    pod["status"] = waiting_status(pod, waiting, at="2026-01-01T00:00:00Z")
    kubernetes_validate.validate(pod, NEWEST, strict=True)
    assert pod["status"]["phase"] == "Pending"
    problem = pod_status.stuck(pod, [])
    assert (problem.reason if problem else None) == reason
    if not waiting:
        assert pod["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}


def test_crashloop_status_counts_restarts_and_keeps_the_exit_code():
    pod = _pod(restart="Always", job=None)
    status = crashloop_status(pod, 2, 3, pod_ip="10.251.1.5", host_ip="10.250.1.1", at="2026-01-01T00:00:00Z")
    (entry,) = status["containerStatuses"]
    assert status["phase"] == "Running"
    assert entry["restartCount"] == 3 and entry["ready"] is False
    assert entry["state"]["waiting"] == {
        "reason": "CrashLoopBackOff",
        "message": "back-off 40s restarting failed container=main pod=train-abcde_ns(1234)",
    }
    assert entry["lastState"]["terminated"]["exitCode"] == 2
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "False"
    pod["status"] = status
    kubernetes_validate.validate(pod, NEWEST, strict=True)
    assert pod_status.stuck(pod, [], max_restarts=3).reason == "CrashLoopBackOff"
    assert pod_status.stuck(pod, [], max_restarts=4) is None


def test_event_manifest_is_a_valid_kubelet_event():
    event = event_manifest(
        _pod(),
        "Failed",
        'Error: secret "x" not found',
        node="sim-1",
        field_path="spec.containers{main}",
        at="2026-01-01T00:00:00Z",
    )
    kubernetes_validate.validate(event, NEWEST, strict=True)
    assert event["involvedObject"]["uid"] == "1234" and event["source"] == {"component": "kubelet", "host": "sim-1"}
    assert pod_status.event_lines(_pod(), [event]) == ('Failed: Error: secret "x" not found',)


def test_unscheduled_pods_marked_by_a_scheduler_are_left_alone():
    pod = _pod()
    assert not unschedulable(pod)
    pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
    assert unschedulable(pod)


def test_new_outcomes():
    assert make_rule("db", "crashloop").exit_code == 1
    assert make_rule("db", "crashloop", exit_code=0).exit_code == 0  # exits 0, restarted anyway
    with pytest.raises(ValueError, match="pull-failure"):
        make_rule("db", "pull-failure", exit_code=2)
