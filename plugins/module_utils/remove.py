# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find the objects a role deployed by their labels, and delete them in the safe order.

The logic of mlops.mlflow_k8s.remove_by_labels (the cluster role's ``remove`` entry point).
What goes, of the kinds asked for, matching every label selector:

1. the namespaced objects in the namespace, all deleted at once (background propagation),
   then waited for until they are gone (a claim stays while a pod still uses it);
2. then the PersistentVolumes whose claimRef names that namespace (other namespaces' volumes
   stay, whatever their labels);
3. then the StorageClasses found, each only once no PersistentVolume of the cluster uses it.

Namespaces are never deleted. One module call replaces a k8s_info and a k8s call per kind and
per object: a teardown is a handful of API requests instead of dozens of module runs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import time

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import k8s_client
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.args_common import auth_params

CLUSTER_KINDS = ("PersistentVolume", "StorageClass")
NEVER = ("Namespace",)


def _name(obj):
    return "{0}/{1}".format(obj["kind"], obj["metadata"]["name"])


def select(found, namespace):
    """Split what the label search found into (namespaced, volumes, storage_classes), in delete order.

    ``found``: object dicts (``kind``, ``metadata``, ``spec``). Pure, so the order rules are
    tested without a cluster.
    """
    namespaced = [obj for obj in found if obj["kind"] not in NEVER and obj["metadata"].get("namespace") == namespace]
    volumes = [
        obj
        for obj in found
        if obj["kind"] == "PersistentVolume"
        and ((obj.get("spec") or {}).get("claimRef") or {}).get("namespace") == namespace
    ]
    classes = [obj for obj in found if obj["kind"] == "StorageClass"]
    return namespaced, volumes, classes


def unused_classes(classes, volumes_left):
    """The StorageClasses of ``classes`` that no PersistentVolume of ``volumes_left`` names."""
    used = set((v.get("spec") or {}).get("storageClassName") or "" for v in volumes_left)
    return [c for c in classes if c["metadata"]["name"] not in used]


class Remover(object):
    """The API side, over a kubernetes.dynamic.DynamicClient."""

    def __init__(self, dyn, interval=0.25, clock=time.monotonic, sleep=time.sleep):
        self.dyn = dyn
        self.interval = interval
        self.clock = clock
        self.sleep = sleep

    def resource(self, api_version, kind):
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            return self.dyn.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            return None  # a kind this cluster does not serve (a CRD not installed) has no objects

    def find(self, kinds, namespace, selector):
        from kubernetes.dynamic.exceptions import NotFoundError

        found = []
        for api_version, kind in kinds:
            if kind in NEVER:
                continue
            resource = self.resource(api_version, kind)
            if resource is None:
                continue
            scope = {} if not resource.namespaced else {"namespace": namespace}
            try:
                listed = resource.get(label_selector=selector, **scope).to_dict()
            except NotFoundError:
                # Served when the (cached, shared) discovery was taken, gone since: a CRD deleted
                # meanwhile has no objects. A list in a missing namespace is empty, never a 404.
                continue
            for item in listed.get("items") or []:
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", kind)
                found.append(item)
        return found

    def delete(self, objects):
        from kubernetes.dynamic.exceptions import NotFoundError

        for obj in objects:
            resource = self.resource(obj["apiVersion"], obj["kind"])
            with contextlib.suppress(NotFoundError):  # gone already: what was asked
                resource.delete(
                    name=obj["metadata"]["name"],
                    namespace=obj["metadata"].get("namespace"),
                    body={"propagationPolicy": "Background"},
                )

    def wait_gone(self, objects, timeout):
        from kubernetes.dynamic.exceptions import NotFoundError

        deadline = self.clock() + timeout
        left = list(objects)
        while left:
            still = []
            for obj in left:
                resource = self.resource(obj["apiVersion"], obj["kind"])
                try:
                    resource.get(name=obj["metadata"]["name"], namespace=obj["metadata"].get("namespace"))
                    still.append(obj)
                except NotFoundError:
                    pass
            left = still
            if not left:
                return []
            if self.clock() >= deadline:
                return left
            self.sleep(self.interval)
        return []

    def volumes(self):
        resource = self.resource("v1", "PersistentVolume")
        return (resource.get().to_dict().get("items") or []) if resource is not None else []


def _stuck(objects, timeout):
    return "still there {0} s after their deletion: {1} (a finalizer or a pod that does not end?)".format(
        timeout, ", ".join(_name(o) for o in objects)
    )


def run(params, check_mode=False, remover=None):
    """The module's whole call: the result dict (``failed`` and ``msg`` when something stayed)."""
    namespace, timeout = params["namespace"], params["timeout"]
    selector = ",".join(params["label_selectors"])
    kinds = [(k["api_version"], k["kind"]) for k in params["kinds"]]
    if remover is None:
        from kubernetes.dynamic import DynamicClient

        remover = Remover(DynamicClient(k8s_client.api_client(auth_params(params))))
    step = "find the objects labelled {0} in namespace {1}".format(selector, namespace)
    try:
        namespaced, volumes, classes = select(remover.find(kinds, namespace, selector), namespace)
        result = {"changed": False, "removed": [], "kept": []}
        if check_mode:
            # Every class found counts: whether its volumes go first is not known without deleting.
            result["removed"] = [_name(o) for o in namespaced + volumes + classes]
            result["changed"] = bool(result["removed"])
            return result
        for group in (namespaced, volumes):
            step = "delete " + ", ".join(_name(o) for o in group)
            remover.delete(group)
            left = remover.wait_gone(group, timeout)
            result["removed"] += [_name(o) for o in group if o not in left]
            result["changed"] = result["changed"] or bool(group)
            if left:
                result.update(failed=True, msg=_stuck(left, timeout))
                return result
        if classes:
            step = "look for the volumes of the storage classes " + ", ".join(_name(c) for c in classes)
            going = unused_classes(classes, remover.volumes())
            result["kept"] = [_name(c) for c in classes if c not in going]
            step = "delete " + ", ".join(_name(c) for c in going)
            remover.delete(going)
            result["removed"] += [_name(c) for c in going]
            result["changed"] = result["changed"] or bool(going)
    except Exception as exc:  # a ClusterError (no kubeconfig) is not an API error: it goes on as it is
        if k8s_client.is_api_error(exc):
            raise k8s_client.describe_api_error(exc, auth_params(params), step, namespace) from None
        raise
    return result
