"""The Kubernetes API stand-in, driven by the real kubernetes client and kubernetes.core.

Every test talks HTTP to a running stand-in through the official client (typed API and
DynamicClient) or through ansible-playbook, so what passes here is what cluster tests and
roles rely on. Waits poll with a generous limit and fail when the state never comes.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import kubernetes
import pytest
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from tests.harness.kube import standin
from tests.harness.kube.apiserver import LOG_ANNOTATION
from tests.harness.playbook import run_playbook

ROOT = Path(__file__).resolve().parents[2]

IMAGE = "registry.example/app:1.0"  # never pulled: there is no kubelet


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with standin.running(tmp_path_factory.mktemp("standin")) as server:
        yield server


@pytest.fixture(scope="module")
def client(api):
    with kubernetes.config.new_client_from_config(str(api.kubeconfig)) as api_client:
        yield api_client


@pytest.fixture(scope="module")
def core(client):
    return kubernetes.client.CoreV1Api(client)


@pytest.fixture(scope="module")
def apps(client):
    return kubernetes.client.AppsV1Api(client)


@pytest.fixture(scope="module")
def batch(client):
    return kubernetes.client.BatchV1Api(client)


@pytest.fixture(scope="module")
def dyn(client):
    return DynamicClient(client)


@pytest.fixture(scope="module")
def node(core):
    """A Ready node, as the no-kubelet helper registers one."""
    body = {
        "metadata": {"name": "node-a", "labels": {"kubernetes.io/hostname": "node-a"}},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]},
    }
    created = core.create_node(body)
    core.patch_node_status("node-a", {"status": body["status"]})
    return created.metadata.name


@pytest.fixture
def ns(core):
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def wait_for(check, what: str, limit: float = 20.0):
    """Poll `check` until it returns something truthy; fail naming `what` otherwise."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"never happened: {what}")


def error_of(call, *args, **kwargs) -> tuple[int, dict]:
    with pytest.raises(ApiException) as caught:
        call(*args, **kwargs)
    return caught.value.status, json.loads(caught.value.body)


def deployment(name: str, replicas: int = 2, image: str = IMAGE) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": image, "ports": [{"containerPort": 8080}]}]},
            },
        },
    }


def job(name: str, **spec) -> dict:
    template = {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": IMAGE}]}}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": {"template": template, **spec}}


def set_pod_state(core, ns: str, name: str, phase: str, ready: bool = False, log: str | None = None) -> None:
    """What a kubelet reports: phase, container state, Ready condition (and the log hook)."""
    state = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    if phase in ("Succeeded", "Failed"):
        state = {"terminated": {"exitCode": 0 if phase == "Succeeded" else 1, "reason": "Completed"}}
    pod = core.read_namespaced_pod(name, ns)
    statuses = [
        {"name": c.name, "ready": ready, "restartCount": 0, "image": c.image, "imageID": "", "state": state}
        for c in pod.spec.containers
    ]
    flag = "True" if ready else "False"
    status = {
        "phase": phase,
        "podIP": "10.1.0.10",
        "containerStatuses": statuses,
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": flag, "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "ContainersReady", "status": flag},
        ],
    }
    body = {"status": status}
    if log is not None:
        body["metadata"] = {"annotations": {LOG_ANNOTATION: log}}
    core.patch_namespaced_pod_status(name, ns, body)


def pods_of(core, ns: str, selector: str):
    return core.list_namespaced_pod(ns, label_selector=selector).items


# -- discovery, CRUD, errors -------------------------------------------------------------


def test_discovery_serves_core_and_groups(dyn, client):
    version = kubernetes.client.VersionApi(client).get_code()
    assert version.major == "1" and int(version.minor) >= 25
    pods = dyn.resources.get(api_version="v1", kind="Pod")
    assert pods.namespaced and pods.name == "pods"
    assert {"status", "log", "binding"} <= set(pods.subresources)
    for api_version, kind, plural, namespaced in [
        ("apps/v1", "StatefulSet", "statefulsets", True),
        ("batch/v1", "CronJob", "cronjobs", True),
        ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", True),
        ("networking.k8s.io/v1", "IngressClass", "ingressclasses", False),
        ("storage.k8s.io/v1", "StorageClass", "storageclasses", False),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", False),
        ("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", True),
        ("v1", "Endpoints", "endpoints", True),
        ("v1", "PersistentVolume", "persistentvolumes", False),
    ]:
        res = dyn.resources.get(api_version=api_version, kind=kind)
        assert (res.name, res.namespaced) == (plural, namespaced), kind


