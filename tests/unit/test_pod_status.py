"""pod_status decides "stuck for good" from pods and events as a kubelet and scheduler write them.

The dicts below are shaped like `kubectl get pod -o json` / `kubectl get events -o json` on a
real cluster (field names, reasons and message wording of kubelet, containerd and the
default-scheduler of Kubernetes 1.30+): no fake API is involved, these are pure functions.
"""

import copy
import datetime

import pytest

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import pod_status
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.pod_status import PodProblem

T0 = "2026-12-01T22:00:00Z"
UID = "6f1c1d52-3c7a-4bde-9a4e-5b2a7d0d9e11"


def _pod(name="mlflow-postgresql-0", phase="Pending", conditions=None, statuses=None, init_statuses=None):
    status = {"phase": phase, "conditions": conditions or [], "qosClass": "Burstable"}
    if statuses is not None:
        status["containerStatuses"] = statuses
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "mlflow", "uid": UID, "creationTimestamp": T0},
        "spec": {"containers": [{"name": "postgresql", "image": "postgres:16"}], "restartPolicy": "Always"},
        "status": status,
    }


def _running_conditions(ready):
    flag = "True" if ready else "False"
    return [
        {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": T0},
        {"type": "Initialized", "status": "True", "lastTransitionTime": T0},
        {"type": "Ready", "status": flag, "lastTransitionTime": T0, "reason": None if ready else "ContainersNotReady"},
        {"type": "ContainersReady", "status": flag, "lastTransitionTime": T0},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": T0},
    ]


def _waiting(reason, message, restarts=0, image="postgres:16", last=None, name="postgresql"):
    entry = {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": False,
        "started": False,
        "restartCount": restarts,
        "state": {"waiting": {"reason": reason, "message": message}},
        "lastState": {},
    }
    if last:
        entry["lastState"] = {"terminated": last}
        entry["containerID"] = "containerd://4b1f0c"
    return entry


def _event(reason, message, at=T0, kind="Warning", pod="mlflow-postgresql-0", first=None, count=1, uid=UID):
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": pod + ".18a0f1", "namespace": "mlflow", "creationTimestamp": first or at},
        "involvedObject": {"kind": "Pod", "name": pod, "namespace": "mlflow", "uid": uid, "apiVersion": "v1"},
        "reason": reason,
        "message": message,
        "type": kind,
        "count": count,
        "firstTimestamp": first or at,
        "lastTimestamp": at,
        "source": {"component": "kubelet", "host": "node-1"},
    }


def _scheduler_event(message, at=T0, pod="mlflow-postgresql-0"):
    # events.k8s.io/v1 as the scheduler writes it, read through core/v1: eventTime, no timestamps
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": pod + ".18a0f0", "namespace": "mlflow", "creationTimestamp": at},
        "involvedObject": {"kind": "Pod", "name": pod, "namespace": "mlflow", "uid": UID, "apiVersion": "v1"},
        "reason": "FailedScheduling",
        "message": message,
        "type": "Warning",
        "eventTime": at.replace("Z", ".123456Z"),
        "firstTimestamp": None,
        "lastTimestamp": None,
        "reportingComponent": "default-scheduler",
        "reportingInstance": "default-scheduler-node-1",
        "action": "Scheduling",
        "source": {},
    }


CRASH_LAST = {
    "exitCode": 1,
    "reason": "Error",
    "startedAt": "2026-12-01T22:01:10Z",
    "finishedAt": "2026-12-01T22:01:11Z",
    "containerID": "containerd://4b1f0c",
}
CRASH_MESSAGE = "back-off 40s restarting failed container=postgresql pod=mlflow-postgresql-0_mlflow(" + UID + ")"
PVC_MESSAGE = (
    '0/1 nodes are available: persistentvolumeclaim "mlflow-pv-claim" not found. '
    "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
)


def _crashloop(restarts):
    return _pod(
        phase="Running",
        conditions=_running_conditions(False),
        statuses=[_waiting("CrashLoopBackOff", CRASH_MESSAGE, restarts=restarts, last=CRASH_LAST)],
    )


