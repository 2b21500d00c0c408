"""The storage and database roles against a Kubernetes API: apply, wait, re-run, teardown.

Every expectation is read back with the kubernetes client, independently of the roles: the
objects exist with the shape the roles promise, the URI Secret parses (SQLAlchemy's make_url)
to the credentials Secret's password and the Service's address, a second run changes nothing
and keeps the password, an admin Job that fails leaves the Secret as it was, and teardown keeps
volumes and credentials unless purge says otherwise. (A given password going through the admin
Job, with the server rolling onto it: tests/cluster/test_site.py.)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.cluster.conftest import restricted_pod_spec
from tests.harness.secrets import secret_data

pytestmark = pytest.mark.cluster

REPORT = "Report the handed-on facts"
FACTS = [
    "storage_class_name",
    "storage_database_pvc",
    "storage_artifacts_pvc",
    "storage_artifacts_access_modes",
    "database_uri_secret_name",
    "database_uri_secret_key",
    "database_auth_uri_secret_name",
    "database_auth_uri_secret_key",
    "database_host",
    "database_port",
]

REPORTED = {fact: "{{ " + fact + " | default('') }}" for fact in FACTS}


def site(roles=("storage", "database")):
    return [
        {
            "name": "Storage and database",
            "hosts": "localhost",
            "gather_facts": False,
            "roles": [f"mlops.mlflow_k8s.{role}" for role in roles],
            "post_tasks": [{"name": REPORT, "ansible.builtin.debug": {"msg": REPORTED}}],
        }
    ]


def teardown_play():
    return [
        {
            "name": "Teardown",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": f"Tear down {role}",
                    "ansible.builtin.include_role": {"name": f"mlops.mlflow_k8s.{role}", "tasks_from": "teardown"},
                }
                for role in ("database", "storage")
            ],
        }
    ]


@pytest.fixture
def site_vars(namespace, node_name, kubeconfig, tmp_path):
    base = tmp_path / "volumes"
    return {
        "cluster_kubeconfig": kubeconfig,
        "mlflow_k8s_namespace": namespace,
        "storage_create_namespace": False,
        "storage_hostpath_node": node_name,
        "storage_hostpath_dir_method": "host",
        "storage_hostpath_base_dir": str(base),
        "database_wait_timeout": 300,
    }


@pytest.fixture
def core(k8s):
    from kubernetes import client

    return client.CoreV1Api(k8s)


@pytest.fixture
def purge_afterwards(playbook, site_vars):
    """PVs and the StorageClass are cluster-wide: purge them whatever the test's outcome."""
    yield
    result = playbook(teardown_play(), extra_vars={**site_vars, "storage_purge": True, "database_purge": True})
    assert result.rc == 0, result.summary()


