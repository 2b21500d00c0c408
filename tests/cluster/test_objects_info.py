"""mlops.mlflow_k8s.k8s_objects_info against the session's cluster, through the real kubernetes
client: several kinds in one call, by name, by labels, a kind the cluster does not serve, and
the module's own checks of its input (through ansible-playbook, as a role calls it)."""

from __future__ import annotations

import kubernetes
import pytest

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import objects_info
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ClusterError

pytestmark = pytest.mark.cluster


@pytest.fixture
def objects(k8s, namespace):
    """The test's namespace with two ConfigMaps: scripts (role=backup) and other (role=server)."""
    core = kubernetes.client.CoreV1Api(k8s)
    for cm, labels in (("scripts", {"role": "backup"}), ("other", {"role": "server"})):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": cm, "labels": labels}, "data": {"k": cm}})
    return namespace


def _run(kubeconfig, queries):
    return objects_info.run({"queries": queries, "kubeconfig": kubeconfig})


def test_each_query_is_answered_in_order(kubeconfig, objects):
    namespace = objects
    result = _run(
        kubeconfig,
        [
            {"api_version": "v1", "kind": "ConfigMap", "namespace": namespace, "name": "scripts"},
            {"api_version": "v1", "kind": "ConfigMap", "namespace": namespace, "name": "missing"},
            {"api_version": "v1", "kind": "ConfigMap", "namespace": namespace, "label_selectors": ["role=server"]},
            {"api_version": "example.com/v1", "kind": "Widget"},
            {"api_version": "v1", "kind": "Namespace", "name": namespace},
        ],
    )
    assert result["changed"] is False
    by_name, missing, labelled, unserved, ns = result["results"]
    assert [r["metadata"]["name"] for r in by_name["resources"]] == ["scripts"]
    assert by_name["resources"][0]["data"] == {"k": "scripts"}
    assert (by_name["api_found"], missing["api_found"], missing["resources"]) == (True, True, [])
    assert [(r["kind"], r["metadata"]["name"]) for r in labelled["resources"]] == [("ConfigMap", "other")]
    assert (unserved["api_found"], unserved["resources"]) == (False, [])
    assert [r["metadata"]["name"] for r in ns["resources"]] == [namespace]
    assert [(r["kind"], r["name"]) for r in result["results"]] == [
        ("ConfigMap", "scripts"),
        ("ConfigMap", "missing"),
        ("ConfigMap", None),
        ("Widget", None),
        ("Namespace", namespace),
    ]


def test_nothing_to_read_is_refused_naming_the_option(kubeconfig):
    with pytest.raises(ClusterError) as err:
        _run(kubeconfig, [])
    assert err.value.option == "queries"


def test_an_unreachable_api_names_the_read(tmp_path):
    dead = tmp_path / "kubeconfig"
    dead.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n"
    )
    with pytest.raises(ClusterError) as err:
        objects_info.run({"queries": [{"api_version": "v1", "kind": "Node"}], "kubeconfig": str(dead)})
    assert "cannot reach the Kubernetes API" in str(err.value.text())


def test_the_module_in_a_play_and_its_input_checks(playbook, kubeconfig, k8s, objects):
    namespace = objects
    task = {
        "mlops.mlflow_k8s.k8s_objects_info": {
            "kubeconfig": kubeconfig,
            "queries": [
                {"api_version": "v1", "kind": "ConfigMap", "namespace": namespace, "name": "scripts"},
                {"api_version": "v1", "kind": "ConfigMap", "namespace": namespace},
            ],
        },
        "register": "read",
    }
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {"name": "Read", **task},
                {
                    "name": "Report",
                    "ansible.builtin.debug": {
                        "msg": "{{ read.results | map(attribute='resources') | map('map', attribute='metadata.name')"
                        " | map('sort') }}"
                    },
                },
            ],
        }
    ]
    good = playbook(play, check=True)
    assert good.rc == 0, good.summary()
    # The whole namespace: the two ConfigMaps of the test and those the cluster puts in every
    # namespace (kube-root-ca.crt, ...), exactly what the API lists there.
    listed = sorted(
        cm.metadata.name for cm in kubernetes.client.CoreV1Api(k8s).list_namespaced_config_map(namespace).items
    )
    assert {"scripts", "other"} <= set(listed), listed
    assert good.task("Report").result["msg"] == [["scripts"], listed]
    assert not good.changed_tasks()

    task["mlops.mlflow_k8s.k8s_objects_info"]["queries"][0]["label_selectors"] = ["role=backup"]
    bad = playbook(play)
    assert bad.rc != 0
    assert "mutually exclusive: name|label_selectors" in bad.task("Read").msg
