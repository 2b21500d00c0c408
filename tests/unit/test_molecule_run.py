"""tests/molecule/run: scenario discovery, the prerequisites/skip convention, failure propagation.

The runner is pointed (MLFLOW_K8S_ROOT) at a throw-away collection holding this repository's
shared extensions/molecule/config.yml and small scenarios; the passing and failing scenarios
run through real molecule and ansible-playbook.
"""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "tests" / "molecule" / "run"

CONVERGE_OK = """\
---
- name: Converge
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Say something
      ansible.builtin.debug:
        msg: converged
"""

CONVERGE_FAIL = """\
---
- name: Converge
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Fail on purpose
      ansible.builtin.fail:
        msg: this scenario fails on purpose
"""

VERIFY_OK = """\
---
- name: Verify
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Check the interpreter is the venv's
      ansible.builtin.assert:
        that: ansible_python_interpreter == ansible_playbook_python
"""


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def _prerequisites(body: str) -> str:
    return '#!/usr/bin/env bash\nsource "$MLFLOW_K8S_PREREQUISITES"\n' + textwrap.dedent(body)


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("molecule-run") / "collection"
    _write(root / "galaxy.yml", "---\nnamespace: mlops_test\nname: molecule_run\nversion: 0.0.1\nreadme: README.md\n")
    shutil.copy(ROOT / "ansible.cfg", root / "ansible.cfg")
    scenarios = root / "extensions" / "molecule"
    scenarios.mkdir(parents=True)
    shutil.copy(ROOT / "extensions" / "molecule" / "config.yml", scenarios / "config.yml")
    for name, converge in (("passes", CONVERGE_OK), ("fails", CONVERGE_FAIL)):
        _write(scenarios / name / "molecule.yml", "---\n{}\n")
        _write(scenarios / name / "converge.yml", converge)
        _write(scenarios / name / "verify.yml", VERIFY_OK)
    _write(scenarios / "skips" / "molecule.yml", "---\n{}\n")
    _write(
        scenarios / "skips" / "prerequisites",
        _prerequisites("need_command sh\nneed_command mlflow-k8s-no-such-command\n"),
        0o755,
    )
    _write(scenarios / "broken" / "molecule.yml", "---\n{}\n")
    _write(scenarios / "broken" / "prerequisites", "#!/usr/bin/env bash\necho oops\nexit 3\n", 0o755)
    _write(scenarios / "not_executable" / "molecule.yml", "---\n{}\n")
    _write(scenarios / "not_executable" / "prerequisites", "#!/usr/bin/env bash\nexit 0\n")
    # A scenario whose prerequisites pass runs: it is the passing one with a check added.
    _write(scenarios / "passes" / "prerequisites", _prerequisites("need_command sh python\n"), 0o755)
    _write(scenarios / "needs_cluster" / "molecule.yml", "---\n{}\n")
    _write(scenarios / "needs_cluster" / "prerequisites", _prerequisites("need_kube_api\n"), 0o755)
    return root


def _run(collection: Path, *args: str, strict: bool = False, **extra_env: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MLFLOW_K8S_ROOT=str(collection), VENV=str(Path(sys.executable).parent.parent))
    env.pop("MLFLOW_K8S_MOLECULE_STRICT", None)
    env.pop("MLFLOW_K8S_SKIPS", None)
    env.pop("MLFLOW_K8S_NEED_CLUSTER", None)
    env.update(extra_env)
    if strict:
        env["MLFLOW_K8S_MOLECULE_STRICT"] = "1"
    return subprocess.run([str(RUNNER), *args], env=env, capture_output=True, text=True, check=False, timeout=600)


def test_skip_prints_the_reason_and_passes(collection):
    result = _run(collection, "skips")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SKIP  skips: needs the command 'mlflow-k8s-no-such-command', not found on PATH" in result.stdout


def test_a_skip_is_recorded_for_make_tests_last_line(collection, tmp_path):
    skips = tmp_path / "skips.txt"
    result = _run(collection, "skips", "not_executable", MLFLOW_K8S_SKIPS=str(skips))
    assert result.returncode == 1
    assert skips.read_text(encoding="utf-8").splitlines() == [
        "molecule skips (needs the command 'mlflow-k8s-no-such-command', not found on PATH)"
    ]


def test_prerequisites_only_runs_no_scenario(collection, tmp_path):
    """What make setup shows: which scenarios would run and which skip, and nothing run."""
    skips = tmp_path / "skips.txt"
    result = _run(collection, "--prerequisites-only", "passes", "skips", "fails", MLFLOW_K8S_SKIPS=str(skips))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "  RUN   passes\n" in result.stdout
    assert "  RUN   fails\n" in result.stdout
    assert "  SKIP  skips: needs the command 'mlflow-k8s-no-such-command'" in result.stdout
    assert "this scenario fails on purpose" not in result.stdout + result.stderr
    assert not skips.exists()


def test_strict_turns_a_skip_into_a_failure(collection):
    result = _run(collection, "skips", strict=True)
    assert result.returncode == 1
    assert "FAIL  skips: skipped under MLFLOW_K8S_MOLECULE_STRICT" in result.stdout


def test_broken_prerequisites_fail(collection):
    result = _run(collection, "broken")
    assert result.returncode == 1
    assert "FAIL  broken: prerequisites check exited 3" in result.stdout
    assert "oops" in result.stdout


def test_prerequisites_must_be_executable(collection):
    result = _run(collection, "not_executable")
    assert result.returncode == 1
    assert "is not executable" in result.stdout


def test_unknown_scenario_is_an_error(collection):
    result = _run(collection, "no_such_scenario")
    assert result.returncode == 2
    assert "no scenario 'no_such_scenario'" in result.stderr
    # The known scenarios are listed, in discovery order.
    assert "known: broken fails needs_cluster not_executable passes skips" in result.stderr


def _no_cluster(tmp_path: Path) -> dict[str, str]:
    """An environment in which tests/harness/cluster.py finds no cluster: KUBECONFIG names a
    file that does not exist, and no rig is up (RIG_DIR is empty)."""
    return {"KUBECONFIG": str(tmp_path / "no-such-kubeconfig"), "RIG_DIR": str(tmp_path / "no-rig")}


def test_no_cluster_skips_with_the_resolvers_reason(collection, tmp_path):
    result = _run(collection, "--prerequisites-only", "needs_cluster", **_no_cluster(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "molecule: no Kubernetes: KUBECONFIG is set but" in result.stdout
    assert "  SKIP  needs_cluster: needs a Kubernetes API: KUBECONFIG is set but" in result.stdout


def test_need_cluster_turns_a_missing_cluster_into_a_failure(collection, tmp_path):
    """CI (MLFLOW_K8S_NEED_CLUSTER=1): no cluster fails the scenario, with the reason, not a skip."""
    result = _run(collection, "needs_cluster", MLFLOW_K8S_NEED_CLUSTER="1", **_no_cluster(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "MLFLOW_K8S_NEED_CLUSTER=1 makes a missing one a failure: KUBECONFIG is set but" in result.stdout
    assert "FAIL  needs_cluster: prerequisites check exited 1" in result.stdout
    assert "SKIP" not in result.stdout


@pytest.mark.slow
def test_one_failing_scenario_fails_the_run(collection):
    result = _run(collection, "passes", "fails", "skips")
    summary = result.stdout[result.stdout.rindex("molecule: summary") :]
    assert result.returncode == 1, result.stdout[-3000:]
    assert "PASS  passes" in summary
    assert "FAIL  fails" in summary
    assert "SKIP  skips" in summary
    assert "this scenario fails on purpose" in result.stdout + result.stderr
