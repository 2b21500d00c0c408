"""The cluster role with cluster_provider=existing sets the cluster facts from a real API.

Every expected value is read here, independently, with the kubernetes client (not through the
collection's parsers), so a wrong parse or a wrong pick fails the test.
"""

from __future__ import annotations

import os
import stat
import sys
import uuid
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.cluster

FACTS = [
    "cluster_provider",
    "cluster_kubeconfig",
    "cluster_context",
    "cluster_api_address",
    "cluster_node_names",
    "cluster_node_addresses",
    "cluster_kubelet_root_dir",
    "cluster_ingress_class",
]
REPORT = "Report the cluster facts"


def play(hosts="localhost", **role_vars):
    report = {name: "{{ " + name + " }}" for name in FACTS}
    plays = [
        {
            "name": "Cluster",
            "hosts": hosts,
            "gather_facts": False,
            "roles": [{"role": "mlops.mlflow_k8s.cluster", "vars": {"cluster_provider": "existing", **role_vars}}],
            "post_tasks": [{"name": REPORT, "ansible.builtin.debug": {"msg": report}}],
        }
    ]
    if hosts != "localhost":
        plays.append(
            {
                "name": "Controller",
                "hosts": "localhost",
                "gather_facts": False,
                "tasks": [{"name": "Report the controller's cluster facts", "ansible.builtin.debug": {"msg": report}}],
            }
        )
    return plays


def expected_from_api(k8s, kubeconfig):
    from kubernetes import client

    config = yaml.safe_load(Path(kubeconfig).read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    server = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])["cluster"]["server"]
    nodes = sorted(client.CoreV1Api(k8s).list_node().items, key=lambda n: n.metadata.name)
    addresses = []
    for node in nodes:
        by_type = {}
        for address in node.status.addresses or []:
            by_type.setdefault(address.type, address.address)
        addresses.append(by_type.get("ExternalIP") or by_type.get("InternalIP") or by_type.get("Hostname"))
    classes = client.NetworkingV1Api(k8s).list_ingress_class().items
    return {
        "server": server,
        "names": [n.metadata.name for n in nodes],
        "addresses": addresses,
        "classes": classes,
    }


def default_class(classes):
    defaults = sorted(
        c.metadata.name
        for c in classes
        if (c.metadata.annotations or {}).get("ingressclass.kubernetes.io/is-default-class") == "true"
    )
    if defaults:
        return defaults[0]
    return classes[0].metadata.name if len(classes) == 1 else ""


@pytest.fixture
def ingress_class(k8s):
    """A uniquely named IngressClass, deleted after the test (it is cluster-scoped)."""
    from kubernetes import client

    api = client.NetworkingV1Api(k8s)
    name = f"mlflow-k8s-test-{uuid.uuid4().hex[:8]}"
    api.create_ingress_class(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": name, "labels": {"mlflow-k8s.test/owner": "pytest"}},
            "spec": {"controller": "example.org/mlflow-k8s-test"},
        }
    )
    yield name
    api.delete_ingress_class(name)


def test_existing_sets_every_fact_from_the_api(k8s, kubeconfig, playbook, node_name, node_address):
    expected = expected_from_api(k8s, kubeconfig)

    result = playbook(play(cluster_existing_kubeconfig=kubeconfig))
    assert result.rc == 0, result.summary()
    facts = result.task(REPORT).result["msg"]
    assert facts == {
        "cluster_provider": "existing",
        "cluster_kubeconfig": kubeconfig,
        "cluster_context": "",
        "cluster_api_address": expected["server"],
        "cluster_node_names": expected["names"],
        "cluster_node_addresses": expected["addresses"],
        "cluster_kubelet_root_dir": "/var/lib/kubelet",
        "cluster_ingress_class": default_class(expected["classes"]),
    }
    assert node_name in facts["cluster_node_names"]
    assert node_address in facts["cluster_node_addresses"]
    assert result.changed == 0, result.summary()


