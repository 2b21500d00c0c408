"""mlops.mlflow_k8s.k8s_objects_info against the API stand-in, through the real kubernetes
client: several kinds in one call, by name, by labels, a kind the cluster does not serve, and
the module's own checks of its input (through ansible-playbook, as a role calls it)."""

from __future__ import annotations

import uuid

import kubernetes
import pytest

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import objects_info
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ClusterError
from tests.harness.kube import standin
from tests.harness.playbook import run_playbook


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with standin.running(tmp_path_factory.mktemp("standin")) as server:
        yield server


@pytest.fixture(scope="module")
def core(api):
    with kubernetes.config.new_client_from_config(str(api.kubeconfig)) as client:
        yield kubernetes.client.CoreV1Api(client)


@pytest.fixture
def namespace(core):
    name = "objects-" + uuid.uuid4().hex[:8]
    core.create_namespace({"metadata": {"name": name}})
    for cm, labels in (("scripts", {"role": "backup"}), ("other", {"role": "server"})):
        core.create_namespaced_config_map(name, {"metadata": {"name": cm, "labels": labels}, "data": {"k": cm}})
    yield name
    core.delete_namespace(name)


def _run(api, queries):
    return objects_info.run({"queries": queries, "kubeconfig": str(api.kubeconfig)})


def test_each_query_is_answered_in_order(api, namespace):
    result = _run(
        api,
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


def test_nothing_to_read_is_refused_naming_the_option(api):
    with pytest.raises(ClusterError) as err:
        _run(api, [])
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


def test_the_module_in_a_play_and_its_input_checks(api, namespace):
    task = {
        "mlops.mlflow_k8s.k8s_objects_info": {
            "kubeconfig": str(api.kubeconfig),
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
                    "ansible.builtin.debug": {"msg": "{{ read.results | map(attribute='resources') | map('length') }}"},
                },
            ],
        }
    ]
    good = run_playbook(play, check=True)
    assert good.rc == 0, good.summary()
    assert good.task("Report").result["msg"] == [1, 2]
    assert not good.changed_tasks()

    task["mlops.mlflow_k8s.k8s_objects_info"]["queries"][0]["label_selectors"] = ["role=backup"]
    bad = run_playbook(play)
    assert bad.rc != 0
    assert "mutually exclusive: name|label_selectors" in bad.task("Read").msg
