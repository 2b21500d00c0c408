"""Which Kubernetes the cluster tests and molecule run on, and tidying up after them.

The target is the cluster ``KUBECONFIG`` names, or else the rig of this machine (tests/rig/up:
a real single-node Kubernetes, whose kubeconfig is ``$RIG_DIR/rig/kubeconfig``) when it is up.
Never ``~/.kube/config`` on its own: a test run does not land on a cluster nobody named. The
cluster must answer ``/version`` and have a Ready node: every test runs real pods.

    python -m tests.harness.cluster kubeconfig   prints the kubeconfig to use, or exits 1 with
                                                 the reason on stderr (tests/cluster/run and
                                                 tests/molecule/run call it)
    python -m tests.harness.cluster probe [KUBECONFIG]
                                                 prints the server's version and its Ready nodes
    python -m tests.harness.cluster cleanup      deletes the namespaces of the run MLFLOW_K8S_TEST_RUN
                                                 names, and the volumes that were bound in them
                                                 (without waiting)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

NAMESPACE_LABEL = "mlflow-k8s.test/owner"
# tests/cluster/run gives every run an id; the namespaces of the run carry it, and its cleanup
# deletes only those.
RUN_LABEL = "mlflow-k8s.test/run"
RUN_ID = os.environ.get("MLFLOW_K8S_TEST_RUN", "")


def namespace_labels(test: str) -> dict[str, str]:
    """The labels of a namespace a test makes (``test``: a DNS label naming it)."""
    labels = {NAMESPACE_LABEL: "pytest", "mlflow-k8s.test/test": test}
    if RUN_ID:
        labels[RUN_LABEL] = RUN_ID
    return labels


PROBE_TIMEOUT = float(os.environ.get("MLFLOW_K8S_TEST_PROBE_TIMEOUT", "5"))
HOW_TO_GET_ONE = "set KUBECONFIG to a cluster, or start this machine's rig: tests/rig/up (docs/testing-cluster.md)"


def rig_kubeconfig() -> Path:
    """Where tests/rig/up's cluster keeps its kubeconfig (the rig's RIG_DIR, by its default)."""
    state = os.environ.get("RIG_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "k8srig"
    )
    return Path(state) / "rig" / "kubeconfig"


def write_kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig at ``path`` naming only ``server`` (a token user): for the tests of what
    happens when a cluster does not answer."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def new_api_client(kubeconfig: str, context: str | None = None):
    """A kubernetes.client.ApiClient for ``kubeconfig`` (its current context unless ``context``)."""
    from kubernetes import config

    return config.new_client_from_config(config_file=kubeconfig, context=context)


def ready_nodes(api_client) -> list[str]:
    """Names of the nodes whose Ready condition is True."""
    from kubernetes import client

    nodes = client.CoreV1Api(api_client).list_node(_request_timeout=PROBE_TIMEOUT).items
    return [
        node.metadata.name
        for node in nodes
        if any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))
    ]


def probe(kubeconfig: str, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """``(usable, detail)``: the cluster answers /version within ``timeout`` s and has a Ready node."""
    if os.pathsep in kubeconfig:
        return False, f"KUBECONFIG lists several files ({kubeconfig}): flatten them into one"
    try:
        from kubernetes import client

        api = new_api_client(kubeconfig)
        try:
            version = client.VersionApi(api).get_code(_request_timeout=timeout)
            nodes = ready_nodes(api)
        finally:
            api.close()
    except Exception as error:  # any failure means "not usable", with its reason
        first = str(error).splitlines()[0] if str(error) else ""
        return False, f"{kubeconfig} does not answer: {type(error).__name__}: {first}"
    if not nodes:
        return False, f"{kubeconfig} ({version.git_version}) has no Ready node: the tests need real pods"
    return True, json.dumps({"kubeconfig": kubeconfig, "version": version.git_version, "ready_nodes": nodes})


def target() -> tuple[str | None, str]:
    """``(kubeconfig, detail)`` of the cluster to test on, or ``(None, why there is none)``."""
    named = os.environ.get("KUBECONFIG", "")
    if named:
        ok, detail = probe(named)
        return (named, detail) if ok else (None, f"KUBECONFIG is set but {detail}")
    rig = rig_kubeconfig()
    if rig.is_file():
        ok, detail = probe(str(rig))
        return (str(rig), detail) if ok else (None, f"no KUBECONFIG, and the rig's {detail}")
    return None, f"no cluster: {HOW_TO_GET_ONE}"


def cleanup(kubeconfig: str, run: str) -> list[str]:
    """Delete the namespaces of the test run ``run``, and the PersistentVolumes that were bound
    in them (hostPath volumes keep ``Retain``, so they outlive their namespace); returns what was
    deleted. Does not wait."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = new_api_client(kubeconfig)
    core = client.CoreV1Api(api)
    gone: list[str] = []
    try:
        names = {n.metadata.name for n in core.list_namespace(label_selector=f"{RUN_LABEL}={run}").items}
        for volume in core.list_persistent_volume().items:
            labels = volume.metadata.labels or {}
            claim: Any = volume.spec.claim_ref
            if labels.get(RUN_LABEL) == run or (claim is not None and claim.namespace in names):
                try:
                    core.delete_persistent_volume(volume.metadata.name)
                    gone.append(f"PersistentVolume {volume.metadata.name}")
                except ApiException as error:
                    if error.status != 404:
                        raise
        for name in sorted(names):
            try:
                core.delete_namespace(name, body=client.V1DeleteOptions(propagation_policy="Background"))
                gone.append(f"Namespace {name}")
            except ApiException as error:
                if error.status != 404:
                    raise
    finally:
        api.close()
    return gone


def main(argv: list[str]) -> int:
    import warnings

    # A test cluster's kubeconfig may skip TLS verification (the rig's does): say it once, in
    # docs/testing-cluster.md, not on every request of a command-line call.
    warnings.filterwarnings("ignore", message="Unverified HTTPS request")
    command = argv[0] if argv else ""
    if command == "kubeconfig":
        kubeconfig, detail = target()
        if kubeconfig is None:
            print(detail, file=sys.stderr)
            return 1
        print(kubeconfig)
        return 0
    if command == "probe":
        kubeconfig = argv[1] if len(argv) > 1 else os.environ.get("KUBECONFIG", "")
        ok, detail = probe(kubeconfig) if kubeconfig else (False, "no KUBECONFIG given")
        print(detail)
        return 0 if ok else 1
    if command == "cleanup":
        kubeconfig, detail = target()
        if kubeconfig is None or not RUN_ID:
            print(f"cleanup: nothing to do: {detail if kubeconfig is None else 'no MLFLOW_K8S_TEST_RUN'}")
            return 0
        for line in cleanup(kubeconfig, RUN_ID):
            print(f"cleanup: deleting {line}")
        return 0
    print("usage: python -m tests.harness.cluster kubeconfig | probe [KUBECONFIG] | cleanup", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
