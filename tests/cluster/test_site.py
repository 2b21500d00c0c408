"""playbooks/site.yml and playbooks/teardown.yml against a Kubernetes API, as a user runs them.

cluster_provider=existing points the whole pipeline (controller, preflight, cluster, storage,
database, mlflow_server) at the session's cluster, where the pods run for real and the role's
smoke check reaches the server from this machine. Every expectation is read back with the
kubernetes client: the server's Deployment has the shape the role promises and is rolled out, a
second run changes nothing, and teardown removes the server but keeps the data (volumes, the
database password) unless purged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cluster.conftest import inventory, node_port_for, server_image, site_vars_for
from tests.harness.secrets import secret_data

pytestmark = pytest.mark.cluster

SUMMARY = "Show where MLflow is and how to submit a project"


@pytest.fixture
def core(k8s):
    from kubernetes import client

    return client.CoreV1Api(k8s)


@pytest.fixture
def apps(k8s):
    from kubernetes import client

    return client.AppsV1Api(k8s)


@pytest.fixture
def site_vars(namespace, kubeconfig, node_name, tmp_path):
    return site_vars_for(kubeconfig, namespace, node_name, tmp_path / "volumes", node_port_for(namespace))


@pytest.fixture
def purge_afterwards(playbook, site_vars):
    """PVs and the StorageClass are cluster-wide: purge them whatever the test's outcome."""
    yield
    result = playbook("playbooks/teardown.yml", inventory=inventory(), extra_vars={**site_vars, "purge": True})
    assert result.rc == 0, result.summary()


def test_the_converged_platform_has_its_shape_and_reconverges_unchanged(platform, playbook, core, apps, k8s):
    """The shared platform, converged by site.yml (fixture ``platform``): what the roles promise,
    read back; a second site.yml, and one in check mode, change nothing."""
    namespace, site_vars = platform.namespace, platform.site_vars
    first = playbook("playbooks/site.yml", inventory=inventory(), extra_vars=site_vars)
    assert first.rc == 0, first.summary()
    assert first.changed_tasks() == [], first.summary()
    assert first.changed == 0, first.summary()

    # The server: rolled out, with the backend URI only as a secretKeyRef.
    deployment = apps.read_namespaced_deployment("mlflow-server", namespace)
    assert deployment.status.ready_replicas == 1, deployment.status
    assert deployment.status.updated_replicas == 1, deployment.status
    spec = deployment.spec.template.spec
    assert deployment.spec.strategy.type == "RollingUpdate"  # hostPath artifacts here are ReadWriteMany
    server = spec.containers[0]
    assert server.image == server_image()
    env = {e.name: e for e in server.env}
    ref = env["MLFLOW_BACKEND_STORE_URI"].value_from.secret_key_ref
    uri = secret_data(core, namespace, ref.name)[ref.key]
    assert uri.split("://", 1)[0] in ("postgresql+psycopg2", "mysql+pymysql")
    assert uri not in json.dumps(k8s.sanitize_for_serialization(deployment)), "the URI is visible in the pod spec"
    assert [c.name for c in spec.init_containers] == ["db-upgrade"]
    assert spec.security_context.run_as_non_root is True
    assert server.security_context.read_only_root_filesystem is True
    assert spec.volumes[0].persistent_volume_claim.claim_name == "mlflow-artifacts"

    nodes = core.list_node().items
    service = core.read_namespaced_service("mlflow-server", namespace)
    assert service.spec.type == "NodePort"
    assert service.spec.ports[0].node_port == site_vars["mlflow_server_node_port"]
    allowed = server.args[server.args.index("--allowed-hosts") + 1].split(",")
    node_addresses = {a.address for n in nodes for a in n.status.addresses or []}
    assert any(
        h.rsplit(":", 1)[0] in node_addresses for h in allowed if h.endswith(f":{service.spec.ports[0].node_port}")
    )
    assert f"mlflow-server.{namespace}.svc.cluster.local:5000" in allowed

    summary = "\n".join(first.task(SUMMARY).result["msg"])
    assert f":{site_vars['mlflow_server_node_port']}" in summary
    assert f"http://mlflow-server.{namespace}.svc.cluster.local:5000" in summary
    assert "playbooks/run_project.yml" in summary

    # Check mode on the converged platform: nothing to change either.
    checked = playbook("playbooks/site.yml", inventory=inventory(), extra_vars=site_vars, check=True)
    assert checked.rc == 0, checked.summary()
    assert checked.changed == 0, checked.summary()

    # The smoke check ran on every converge and left one run with one metric: a re-run looks
    # its experiment and run up, and leaves MLflow as it found it.
    import requests
    from mlflow.tracking import MlflowClient

    client = MlflowClient(platform.url)
    experiment = client.get_experiment_by_name("mlflow-k8s-smoke")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_name for r in runs] == ["ansible-smoke"], runs
    assert len(client.get_metric_history(runs[0].info.run_id, "smoke")) == 1
    assert first.task("mlops.mlflow_k8s.mlflow_server : Create the smoke-check experiment").skipped

    # The Host check: the names the role allowed answer, any other is refused, including a
    # private address MLflow's own default would let through.
    search = f"{platform.url}/api/2.0/mlflow/experiments/search?max_results=1"
    for host in (f"mlflow-server.{namespace}.svc.cluster.local:5000", "mlflow-server:5000"):
        answer = requests.get(search, headers={"Host": host}, timeout=30)
        assert answer.status_code == 200, (host, answer.status_code, answer.text[:200])
    address, node_port = platform.url.split("//", 1)[1].rsplit(":", 1)
    for host in ("evil.example.org", "10.99.99.99:5000", f"{address}:{int(node_port) + 1}"):
        answer = requests.get(search, headers={"Host": host}, timeout=30)
        assert answer.status_code == 403, (host, answer.status_code, answer.text[:200])


