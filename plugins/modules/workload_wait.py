#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# ruff: noqa: E402 (Ansible modules keep DOCUMENTATION before the imports)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: workload_wait
short_description: Wait for a rollout or a Job, and fail as soon as one of its pods is stuck
version_added: "0.1.0"
description:
  - Waits until a Deployment or StatefulSet has rolled out (as C(kubectl rollout status) says) or a Job
    has completed.
  - Meanwhile looks at the pods of the rollout (a Deployment's newest ReplicaSet, every pod of a StatefulSet,
    the Job's pods) and fails at once when one is in a state that does not heal by itself, naming the pod,
    its state, its last events and its last log lines. Stuck means a container that failed twice the same
    way, one restart after the other (the same exit code and the same last log line, C(RepeatedFailure),
    however slow each attempt and however long the kubelet's back-off), C(CrashLoopBackOff) past
    O(max_restarts) restarts (when the wait did not see the first of two failures), C(ErrImagePull),
    C(ImagePullBackOff), C(InvalidImageName), C(CreateContainerConfigError) (a missing Secret or ConfigMap),
    C(CreateContainerError), unschedulable with the scheduler's reason (a missing PVC, no fitting node; not
    while a claim is being bound), a missing Secret/ConfigMap volume or hostPath directory.
  - Only reads. Credentials never pass through it, so the task that calls it needs no C(no_log).
author:
  - MLOps platform team (@mlops-platform)
extends_documentation_fragment:
  - mlops.mlflow_k8s.k8s_auth
attributes:
  check_mode:
    support: full
    description: Reports what it would wait for and reads nothing (the object may not exist yet).
  diff_mode:
    support: none
    description: Nothing changes.
options:
  kind:
    description:
      - Kind of the workload.
    type: str
    choices: [Deployment, StatefulSet, Job]
    required: true
  name:
    description:
      - Name of the workload.
    type: str
    required: true
  namespace:
    description:
      - Namespace of the workload.
    type: str
    required: true
  timeout:
    description:
      - Seconds to wait at most.
    type: int
    default: 600
  max_restarts:
    description:
      - Restarts of a crash-looping container after which its pod counts as stuck, whatever its failures
        looked like (two failures alike are enough when the wait saw both).
    type: int
    default: 3
  log_lines:
    description:
      - Last log lines of a stuck or failed container to include in the message.
    type: int
    default: 20
  job_log:
    description:
      - For a Job that ended (C(Complete) or C(Failed)), return in RV(log) the whole log of every container of
        its newest pod, init containers first, in their order (what a caller parses, without one
        M(kubernetes.core.k8s_log) task per container). Ignored for other kinds.
    type: bool
    default: false
seealso:
  - module: kubernetes.core.k8s_info
"""

EXAMPLES = r"""
- name: Wait for the database
  mlops.mlflow_k8s.workload_wait:
    kind: StatefulSet
    namespace: mlflow
    name: mlflow-postgresql
    timeout: 600

- name: Wait for a Job, failing on its first sign of a pod that cannot start
  mlops.mlflow_k8s.workload_wait:
    kind: Job
    namespace: mlflow
    name: mlflow-storage-hostpath-init
    timeout: 300
"""

RETURN = r"""
state:
  description:
    - C(Ready) (rolled out), C(Complete) (Job), C(Failed) (Job failed, Deployment past its progress deadline),
      C(Stuck) (see RV(stuck)), C(TimedOut), C(Missing) (no such object), C(Planned) in check mode.
  returned: always
  type: str
msg:
  description: What happened, in one message (on failure the pod, its state, events and log lines).
  returned: always
  type: str
status:
  description: The workload's status when the wait ended.
  returned: when the workload exists
  type: dict
stuck:
  description: The pod that ended the wait early.
  returned: when a pod was stuck
  type: dict
  contains:
    pod:
      description: Pod name.
      type: str
    reason:
      description: C(RepeatedFailure), C(CrashLoopBackOff), C(ImagePullBackOff), C(Unschedulable), ...
      type: str
    message:
      description: The kubelet's or scheduler's message.
      type: str
    container:
      description: The container concerned, if any.
      type: str
    events:
      description: The pod's last events, each its reason, a colon and its message, oldest first.
      type: list
      elements: str
    log:
      description: The container's last log lines.
      type: str
log:
  description:
    - The log of each container of the Job's newest pod, one after the other (credentials masked, as in RV(msg));
      empty when the pod wrote nothing or is gone.
  returned: with O(job_log), when a Job ended
  type: str
pending_reasons:
  description: What the rollout and its pods waited for meanwhile (distinct texts, oldest first).
  returned: unless in check mode
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
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.rollout import KINDS, run


def argument_spec():
    spec = auth_argument_spec()
    spec.update(
        kind={"type": "str", "choices": list(KINDS), "required": True},
        name={"type": "str", "required": True},
        namespace={"type": "str", "required": True},
        timeout={"type": "int", "default": 600},
        max_restarts={"type": "int", "default": 3},
        log_lines={"type": "int", "default": 20},
        job_log={"type": "bool", "default": False},
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    for option in ("timeout", "max_restarts", "log_lines"):
        if module.params[option] < 0:
            module.fail_json(msg="{0}: must not be negative, got {1}".format(option, module.params[option]))
    finish(
        module,
        lambda: run(module.params, check_mode=module.check_mode),
        requires=[("kubernetes", HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR)],
    )


if __name__ == "__main__":
    main()
