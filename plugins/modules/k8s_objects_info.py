#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# ruff: noqa: E402 (Ansible modules keep DOCUMENTATION before the imports)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: k8s_objects_info
short_description: Read several kinds of Kubernetes objects in one module run
version_added: "0.1.0"
description:
  - Answers each of O(queries) as M(kubernetes.core.k8s_info) would answer it alone (the objects of one kind,
    by name, by label selectors, in a namespace or cluster-wide) and returns the answers in order.
  - One module run for what would be several k8s_info tasks, so one Python start and one kubernetes client;
    the roles read their cluster facts and check their prerequisites with it.
  - A kind the cluster does not serve (a CRD that is not installed) gives no objects and RV(results[].api_found)
    false; an object asked for by name that does not exist gives no objects.
  - Reads only; never reports changed. Objects are returned whole (a Secret with its data), so give the task
    C(no_log) when a query reads Secrets.
author:
  - MLOps platform team (@mlops-platform)
extends_documentation_fragment:
  - mlops.mlflow_k8s.k8s_auth
attributes:
  check_mode:
    support: full
    description: Reads in check mode as in a normal run.
  diff_mode:
    support: none
    description: No diff is reported.
options:
  queries:
    description:
      - What to read, one entry per kind.
    type: list
    elements: dict
    required: true
    suboptions:
      api_version:
        description: API group and version, as in a manifest's C(apiVersion).
        type: str
        required: true
      kind:
        description: The kind.
        type: str
        required: true
      namespace:
        description: The namespace of a namespaced kind; all namespaces when not given. Ignored for cluster-wide kinds.
        type: str
      name:
        description: One object by its name. Excludes O(queries[].label_selectors).
        type: str
      label_selectors:
        description:
          - Label selectors every object must match (C(key=value) or C(key)), as M(kubernetes.core.k8s_info)
            takes them.
        type: list
        elements: str
seealso:
  - module: kubernetes.core.k8s_info
"""

EXAMPLES = r"""
- name: Read the nodes and the ingress classes
  mlops.mlflow_k8s.k8s_objects_info:
    queries:
      - {api_version: v1, kind: Node}
      - {api_version: networking.k8s.io/v1, kind: IngressClass}
  register: cluster_read

- name: Use them
  ansible.builtin.debug:
    msg: >-
      {{ cluster_read.results[0].resources | length }} nodes,
      {{ cluster_read.results[1].resources | length }} ingress classes
"""

RETURN = r"""
results:
  description: One answer per query, in the order of O(queries).
  returned: always
  type: list
  elements: dict
  contains:
    api_version:
      description: The query's API version.
      type: str
    kind:
      description: The query's kind.
      type: str
    namespace:
      description: The query's namespace (null when none was given).
      type: str
    name:
      description: The query's name (null when none was given).
      type: str
    api_found:
      description: Whether the cluster serves this kind.
      type: bool
    resources:
      description: The objects found, each as the API returns it (with C(apiVersion) and C(kind)).
      type: list
      elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.args_common import auth_argument_spec
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.entry import finish
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.k8s_client import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
)
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.objects_info import run


def argument_spec():
    spec = auth_argument_spec()
    spec.update(
        queries={
            "type": "list",
            "elements": "dict",
            "required": True,
            "options": {
                "api_version": {"type": "str", "required": True},
                "kind": {"type": "str", "required": True},
                "namespace": {"type": "str"},
                "name": {"type": "str"},
                "label_selectors": {"type": "list", "elements": "str"},
            },
            "mutually_exclusive": [["name", "label_selectors"]],
        },
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    finish(
        module,
        lambda: run(module.params),
        requires=[("kubernetes", HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR)],
    )


if __name__ == "__main__":
    main()