def test_a_given_password_goes_through_the_admin_job_rolls_the_server_and_teardown_keeps_it(
    playbook, site_vars, namespace, core, apps, purge_afterwards
):
    """A password given on a converged platform: the database's admin Job changes it in the
    database before the Secrets change, and the server's pods roll onto it (a password with
    every character a URI, a shell or a config parser treats specially). Teardown without purge
    then keeps the data and that password."""
    from kubernetes.client.exceptions import ApiException
    from sqlalchemy.engine import make_url

    first = playbook("playbooks/site.yml", inventory=inventory(), extra_vars=site_vars)
    assert first.rc == 0, first.summary()
    old = secret_data(core, namespace, "mlflow-database-credentials")["password"]

    # The server's pods read the URI only when they start, so the pod template carries the URI
    # Secret's version (and never its content).
    def secret_version_stamp():
        template = apps.read_namespaced_deployment("mlflow-server", namespace).spec.template
        return (template.metadata.annotations or {}).get("mlops.mlflow-k8s/backend-store-secret-version")

    stamped = secret_version_stamp()
    assert stamped and "/" in stamped, stamped
    assert stamped.split("/", 1)[1] != "", stamped
    given = "n3w@:/?#%+ '\"\\ßé🔑"  # PostgreSQL takes any character (MySQL: tests/services/test_database_uri.py)
    password_vars = {**site_vars, "database_password": given, "database_auth_db_enabled": True}
    rolled = playbook("playbooks/site.yml", inventory=inventory(), extra_vars=password_vars)
    assert rolled.rc == 0, rolled.summary()
    assert rolled.task("mlops.mlflow_k8s.database : Start the database admin Job").changed
    credentials = secret_data(core, namespace, "mlflow-database-credentials")
    assert credentials["password"] == given != old
    assert credentials["auth-database"] == "mlflow_auth"
    uris = secret_data(core, namespace, "mlflow-backend-store")
    assert make_url(uris["uri"]).password == given
    assert make_url(uris["auth-uri"]).database == "mlflow_auth"
    assert secret_data(core, namespace, "mlflow-database-admin") is None, "the transient Secret was left behind"
    assert given not in rolled.stdout
    assert secret_version_stamp() not in (None, stamped)
    assert rolled.task("mlops.mlflow_k8s.mlflow_server : Apply the MLflow server objects").changed
    deployment = apps.read_namespaced_deployment("mlflow-server", namespace)
    assert deployment.status.updated_replicas == deployment.status.ready_replicas == 1, deployment.status
    settled = playbook("playbooks/site.yml", inventory=inventory(), extra_vars=password_vars)
    assert settled.rc == 0, settled.summary()
    assert settled.changed == 0, settled.summary()

    # Teardown without purge: the server goes, the data and the password stay.
    kept = playbook("playbooks/teardown.yml", inventory=inventory(), extra_vars=site_vars)
    assert kept.rc == 0, kept.summary()
    with pytest.raises(ApiException) as gone:
        apps.read_namespaced_deployment("mlflow-server", namespace)
    assert gone.value.status == 404
    assert not core.list_namespaced_service(namespace, label_selector="app.kubernetes.io/name=mlflow-server").items
    assert secret_data(core, namespace, "mlflow-database-credentials") == credentials
    claims = {c.metadata.name for c in core.list_namespaced_persistent_volume_claim(namespace).items}
    assert {"mlflow-database", "mlflow-artifacts"} <= claims
    core.read_persistent_volume(f"{namespace}-mlflow-artifacts")
    # (A second teardown changing nothing: tests/cluster/test_mysql_platform.py.)