def test_crud_and_generate_name(core, ns):
    created = core.create_namespaced_config_map(ns, {"metadata": {"generateName": "cfg-"}, "data": {"a": "1"}})
    name = created.metadata.name
    assert name.startswith("cfg-") and len(name) == len("cfg-") + 5
    assert created.metadata.uid and int(created.metadata.resource_version) > 0
    got = core.read_namespaced_config_map(name, ns)
    assert got.data == {"a": "1"} and got.metadata.creation_timestamp is not None
    got.data["b"] = "2"
    replaced = core.replace_namespaced_config_map(name, ns, got)
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    assert [c.metadata.name for c in core.list_namespaced_config_map(ns).items] == [name]
    status = core.delete_namespaced_config_map(name, ns)  # the client hands back a dict here
    assert status["status"] == "Success" and status["details"]["uid"] == created.metadata.uid
    code, body = error_of(core.read_namespaced_config_map, name, ns)
    assert (code, body["reason"], body["kind"]) == (404, "NotFound", "Status")
    assert body["message"] == f'configmaps "{name}" not found'


def test_default_service_account_in_every_new_namespace(core, ns):
    assert wait_for(lambda: core.list_namespaced_service_account(ns).items, "default ServiceAccount")
    assert core.read_namespaced_service_account("default", ns).metadata.name == "default"
    assert {"default", "kube-system", "kube-public"} <= {n.metadata.name for n in core.list_namespace().items}