def test_crash_loop_past_max_restarts_is_stuck_with_exit_code_and_events():
    events = [
        _event("Pulled", 'Container image "postgres:16" already present on machine', kind="Normal"),
        _event("Created", "Created container postgresql", kind="Normal"),
        _event("Started", "Started container postgresql", kind="Normal"),
        _event(
            "BackOff",
            "Back-off restarting failed container postgresql in pod mlflow-postgresql-0_mlflow(x)",
            at="2026-12-01T22:01:12Z",
            count=4,
        ),
    ]
    problem = pod_status.stuck(_crashloop(3), events)
    assert problem == PodProblem(
        pod="mlflow-postgresql-0",
        reason="CrashLoopBackOff",
        message=CRASH_MESSAGE + "; last exit code 1 (Error); restarted 3 times",
        container="postgresql",
        events=(
            'Pulled: Container image "postgres:16" already present on machine',
            "Created: Created container postgresql",
            "Started: Started container postgresql",
            "BackOff: Back-off restarting failed container postgresql in pod mlflow-postgresql-0_mlflow(x)",
        ),
    )


@pytest.mark.parametrize("restarts, max_restarts", [(0, 3), (2, 3), (4, 5)])
def test_crash_loop_below_max_restarts_is_still_waited_for(restarts, max_restarts):
    pod = _crashloop(restarts)
    assert pod_status.stuck(pod, [], max_restarts=max_restarts) is None
    assert pod_status.pending_reason(pod, []) == (
        "pod mlflow-postgresql-0: container postgresql: CrashLoopBackOff: " + CRASH_MESSAGE
    )


@pytest.mark.parametrize(
    "reason, message",
    [
        (
            "ErrImagePull",
            'failed to pull and unpack image "docker.io/library/postgres:no-such-tag": failed to resolve reference '
            '"docker.io/library/postgres:no-such-tag": docker.io/library/postgres:no-such-tag: not found',
        ),
        ("ImagePullBackOff", 'Back-off pulling image "postgres:no-such-tag"'),
        ("InvalidImageName", 'Failed to apply default image tag "Postgres:16": couldn\'t parse image name'),
    ],
)
def test_image_problems_are_stuck_at_once(reason, message):
    image = "Postgres:16" if reason == "InvalidImageName" else "postgres:no-such-tag"
    pod = _pod(statuses=[_waiting(reason, message, image=image)])
    events = [
        _event("Pulling", 'Pulling image "postgres:no-such-tag"', kind="Normal"),
        _event("Failed", 'Failed to pull image "postgres:no-such-tag": rpc error: code = NotFound', count=2),
        _event("Failed", "Error: " + reason),
    ]
    problem = pod_status.stuck(pod, events)
    assert (problem.reason, problem.container, problem.message) == (reason, "postgresql", message)
    assert problem.events[-1] == "Failed: Error: " + reason


def test_image_name_is_added_when_the_message_lacks_it():
    pod = _pod(statuses=[_waiting("ErrImagePull", "rpc error: code = Unknown", image="registry.local/x:1")])
    assert pod_status.stuck(pod, []).message == "rpc error: code = Unknown (image registry.local/x:1)"


def test_missing_secret_in_env_is_stuck_with_the_kubelets_message():
    pod = _pod(statuses=[_waiting("CreateContainerConfigError", 'secret "mlflow-db-uri" not found')])
    events = [
        _event("Scheduled", "Successfully assigned mlflow/mlflow-postgresql-0 to node-1", kind="Normal"),
        _event("Failed", 'Error: secret "mlflow-db-uri" not found', at="2026-12-01T22:00:02Z", count=3),
    ]
    problem = pod_status.stuck(pod, events)
    assert problem.reason == "CreateContainerConfigError"
    assert problem.message == 'secret "mlflow-db-uri" not found'
    assert problem.events == (
        "Scheduled: Successfully assigned mlflow/mlflow-postgresql-0 to node-1",
        'Failed: Error: secret "mlflow-db-uri" not found',
    )


def test_create_container_error_is_stuck_unless_the_runtime_says_retry():
    bad = _pod(statuses=[_waiting("CreateContainerError", 'failed to create containerd task: "/bin/nope": not found')])
    assert pod_status.stuck(bad, []).reason == "CreateContainerError"
    reserved = _pod(
        statuses=[
            _waiting(
                "CreateContainerError",
                'failed to reserve container name "postgresql_mlflow-postgresql-0_mlflow_0": name is reserved',
            )
        ]
    )
    assert pod_status.stuck(reserved, []) is None