def test_replicas_above_one_on_readwriteonce_fail_before_anything_is_applied(
    playbook, site_vars, namespace, apps, purge_afterwards
):
    bad = {**site_vars, "storage_artifacts_access_modes": ["ReadWriteOnce"], "mlflow_server_replicas": 2}
    result = playbook("playbooks/site.yml", inventory=inventory(), extra_vars=bad, tags=["cluster", "mlflow_server"])
    assert result.rc != 0
    failed = result.failed_tasks()
    assert failed and "mlflow_server_replicas" in json.dumps(failed[0].result), result.summary()
    assert not apps.list_namespaced_deployment(namespace).items


def test_check_mode_on_a_fresh_cluster_prints_the_plan_and_creates_nothing(
    playbook, site_vars, namespace, core, tmp_path
):
    from kubernetes.client.exceptions import ApiException

    fresh = f"{namespace}-fresh"
    checked = playbook(
        "playbooks/site.yml",
        inventory=inventory(),
        extra_vars={**site_vars, "mlflow_k8s_namespace": fresh, "storage_create_namespace": True},
        check=True,
    )
    assert checked.rc == 0, checked.summary()
    plans = {}
    for task in checked.tasks:
        if task.name.endswith(" : Show the plan") and not task.skipped:
            lines = task.result["msg"]
            plans[lines[0].split()[2]] = "\n".join(lines)
    assert set(plans) == {"storage", "database", "mlflow_server"}, plans
    assert f"namespace {fresh} does not exist yet" in plans["database"]
    for role, objects in {
        "storage": ["Namespace " + fresh, f"PersistentVolumeClaim {fresh}/mlflow-database", "StorageClass"],
        "database": [f"StatefulSet {fresh}/mlflow-postgresql", f"Service {fresh}/", f"Secret {fresh}/"],
        "mlflow_server": [f"Deployment {fresh}/mlflow-server", f"Service {fresh}/mlflow-server", "exposed at http://"],
    }.items():
        for text in objects:
            assert text in plans[role], plans[role]
    assert "password" not in json.dumps(plans).lower()
    # Nothing was created: no namespace, no volume, no directory.
    with pytest.raises(ApiException) as gone:
        core.read_namespace(fresh)
    assert gone.value.status == 404
    assert not [pv for pv in core.list_persistent_volume().items if pv.metadata.name.startswith(fresh)]
    assert not (tmp_path / "volumes").exists()


def test_bad_inputs_of_several_roles_fail_together_before_the_cluster_role(playbook, site_vars, namespace, core, apps):
    bad = {**site_vars, "database_engine": "oracle", "storage_backend": "nfs", "mlflow_server_expose": "loadbalancer"}
    result = playbook("playbooks/site.yml", inventory=inventory(), extra_vars=bad)
    assert result.rc != 0
    failed = result.failed_tasks()
    assert len(failed) == 1, result.summary()
    message = failed[0].msg
    for option, value in (
        ("database_engine", "oracle"),
        ("storage_backend", "nfs"),
        ("mlflow_server_expose", "loadbalancer"),
    ):
        assert option in message and value in message, message
    ran = {t.name.split(" : ")[0] for t in result.tasks}
    assert not ran & {"mlops.mlflow_k8s.preflight", "mlops.mlflow_k8s.cluster", "mlops.mlflow_k8s.storage"}, ran
    assert not core.list_namespaced_persistent_volume_claim(namespace).items
    assert not apps.list_namespaced_stateful_set(namespace).items


def test_check_mode_on_a_bare_node_prints_the_plan_with_preflight_problems(playbook, tmp_path):
    """cluster_provider=microk8s on this machine: MicroK8s is not installed, nothing is created."""
    state = tmp_path / "state"
    checked = playbook(
        "playbooks/site.yml",
        inventory=inventory(),
        extra_vars={
            "cluster_provider": "microk8s",
            "controller_state_dir": str(state),
            "storage_hostpath_base_dir": str(tmp_path / "volumes"),
            "storage_hostpath_node": "node-1",
            "preflight_source_timeout": 3,
        },
        check=True,
    )
    assert checked.rc == 0, checked.summary()
    shown = json.dumps([t.result.get("msg") for t in checked.tasks if not t.skipped])
    if not Path("/run/systemd/system").is_dir():
        assert "preflight would stop a real run here" in shown and "not systemd" in shown, shown
    assert "a real run would install it" in shown, shown
    plans = [t.result["msg"] for t in checked.tasks if t.name.endswith(" : Show the plan") and not t.skipped]
    assert [p[0].split()[2] for p in plans] == ["storage", "database", "mlflow_server"], plans
    assert all("no cluster yet" in p[0] for p in plans), plans
    assert not state.exists() and not (tmp_path / "volumes").exists()