def test_conflicts_and_missing_namespace(core, ns):
    core.create_namespaced_secret(ns, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    code, body = error_of(core.create_namespaced_secret, ns, {"metadata": {"name": "s"}})
    assert (code, body["reason"], body["details"]["name"]) == (409, "AlreadyExists", "s")
    stale = core.read_namespaced_secret("s", ns)
    assert stale.data == {"k": "dg=="} and stale.string_data is None
    core.patch_namespaced_secret("s", ns, {"metadata": {"labels": {"x": "y"}}})
    code, body = error_of(core.replace_namespaced_secret, "s", ns, stale)
    assert (code, body["reason"]) == (409, "Conflict")
    assert "the object has been modified" in body["message"]
    code, body = error_of(core.create_namespaced_config_map, "no-such-ns", {"metadata": {"name": "c"}})
    assert (code, body["message"]) == (404, 'namespaces "no-such-ns" not found')


def test_validation_errors_read_like_the_real_api(dyn, apps, batch, ns):
    # the DynamicClient sends what it is given (the typed client would refuse an unknown field itself)
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    jobs = dyn.resources.get(api_version="batch/v1", kind="Job")
    typo = deployment("typo")
    typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    code, body = error_of(deployments.create, body=typo, namespace=ns)
    assert (code, body["reason"]) == (400, "BadRequest")
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolcy"' in body["message"]
    lenient = deployments.create(body=typo, namespace=ns, query_params=[("fieldValidation", "Warn")])
    assert "imagePullPolcy" not in lenient.to_dict()["spec"]["template"]["spec"]["containers"][0]  # dropped
    deployments.delete(name="typo", namespace=ns)
    wrong_type = deployment("wrong-type")
    wrong_type["spec"]["replicas"] = "two"
    code, body = error_of(deployments.create, body=wrong_type, namespace=ns)
    assert (code, body["reason"]) == (400, "BadRequest") and "spec.replicas" in body["message"]
    nameless = deployment("nameless")
    del nameless["spec"]["template"]["spec"]["containers"][0]["name"]
    code, body = error_of(deployments.create, body=nameless, namespace=ns)
    assert (code, body["reason"], body["details"]["kind"]) == (422, "Invalid", "Deployment")
    assert body["details"]["causes"][0]["field"] == "spec.template.spec.containers[0]"
    mismatched = deployment("mismatched")
    mismatched["spec"]["selector"]["matchLabels"] = {"app": "other"}
    code, body = error_of(deployments.create, body=mismatched, namespace=ns)
    assert code == 422 and "`selector` does not match template `labels`" in body["message"]
    always = job("always")
    always["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    code, body = error_of(jobs.create, body=always, namespace=ns)
    assert code == 422 and body["details"]["causes"][0]["field"] == "spec.template.spec.restartPolicy"
    assert apps.list_namespaced_deployment(ns).items == [] and batch.list_namespaced_job(ns).items == []


def test_auth_401_and_403(api, ns):
    config = kubernetes.client.Configuration()
    config.host = api.url
    with kubernetes.client.ApiClient(config) as anonymous:
        code, body = error_of(kubernetes.client.CoreV1Api(anonymous).list_namespace)
        assert (code, body["reason"]) == (401, "Unauthorized")
    config.api_key = {"authorization": f"Bearer {api.readonly_token}"}
    with kubernetes.client.ApiClient(config) as reader:
        core = kubernetes.client.CoreV1Api(reader)
        assert core.list_namespaced_config_map(ns).items == []
        code, body = error_of(core.create_namespaced_config_map, ns, {"metadata": {"name": "c"}})
        assert (code, body["reason"]) == (403, "Forbidden")


# -- selectors, patches, status, dry-run, watch ------------------------------------------


def test_label_and_field_selectors(core, ns):
    for name, labels in [("a", {"tier": "db", "env": "prod"}), ("b", {"tier": "web"}), ("c", {"env": "dev"})]:
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": labels}})

    def names(**kw):
        return sorted(c.metadata.name for c in core.list_namespaced_config_map(ns, **kw).items)

    assert names(label_selector="tier=db") == ["a"]
    assert names(label_selector="tier in (db,web)") == ["a", "b"]
    assert names(label_selector="tier notin (db),env") == ["c"]
    assert names(label_selector="!tier") == ["c"]
    assert names(label_selector="tier,env!=prod") == ["b"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b,metadata.namespace=" + ns) == ["a", "c"]
    code, _body = error_of(core.list_namespaced_config_map, ns, label_selector="tier in (db")
    assert code == 400


def test_strategic_merge_json_and_merge_patches(apps, ns):
    apps.create_namespaced_deployment(ns, deployment("web"))
    patched = apps.patch_namespaced_deployment(
        "web",
        ns,
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "main", "image": "other:2"}, {"name": "side", "image": "s:1"}]}
                }
            }
        },
    )
    containers = patched.spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [("main", "other:2"), ("side", "s:1")]
    assert containers[0].ports[0].container_port == 8080  # merged by name, not replaced
    assert patched.metadata.generation == 2
    delete = {"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}}
    assert [c.name for c in apps.patch_namespaced_deployment("web", ns, delete).spec.template.spec.containers] == [
        "main"
    ]
    ops = [{"op": "replace", "path": "/spec/replicas", "value": 3}]
    assert apps.patch_namespaced_deployment("web", ns, ops).spec.replicas == 3
    same = apps.patch_namespaced_deployment("web", ns, {"metadata": {"labels": {"app": "web"}}})
    assert same.metadata.generation == 4  # metadata does not bump the generation


def test_scale_subresource(apps, ns):
    apps.create_namespaced_deployment(ns, deployment("sc", replicas=1))
    scale = apps.read_namespaced_deployment_scale("sc", ns)
    assert (scale.spec.replicas, scale.status.selector) == (1, "app=sc")
    apps.patch_namespaced_deployment_scale("sc", ns, {"spec": {"replicas": 3}})
    assert apps.read_namespaced_deployment("sc", ns).spec.replicas == 3


def test_merge_patch_replaces_lists(dyn, ns):
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    deployments.create(body=deployment("m"), namespace=ns)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x:1"}]}}}}
    out = deployments.patch(body=patch, name="m", namespace=ns, content_type="application/merge-patch+json")
    assert [c["name"] for c in out.spec.template.spec.containers] == ["only"]
    assert out.spec.template.spec.containers[0].ports is None


def test_server_side_apply_creates_then_merges(dyn, ns):
    configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "namespace": ns}, "data": {"a": "1"}}
    created = configmaps.server_side_apply(body=body, namespace=ns, field_manager="test")
    assert created.to_dict()["data"] == {"a": "1"}
    merged = configmaps.server_side_apply(body={**body, "data": {"b": "2"}}, namespace=ns, field_manager="test")
    assert merged.to_dict()["data"] == {"a": "1", "b": "2"}  # simplified: no field ownership, nothing removed
    code, body = error_of(
        configmaps.patch, body=body, name="ssa", namespace=ns, content_type="application/apply-patch+yaml"
    )
    assert (code, body["reason"]) == (422, "Invalid") and "fieldManager" in body["message"]


