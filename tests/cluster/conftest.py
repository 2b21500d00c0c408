"""Fixtures for tests that need a Kubernetes API (marker ``cluster``); docs/testing-cluster.md.

The target is decided once per session (tests/harness/cluster.py): the cluster ``KUBECONFIG``
names, or else the rig of this machine (tests/rig/up) when it is up. It must have a Ready node:
every test runs real pods. Without one, every cluster test is skipped with the reason.

Every image a test runs comes from an environment variable with a default (``IMAGES``), so
air-gapped clusters point them at a mirror.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sys
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from tests.harness import cluster as cluster_harness
from tests.harness.playbook import Result, run_playbook

ROOT = Path(__file__).resolve().parents[2]

IMAGES = {
    # a shell that can print and exit with a code (Jobs)
    "busybox": os.environ.get("MLFLOW_K8S_TEST_BUSYBOX_IMAGE", "busybox:1.37.0"),
    # a container that runs forever and does nothing (Deployments)
    "pause": os.environ.get("MLFLOW_K8S_TEST_PAUSE_IMAGE", "registry.k8s.io/pause:3.10"),
    # an image no node can pull: the reserved .invalid domain never resolves (RFC 2606)
    "missing": os.environ.get("MLFLOW_K8S_TEST_MISSING_IMAGE", "registry.invalid/mlflow-k8s/no-such-image:0"),
}
# Safety nets, not measurements: how long a wait may take before a test fails (a real cluster
# may have to pull images first).
WAIT_TIMEOUT = float(os.environ.get("MLFLOW_K8S_TEST_TIMEOUT", "300"))
NAMESPACE_LABEL = cluster_harness.NAMESPACE_LABEL
# The shared platform's NodePort: the one inventories/local and README.md name.
PLATFORM_NODE_PORT = 30500


@dataclass
class ClusterTarget:
    kubeconfig: str
    detail: str  # the probe's JSON: version and Ready nodes


# The files that take longest on real pods, longest first: pytest-xdist (make cluster: --dist
# loadfile --no-loadscope-reorder) hands the files to the workers in collection order, and a long
# file started last would end the run alone. The figures: the durations make cluster prints.
LONGEST_FIRST = (
    "test_day_two.py",
    "test_site.py",
    "test_mysql_platform.py",
    "test_project_job.py",
    "test_storage_database.py",
    "test_project_namespace_security.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the files of LONGEST_FIRST first, in its order; the others after them, as collected
    (a file's tests keep their order)."""

    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable


@pytest.fixture(scope="session")
def cluster() -> ClusterTarget:
    """The session's Kubernetes (skips every test that needs it when there is none)."""
    kubeconfig, detail = cluster_harness.target()
    if kubeconfig is None:
        pytest.skip(detail)
    return ClusterTarget(kubeconfig, detail)


@pytest.fixture(autouse=True)
def _cluster_marker_needs_cluster(request: pytest.FixtureRequest) -> None:
    """A test marked ``cluster`` is skipped (with the reason) when there is no cluster."""
    if request.node.get_closest_marker("cluster") is not None:
        request.getfixturevalue("cluster")


@pytest.fixture(scope="session")
def kubeconfig(cluster: ClusterTarget) -> str:
    """Path of the kubeconfig of the session's cluster (its current context is the one)."""
    return cluster.kubeconfig


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """The images tests may run, from MLFLOW_K8S_TEST_*_IMAGE (defaults in IMAGES)."""
    return dict(IMAGES)


@pytest.fixture(scope="session")
def k8s(kubeconfig: str) -> Iterator[Any]:
    """A kubernetes.client.ApiClient for the session's cluster."""
    api = cluster_harness.new_api_client(kubeconfig)
    yield api
    api.close()


@pytest.fixture(scope="session")
def dyn(k8s: Any) -> Any:
    """A kubernetes.dynamic.DynamicClient for the session's cluster."""
    from kubernetes.dynamic import DynamicClient

    return DynamicClient(k8s)