def test_apply_rerun_keeps_password(playbook, site_vars, namespace, core, k8s, purge_afterwards):
    """MySQL (MariaDB here): PostgreSQL's storage and database are converged, re-converged and
    checked unchanged by every platform of test_site.py and test_day_two.py.

    The directories are made the way minikube's are (storage_hostpath_dir_method=job: a root
    pod with a hostPath volume on the node, which is this machine), and the storage role owns
    the namespace's labels: the database runs under Pod Security's restricted while the
    directory Job ran, privileged, in a namespace of its own that is gone afterwards."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    engine = "mysql"
    extra = {
        **site_vars,
        "database_engine": engine,
        "storage_create_namespace": True,
        "storage_hostpath_dir_method": "job",
    }
    job_namespace = f"{namespace}-hostpath-init"

    checked = playbook(site(), extra_vars=extra, check=True)
    assert checked.rc == 0, checked.summary()
    assert secret_data(core, namespace, "mlflow-database-credentials") is None, "check mode created the Secret"
    assert not core.list_namespaced_persistent_volume_claim(namespace).items, "check mode created PVCs"

    first = playbook(site(), extra_vars=extra)
    assert first.rc == 0, first.summary()
    base = Path(site_vars["storage_hostpath_base_dir"]) / namespace
    for name, owner in (("mlflow-database", 999), ("mlflow-artifacts", 1000)):
        assert (base / name).stat().st_uid == owner, f"{name}: not made by the directory Job with its owner"
    with pytest.raises(ApiException) as gone:
        core.read_namespace(job_namespace)
    assert gone.value.status == 404, f"the directory Job's privileged namespace {job_namespace} was left behind"
    labels = core.read_namespace(namespace).metadata.labels
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted", labels
    # Enforced: a root pod is refused (a dry run goes through admission and stores nothing).
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(namespace, _root_pod(), dry_run="All")
    assert refused.value.status == 403, refused.value.body
    assert 'violates PodSecurity "restricted:latest"' in json.loads(refused.value.body)["message"]
    facts = first.task(REPORT).result["msg"]
    assert facts["storage_class_name"] == "mlflow-k8s-hostpath"
    assert facts["storage_database_pvc"] == "mlflow-database"
    assert facts["storage_artifacts_access_modes"] == ["ReadWriteMany"]
    assert facts["database_host"] == f"mlflow-{engine}.{namespace}.svc"
    assert int(facts["database_port"]) == {"postgresql": 5432, "mysql": 3306}[engine]
    assert facts["database_auth_uri_secret_name"] == ""

    sts = client.AppsV1Api(k8s).read_namespaced_stateful_set(f"mlflow-{engine}", namespace)
    assert sts.status.ready_replicas == 1, sts.status
    pod_spec = sts.spec.template.spec
    assert pod_spec.volumes[0].persistent_volume_claim.claim_name == "mlflow-database"
    assert pod_spec.security_context.run_as_non_root is True
    assert pod_spec.containers[0].security_context.capabilities.drop == ["ALL"]
    pv = core.read_persistent_volume(f"{namespace}-mlflow-database")
    assert pv.spec.persistent_volume_reclaim_policy == "Retain"
    assert pv.spec.claim_ref.name == "mlflow-database"
    policy = client.NetworkingV1Api(k8s).read_namespaced_network_policy(f"mlflow-{engine}", namespace)
    rule = k8s.sanitize_for_serialization(policy)["spec"]["ingress"][0]
    admitted = [peer["podSelector"]["matchLabels"] for peer in rule["from"]]
    assert {"app.kubernetes.io/name": "mlflow-server"} in admitted

    credentials = secret_data(core, namespace, "mlflow-database-credentials")
    assert len(credentials["password"]) == 32
    uri = make_url(secret_data(core, namespace, facts["database_uri_secret_name"])[facts["database_uri_secret_key"]])
    assert uri.drivername == {"postgresql": "postgresql+psycopg2", "mysql": "mysql+pymysql"}[engine]
    assert (uri.username, uri.password, uri.host, uri.database) == (
        "mlflow",
        credentials["password"],
        facts["database_host"],
        "mlflow",
    )

    second = playbook(site(), extra_vars=extra)
    assert second.rc == 0, second.summary()
    assert second.changed == 0, second.summary()
    assert secret_data(core, namespace, "mlflow-database-credentials") == credentials

    rechecked = playbook(site(), extra_vars=extra, check=True)
    assert rechecked.rc == 0, rechecked.summary()
    assert rechecked.changed == 0, rechecked.summary()

    # Teardown without purge: the workload goes, the volumes and the Secrets stay.
    kept = playbook(teardown_play(), extra_vars=extra)
    assert kept.rc == 0, kept.summary()
    assert not client.AppsV1Api(k8s).list_namespaced_stateful_set(namespace).items
    # Every Secret holds a credential: kept without purge (docs/teardown.md), the URI with the rest.
    assert secret_data(core, namespace, "mlflow-backend-store") is not None
    assert secret_data(core, namespace, "mlflow-database-credentials") == credentials
    assert {c.metadata.name for c in core.list_namespaced_persistent_volume_claim(namespace).items} == {
        "mlflow-database",
        "mlflow-artifacts",
    }
    core.read_persistent_volume(f"{namespace}-mlflow-database")

    # Back again: the same password is read back and handed on.
    again = playbook(site(), extra_vars=extra)
    assert again.rc == 0, again.summary()
    assert secret_data(core, namespace, "mlflow-database-credentials") == credentials


def _root_pod() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root-pod"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.37.0", "securityContext": {"runAsUser": 0}}]},
    }


def _sql_in_the_database_pod(k8s, namespace: str, sql: str) -> str:
    """Run ``sql`` in mlflow-postgresql-0 as its superuser over the local socket, as an
    administrator with a shell on the pod would; returns what psql printed."""
    from kubernetes import client
    from kubernetes.stream import stream

    command = ["sh", "-c", 'exec psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "$0"', sql]
    return stream(
        client.CoreV1Api(k8s).connect_get_namespaced_pod_exec,
        "mlflow-postgresql-0",
        namespace,
        container="postgresql",
        command=command,
        stdout=True,
        stderr=True,
        stdin=False,
        tty=False,
    )


def test_failed_admin_job_leaves_the_secret(playbook, site_vars, namespace, core, k8s, purge_afterwards):
    first = playbook(site(), extra_vars=site_vars)
    assert first.rc == 0, first.summary()
    before = secret_data(core, namespace, "mlflow-database-credentials")

    # The password was changed in the database behind the Secret's back: the stored one no
    # longer logs in, so the admin Job cannot change it to the new one.
    assert "ALTER ROLE" in _sql_in_the_database_pod(
        k8s, namespace, "ALTER ROLE CURRENT_USER PASSWORD 'behind-its-back-1'"
    )
    failed = playbook(site(), extra_vars={**site_vars, "database_password": "another-password-1"})
    assert failed.rc != 0
    assert any("could not change the password" in t.msg for t in failed.failed_tasks()), failed.summary()
    assert "behind-its-back-1" not in failed.stdout and "another-password-1" not in failed.stdout
    after = secret_data(core, namespace, "mlflow-database-credentials")
    assert after.pop("password-pending") == "another-password-1", "the change under way is not recorded"
    assert after == before
    assert secret_data(core, namespace, "mlflow-database-admin") is None


def _killed_after_the_alter(core, k8s, namespace: str, password: str) -> None:
    """What a play killed between the admin Job's ALTER ROLE and the Secret's update leaves: the
    database on ``password``, the Secret on its old one with ``password`` recorded as pending."""
    import base64

    assert "ALTER ROLE" in _sql_in_the_database_pod(k8s, namespace, f"ALTER ROLE CURRENT_USER PASSWORD '{password}'")
    core.patch_namespaced_secret(
        "mlflow-database-credentials",
        namespace,
        {"data": {"password-pending": base64.b64encode(password.encode()).decode()}},
    )


def test_a_password_change_left_halfway_is_ended_by_the_next_run(
    playbook, site_vars, namespace, core, k8s, purge_afterwards
):
    """Issue #28 point 5 on PostgreSQL (MariaDB's admin Job logs in as root, whatever the user's
    password is). Each run that ends the change is then proved by one more change, which only
    succeeds when the Secret's password is the one the database has."""
    first = playbook(site(), extra_vars=site_vars)
    assert first.rc == 0, first.summary()

    # Killed while changing to new-password-1; the next run asks for it again.
    _killed_after_the_alter(core, k8s, namespace, "new-password-1")
    again = playbook(site(), extra_vars={**site_vars, "database_password": "new-password-1"})
    assert again.rc == 0, again.summary()
    stored = secret_data(core, namespace, "mlflow-database-credentials")
    assert stored["password"] == "new-password-1" and "password-pending" not in stored, sorted(stored)

    # Killed while changing to new-password-2; the next run no longer asks for it (the
    # inventory went back): the database returns to the Secret's password.
    _killed_after_the_alter(core, k8s, namespace, "new-password-2")
    back = playbook(site(), extra_vars=site_vars)
    assert back.rc == 0, back.summary()
    stored = secret_data(core, namespace, "mlflow-database-credentials")
    assert stored["password"] == "new-password-1" and "password-pending" not in stored, sorted(stored)
    quiet = playbook(site(), extra_vars=site_vars)
    assert quiet.rc == 0 and quiet.changed == 0, quiet.summary()

    # The proof: a change from the Secret's password works.
    proof = playbook(site(), extra_vars={**site_vars, "database_password": "new-password-3"})
    assert proof.rc == 0, proof.summary()
    assert secret_data(core, namespace, "mlflow-database-credentials")["password"] == "new-password-3"


