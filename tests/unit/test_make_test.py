"""`make test`'s last line names every skip: the Makefile's plumbing, and the sanity runner's
shellcheck skip (molecule's is in test_molecule_run.py, pytest's in tests/conftest.py)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GATES = ("lint", "sanity", "unit", "services", "manifests", "cluster", "molecule")


def _make_test(tmp_path: Path, skipping_gate_recipe: str) -> subprocess.CompletedProcess:
    """The real Makefile's test target, with each gate's recipe replaced by a stand-in."""
    override = tmp_path / "gates.mk"
    lines = [f"{gate}:\n\t@echo gate {gate}\n" for gate in GATES if gate != "molecule"]
    lines.append(f"molecule:\n\t@{skipping_gate_recipe}\n")
    override.write_text("".join(lines), encoding="utf-8")
    skips = tmp_path / "output" / "skips.txt"
    return subprocess.run(
        ["make", "--no-print-directory", "-f", "Makefile", "-f", str(override), "test", f"SKIPS={skips}"],
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