def test_status_subresource_and_generation(apps, ns):
    apps.create_namespaced_deployment(ns, {**deployment("st", replicas=0), "status": {"replicas": 7}})
    dep = apps.read_namespaced_deployment("st", ns)
    assert (dep.status.replicas or 0) != 7 and dep.metadata.generation == 1
    apps.patch_namespaced_deployment("st", ns, {"status": {"replicas": 9}, "metadata": {"labels": {"x": "1"}}})
    dep = apps.read_namespaced_deployment("st", ns)
    assert dep.status.replicas != 9 and dep.metadata.labels["x"] == "1" and dep.metadata.generation == 1
    out = apps.patch_namespaced_deployment_status("st", ns, {"status": {"collisionCount": 4}, "spec": {"replicas": 5}})
    assert out.status.collision_count == 4 and out.spec.replicas == 0 and out.metadata.generation == 1


def test_dry_run_persists_nothing(core, apps, ns):
    out = apps.create_namespaced_deployment(ns, deployment("dry"), dry_run="All")
    assert out.metadata.uid and out.spec.strategy.type == "RollingUpdate"
    assert apps.list_namespaced_deployment(ns).items == []
    core.create_namespaced_config_map(ns, {"metadata": {"name": "keep"}, "data": {"a": "1"}})
    core.patch_namespaced_config_map("keep", ns, {"data": {"a": "2"}}, dry_run="All")
    core.delete_namespaced_config_map("keep", ns, dry_run="All")
    assert core.read_namespaced_config_map("keep", ns).data == {"a": "1"}


def test_dry_run_in_a_namespace_that_does_not_exist_is_not_found(core, apps, dyn):
    """A real API server dry-runs a namespaced write only in an existing namespace (404 otherwise)."""
    missing = f"absent-{uuid.uuid4().hex[:6]}"
    writes = [
        lambda: apps.create_namespaced_deployment(missing, deployment("dry"), dry_run="All"),
        lambda: core.create_namespaced_config_map(missing, {"metadata": {"name": "dry"}}, dry_run="All"),
        # server-side apply (kubernetes.core.k8s apply/server_side_apply) of an object not there yet
        lambda: dyn.resources.get(api_version="v1", kind="ConfigMap").server_side_apply(
            body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry", "namespace": missing}},
            namespace=missing,
            field_manager="test",
            dry_run="All",
        ),
    ]
    for write in writes:
        with pytest.raises(ApiException) as refused:
            write()
        assert refused.value.status == 404
        body = json.loads(refused.value.body)
        assert body["message"] == f'namespaces "{missing}" not found', body
        assert body["details"] == {"name": missing, "kind": "namespaces"}, body
    with pytest.raises(ApiException) as gone:
        core.read_namespace(missing)
    assert gone.value.status == 404
    # Cluster-wide objects dry-run without any namespace.
    core.create_namespace({"metadata": {"name": missing}}, dry_run="All")


def test_watch_from_a_resource_version(core, ns):
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, {"metadata": {"name": "w"}, "data": {"v": "1"}})
    core.patch_namespaced_config_map("w", ns, {"data": {"v": "2"}})
    core.delete_namespaced_config_map("w", ns)
    watch = kubernetes.watch.Watch()
    seen = []
    for event in watch.stream(core.list_namespaced_config_map, ns, resource_version=start, timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name, (event["object"].data or {}).get("v")))
        if event["type"] == "DELETED":
            watch.stop()
    assert seen == [("ADDED", "w", "1"), ("MODIFIED", "w", "2"), ("DELETED", "w", "2")]


def test_watch_with_a_selector_sees_objects_enter_and_leave(core, ns):
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, {"metadata": {"name": "sel", "labels": {"pick": "no"}}})
    core.patch_namespaced_config_map("sel", ns, {"metadata": {"labels": {"pick": "yes"}}})
    core.patch_namespaced_config_map("sel", ns, {"metadata": {"labels": {"pick": "no"}}})
    watch = kubernetes.watch.Watch()
    seen = []
    stream = watch.stream(
        core.list_namespaced_config_map, ns, label_selector="pick=yes", resource_version=start, timeout_seconds=5
    )
    for event in stream:
        seen.append((event["type"], event["object"].metadata.labels["pick"]))
        if event["type"] == "DELETED":
            watch.stop()
    assert seen == [("ADDED", "yes"), ("DELETED", "no")]


