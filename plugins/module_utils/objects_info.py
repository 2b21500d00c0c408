# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read several kinds of objects in one module run (mlops.mlflow_k8s.k8s_objects_info).

Each query is what one kubernetes.core.k8s_info task would ask (api_version, kind, and
optionally namespace, name and label selectors) and gets what it would return (``resources``,
``api_found``), in order. A role that needs the nodes and the ingress classes, or a ConfigMap
and two claims, pays for one Python start and one kubernetes client instead of one per read.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import k8s_client
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.args_common import auth_params
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ClusterError


def describe(query):
    """``Kind namespace/name`` (or the selector) of a query, for messages."""
    where = "/".join(part for part in (query.get("namespace"), query.get("name")) if part)
    text = query["kind"] + (" " + where if where else "")
    if query.get("label_selectors"):
        text += " labelled " + ",".join(query["label_selectors"])
    return text


def check(queries):
    """A ClusterError when there is nothing to read (the module's spec checks each query)."""
    if not queries:
        raise ClusterError("queries", "give at least one query")


class Reader(object):
    """The API side, over a kubernetes.dynamic.DynamicClient."""

    def __init__(self, dyn):
        self.dyn = dyn

    def read(self, query):
        """``(api_found, items)`` for one query; a kind the cluster does not serve is (False, [])."""
        from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

        try:
            resource = self.dyn.resources.get(api_version=query["api_version"], kind=query["kind"])
        except ResourceNotFoundError:
            return False, []
        scope = {"namespace": query["namespace"]} if resource.namespaced and query.get("namespace") else {}
        if query.get("name"):
            try:
                return True, [resource.get(name=query["name"], **scope).to_dict()]
            except NotFoundError:
                return True, []
        selector = ",".join(query.get("label_selectors") or [])
        listed = resource.get(label_selector=selector or None, **scope).to_dict()
        items = listed.get("items") or []
        for item in items:  # a list's items carry neither
            item.setdefault("apiVersion", query["api_version"])
            item.setdefault("kind", query["kind"])
        return True, items


def run(params, reader=None):
    """The module's whole call: ``results``, one dict per query in order."""
    queries = params["queries"]
    check(queries)
    results = []
    step = "discover the API"
    try:
        if reader is None:
            from kubernetes.dynamic import DynamicClient

            reader = Reader(DynamicClient(k8s_client.api_client(auth_params(params))))
        for query in queries:
            step = "read " + describe(query)
            found, items = reader.read(query)
            results.append(
                {
                    "api_version": query["api_version"],
                    "kind": query["kind"],
                    "namespace": query.get("namespace"),
                    "name": query.get("name"),
                    "api_found": found,
                    "resources": items,
                }
            )
    except Exception as exc:  # a ClusterError (no kubeconfig) is not an API error: it goes on as it is
        if k8s_client.is_api_error(exc):
            raise k8s_client.describe_api_error(exc, auth_params(params), step) from None
        raise
    return {"changed": False, "results": results}
