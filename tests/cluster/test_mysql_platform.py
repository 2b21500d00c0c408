"""A second platform on real pods: MySQL (MariaDB here) with a ReadWriteOnce artifacts claim, its
backup, the database's minor roll and refused major, and teardown by labels; and the
ServiceMonitor that only comes with its CRD. Apart from tests/cluster/test_day_two.py, whose
tests build on one shared platform in order, so that pytest-xdist runs these beside them.
"""

from __future__ import annotations

import re
import sys
import time

import pytest

from tests.cluster.conftest import (
    WAIT_TIMEOUT,
    fresh_namespace,
    inventory,
    labelled,
    node_port_for,
    site_vars_for,
    watch_until,
)
from tests.cluster.day_two import DayTwo, assert_minor_rolls_major_refused, backup_now_play, converge, purge
from tests.harness.playbook import run_playbook

pytestmark = pytest.mark.cluster


SERVICEMONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {"plural": "servicemonitors", "singular": "servicemonitor", "kind": "ServiceMonitor"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


def _metrics_play(namespace):
    return [
        {
            "name": "ServiceMonitor where its CRD exists",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Run the role's metrics tasks",
                    "ansible.builtin.include_role": {"name": "mlops.mlflow_k8s.mlflow_server", "tasks_from": "metrics"},
                    "vars": {"mlflow_server_metrics_enabled": True, "mlflow_server_namespace": namespace},
                }
            ],
        }
    ]


def test_servicemonitor_only_with_its_crd(playbook, dyn, namespace) -> None:
    from kubernetes.dynamic.exceptions import NotFoundError

    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    try:
        crds.get(name="servicemonitors.monitoring.coreos.com")
        pytest.skip("this cluster has the ServiceMonitor CRD already: the without-CRD half cannot run here")
    except NotFoundError:
        pass

    without = playbook(_metrics_play(namespace))
    assert without.rc == 0, without.summary()
    assert without.task("Apply the ServiceMonitor").skipped

    crds.create(body=SERVICEMONITOR_CRD)
    try:
        # The API serves the new kind once the CRD is Established.
        watch_until(
            dyn,
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            "servicemonitors.monitoring.coreos.com",
            lambda o: any(
                c["type"] == "Established" and c["status"] == "True"
                for c in ((o or {}).get("status") or {}).get("conditions") or []
            ),
            timeout=60,
        )
        with_crd = playbook(_metrics_play(namespace))
        assert with_crd.rc == 0, with_crd.summary()
        assert not with_crd.task("Apply the ServiceMonitor").skipped
        dyn.resources.invalidate_cache()
        monitors = dyn.resources.get(api_version="monitoring.coreos.com/v1", kind="ServiceMonitor")
        monitor = monitors.get(name="mlflow-server", namespace=namespace)
        assert monitor.spec.endpoints[0].port == "http"
    finally:
        crds.delete(name="servicemonitors.monitoring.coreos.com")


