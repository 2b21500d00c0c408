#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# ruff: noqa: E402 (Ansible modules keep DOCUMENTATION before the imports)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: mlflow_project_job_info
short_description: Read MLflow project Jobs and the status of their runs
version_added: "0.1.0"
description:
  - Lists the Jobs that M(mlops.mlflow_k8s.mlflow_project_job) created, with their state and their MLflow run.
    By default it changes nothing, as an C(_info) module must not.
  - A run whose submitter died (or did not wait) still says RUNNING after its Job ended. A
    M(mlops.mlflow_k8s.mlflow_project_job) call with the same inputs settles it; so does this module with
    O(sync_run=true), which sets such a run to FINISHED or FAILED from the Job's conditions, with the Job's
    end time, and stores the pod's log as the run's artifact. That is the only change it makes, and it
    reports it as C(changed).
author:
  - MLOps platform team (@mlops-platform)
extends_documentation_fragment:
  - mlops.mlflow_k8s.k8s_auth
attributes:
  check_mode:
    support: full
    description: Reports which runs it would update (O(sync_run=true)), updates none.
  diff_mode:
    support: none
    description: Nothing to compare; the runs it updates are reported per Job.
requirements:
  - mlflow >= 3.17
options:
  namespace:
    description:
      - Namespace of the Jobs.
    type: str
    default: default
  name:
    description:
      - Name of one Job.
    type: str
  run_id:
    description:
      - Only the Job of this MLflow run.
    type: str
  label_selector:
    description:
      - Further label selector, for example C(mlops.mlflow-k8s/project=wine-quality).
    type: str
  tracking_uri:
    description:
      - Tracking server of the runs. Defaults to E(MLFLOW_TRACKING_URI).
      - The only server the module talks to, with the controller's MLflow credentials
        (E(MLFLOW_TRACKING_USERNAME)/E(MLFLOW_TRACKING_PASSWORD)/E(MLFLOW_TRACKING_TOKEN)). The URI a Job records
        (its C(mlops.mlflow-k8s/tracking-uri) annotation) is never contacted, since anyone who can edit Jobs in
        the namespace can write it. A Job naming another server gets a warning and RV(jobs[].recorded_tracking_uri);
        without this option and the variable, no run is read at all.
    type: str
  sync_run:
    description:
      - Set the status of runs whose Job ended but which still say RUNNING (FINISHED or FAILED, ended at the
        Job's completion or failure time). Off by default, so that reading changes nothing.
    type: bool
    default: false
  logs:
    description:
      - Return the tail of each Job's pod log (and, with O(sync_run=true), store the whole log on runs being
        settled).
    type: bool
    default: false
  log_tail_lines:
    description:
      - Lines of log returned with O(logs=true).
    type: int
    default: 100
seealso:
  - module: mlops.mlflow_k8s.mlflow_project_job
"""

EXAMPLES = r"""
- name: List the project Jobs in the namespace with their runs' status
  mlops.mlflow_k8s.mlflow_project_job_info:
    namespace: mlflow-projects
  register: project_jobs

- name: Bring every project run in the namespace up to date (after a submitter died)
  mlops.mlflow_k8s.mlflow_project_job_info:
    namespace: mlflow-projects
    tracking_uri: http://mlflow.example.com:30500  # the only server the runs are read from
    sync_run: true

- name: Read one run's Job and its log
  mlops.mlflow_k8s.mlflow_project_job_info:
    namespace: mlflow-projects
    run_id: "{{ wine.run.run_id }}"
    logs: true
"""

RETURN = r"""
namespace:
  description: The namespace read.
  returned: always
  type: str
jobs:
  description: The Jobs found, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Job name.
      type: str
    namespace:
      description: Job namespace.
      type: str
    state:
      description: C(Complete), C(Failed), C(Running) or C(Pending).
      type: str
    message:
      description: Message of the Job's final condition.
      type: str
    run_id:
      description: MLflow run id from the Job's label.
      type: str
    run_status:
      description: Status of the MLflow run (after the sync, with O(sync_run=true)).
      type: str
    run_synced:
      description: Whether this call changed the run's status (only with O(sync_run=true)).
      type: bool
    identity:
      description: Submission identity of the Job.
      type: str
    start_time:
      description: When the Job started.
      type: str
    completion_time:
      description: When the Job completed.
      type: str
    succeeded:
      description: Pods that succeeded.
      type: int
    failed:
      description: Pods that failed.
      type: int
    logs:
      description: Log tail, with logs=true.
      type: str
    recorded_tracking_uri:
      description:
        - The tracking URI the Job's annotation names, when it is not O(tracking_uri). It was not contacted.
      returned: when a Job names another tracking server
      type: str
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.args_common import (
    auth_argument_spec,
    tracking_uri_spec,
)
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.entry import finish
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.k8s_client import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
)
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.tracking import HAS_MLFLOW, MLFLOW_IMPORT_ERROR


def argument_spec():
    spec = auth_argument_spec()
    spec.update(
        namespace={"type": "str", "default": "default"},
        name={"type": "str"},
        run_id={"type": "str"},
        label_selector={"type": "str"},
        tracking_uri=tracking_uri_spec(),
        sync_run={"type": "bool", "default": False},
        logs={"type": "bool", "default": False},
        log_tail_lines={"type": "int", "default": 100},
    )
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        mutually_exclusive=[("name", "run_id")],
    )

    def call():
        from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.job import TrackingGuard
        from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.runner import Runner

        runner = Runner(module.params, check_mode=module.check_mode, warn=module.warn)
        guard = TrackingGuard(module.params.get("tracking_uri"))
        guard.install(runner)  # never a tracking URI from the cluster, with the controller's credentials
        return guard.report(runner.info(), module.warn)

    finish(
        module,
        call,
        requires=[("kubernetes", HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR), ("mlflow", HAS_MLFLOW, MLFLOW_IMPORT_ERROR)],
    )


if __name__ == "__main__":
    main()