@pytest.fixture(scope="session")
def node_name(k8s: Any) -> str:
    """The first Ready node: where hostPath volumes go."""
    return cluster_harness.ready_nodes(k8s)[0]


@pytest.fixture(scope="session")
def node_address(k8s: Any, node_name: str) -> str:
    """The node's InternalIP: NodePorts answer there, from this machine and from pods."""
    from kubernetes import client

    addresses = client.CoreV1Api(k8s).read_node(node_name).status.addresses or []
    return next(a.address for a in addresses if a.type == "InternalIP")


def _dns_label(text: str, limit: int) -> str:
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return cleaned[:limit].strip("-") or "test"


@contextlib.contextmanager
def fresh_namespace(dyn: Any, hint: str, *, wait: bool = False, timeout: float = WAIT_TIMEOUT) -> Iterator[str]:
    """Create a uniquely named, labelled namespace; delete it on exit.

    Nothing waits for the deletion unless ``wait``: the next test has a namespace of its own, and
    cluster-scoped objects (volumes) are removed by the tests that made them, or by
    ``python -m tests.harness.cluster cleanup`` at the end of tests/cluster/run.
    """
    from kubernetes.dynamic.exceptions import NotFoundError

    name = f"t-{_dns_label(hint, 48)}-{uuid.uuid4().hex[:6]}"
    body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": cluster_harness.namespace_labels(_dns_label(hint, 63)),
        },
    }
    dyn.request("post", "/api/v1/namespaces", body=body)
    try:
        yield name
    finally:
        with contextlib.suppress(NotFoundError):
            dyn.request("delete", f"/api/v1/namespaces/{name}", body={"propagationPolicy": "Background"})
        if wait:
            gone = watch_until(dyn, "v1", "Namespace", None, name, lambda obj: obj is None, timeout=timeout)
            assert gone is None, (
                f"namespace {name} still exists {timeout:.0f} s after its deletion: {gone.get('status')}"
            )


def watch_until(
    dyn: Any,
    api_version: str,
    kind: str,
    namespace: str | None,
    name: str,
    predicate: Callable[[dict[str, Any] | None], bool],
    *,
    timeout: float = WAIT_TIMEOUT,
) -> dict[str, Any] | None:
    """Watch one object until ``predicate(obj)`` holds (``obj`` is None once it is deleted).

    Returns the object that satisfied it; fails the test with the last state seen when
    ``timeout`` (a safety net) passes first.
    """
    import time

    from kubernetes import watch
    from kubernetes.dynamic.exceptions import NotFoundError

    resource = dyn.resources.get(api_version=api_version, kind=kind)
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    while True:
        try:
            last = resource.get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            last = None
        if predicate(last):
            return last
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"{kind} {namespace or ''}/{name}: condition not met within {timeout:.0f} s; last seen: {last}")
        version = (last or {}).get("metadata", {}).get("resourceVersion")
        watcher = watch.Watch()
        for event in dyn.watch(
            resource,
            namespace=namespace,
            name=name,
            resource_version=version,
            timeout=max(1, min(int(remaining), 30)),
            watcher=watcher,
        ):
            last = None if event["type"] == "DELETED" else event["raw_object"]
            if predicate(last):
                watcher.stop()
                return last


@pytest.fixture
def watch_for(dyn: Any) -> Callable[..., dict[str, Any] | None]:
    """``watch_for(api_version, kind, namespace, name, predicate, timeout=...)``: see watch_until."""

    def wait(api_version, kind, namespace, name, predicate, **kwargs):
        return watch_until(dyn, api_version, kind, namespace, name, predicate, **kwargs)

    return wait


