"""`make test`'s last line names every skip: the Makefile's plumbing, and the sanity runner's
shellcheck skip (molecule's is in test_molecule_run.py, pytest's in tests/conftest.py)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Every target make test runs: each is replaced by a stand-in, so none runs for real here
# (cluster-disruptive would restart this machine's rig).
GATES = ("lint", "sanity", "unit", "services", "manifests", "cluster", "molecule", "cluster-disruptive")


def _make_test(
    tmp_path: Path, skipping_gate_recipe: str, recipes: dict[str, str] | None = None, *args: str
) -> subprocess.CompletedProcess:
    """The real Makefile's test target, with each gate's recipe replaced by a stand-in."""
    override = tmp_path / "gates.mk"
    recipes = (
        {gate: f"@echo gate {gate}" for gate in GATES} | {"molecule": f"@{skipping_gate_recipe}"} | (recipes or {})
    )
    override.write_text("".join(f"{gate}:\n\t{recipe}\n" for gate, recipe in recipes.items()), encoding="utf-8")
    skips = tmp_path / "output" / "skips.txt"
    return subprocess.run(
        ["make", "--no-print-directory", "-f", "Makefile", "-f", str(override), "test", f"SKIPS={skips}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_last_line_lists_the_skips(tmp_path):
    result = _make_test(tmp_path, 'echo "molecule microk8s (needs systemd)" >>"$$MLFLOW_K8S_SKIPS"')
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last == "make test: all gates passed; skipped: molecule microk8s (needs systemd)"


def test_a_later_run_without_skips_says_so(tmp_path):
    _make_test(tmp_path, 'echo "molecule site (needs a Kubernetes API)" >>"$$MLFLOW_K8S_SKIPS"')
    result = _make_test(tmp_path, "echo gate molecule")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "make test: all gates passed, nothing skipped"


def test_the_cluster_suite_runs_beside_the_other_gates(tmp_path):
    """TEST_JOBS=2 (the default): lint sees the cluster gate running, and each gate's output is whole."""
    running = tmp_path / "cluster-running"
    recipes = {
        "cluster": f"@touch {running}; echo cluster-start; sleep 3; echo cluster-end; rm {running}",
        "lint": f"@for i in 1 2 3 4 5 6 7 8 9 10; do [ -e {running} ] && break; sleep 0.2; done;"
        f" test -e {running} && echo lint-saw-cluster",
    }
    result = _make_test(tmp_path, "echo gate molecule", recipes)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "lint-saw-cluster" in lines
    assert lines.index("cluster-end") == lines.index("cluster-start") + 1  # not interleaved
    assert lines[-1] == "make test: all gates passed, nothing skipped"


def test_one_at_a_time_and_a_failing_gate_fails_the_run(tmp_path):
    running = tmp_path / "cluster-running"
    recipes = {
        "cluster": f"@touch {running}; sleep 1; rm {running}",
        "lint": f"@test ! -e {running} && echo lint-after-cluster",
        "unit": "@echo unit-fails; exit 3",
    }
    result = _make_test(tmp_path, "echo gate molecule", recipes, "TEST_JOBS=1")
    assert result.returncode != 0
    assert "lint-after-cluster" in result.stdout
    assert "all gates passed" not in result.stdout
    assert "gate molecule" not in result.stdout  # the run stopped at the failing gate


def test_sanity_reports_the_shellcheck_skip(tmp_path):
    skips = tmp_path / "skips.txt"
    env = dict(os.environ, MLFLOW_K8S_SKIPS=str(skips), VENV=str(Path(sys.executable).parent.parent))
    result = subprocess.run(
        [str(ROOT / "tests" / "sanity" / "run"), "--test", "shellcheck"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Quiet: no pip output, the tests that ran in one line.
    assert "sanity: ran shellcheck" in result.stdout
    assert "Collecting " not in result.stdout
    if shutil.which("shellcheck"):
        assert not skips.exists()
        assert "skipped" not in result.stdout
    else:
        assert skips.read_text(encoding="utf-8") == "sanity shellcheck (shellcheck not installed)\n"
        assert "apt-get install shellcheck" in result.stdout


def test_pytest_skips_are_recorded(tmp_path):
    """tests/conftest.py's hook: a suite's skips, with their reasons, in one line."""
    test_file = tmp_path / "test_skipping.py"
    test_file.write_text(
        "import pytest\n\n"
        "def test_runs():\n    assert True\n\n"
        "@pytest.mark.skip(reason='no snapd here')\ndef test_skipped():\n    pass\n",
        encoding="utf-8",
    )
    skips = tmp_path / "skips.txt"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "tests.conftest", "-p", "no:cacheprovider"]
        + ["-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT), str(test_file)],
        cwd=ROOT,
        env=dict(os.environ, MLFLOW_K8S_SKIPS=str(skips)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    line = skips.read_text(encoding="utf-8").strip()
    assert line.startswith("pytest ") and line.endswith(": 1 skipped (no snapd here)"), line


def test_the_disruptive_cluster_tests_run_after_every_other_gate(tmp_path):
    """They restart the rig's control plane: nothing else may be using the cluster then."""
    done = tmp_path / "done"
    recipes = {gate: f"@sleep 0.5; echo {gate} >>{done}" for gate in GATES if gate != "cluster-disruptive"}
    recipes["molecule"] = f"@sleep 1; echo molecule >>{done}"
    recipes["cluster-disruptive"] = f"@echo disruptive-after $$(sort {done} | paste -sd, -)"
    result = _make_test(tmp_path, "true", recipes)
    assert result.returncode == 0, result.stdout + result.stderr
    others = ",".join(sorted(gate for gate in GATES if gate != "cluster-disruptive"))
    assert f"disruptive-after {others}" in result.stdout.splitlines()