# -- controllers -------------------------------------------------------------------------


def test_job_completes_when_its_pod_succeeded(core, batch, node, ns):
    batch.create_namespaced_job(ns, job("train"))
    pods = wait_for(lambda: pods_of(core, ns, "job-name=train"), "the Job's pod")
    pod = pods[0]
    assert pod.metadata.owner_references[0].kind == "Job" and pod.metadata.owner_references[0].controller
    assert (
        pod.metadata.labels["batch.kubernetes.io/controller-uid"] == batch.read_namespaced_job("train", ns).metadata.uid
    )
    assert wait_for(lambda: core.read_namespaced_pod(pod.metadata.name, ns).spec.node_name, "scheduling") == node
    code, body = error_of(core.read_namespaced_pod_log, pod.metadata.name, ns)
    assert code == 400 and "is waiting to start" in body["message"]
    set_pod_state(core, ns, pod.metadata.name, "Running", ready=True, log="epoch 1\nepoch 2\n")
    assert wait_for(lambda: batch.read_namespaced_job("train", ns).status.active == 1 or None, "active 1")
    assert core.read_namespaced_pod_log(pod.metadata.name, ns, tail_lines=1) == "epoch 2\n"
    set_pod_state(core, ns, pod.metadata.name, "Succeeded")
    done = wait_for(lambda: (j := batch.read_namespaced_job("train", ns)).status.completion_time and j, "completion")
    types = {c.type: c.status for c in done.status.conditions}
    assert types == {"SuccessCriteriaMet": "True", "Complete": "True"}
    assert done.status.succeeded == 1 and not done.status.active and done.status.start_time


def test_job_fails_after_backoff_limit_and_deadline(core, batch, node, ns):
    batch.create_namespaced_job(ns, job("flaky", backoffLimit=1))
    for attempt in range(2):
        pod = wait_for(
            lambda: [p for p in pods_of(core, ns, "job-name=flaky") if p.status.phase == "Pending"],
            f"attempt {attempt}",
        )[0]
        set_pod_state(core, ns, pod.metadata.name, "Failed")
    failed = wait_for(lambda: (j := batch.read_namespaced_job("flaky", ns)).status.conditions and j, "failure")
    reasons = {c.type: c.reason for c in failed.status.conditions}
    assert reasons == {"FailureTarget": "BackoffLimitExceeded", "Failed": "BackoffLimitExceeded"}
    assert failed.status.failed == 2 and len(pods_of(core, ns, "job-name=flaky")) == 2
    batch.create_namespaced_job(ns, job("slow", activeDeadlineSeconds=1))
    slow = wait_for(lambda: (j := batch.read_namespaced_job("slow", ns)).status.conditions and j, "deadline")
    assert [(c.type, c.reason) for c in slow.status.conditions if c.type == "Failed"] == [
        ("Failed", "DeadlineExceeded")
    ]
    assert wait_for(
        lambda: not [p for p in pods_of(core, ns, "job-name=slow") if not p.metadata.deletion_timestamp] or True,
        "pods gone",
    )


def test_job_ttl_deletes_it_and_its_pods(core, batch, node, ns):
    batch.create_namespaced_job(ns, job("ttl", ttlSecondsAfterFinished=0))
    pod = wait_for(lambda: pods_of(core, ns, "job-name=ttl"), "pod")[0]
    set_pod_state(core, ns, pod.metadata.name, "Succeeded")
    wait_for(lambda: not batch.list_namespaced_job(ns).items, "the Job deleted by its TTL")
    wait_for(lambda: not pods_of(core, ns, "job-name=ttl"), "its pods collected")


