"""Issue #28 point 8 on rendered manifests: the platform namespace is labelled for Pod Security
``restricted`` and every workload the platform roles render passes it.

For every case of the storage, database and mlflow_server roles: each pod template (Deployment,
StatefulSet, Job, a CronJob's Job template) meets every rule of ``restricted``
(``job.restricted_violations``, the check mlflow_project_job makes before it creates a Job), and
the storage role's Namespace carries the labels of ``storage_namespace_pod_security``. The rig
proves the same on the real API server: every platform of tests/cluster runs in a namespace the
storage role labelled, and tests/cluster/test_storage_database.py sees a root pod refused there.
"""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import job as job_utils
from tests.manifests import harness

ROLES = ("storage", "database", "mlflow_server")
CASES = [case for case in harness.load_cases() if case.role in ROLES]


def pod_templates(manifest: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(path, pod spec) of every pod template ``manifest`` carries."""
    kind, spec = manifest.get("kind"), manifest.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"):
        return [("spec.template.spec", spec["template"]["spec"])]
    if kind == "CronJob":
        return [("spec.jobTemplate.spec.template.spec", spec["jobTemplate"]["spec"]["template"]["spec"])]
    if kind == "Pod":
        return [("spec", spec)]
    return []


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_every_platform_workload_passes_restricted(case, rendered):
    result = rendered[case.id]
    assert result.error is None, result.error
    checked = 0
    for manifest in result.manifests:
        for path, pod_spec in pod_templates(manifest):
            checked += 1
            violations = job_utils.restricted_violations(pod_spec, path=path)
            assert violations == [], f"{harness.describe(manifest)}: {violations}"
    if case.role != "storage" and not case.vars.get("database_engine", "").startswith("external"):
        assert checked, f"{case.id} rendered no workload: the check saw nothing"


def test_the_check_sees_a_workload_below_restricted(rendered):
    """The check above can fail: the server's Deployment without its pod securityContext breaks it."""
    deployment = next(m for m in rendered["mlflow_server/nodeport-defaults"].manifests if m["kind"] == "Deployment")
    ((path, pod_spec),) = pod_templates(deployment)
    broken = {**pod_spec, "securityContext": {}}
    assert any("runAsNonRoot" in v or "seccompProfile" in v for v in job_utils.restricted_violations(broken, path=path))


STORAGE = [case for case in CASES if case.role == "storage"]


@pytest.mark.parametrize("case", STORAGE, ids=[case.id for case in STORAGE])
def test_the_platform_namespace_is_labelled_restricted(case, rendered):
    namespaces = [m for m in rendered[case.id].manifests if m["kind"] == "Namespace"]
    if case.vars.get("storage_create_namespace") is False:
        assert namespaces == [], "storage_create_namespace=false: the namespace and its labels are the operator's"
        return
    (namespace,) = namespaces
    level = case.vars.get("storage_namespace_pod_security", "restricted")
    version = case.vars.get("storage_namespace_pod_security_version", "latest")
    labels = namespace["metadata"]["labels"]
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == level, labels
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == version, labels