def test_init_container_problem_names_the_init_container():
    pod = _pod(
        init_statuses=[_waiting("ImagePullBackOff", 'Back-off pulling image "busybox:nope"', name="fetch")],
        statuses=[_waiting("PodInitializing", "")],
    )
    problem = pod_status.stuck(pod, [])
    assert (problem.reason, problem.container) == ("ImagePullBackOff", "fetch")


def test_missing_pvc_is_unschedulable_with_the_schedulers_message():
    pod = _pod(
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": PVC_MESSAGE,
                "lastTransitionTime": T0,
                "lastProbeTime": None,
            }
        ]
    )
    events = [_scheduler_event(PVC_MESSAGE)]
    problem = pod_status.stuck(pod, events)
    assert problem == PodProblem(
        pod="mlflow-postgresql-0",
        reason="Unschedulable",
        message=PVC_MESSAGE,
        container=None,
        events=("FailedScheduling: " + PVC_MESSAGE,),
    )
    assert pod_status.pending_reason(pod, events) == "pod mlflow-postgresql-0: Unschedulable: " + PVC_MESSAGE


def test_unschedulable_without_condition_message_takes_the_event():
    pod = _pod(conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}])
    assert pod_status.stuck(pod, [_scheduler_event(PVC_MESSAGE)]).message == PVC_MESSAGE


@pytest.mark.parametrize(
    "message",
    [
        "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes are "
        "available: 1 Preemption is not helpful for scheduling.",
        "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. preemption: "
        "0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
    ],
)
def test_unschedulable_that_the_cluster_heals_is_waited_for(message):
    pod = _pod(conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}])
    assert pod_status.stuck(pod, []) is None
    assert pod_status.pending_reason(pod, []) == "pod mlflow-postgresql-0: Unschedulable: " + message


def test_insufficient_resources_on_every_node_is_stuck():
    message = (
        "0/1 nodes are available: 1 Insufficient memory. "
        "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    )
    pod = _pod(conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}])
    assert pod_status.stuck(pod, []).reason == "Unschedulable"


MOUNT_MESSAGE = 'MountVolume.SetUp failed for volume "config" : configmap "mlflow-config" not found'