def test_deployment_available_after_pods_ready_and_gc(core, apps, node, ns):
    apps.create_namespaced_deployment(ns, deployment("api", replicas=2))
    pods = wait_for(
        lambda: (ps := [p for p in pods_of(core, ns, "app=api") if p.spec.node_name]) and len(ps) == 2 and ps,
        "two scheduled pods",
    )
    dep = apps.read_namespaced_deployment("api", ns)
    assert not dep.status.available_replicas
    assert {c.type: c.status for c in dep.status.conditions}["Available"] == "False"
    for pod in pods:
        set_pod_state(core, ns, pod.metadata.name, "Running", ready=True)
    dep = wait_for(
        lambda: (d := apps.read_namespaced_deployment("api", ns)).status.available_replicas == 2 and d, "ready"
    )
    assert (dep.status.replicas, dep.status.ready_replicas, dep.status.updated_replicas) == (2, 2, 2)
    assert dep.status.observed_generation == dep.metadata.generation and not dep.status.unavailable_replicas
    conditions = {c.type: (c.status, c.reason) for c in dep.status.conditions}
    assert conditions == {
        "Available": ("True", "MinimumReplicasAvailable"),
        "Progressing": ("True", "NewReplicaSetAvailable"),
    }
    rs = apps.list_namespaced_replica_set(ns).items
    assert len(rs) == 1 and rs[0].metadata.owner_references[0].name == "api"
    apps.delete_namespaced_deployment("api", ns)
    wait_for(lambda: not apps.list_namespaced_replica_set(ns).items, "ReplicaSet collected")
    wait_for(lambda: not pods_of(core, ns, "app=api"), "pods collected")


def test_orphan_and_foreground_deletion(apps, core, node, ns):
    apps.create_namespaced_deployment(ns, deployment("orph", replicas=1))
    wait_for(lambda: apps.list_namespaced_replica_set(ns).items, "ReplicaSet")
    apps.delete_namespaced_deployment("orph", ns, propagation_policy="Orphan")
    rs = apps.list_namespaced_replica_set(ns).items
    assert len(rs) == 1 and not rs[0].metadata.owner_references
    apps.create_namespaced_deployment(ns, deployment("fg", replicas=1))
    wait_for(lambda: pods_of(core, ns, "app=fg"), "pod of fg")
    apps.delete_namespaced_deployment("fg", ns, propagation_policy="Foreground")
    wait_for(lambda: not [d for d in apps.list_namespaced_deployment(ns).items if d.metadata.name == "fg"], "fg gone")
    assert not pods_of(core, ns, "app=fg")


