"""The README's "Then, to run a project" command, run exactly as README.md prints it.

The command is parsed out of README.md at test time, so any edit of the README stays tested:
the ``export`` lines become the environment (``<node>`` is the one placeholder a user fills
in: here the node's address, where the session's shared platform, playbooks/site.yml, answers
at the NodePort the README names), the ``ansible-playbook`` line becomes the playbook runner's
arguments (playbook, ``-i``, every ``-e``). An option the parser does not know fails the test
rather than being dropped.

Everything runs for real: the Job runs in the namespace the inventory names, its pod fetches the
example's code through the platform's server and trains, logging to the run, which ends FINISHED.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.cluster.conftest import PLATFORM_NODE_PORT, watch_until

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
HEADING = "Then, to run a project:"


def readme_command(readme: Path = ROOT / "README.md") -> tuple[dict[str, str], list[str]]:
    """``(environment, ansible-playbook argv)`` of the first ```sh block after HEADING."""
    text = readme.read_text(encoding="utf-8")
    start = text.index(HEADING)
    block = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert block, f"README.md: no ```sh block after {HEADING!r}"
    env: dict[str, str] = {}
    argv: list[str] = []
    for line in block.group(1).replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "export":
            for assignment in words[1:]:
                key, _sep, value = assignment.partition("=")
                env[key] = value
        else:
            assert not argv, f"README.md: more than one command after {HEADING!r}: {line}"
            argv = words
    assert argv and argv[0].endswith("ansible-playbook"), f"README.md: no ansible-playbook command: {argv}"
    return env, argv


def playbook_arguments(argv: list[str]) -> tuple[str, str | None, dict]:
    """``(playbook, inventory, extra_vars)`` of an ansible-playbook argv; unknown options fail."""
    playbook = None
    inventory = None
    extra: dict = {}
    words = iter(argv[1:])
    for word in words:
        if word in ("-i", "--inventory"):
            inventory = next(words)
        elif word in ("-e", "--extra-vars"):
            value = next(words)
            if value.lstrip().startswith("{"):
                extra.update(json.loads(value))
            else:
                for pair in shlex.split(value):
                    key, _sep, item = pair.partition("=")
                    extra[key] = item
        elif word.startswith("-"):
            pytest.fail(f"README.md's command uses {word}, which this test does not know how to pass on")
        else:
            assert playbook is None, f"two playbooks in README.md's command: {playbook}, {word}"
            playbook = word
    assert playbook, "README.md's command names no playbook"
    return playbook, inventory, extra


def test_readme_parser_reads_the_command():
    env, argv = readme_command()
    playbook, inventory, extra = playbook_arguments(argv)
    assert "MLFLOW_TRACKING_URI" in env
    assert playbook == "playbooks/run_project.yml"
    assert "project_uri" in extra


def test_readme_run_project_command(playbook, dyn, platform, node_address):
    env, argv = readme_command()
    playbook_path, inventory, extra = playbook_arguments(argv)
    assert f"http://<node>:{PLATFORM_NODE_PORT}" in env.get("MLFLOW_TRACKING_URI", ""), env
    env = {key: value.replace("<node>", node_address) for key, value in env.items()}
    assert not any("<" in value for value in env.values()), f"a placeholder the test cannot fill: {env}"
    assert env["MLFLOW_TRACKING_URI"] == platform.url, (env, platform.url)

    # Projects run in a namespace of their own (project_runner_namespace's default); the README
    # gives none. The playbook creates it; it is deleted afterwards (and waited for) unless it
    # existed before.
    namespace = "mlflow-projects"
    existed = _namespace_exists(dyn, namespace)
    try:
        result = playbook(ROOT / playbook_path, inventory=ROOT / inventory, extra_vars=extra, env=env)
    finally:
        if not existed:
            _delete_namespace(dyn, namespace)
    assert result.rc == 0, result.summary()
    submitted = result.task("Submit the project and wait for it").result
    assert submitted["namespace"] == namespace
    assert submitted["state"] == "Complete", submitted
    assert submitted["run"]["status"] == "FINISHED", submitted
    # The pod trained and logged to the run on the platform's server, with the README's alpha.
    mlflow_run = MlflowClient(platform.url).get_run(submitted["run"]["run_id"])
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.params["alpha"] == str(extra["project_parameters"]["alpha"])
    assert {"rmse", "mae", "r2"} <= set(mlflow_run.data.metrics), mlflow_run.data.metrics


def _namespace_exists(dyn, name: str) -> bool:
    from kubernetes.dynamic.exceptions import NotFoundError

    try:
        dyn.request("get", f"/api/v1/namespaces/{name}")
    except NotFoundError:
        return False
    return True


def _delete_namespace(dyn, name: str) -> None:
    from kubernetes.dynamic.exceptions import NotFoundError

    try:
        dyn.request("delete", f"/api/v1/namespaces/{name}", body={"propagationPolicy": "Foreground"})
    except NotFoundError:
        return
    assert watch_until(dyn, "v1", "Namespace", None, name, lambda obj: obj is None) is None
