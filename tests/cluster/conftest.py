"""Fixtures for tests that need a Kubernetes API (marker ``cluster``); docs/testing-cluster.md.

The target is decided once per session:

1. ``KUBECONFIG`` names a cluster that answers ``/version`` within a few seconds: that cluster.
2. else ``MLFLOW_K8S_STANDIN=1``: the in-process API stand-in of tests/harness/kube.
3. else every cluster test is skipped, with the reason.

Every image a test runs comes from an environment variable with a default (``IMAGES``), so
air-gapped clusters point them at a mirror.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.harness import kubelet as kubelet_helper
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
# may have to pull images first), and how long /version may take to answer.
WAIT_TIMEOUT = float(os.environ.get("MLFLOW_K8S_TEST_TIMEOUT", "300"))
PROBE_TIMEOUT = float(os.environ.get("MLFLOW_K8S_TEST_PROBE_TIMEOUT", "5"))
NAMESPACE_LABEL = "mlflow-k8s.test/owner"
NO_CLUSTER = "no reachable cluster: set KUBECONFIG, or run `make cluster` to use the stand-in"


@dataclass
class ClusterTarget:
    kubeconfig: str
    kind: str  # 'real-kubelet' | 'no-kubelet' | 'standin'
    version: str
    source: str  # 'KUBECONFIG' | 'stand-in'
    notes: list[str] = field(default_factory=list)


def _kind_of(kubeconfig: str) -> str:
    api = kubelet_helper.new_api_client(kubeconfig)
    try:
        return kubelet_helper.classify(api)
    finally:
        api.close()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterTarget]:
    """The session's Kubernetes API (skips every test that needs it when there is none)."""
    notes = []
    kubeconfig = os.environ.get("KUBECONFIG", "")
    if kubeconfig:
        if os.pathsep in kubeconfig:
            notes.append(f"KUBECONFIG lists several files ({kubeconfig}): flatten them into one")
        else:
            ok, detail = kubelet_helper.probe(kubeconfig, timeout=PROBE_TIMEOUT)
            if ok:
                yield ClusterTarget(kubeconfig, _kind_of(kubeconfig), detail, "KUBECONFIG")
                return
            notes.append(f"KUBECONFIG={kubeconfig} does not answer /version: {detail}")
    if os.environ.get("MLFLOW_K8S_STANDIN") == "1":
        try:
            from tests.harness.kube import standin
        except ImportError as error:
            pytest.skip(f"MLFLOW_K8S_STANDIN=1 but the API stand-in (tests/harness/kube) cannot be imported: {error}")
        with standin.running(tmp_path_factory.mktemp("standin")) as api:
            ok, detail = kubelet_helper.probe(str(api.kubeconfig), timeout=PROBE_TIMEOUT)
            if not ok:
                pytest.fail(f"the stand-in started but does not answer /version: {detail}")
            yield ClusterTarget(str(api.kubeconfig), "standin", detail, "stand-in", notes)
        return
    pytest.skip("; ".join([NO_CLUSTER, *notes]))


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
def cluster_kind(cluster: ClusterTarget) -> str:
    """'real-kubelet' (pods really run), 'no-kubelet' (a control plane only) or 'standin'."""
    return cluster.kind


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """The images tests may run, from MLFLOW_K8S_TEST_*_IMAGE (defaults in IMAGES)."""
    return dict(IMAGES)


@pytest.fixture(scope="session")
def k8s(kubeconfig: str) -> Iterator[Any]:
    """A kubernetes.client.ApiClient for the session's cluster."""
    api = kubelet_helper.new_api_client(kubeconfig)
    yield api
    api.close()


@pytest.fixture(scope="session")
def dyn(k8s: Any) -> Any:
    """A kubernetes.dynamic.DynamicClient for the session's cluster."""
    from kubernetes.dynamic import DynamicClient

    return DynamicClient(k8s)


def _dns_label(text: str, limit: int) -> str:
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return cleaned[:limit].strip("-") or "test"


@contextlib.contextmanager
def fresh_namespace(dyn: Any, hint: str, *, timeout: float = WAIT_TIMEOUT) -> Iterator[str]:
    """Create a uniquely named, labelled namespace; delete it on exit and wait until it is gone."""
    from kubernetes.dynamic.exceptions import NotFoundError

    name = f"t-{_dns_label(hint, 48)}-{uuid.uuid4().hex[:6]}"
    body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {NAMESPACE_LABEL: "pytest", "mlflow-k8s.test/test": _dns_label(hint, 63)},
        },
    }
    dyn.request("post", "/api/v1/namespaces", body=body)
    try:
        yield name
    finally:
        with contextlib.suppress(NotFoundError):
            dyn.request("delete", f"/api/v1/namespaces/{name}", body={"propagationPolicy": "Foreground"})
        gone = watch_until(dyn, "v1", "Namespace", None, name, lambda obj: obj is None, timeout=timeout)
        assert gone is None, f"namespace {name} still exists {timeout:.0f} s after its deletion: {gone.get('status')}"


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
    """A fresh namespace for this test, deleted (and waited for) after it."""
    with fresh_namespace(dyn, request.node.name) as name:
        yield name


@pytest.fixture
def make_namespace(dyn: Any) -> Callable[[str], contextlib.AbstractContextManager[str]]:
    """The namespace fixture's machinery, for tests that manage namespaces themselves."""
    return lambda hint: fresh_namespace(dyn, hint)


@pytest.fixture
def kubelet(k8s: Any, namespace: str) -> Iterator[kubelet_helper.SimKubelet]:
    """The no-kubelet helper for this test's namespace (inactive when a real kubelet exists)."""
    with kubelet_helper.SimKubelet(k8s, namespace) as helper:
        yield helper
    assert not helper.errors, f"the simulated kubelet reported errors: {helper.errors}"


@pytest.fixture
def playbook(kubeconfig: str) -> Callable[..., Result]:
    """run_playbook (tests/harness/playbook.py) with K8S_AUTH_KUBECONFIG/KUBECONFIG set."""

    def run(playbook_, **kwargs: Any) -> Result:
        env = {"K8S_AUTH_KUBECONFIG": kubeconfig, "KUBECONFIG": kubeconfig, **(kwargs.pop("env", None) or {})}
        return run_playbook(playbook_, env=env, **kwargs)

    return run