def test_statefulset_creates_ordered_pods_and_claims(core, apps, node, ns):
    labels = {"app": "db"}
    body = {
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 2,
            "serviceName": "db",
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "db", "image": IMAGE}]}},
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                }
            ],
        },
    }
    apps.create_namespaced_stateful_set(ns, body)
    wait_for(lambda: pods_of(core, ns, "app=db"), "db-0")
    assert [p.metadata.name for p in pods_of(core, ns, "app=db")] == ["db-0"]  # ordered: db-1 waits for db-0
    claim = core.read_namespaced_persistent_volume_claim("data-db-0", ns)
    assert claim.status.phase == "Pending"
    for i in range(2):
        core.create_persistent_volume(
            {
                "metadata": {"name": f"{ns}-pv{i}"},
                "spec": {
                    "capacity": {"storage": "2Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "hostPath": {"path": f"/data/{i}"},
                },
            }
        )
    wait_for(lambda: core.read_namespaced_pod("db-0", ns).spec.node_name, "db-0 scheduled once its claim bound")
    set_pod_state(core, ns, "db-0", "Running", ready=True)
    wait_for(lambda: len(pods_of(core, ns, "app=db")) == 2, "db-1 after db-0 Ready")
    wait_for(lambda: core.read_namespaced_pod("db-1", ns).spec.node_name, "db-1 scheduled")
    set_pod_state(core, ns, "db-1", "Running", ready=True)
    sts = wait_for(lambda: (s := apps.read_namespaced_stateful_set("db", ns)).status.ready_replicas == 2 and s, "ready")
    assert sts.status.current_revision == sts.status.update_revision and sts.status.updated_replicas == 2
    bound = core.read_namespaced_persistent_volume_claim("data-db-0", ns)
    assert bound.status.phase == "Bound" and bound.spec.volume_name.startswith(f"{ns}-pv")
    pv = core.read_persistent_volume(bound.spec.volume_name)
    assert pv.status.phase == "Bound" and pv.spec.claim_ref.name == "data-db-0"
    for i in range(2):
        core.delete_persistent_volume(f"{ns}-pv{i}")


def test_pvc_with_volume_name_binds_and_unplaceable_pod_stays_pending(core, node, ns):
    core.create_persistent_volume(
        {
            "metadata": {"name": f"{ns}-pinned"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "manual",
                "hostPath": {"path": "/srv"},
            },
        }
    )
    core.create_namespaced_persistent_volume_claim(
        ns,
        {
            "metadata": {"name": "pinned"},
            "spec": {
                "storageClassName": "manual",
                "volumeName": f"{ns}-pinned",
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    wait_for(lambda: core.read_namespaced_persistent_volume_claim("pinned", ns).status.phase == "Bound", "bound")
    assert core.read_persistent_volume(f"{ns}-pinned").status.phase == "Bound"
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "nowhere"},
            "spec": {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c", "image": IMAGE}]},
        },
    )
    pod = wait_for(lambda: (p := core.read_namespaced_pod("nowhere", ns)).status.conditions and p, "PodScheduled=False")
    assert pod.spec.node_name is None and pod.status.conditions[0].reason == "Unschedulable"
    core.delete_persistent_volume(f"{ns}-pinned")


def test_required_pod_affinity_waits_for_a_matching_pod_on_the_node(core, node, ns):
    """As kube-scheduler: a pod with a required podAffinity term stays Pending (Unschedulable,
    "didn't match pod affinity rules") until a pod the term selects runs on a node of the same
    topology value, then it is bound there."""
    affinity = {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "server"}}, "topologyKey": "kubernetes.io/hostname"}
            ]
        }
    }
    spec = {"affinity": affinity, "containers": [{"name": "c", "image": IMAGE}]}
    core.create_namespaced_pod(ns, {"metadata": {"name": "follower"}, "spec": spec})
    pod = wait_for(
        lambda: (p := core.read_namespaced_pod("follower", ns)).status.conditions and p, "PodScheduled=False"
    )
    assert pod.spec.node_name is None
    assert "didn't match pod affinity rules" in pod.status.conditions[0].message
    server = {
        "metadata": {"name": "server", "labels": {"app": "server"}},
        "spec": {"containers": [{"name": "c", "image": IMAGE}]},
    }
    core.create_namespaced_pod(ns, server)
    placed = wait_for(lambda: core.read_namespaced_pod("server", ns).spec.node_name, "server scheduled")
    assert wait_for(lambda: core.read_namespaced_pod("follower", ns).spec.node_name, "follower scheduled") == placed


def test_pod_with_a_missing_claim_is_unschedulable_with_the_schedulers_event(core, node, ns):
    volume = {"name": "data", "persistentVolumeClaim": {"claimName": "mlflow-pv-claim"}}
    spec = {"volumes": [volume], "containers": [{"name": "c", "image": IMAGE}]}
    core.create_namespaced_pod(ns, {"metadata": {"name": "claims"}, "spec": spec})
    pod = wait_for(lambda: (p := core.read_namespaced_pod("claims", ns)).status.conditions and p, "PodScheduled=False")
    (scheduled,) = pod.status.conditions
    message = (
        '0/1 nodes are available: persistentvolumeclaim "mlflow-pv-claim" not found. '
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    )
    assert (scheduled.type, scheduled.status, scheduled.reason, scheduled.message) == (
        "PodScheduled",
        "False",
        "Unschedulable",
        message,
    )
    assert pod.spec.node_name is None and pod.status.phase == "Pending"
    selector = "involvedObject.kind=Pod,involvedObject.name=claims"
    events = wait_for(lambda: core.list_namespaced_event(ns, field_selector=selector).items, "FailedScheduling")
    (event,) = events
    assert (event.reason, event.message, event.type) == ("FailedScheduling", message, "Warning")
    assert event.reporting_component == "default-scheduler" and event.involved_object.uid == pod.metadata.uid
    assert event.event_time is not None
    time.sleep(1.2)  # two more scheduler passes: the same reason is not recorded again
    assert len(core.list_namespaced_event(ns, field_selector=selector).items) == 1