def test_existing_kubeconfig_from_the_environment_and_check_mode(kubeconfig, playbook):
    # cluster_existing_kubeconfig empty: $KUBECONFIG (the playbook fixture sets it)
    real = playbook(play(cluster_existing_kubelet_root_dir="/srv/kubelet"))
    check = playbook(play(cluster_existing_kubelet_root_dir="/srv/kubelet"), check=True)
    for result in (real, check):
        assert result.rc == 0, result.summary()
        assert result.changed == 0, result.summary()
    assert real.task(REPORT).result["msg"] == check.task(REPORT).result["msg"]
    assert real.task(REPORT).result["msg"]["cluster_kubeconfig"] == kubeconfig
    assert real.task(REPORT).result["msg"]["cluster_kubelet_root_dir"] == "/srv/kubelet"


def test_existing_facts_reach_every_host_and_the_controller(kubeconfig, playbook, tmp_path):
    inventory = {
        "all": {
            "children": {
                "mlflow_k8s_nodes": {
                    "hosts": {
                        name: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
                        for name in ("node-a", "node-b")
                    }
                }
            },
            "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
        }
    }
    result = playbook(play("mlflow_k8s_nodes", cluster_existing_kubeconfig=kubeconfig), inventory=inventory)
    assert result.rc == 0, result.summary()
    on_a = result.task(REPORT, "node-a").result["msg"]
    assert result.task(REPORT, "node-b").result["msg"] == on_a
    assert result.task("Report the controller's cluster facts", "localhost").result["msg"] == on_a
    # the API was read once, from the controller
    reads = [t for t in result.tasks if t.name.endswith("Read the nodes and the ingress classes")]
    assert len(reads) == 1, [t.host for t in reads]


def test_existing_ingress_class_override_and_ingress_required(k8s, kubeconfig, playbook, ingress_class):
    chosen = playbook(play(cluster_existing_kubeconfig=kubeconfig, cluster_ingress_class_override=ingress_class))
    assert chosen.rc == 0, chosen.summary()
    assert chosen.task(REPORT).result["msg"]["cluster_ingress_class"] == ingress_class

    missing = playbook(play(cluster_existing_kubeconfig=kubeconfig, cluster_ingress_class_override="no-such-class"))
    assert missing.rc != 0
    messages = " ".join(t.msg for t in missing.failed_tasks())
    assert "'no-such-class' does not exist" in messages
    assert ingress_class in messages  # it names the classes the cluster has


def test_existing_ingress_enabled_without_any_class_fails(k8s, kubeconfig, playbook):
    from kubernetes import client

    if client.NetworkingV1Api(k8s).list_ingress_class().items:
        pytest.skip("this cluster serves IngressClasses; the failure needs a cluster without any")
    result = playbook(play(cluster_existing_kubeconfig=kubeconfig, cluster_ingress_enabled=True))
    assert result.rc != 0
    [failed] = result.failed_tasks()
    assert failed.name.endswith("Fail when ingress is wanted and the cluster serves no IngressClass")
    assert "cluster_ingress_enabled" in failed.msg


def test_existing_missing_kubeconfig_fails_naming_the_option(playbook, tmp_path):
    missing = tmp_path / "nope.kubeconfig"
    result = playbook(play(cluster_existing_kubeconfig=str(missing)))
    assert result.rc != 0
    [failed] = result.failed_tasks()
    assert failed.msg.startswith("cluster_existing_kubeconfig: no kubeconfig at " + str(missing))


def test_existing_context_other_than_current(k8s, kubeconfig, playbook, tmp_path):
    # A copy of the kubeconfig with a second, differently named context: the role must
    # use the one asked for, and read the API through it.
    config = yaml.safe_load(Path(kubeconfig).read_text())
    current = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    config["contexts"].append({"name": "mlflow-test", "context": dict(current["context"])})
    config["clusters"].append({"name": "elsewhere", "cluster": {"server": "https://192.0.2.1:6443"}})
    config["contexts"].append(
        {"name": "broken", "context": {"cluster": "elsewhere", "user": current["context"]["user"]}}
    )
    config["current-context"] = "broken"
    path = tmp_path / "two-contexts.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)

    result = playbook(play(cluster_existing_kubeconfig=str(path), cluster_existing_context="mlflow-test"))
    assert result.rc == 0, result.summary()
    facts = result.task(REPORT).result["msg"]
    assert facts["cluster_context"] == "mlflow-test"
    assert facts["cluster_api_address"] == expected_from_api(k8s, kubeconfig)["server"]
    assert facts["cluster_node_names"] == expected_from_api(k8s, kubeconfig)["names"]