def test_a_leftover_admin_job_is_not_taken_for_this_runs(playbook, site_vars, namespace, core, k8s, purge_afterwards):
    """A Complete admin Job a killed run left must not count as this run's change."""
    from kubernetes import client

    first = playbook(site(), extra_vars=site_vars)
    assert first.rc == 0, first.summary()
    batch = client.BatchV1Api(k8s)
    leftover = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "mlflow-database-admin"},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": restricted_pod_spec("done", ["true"])},
        },
    }
    batch.create_namespaced_job(namespace, leftover)
    # The database refuses the stored password: the change cannot succeed, whatever is left over.
    _sql_in_the_database_pod(k8s, namespace, "ALTER ROLE CURRENT_USER PASSWORD 'behind-its-back-2'")
    deadline = time.monotonic() + 120
    while not (batch.read_namespaced_job("mlflow-database-admin", namespace).status.succeeded or 0):
        assert time.monotonic() < deadline, "the leftover Job did not complete"
        time.sleep(1)
    failed = playbook(site(), extra_vars={**site_vars, "database_password": "another-password-2"})
    assert failed.rc != 0, "a leftover Complete Job was taken for this run's password change"
    assert any("could not change the password" in t.msg for t in failed.failed_tasks()), failed.summary()


def test_external_secret_is_handed_on_or_refused(playbook, namespace, core, kubeconfig):
    from kubernetes import client

    extra = {
        "cluster_kubeconfig": kubeconfig,
        "mlflow_k8s_namespace": namespace,
        "database_engine": "external",
        "database_external_uri_secret_name": "site-db",
    }
    missing = playbook(site(roles=("database",)), extra_vars=extra)
    assert missing.rc != 0
    assert any("database_external_uri_secret_name" in t.msg for t in missing.failed_tasks()), missing.summary()

    core.create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="site-db"), string_data={"uri": "postgresql://u:p@h/d"}),
    )
    given = playbook(site(roles=("database",)), extra_vars=extra)
    assert given.rc == 0, given.summary()
    facts = given.task(REPORT).result["msg"]
    assert (facts["database_uri_secret_name"], facts["database_uri_secret_key"]) == ("site-db", "uri")
    assert given.changed == 0, given.summary()