def test_mysql_platform_backup_on_rwo_minor_roll_then_teardown_by_labels(
    kubeconfig, k8s, dyn, node_name, node_address, tmp_path, images
) -> None:
    """MySQL (MariaDB here) with a ReadWriteOnce artifacts claim (a Longhorn volume is attached
    to one node): the backup pod is bound to the node of a running server pod and writes a real
    dump and archive; with no server pod it cannot be scheduled. Then MySQL's minor roll and the
    refused major version. Last, a project namespace prepared as run_project.yml does, a project
    Job in it, and teardown.yml run with today's defaults (no database_engine: postgresql) finds
    all of it by its labels: without purge only the data and the credentials stay; purge takes
    those too."""
    from kubernetes import client

    apps, core = client.AppsV1Api(k8s), client.CoreV1Api(k8s)
    with fresh_namespace(dyn, "day-two-mysql") as ns, fresh_namespace(dyn, "mysql-projects") as projects:
        port = node_port_for(ns)
        site = site_vars_for(kubeconfig, ns, node_name, tmp_path / "volumes", port)
        site.update(
            database_engine="mysql",
            database_backup_enabled=True,
            storage_artifacts_access_modes=["ReadWriteOnce"],
            project_runner_namespace=projects,
            project_runner_registry_server="registry.example",
            project_runner_registry_username="robot",
            project_runner_registry_password="registry-secret-1",
            project_runner_rbac_rules=[{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
            project_runner_create_namespace=False,
        )
        platform = DayTwo(kubeconfig, k8s, dyn, ns, site, f"http://{node_address}:{port}")
        try:
            converged = converge(kubeconfig, ns, site)
            assert converged.rc == 0, converged.summary()
            cronjob = client.BatchV1Api(k8s).read_namespaced_cron_job("mlflow-mysql-backup", ns)
            term = cronjob.spec.job_template.spec.template.spec.affinity.pod_affinity
            term = term.required_during_scheduling_ignored_during_execution[0]
            assert term.label_selector.match_labels == {"app.kubernetes.io/name": "mlflow-server"}
            assert term.topology_key == "kubernetes.io/hostname"

            # With the server running, the backup pod finds its node and writes both files.
            taken = platform.play(backup_now_play({}))
            assert taken.rc == 0, taken.summary()
            facts = taken.task("Hand on what the Job did").result["ansible_facts"]
            dump, archive = facts["database_backup_job_file"], facts["database_backup_job_artifacts_file"]
            assert re.match(r"^mlflow-mysql-\d{8}T\d{6}Z\.sql\.gz$", dump), dump
            assert archive == dump.replace(".sql.gz", ".artifacts.tar.gz"), (dump, archive)
            assert {dump, archive} <= platform.backups(), platform.backups()

            apps.patch_namespaced_deployment_scale("mlflow-server", ns, {"spec": {"replicas": 0}})
            deadline = time.monotonic() + WAIT_TIMEOUT
            while core.list_namespaced_pod(ns, label_selector="app.kubernetes.io/name=mlflow-server").items:
                assert time.monotonic() < deadline, "the server pods did not go"
                time.sleep(1)
            waiting = platform.play(backup_now_play({"database_backup_wait_timeout": 30}))
            assert waiting.rc != 0
            message = waiting.failed_tasks()[0].msg
            assert "pod affinity" in message, message
            assert platform.backups() == {dump, archive}
            apps.patch_namespaced_deployment_scale("mlflow-server", ns, {"spec": {"replicas": 1}})

            assert_minor_rolls_major_refused(platform, k8s, "mysql")
            _teardown_finds_what_was_deployed_by_its_labels(platform, projects, images["busybox"])
        finally:
            purge(kubeconfig, site)


def _teardown_finds_what_was_deployed_by_its_labels(platform: DayTwo, projects: str, image: str) -> None:
    dyn, ns = platform.dyn, platform.namespace
    prepare = [
        {
            "name": "Prepare the project namespace as run_project.yml does",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": sys.executable},
            "roles": [{"role": "mlops.mlflow_k8s.project_runner"}],
        }
    ]
    prepared = platform.play(prepare)
    assert prepared.rc == 0, prepared.summary()
    # A project Job as mlflow_project_job submits it (its labels, DEVELOPING.md).
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "wine-quality-1",
            "labels": {
                "app.kubernetes.io/part-of": "mlflow-k8s",
                "app.kubernetes.io/managed-by": "ansible",
                "app.kubernetes.io/name": "mlflow-project",
                "mlops.mlflow-k8s/run-id": "0123456789abcdef",
            },
        },
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": image}]}},
        },
    }
    dyn.resources.get(api_version="batch/v1", kind="Job").create(body=job, namespace=projects)
    before = labelled(dyn, ns)
    for kind, name in [
        ("StatefulSet", "mlflow-mysql"),
        ("Service", "mlflow-mysql"),
        ("ConfigMap", "mlflow-mysql-scripts"),
        ("NetworkPolicy", "mlflow-mysql"),
        ("CronJob", "mlflow-mysql-backup"),
        ("Deployment", "mlflow-server"),
    ]:
        assert (kind, name) in before, sorted(before)
    before_projects = labelled(dyn, projects)
    for kind, name in [
        ("ServiceAccount", "mlflow-project"),
        ("Role", "mlflow-project"),
        ("Secret", "mlflow-project-registry"),
        ("NetworkPolicy", "mlflow-project-isolation"),
        ("Job", "wine-quality-1"),
    ]:
        assert (kind, name) in before_projects, sorted(before_projects)

    # Teardown with today's defaults (database_engine unset: postgresql): the MySQL goes anyway.
    defaults = {name: value for name, value in platform.site.items() if name != "database_engine"}
    env = {"K8S_AUTH_KUBECONFIG": platform.kubeconfig, "KUBECONFIG": platform.kubeconfig}
    kept = run_playbook("playbooks/teardown.yml", inventory=inventory(), extra_vars=defaults, env=env)
    assert kept.rc == 0, kept.summary()
    left = labelled(dyn, ns)
    assert {kind for kind, _name in left} <= {"Secret", "PersistentVolumeClaim", "PersistentVolume"}, sorted(left)
    assert ("Secret", "mlflow-database-credentials") in left
    assert ("PersistentVolumeClaim", "mlflow-database") in left
    assert ("PersistentVolumeClaim", "mlflow-database-backup") in left
    assert labelled(dyn, projects) == {("Secret", "mlflow-project-registry")}
    again = run_playbook("playbooks/teardown.yml", inventory=inventory(), extra_vars=defaults, env=env)
    assert again.rc == 0 and again.changed == 0, again.summary()

    purged = run_playbook(
        "playbooks/teardown.yml", inventory=inventory(), extra_vars={**defaults, "purge": True}, env=env
    )
    assert purged.rc == 0, purged.summary()
    assert labelled(dyn, ns) == set()
    assert labelled(dyn, projects) == set()
