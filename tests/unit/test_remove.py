"""The order rules of the cluster role's remove step (module_utils/remove.py): what goes, and
in which group. The deletes themselves run against an API in tests/cluster/test_site.py
(teardown by labels, kept volumes and Secrets without purge, purge)."""

import pytest

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import remove


def _obj(kind, name, namespace=None, **spec):
    metadata = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": "v1", "kind": kind, "metadata": metadata, "spec": spec}


def test_select_keeps_the_namespace_and_the_volumes_claimed_from_it():
    found = [
        _obj("Service", "mlflow-server", "mlflow"),
        _obj("Service", "mlflow-server", "other"),
        _obj("Namespace", "mlflow"),
        _obj("PersistentVolume", "pv-ours", claimRef={"namespace": "mlflow", "name": "data"}),
        _obj("PersistentVolume", "pv-theirs", claimRef={"namespace": "other", "name": "data"}),
        _obj("PersistentVolume", "pv-unbound"),
        _obj("StorageClass", "mlflow-hostpath"),
    ]
    namespaced, volumes, classes = remove.select(found, "mlflow")
    assert [(o["kind"], o["metadata"].get("namespace")) for o in namespaced] == [("Service", "mlflow")]
    assert [o["metadata"]["name"] for o in volumes] == ["pv-ours"]
    assert [o["metadata"]["name"] for o in classes] == ["mlflow-hostpath"]


def test_a_storage_class_goes_only_when_no_volume_uses_it():
    classes = [_obj("StorageClass", "used"), _obj("StorageClass", "free")]
    left = [_obj("PersistentVolume", "pv", storageClassName="used"), _obj("PersistentVolume", "no-class")]
    assert [c["metadata"]["name"] for c in remove.unused_classes(classes, left)] == ["free"]


class FakeRemover:
    """Stands in for the API side: which objects exist, and what delete/wait were asked."""

    def __init__(self, found, stays=()):
        self.found = found
        self.stays = set(stays)
        self.calls = []

    def find(self, kinds, namespace, selector):
        self.calls.append(("find", tuple(kinds), namespace, selector))
        return self.found

    def delete(self, objects):
        self.calls.append(("delete", [o["metadata"]["name"] for o in objects]))

    def wait_gone(self, objects, timeout):
        return [o for o in objects if o["metadata"]["name"] in self.stays]

    def volumes(self):
        return []


PARAMS = {
    "namespace": "mlflow",
    "timeout": 5,
    "label_selectors": ["app.kubernetes.io/part-of=mlflow-platform", "app.kubernetes.io/component=database"],
    "kinds": [{"api_version": "v1", "kind": "Service"}, {"api_version": "v1", "kind": "PersistentVolume"}],
}


def test_namespaced_objects_go_before_the_volumes_and_the_classes():
    found = [
        _obj("PersistentVolume", "pv", claimRef={"namespace": "mlflow"}),
        _obj("Service", "db", "mlflow"),
        _obj("StorageClass", "sc"),
    ]
    fake = FakeRemover(found)
    result = remove.run(PARAMS, remover=fake)
    assert fake.calls[0] == (
        "find",
        (("v1", "Service"), ("v1", "PersistentVolume")),
        "mlflow",
        "app.kubernetes.io/part-of=mlflow-platform,app.kubernetes.io/component=database",
    )
    assert fake.calls[1:] == [("delete", ["db"]), ("delete", ["pv"]), ("delete", ["sc"])]
    assert result == {"changed": True, "removed": ["Service/db", "PersistentVolume/pv", "StorageClass/sc"], "kept": []}


def test_an_object_that_stays_fails_naming_it_and_the_volumes_are_not_touched():
    found = [
        _obj("PersistentVolumeClaim", "data", "mlflow"),
        _obj("PersistentVolume", "pv", claimRef={"namespace": "mlflow"}),
    ]
    fake = FakeRemover(found, stays={"data"})
    result = remove.run(PARAMS, remover=fake)
    assert result["failed"] is True
    assert "PersistentVolumeClaim/data" in result["msg"] and "5 s" in result["msg"]
    assert ("delete", ["pv"]) not in fake.calls


@pytest.mark.parametrize("found", [[], [_obj("Service", "db", "mlflow")]])
def test_check_mode_deletes_nothing(found):
    fake = FakeRemover(found)
    result = remove.run(PARAMS, check_mode=True, remover=fake)
    assert [c[0] for c in fake.calls] == ["find"]
    assert result["changed"] is bool(found)
    assert result["removed"] == [f"Service/{o['metadata']['name']}" for o in found]