def test_crash_looping_database_fails_the_run_naming_the_pod(
    playbook, site_vars, namespace, core, images, purge_afterwards
):
    """Issue 9 point 3: the database wait fails as soon as the pod crash-loops, saying which pod,
    which state, its events and log lines, and no credential appears anywhere in the output.
    The busybox image really crash-loops in place of PostgreSQL."""
    extra = {**site_vars, "database_postgresql_image": images["busybox"]}
    result = playbook(site(), extra_vars=extra)
    assert result.rc != 0, result.summary()
    (failed,) = result.failed_tasks()
    assert failed.name.endswith("database : Wait for the database"), result.summary()
    # The same failure twice: named at the second (issue #28 point 2), not after three restarts.
    assert failed.result["state"] == "Stuck" and failed.result["stuck"]["reason"] == "RepeatedFailure"
    assert "no_log" not in failed.msg and "has been hidden" not in failed.msg
    assert failed.msg.startswith(
        f"StatefulSet {namespace}/mlflow-postgresql: pod mlflow-postgresql-0 (container postgresql) is stuck in "
        "RepeatedFailure: failed twice the same way (exit code "
    ), failed.msg
    assert "restarted 2 times" in failed.msg, failed.msg
    assert "BackOff: Back-off restarting failed container postgresql" in failed.msg
    password = secret_data(core, namespace, "mlflow-database-credentials")["password"]
    assert password and password not in result.stdout and password not in result.stderr
