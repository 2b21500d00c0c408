#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# ruff: noqa: E402 (Ansible modules keep DOCUMENTATION before the imports)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: remove_by_labels
short_description: Delete what a role deployed, found by its labels, in the order that keeps nothing dangling
version_added: "0.1.0"
description:
  - Lists the objects of O(kinds) that match every one of O(label_selectors) and deletes, in this order,
    the namespaced ones in O(namespace) (all at once, background propagation, then waits until they are
    gone), the PersistentVolumes whose claim was in O(namespace) (other namespaces' volumes stay), and
    the StorageClasses found that no PersistentVolume of the cluster uses any more.
  - Namespaces are never deleted, whatever O(kinds) says. A kind the cluster does not serve (a CRD that
    is not installed) has no objects and is passed over.
  - The cluster role's C(remove) entry point calls it with the kinds the role's templates create.
author:
  - MLOps platform team (@mlops-platform)
extends_documentation_fragment:
  - mlops.mlflow_k8s.k8s_auth
attributes:
  check_mode:
    support: full
    description: Lists what would be deleted and deletes nothing.
  diff_mode:
    support: none
    description: No diff is reported.
options:
  namespace:
    description:
      - Namespace of the namespaced objects, and the claim namespace of the volumes that go with them.
    type: str
    required: true
  kinds:
    description:
      - The kinds to look for.
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
  label_selectors:
    description:
      - Label selectors every object must match (C(key=value) or C(key)), as kubernetes.core.k8s_info takes them.
    type: list
    elements: str
    required: true
  timeout:
    description:
      - Seconds to wait at most for the namespaced objects, and then for the volumes, to be gone.
    type: int
    default: 120
seealso:
  - module: kubernetes.core.k8s
"""

EXAMPLES = r"""
- name: Remove what the database role deployed (volumes and Secrets too)
  mlops.mlflow_k8s.remove_by_labels:
    namespace: mlflow
    label_selectors:
      - app.kubernetes.io/part-of=mlflow-platform
      - app.kubernetes.io/component=database
    kinds:
      - {api_version: apps/v1, kind: StatefulSet}
      - {api_version: v1, kind: Service}
      - {api_version: v1, kind: Secret}
      - {api_version: v1, kind: PersistentVolumeClaim}
      - {api_version: v1, kind: PersistentVolume}
"""

RETURN = r"""
removed:
  description: What was deleted (in check mode, what would be), as C(Kind/name), in the order of deletion.
  returned: always
  type: list
  elements: str
kept:
  description: StorageClasses found but kept, because a PersistentVolume still uses them.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.args_common import auth_argument_spec
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.entry import finish
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.k8s_client import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
)
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.remove import run


def argument_spec():
    spec = auth_argument_spec()
    spec.update(
        namespace={"type": "str", "required": True},
        kinds={
            "type": "list",
            "elements": "dict",
            "required": True,
            "options": {"api_version": {"type": "str", "required": True}, "kind": {"type": "str", "required": True}},
        },
        label_selectors={"type": "list", "elements": "str", "required": True},
        timeout={"type": "int", "default": 120},
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if module.params["timeout"] < 0:
        module.fail_json(msg="timeout: must not be negative, got {0}".format(module.params["timeout"]))
    if not module.params["label_selectors"]:
        module.fail_json(msg="label_selectors: give at least one, or every object of the kinds would go")
    finish(
        module,
        lambda: run(module.params, check_mode=module.check_mode),
        requires=[("kubernetes", HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR)],
    )


if __name__ == "__main__":
    main()