@pytest.fixture
def namespace(dyn: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for this test, deleted (without waiting) after it."""
    with fresh_namespace(dyn, request.node.name) as name:
        yield name


@pytest.fixture
def make_namespace(dyn: Any) -> Callable[..., contextlib.AbstractContextManager[str]]:
    """The namespace fixture's machinery, for tests that manage namespaces themselves."""
    return lambda hint, **kwargs: fresh_namespace(dyn, hint, **kwargs)


@pytest.fixture
def playbook(kubeconfig: str) -> Callable[..., Result]:
    """run_playbook (tests/harness/playbook.py) with K8S_AUTH_KUBECONFIG/KUBECONFIG set."""

    def run(playbook_, **kwargs: Any) -> Result:
        env = {"K8S_AUTH_KUBECONFIG": kubeconfig, "KUBECONFIG": kubeconfig, **(kwargs.pop("env", None) or {})}
        return run_playbook(playbook_, env=env, **kwargs)

    return run


@pytest.fixture(scope="session")
def tracking(tmp_path_factory):
    """A real MLflow tracking store (SQLite) and an experiment whose artifacts stay in tmp: the
    store the module-level project tests log to (the pods never talk to it)."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("cluster-tests", artifact_location=str(root / "artifacts"))
    return {"uri": uri, "client": client, "experiment_id": experiment_id}


# -- site.yml on the session's cluster ----------------------------------------------------------

MLFLOW_IMAGE = os.environ.get("MLFLOW_K8S_TEST_MLFLOW_IMAGE", "")  # empty: the role's default


def role_default(role: str, name: str) -> Any:
    """A variable of roles/<role>/defaults/main.yml, as written (templates unrendered)."""
    import yaml

    with open(ROOT / "roles" / role / "defaults" / "main.yml", encoding="utf-8") as stream:
        return yaml.safe_load(stream)[name]


def server_image() -> str:
    """The MLflow image the platform runs: MLFLOW_K8S_TEST_MLFLOW_IMAGE, else the role's default."""
    version = role_default("mlflow_server", "mlflow_server_version")
    return MLFLOW_IMAGE or role_default("mlflow_server", "mlflow_server_image").replace(
        "{{ mlflow_server_version }}", version
    )


def inventory() -> dict[str, Any]:
    """What inventories/local looks like with cluster_provider=existing: this host alone."""
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    return {
        "all": {
            "children": {"mlflow_k8s_nodes": {"children": {"mlflow_k8s_control_plane": {"hosts": {"localhost": host}}}}}
        }
    }


def node_port_for(namespace: str) -> int:
    """A NodePort for a platform in ``namespace``: NodePorts are cluster-wide, so one per
    namespace lets tests run side by side; never the shared platform's."""
    port = 30000 + zlib.crc32(namespace.encode()) % 2700
    return port + 1 if port == PLATFORM_NODE_PORT else port


def restricted_pod_spec(name: str, command: list[str], image: str = "busybox:1.37.0") -> dict[str, Any]:
    """A one-container pod spec (restartPolicy Never) that Pod Security's restricted admits: what
    a test creates in a platform namespace, which the storage role labels restricted."""
    return {
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": name,
                "image": image,
                "command": command,
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            }
        ],
    }