def test_previous_log_needs_a_terminated_container(core, node, ns):
    core.create_namespaced_pod(
        ns, {"metadata": {"name": "once"}, "spec": {"containers": [{"name": "c", "image": IMAGE}]}}
    )
    wait_for(lambda: core.read_namespaced_pod("once", ns).spec.node_name, "scheduled")
    set_pod_state(core, ns, "once", "Running", ready=True, log="now\n")
    assert core.read_namespaced_pod_log("once", ns) == "now\n"
    status, body = error_of(core.read_namespaced_pod_log, "once", ns, previous=True)
    assert (status, body["message"]) == (400, 'previous terminated container "c" in pod "once" not found')


def test_namespace_deletion_removes_its_content(core, apps):
    name = f"gone-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    apps.create_namespaced_deployment(name, deployment("x", replicas=1))
    deleting = core.delete_namespace(name)
    assert deleting["status"]["phase"] == "Terminating"
    wait_for(lambda: name not in {n.metadata.name for n in core.list_namespace().items}, "namespace removed")
    assert apps.list_deployment_for_all_namespaces(field_selector=f"metadata.namespace={name}").items == []


def test_stop_leaves_no_threads(tmp_path):
    before = set(threading.enumerate())
    with standin.running(tmp_path) as server, kubernetes.config.new_client_from_config(str(server.kubeconfig)) as c:
        core = kubernetes.client.CoreV1Api(c)
        stream = kubernetes.watch.Watch().stream(core.list_namespace, timeout_seconds=30)
        assert next(stream)["type"] == "ADDED"  # a watch left open when the server stops
    assert set(threading.enumerate()) <= before
    assert server.kubeconfig.stat().st_mode & 0o777 == 0o600


# -- kubernetes.core against the stand-in ------------------------------------------------


def _ready_patcher(core, namespace: str, stop: threading.Event) -> None:
    """Plays the kubelet: every scheduled pod in `namespace` becomes Running and Ready."""
    while not stop.is_set():
        try:
            for pod in core.list_namespaced_pod(namespace).items:
                if pod.spec.node_name and pod.status.phase == "Pending":
                    set_pod_state(core, namespace, pod.metadata.name, "Running", ready=True)
        except ApiException:
            pass
        stop.wait(0.2)


def test_kubernetes_core_apply_is_idempotent_and_waits(api, core, node):
    namespace = f"play-{uuid.uuid4().hex[:6]}"
    manifests = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            **deployment("site", replicas=2),
            "metadata": {"name": "site", "namespace": namespace, "labels": {"app": "site"}},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "site", "namespace": namespace},
            "spec": {"type": "NodePort", "selector": {"app": "site"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "site", "namespace": namespace},
            "stringData": {"password": "not-a-real-one"},
        },
    ]
    # One task for all four (each task run costs a Python start-up with the kubernetes client);
    # `wait` then waits for every object, the Deployment's rollout included.
    task = {
        "name": "Apply the manifests",
        "kubernetes.core.k8s": {
            "state": "present",
            "definition": manifests,
            "wait": True,
            "wait_sleep": 1,
            "wait_timeout": 60,
        },
        "no_log": True,  # a Secret is among them
    }
    plays = [{"name": "Apply to the stand-in", "hosts": "localhost", "gather_facts": False, "tasks": [task]}]
    env = {"K8S_AUTH_KUBECONFIG": str(api.kubeconfig)}

    # Server-side dry-run needs the namespace to exist, on a real API as here.
    core.create_namespace({"metadata": {"name": namespace}})
    checked = run_playbook(plays, env=env, check=True)
    assert checked.rc == 0, checked.summary()
    assert checked.changed == 1
    assert not core.list_namespaced_secret(namespace).items
    assert not kubernetes.client.AppsV1Api(core.api_client).list_namespaced_deployment(namespace).items

    stop = threading.Event()
    patcher = threading.Thread(target=_ready_patcher, args=(core, namespace, stop))
    patcher.start()
    try:
        first = run_playbook(plays, env=env)
        assert first.rc == 0, first.summary()
        assert first.changed == 1
        rolled_out = kubernetes.client.AppsV1Api(core.api_client).read_namespaced_deployment("site", namespace)
        assert rolled_out.status.available_replicas == 2  # `wait` returned once the pods were Ready
        second = run_playbook(plays, env=env)
        assert second.rc == 0, second.summary()
        assert second.changed == 0, second.summary()
    finally:
        stop.set()
        patcher.join()
    service = core.read_namespaced_service("site", namespace)
    assert 30000 <= service.spec.ports[0].node_port <= 32767
    core.delete_namespace(namespace)