def _mounting_pod():
    return _pod(
        conditions=[{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
        statuses=[_waiting("ContainerCreating", "")],
    )


def test_failed_mount_of_missing_configmap_is_stuck_after_the_grace():
    events = [_event("FailedMount", MOUNT_MESSAGE, first="2026-12-01T22:00:01Z", at="2026-12-01T22:00:33Z", count=6)]
    pod = _mounting_pod()
    assert pod_status.stuck(pod, events, now="2026-12-01T22:00:10Z") is None
    problem = pod_status.stuck(pod, events, now="2026-12-01T22:00:40Z")
    assert (problem.reason, problem.message, problem.container) == ("FailedMount", MOUNT_MESSAGE, None)
    later = datetime.datetime(2026, 12, 1, 22, 5, tzinfo=datetime.UTC)
    assert pod_status.stuck(pod, events, now=later).reason == "FailedMount"


def test_failed_mount_of_a_missing_hostpath_directory_is_stuck_after_the_grace():
    # What the kubelet says when a hostPath PV of type Directory has no directory on the node.
    message = (
        'MountVolume.SetUp failed for volume "ns-mlflow-database" : '
        "hostPath type check failed: /var/lib/mlflow-k8s/ns/mlflow-database is not a directory"
    )
    events = [_event("FailedMount", message, first="2026-12-01T22:00:01Z", at="2026-12-01T22:00:33Z", count=6)]
    assert pod_status.stuck(_mounting_pod(), events, now="2026-12-01T22:00:10Z") is None
    assert pod_status.stuck(_mounting_pod(), events, now="2026-12-01T22:00:40Z").message == message


def test_failed_mount_for_another_reason_is_waited_for():
    events = [
        _event(
            "FailedMount",
            'MountVolume.MountDevice failed for volume "pvc-1" : rpc error: timed out',
            first="2026-12-01T21:00:00Z",
        )
    ]
    assert pod_status.stuck(_mounting_pod(), events, now="2026-12-01T22:00:00Z") is None


def test_healthy_finished_and_deleting_pods_are_not_stuck():
    ready = _pod(
        phase="Running",
        conditions=_running_conditions(True),
        statuses=[
            {
                "name": "postgresql",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": T0}},
                "lastState": {},
            }
        ],
    )
    assert pod_status.stuck(ready, []) is None
    assert pod_status.pending_reason(ready, []) is None
    failed = _crashloop(9)
    failed["status"]["phase"] = "Failed"
    assert pod_status.stuck(failed, []) is None
    deleting = _crashloop(9)
    deleting["metadata"]["deletionTimestamp"] = T0
    assert pod_status.stuck(deleting, []) is None


def test_events_of_other_pods_and_earlier_incarnations_are_ignored():
    pod = _crashloop(5)
    events = [
        _event("BackOff", "other pod", pod="mlflow-server-abc"),
        _event("Killing", "earlier pod of the same name", uid="old-uid"),
        _event("BackOff", "mine", at="2026-12-01T22:03:00Z"),
        _event("Started", "Started container postgresql", at="2026-12-01T22:02:00Z", kind="Normal"),
    ]
    assert pod_status.stuck(pod, events).events == ("Started: Started container postgresql", "BackOff: mine")


def test_only_the_last_events_are_kept_oldest_first():
    events = [_event("BackOff", f"n{i}", at=f"2026-12-01T22:00:{i:02d}Z") for i in range(10)]
    events.reverse()
    assert pod_status.stuck(_crashloop(3), events).events == tuple(f"BackOff: n{i}" for i in range(5, 10))


def test_pending_reason_while_pulling_and_unready():
    pulling = _pod(
        conditions=[{"type": "PodScheduled", "status": "True"}], statuses=[_waiting("ContainerCreating", "")]
    )
    assert pod_status.pending_reason(pulling, []) == "pod mlflow-postgresql-0: container postgresql: ContainerCreating"
    no_status = _pod()
    events = [_event("Pulling", 'Pulling image "postgres:16"', kind="Normal")]
    assert (
        pod_status.pending_reason(no_status, events)
        == 'pod mlflow-postgresql-0: Pending: Pulling: Pulling image "postgres:16"'
    )
    unready = _pod(
        phase="Running",
        conditions=_running_conditions(False),
        statuses=[
            {
                "name": "postgresql",
                "ready": False,
                "started": True,
                "restartCount": 0,
                "state": {"running": {}},
            }
        ],
    )
    assert pod_status.pending_reason(unready, []) == "pod mlflow-postgresql-0: container postgresql is not ready yet"


def test_describe_names_pod_state_events_and_log():
    problem = pod_status.stuck(_crashloop(4), [_event("BackOff", "Back-off restarting failed container")])
    text = pod_status.describe(problem, "initdb: error: invalid locale\nFATAL: bye\n")
    assert text == (
        "pod mlflow-postgresql-0 (container postgresql) is stuck in CrashLoopBackOff: "
        + CRASH_MESSAGE
        + "; last exit code 1 (Error); restarted 4 times\n"
        "last events:\n  BackOff: Back-off restarting failed container\n"
        "last log lines:\n  initdb: error: invalid locale\n  FATAL: bye"
    )
    unsched = PodProblem("p", "Unschedulable", PVC_MESSAGE, None, ())
    assert pod_status.describe(unsched) == "pod p is stuck in Unschedulable: " + PVC_MESSAGE
    assert problem.as_dict("x")["log"] == "x"


def test_typed_client_models_are_accepted():
    from kubernetes import client

    pod = client.ApiClient()._ApiClient__deserialize(copy.deepcopy(_crashloop(3)), "V1Pod")
    assert pod_status.stuck(pod, []).reason == "CrashLoopBackOff"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "STATEMENT:  ALTER ROLE CURRENT_USER WITH PASSWORD 's3cr3t'",
            "STATEMENT:  ALTER ROLE CURRENT_USER WITH PASSWORD '***'",
        ),
        ("ALTER USER 'mlflow'@'%' IDENTIFIED BY \"pw\";", "ALTER USER 'mlflow'@'%' IDENTIFIED BY '***';"),
        (
            "connecting to postgresql://mlflow:pa55@db:5432/mlflow",
            "connecting to postgresql://mlflow:***@db:5432/mlflow",
        ),
        (
            'FATAL:  password authentication failed for user "mlflow"',
            'FATAL:  password authentication failed for user "mlflow"',
        ),
    ],
)
def test_log_lines_lose_their_credentials(line, expected):
    assert pod_status.redact(line) == expected