SMALL = {"requests": {"cpu": "20m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}}


def site_vars_for(kubeconfig: str, namespace: str, node: str, volumes: Path, node_port: int) -> dict[str, Any]:
    """site.yml's variables for a platform in ``namespace`` of the session's cluster (provider
    ``existing``, hostPath volumes under ``volumes`` on ``node``, the server at ``node_port``).

    CPU requests are small and the server runs one worker: a test node (the rig: 2 cores) holds
    several platforms at once, and the roles' defaults (a quarter core each for the server and
    the database, three workers each importing MLflow) would leave pods unschedulable for want
    of CPU that is not used, and make every rollout slower. The shared ``platform`` keeps the
    default workers; the defaults are checked on the rendered manifests (tests/manifests)."""
    site = {
        "cluster_provider": "existing",
        "cluster_existing_kubeconfig": kubeconfig,
        "mlflow_k8s_namespace": namespace,
        # The test made the namespace (with the run's cleanup label); the storage role adds its
        # own labels, Pod Security's restricted among them: every platform of the suite runs under it.
        "storage_create_namespace": True,
        # teardown.yml tears down the project namespace's objects too: this platform's own, never
        # the README's mlflow-projects, where test_readme_run_project.py may be running a Job.
        "project_runner_namespace": f"{namespace}-projects",
        "storage_hostpath_node": node,
        "storage_hostpath_dir_method": "host",
        "storage_hostpath_base_dir": str(volumes),
        "database_wait_timeout": 300,
        "mlflow_server_node_port": node_port,
        "mlflow_server_rollout_timeout": 300,
        "mlflow_server_workers": 1,
        "mlflow_server_resources": SMALL,
        "mlflow_server_init_resources": SMALL,
        "database_resources": SMALL,
        "database_backup_resources": SMALL,
    }
    if MLFLOW_IMAGE:
        site["mlflow_server_image"] = MLFLOW_IMAGE
    return site


@dataclass
class Platform:
    """The platform site.yml converged once for the whole session (every pytest worker)."""

    namespace: str
    url: str  # the tracking server as this machine reaches it (the node's NodePort)
    internal_url: str  # as pods reach it (the Service's DNS name)
    site_vars: dict[str, Any]


def _shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory every pytest-xdist worker of this run sees (the workers' common basetemp)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def platform(
    kubeconfig: str, dyn: Any, node_name: str, node_address: str, tmp_path_factory: pytest.TempPathFactory
) -> Platform:
    """playbooks/site.yml, converged once a run on the session's cluster and shared by every test
    that only reads it (submits projects, reads runs): the first worker converges it under a file
    lock, the others read what it wrote. The server answers at the NodePort README.md names
    (30500). Its namespace carries the tests' label: tests/cluster/run's cleanup removes it."""
    shared = _shared_dir(tmp_path_factory)
    record = shared / "platform.json"
    with open(shared / "platform.lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.exists():
            taken = [
                f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
                for svc in dyn.request("get", "/api/v1/services").to_dict().get("items") or []
                if any(p.get("nodePort") == PLATFORM_NODE_PORT for p in svc["spec"].get("ports") or [])
            ]
            if taken:
                pytest.fail(
                    f"NodePort {PLATFORM_NODE_PORT}, the shared platform's (README.md's), is taken by Service "
                    f"{', '.join(taken)}: another run's platform? Its run's cleanup (docs/testing-cluster.md) frees it."
                )
            name = f"t-platform-{uuid.uuid4().hex[:6]}"
            labels = cluster_harness.namespace_labels("platform")
            dyn.request(
                "post",
                "/api/v1/namespaces",
                body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}},
            )
            site = site_vars_for(kubeconfig, name, node_name, shared / "platform-volumes", PLATFORM_NODE_PORT)
            del site["mlflow_server_workers"]  # the role's default
            env = {"K8S_AUTH_KUBECONFIG": kubeconfig, "KUBECONFIG": kubeconfig}
            result = run_playbook("playbooks/site.yml", inventory=inventory(), extra_vars=site, env=env)
            outcome = {
                "namespace": name,
                "url": f"http://{node_address}:{PLATFORM_NODE_PORT}",
                "internal_url": f"http://mlflow-server.{name}.svc.cluster.local:5000",
                "site_vars": site,
                "error": "" if result.rc == 0 else result.summary(),
            }
            record.write_text(json.dumps(outcome), encoding="utf-8")
        outcome = json.loads(record.read_text(encoding="utf-8"))
    error = outcome.pop("error")
    if error:
        pytest.fail(f"the shared platform did not converge (site.yml):\n{error}")
    return Platform(**outcome)


LABELLED_KINDS = [
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("v1", "PersistentVolumeClaim"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
]


def labelled(dyn, namespace):
    """Every object in the namespace carrying the collection's part-of label, as {(kind, name)}."""
    found = set()
    for api_version, kind in LABELLED_KINDS:
        items = dyn.resources.get(api_version=api_version, kind=kind).get(
            namespace=namespace, label_selector="app.kubernetes.io/part-of=mlflow-k8s"
        )
        found |= {(kind, item.metadata.name) for item in items.items}
    pvs = dyn.resources.get(api_version="v1", kind="PersistentVolume").get().items
    found |= {
        ("PersistentVolume", pv.metadata.name) for pv in pvs if (pv.spec.claimRef or {}).get("namespace") == namespace
    }
    return found
