"""The platforms the day-two tests converge, and what they do on them (tests/cluster/test_day_two.py
and test_mysql_platform.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.cluster.conftest import inventory
from tests.harness.playbook import run_playbook


class DayTwo:
    """The converged platform: its namespace, variables and how to reach it."""

    def __init__(self, kubeconfig: str, k8s: Any, dyn: Any, namespace: str, site: dict, url: str) -> None:
        self.kubeconfig = kubeconfig
        self.k8s = k8s
        self.dyn = dyn
        self.namespace = namespace
        self.site = site
        self.url = url
        self.converge_watch: Any = None  # the ArgvWatch that ran while site.yml converged it

    def play(self, playbook: Any, **extra: Any):
        """Run a playbook with the platform's variables (``extra`` on top), and check=, tags=."""
        check = extra.pop("check", False)
        tags = extra.pop("tags", None)
        env = {"K8S_AUTH_KUBECONFIG": self.kubeconfig, "KUBECONFIG": self.kubeconfig}
        inv = inventory() if isinstance(playbook, str) else None
        kwargs: dict[str, Any] = {"check": check, "env": env}
        if tags:
            kwargs["tags"] = tags
        return run_playbook(playbook, inventory=inv, extra_vars={**self.site, **extra}, **kwargs)

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.url)

    def host_dir(self, claim: str) -> Path:
        """The hostPath directory behind a claim (every volume is on this node)."""
        from kubernetes import client

        core = client.CoreV1Api(self.k8s)
        pvc = core.read_namespaced_persistent_volume_claim(claim, self.namespace)
        return Path(core.read_persistent_volume(pvc.spec.volume_name).spec.host_path.path)

    def backups(self) -> set[str]:
        return {p.name for p in self.host_dir("mlflow-database-backup").iterdir()}


def converge(kubeconfig: str, namespace: str, site: dict):
    env = {"K8S_AUTH_KUBECONFIG": kubeconfig, "KUBECONFIG": kubeconfig}
    return run_playbook("playbooks/site.yml", inventory=inventory(), extra_vars=site, env=env)


def purge(kubeconfig: str, site: dict) -> None:
    env = {"K8S_AUTH_KUBECONFIG": kubeconfig, "KUBECONFIG": kubeconfig}
    done = run_playbook("playbooks/teardown.yml", inventory=inventory(), extra_vars={**site, "purge": True}, env=env)
    assert done.rc == 0, done.summary()


def backup_now_play(extra: dict) -> list[dict]:
    return [
        {
            "name": "A backup now, as upgrade.yml takes it",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Take a backup",
                    "ansible.builtin.include_role": {"name": "mlops.mlflow_k8s.database", "tasks_from": "backup_job"},
                    "vars": {"database_backup_job": "backup", **extra},
                }
            ],
        }
    ]


DATABASE_IMAGES = {
    "postgresql": (
        ("docker.io/library/postgres:17.6-bookworm", True),
        ("docker.io/library/postgres:17.7-bookworm", True),  # tests/rig/aliases: the same server
        ("docker.io/library/postgres:18.1-bookworm", False),
    ),
    # MySQL's major version is its release series: 8.4.x -> 8.4.y rolls, 9.x is refused.
    "mysql": (
        ("docker.io/library/mysql:8.4.6", True),
        ("docker.io/library/mysql:8.4.7", True),
        ("docker.io/library/mysql:9.4.0", False),
    ),
}


def assert_minor_rolls_major_refused(platform: DayTwo, k8s, engine: str) -> None:
    """site.yml's database part with each image in turn: the minor one rolls the StatefulSet to a
    new pod that is Ready on the same claim, volume and credentials; the major one is refused."""
    from kubernetes import client

    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    ns = platform.namespace
    images = DATABASE_IMAGES[engine]
    claim = secret = None
    for image, ok in images:
        pod_before = core.read_namespaced_pod(f"mlflow-{engine}-0", ns).metadata.uid
        result = platform.play(
            "playbooks/site.yml",
            tags=["cluster", "storage", "database"],
            mlflow_server_smoke=False,
            **{f"database_{engine}_image": image},
        )
        sts = apps.read_namespaced_stateful_set(f"mlflow-{engine}", ns)
        running = sts.spec.template.spec.containers[0].image
        pod = core.read_namespaced_pod(f"mlflow-{engine}-0", ns)
        if ok:
            assert result.rc == 0, result.summary()
            assert running == image
            assert pod.spec.containers[0].image == image and pod.status.container_statuses[0].ready, pod.status
            if image != images[0][0]:
                assert pod.metadata.uid != pod_before, "the StatefulSet did not roll"
        else:
            assert result.rc != 0
            message = result.failed_tasks()[0].msg
            major = image.rsplit(":", 1)[1].rsplit(".", 1)[0] if engine == "mysql" else image.split(":")[1][:2]
            assert f"major version {major}" in message and "playbooks/restore.yml" in message, message
            assert running == images[1][0]
            assert pod.metadata.uid == pod_before
        # The data stays: the same claim on the same volume, the same credentials.
        pvc = core.read_namespaced_persistent_volume_claim("mlflow-database", ns)
        creds = core.read_namespaced_secret("mlflow-database-credentials", ns)
        now = (pvc.metadata.uid, pvc.spec.volume_name), (creds.metadata.uid, creds.data["password"])
        claim, secret = (now[0], now[1]) if claim is None else (claim, secret)
        assert (now[0], now[1]) == (claim, secret)
    # And the server still reads its runs from the rolled database.
    deadline = time.monotonic() + 120
    while True:
        try:
            platform.client().search_experiments()
            break
        except Exception:  # noqa: BLE001 - the server reconnects to the new database pod
            assert time.monotonic() < deadline, "the server does not read the rolled database"
            time.sleep(3)