def test_log_tail_reads_the_previous_container_and_redacts():
    from kubernetes.client.rest import ApiException

    class Core:
        def __init__(self):
            self.calls = []

        def read_namespaced_pod_log(self, name, namespace, previous=False, **kwargs):
            self.calls.append((previous, kwargs["tail_lines"], kwargs.get("container")))
            if not previous:
                raise ApiException(status=400, reason="container is waiting to start")
            return "LOG:  PASSWORD 'x'\nFATAL: bye\n"

        list_namespaced_event = None

    core = Core()
    assert pod_status.log_tail(core, "ns", "p", "c", lines=2) == "LOG:  PASSWORD '***'\nFATAL: bye\n"
    assert core.calls == [(False, 2, "c"), (True, 2, "c")]
    assert pod_status.log_tail(core, "ns", "p", "c", lines=0) == "" and len(core.calls) == 2


# -- failed twice the same way (issue #28 point 2) -------------------------------------------------


class LogCore:
    """A CoreV1Api with the previous run's log of each container, and no events."""

    def __init__(self, previous_logs):
        self.previous_logs = previous_logs  # {restart count: text}
        self.restarts = 0
        self.reads = []

    def read_namespaced_pod_log(self, name, namespace, previous=False, **kwargs):
        self.reads.append(previous)
        return self.previous_logs[self.restarts] if previous else "starting again\n"

    def list_namespaced_event(self, namespace, **kwargs):
        class Listed:
            items = []

        return Listed()


def _failed(restarts, exit_code=1, waiting=True):
    last = {"exitCode": exit_code, "reason": "Error", "startedAt": T0, "finishedAt": T0}
    entry = _waiting("CrashLoopBackOff", CRASH_MESSAGE, restarts=restarts, last=last)
    if not waiting:  # the next run is under way
        entry["state"] = {"running": {"startedAt": T0}}
        entry["started"] = True
    return _pod(phase="Running", conditions=_running_conditions(False), statuses=[entry])


def _look(core, failures, restarts, **kwargs):
    core.restarts = restarts
    return pod_status.check_pods(core, "mlflow", [_failed(restarts, **kwargs)], failures=failures)


def test_a_container_that_fails_twice_the_same_way_is_stuck_at_the_second_failure():
    core = LogCore({1: "importing mlflow\nno such table: runs\n", 2: "importing mlflow\nno such table: runs\n\n"})
    failures = pod_status.Failures()
    assert _look(core, failures, 1)[0] is None  # one failure: it may heal
    assert _look(core, failures, 1, waiting=False)[0] is None  # looked at again: the log is not read again
    assert core.reads.count(True) == 1
    problem, log, _progress = _look(core, failures, 2, waiting=False)
    assert problem.reason == "RepeatedFailure" and problem.container == "postgresql"
    assert problem.message == (
        "failed twice the same way (exit code 1, last log line: 'no such table: runs'); restarted 2 times"
    )
    assert log == "importing mlflow\nno such table: runs\n\n"  # the failed run's log, not the new one's


@pytest.mark.parametrize(
    ("second_log", "second_exit"),
    [("importing mlflow\ndatabase is starting up\n", 1), ("importing mlflow\nno such table: runs\n", 2)],
)
def test_two_failures_that_differ_are_waited_for(second_log, second_exit):
    core = LogCore({1: "importing mlflow\nno such table: runs\n", 2: second_log})
    failures = pod_status.Failures()
    assert _look(core, failures, 1)[0] is None
    assert _look(core, failures, 2, exit_code=second_exit)[0] is None


def test_a_wait_that_missed_the_first_failure_falls_back_on_max_restarts():
    core = LogCore({2: "boom\n", 3: "boom\n"})
    failures = pod_status.Failures()
    assert _look(core, failures, 2)[0] is None
    assert _look(core, failures, 3)[0].reason == "CrashLoopBackOff"  # max_restarts (3) comes first


def test_a_repeated_failure_shows_no_log_line_where_the_wait_shows_no_log():
    core = LogCore({1: "ERROR: ALTER ROLE x PASSWORD 'secret-1'\n", 2: "ERROR: ALTER ROLE x PASSWORD 'secret-1'\n"})
    failures = pod_status.Failures()
    core.restarts = 1
    pod_status.check_pods(core, "mlflow", [_failed(1)], failures=failures, log_lines=0)
    core.restarts = 2
    problem, log, _progress = pod_status.check_pods(core, "mlflow", [_failed(2)], failures=failures, log_lines=0)
    assert problem.reason == "RepeatedFailure" and log == ""
    assert "secret" not in problem.message and "(not shown)" in problem.message
