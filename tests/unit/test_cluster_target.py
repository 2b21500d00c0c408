"""Where the cluster tests run (tests/harness/cluster.py) and what tests/cluster/run does without
a cluster: skip with the reason in make test's last line, or fail under MLFLOW_K8S_NEED_CLUSTER=1.

The clusters here are ones that cannot answer (a kubeconfig naming a closed port, a rig state
directory with no kubeconfig); the cluster suite's own test_harness.py probes the real one.
"""

import os
import subprocess
import sys
from pathlib import Path

from tests.harness import cluster

ROOT = Path(__file__).resolve().parents[2]


def _kubeconfig(path: Path) -> Path:
    return cluster.write_kubeconfig(path, "https://127.0.0.1:9")  # a closed port


def test_a_named_kubeconfig_wins_and_its_failure_is_the_reason(tmp_path, monkeypatch):
    named = _kubeconfig(tmp_path / "named")
    rig = tmp_path / "rig-state"
    _kubeconfig((rig / "rig").mkdir(parents=True) or rig / "rig" / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(named))
    monkeypatch.setenv("RIG_DIR", str(rig))
    kubeconfig, detail = cluster.target()
    assert kubeconfig is None
    assert detail.startswith(f"KUBECONFIG is set but {named} does not answer"), detail


def test_without_kubeconfig_the_rig_is_looked_at(tmp_path, monkeypatch):
    rig = tmp_path / "rig-state"
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("RIG_DIR", str(rig))
    assert cluster.rig_kubeconfig() == rig / "rig" / "kubeconfig"
    assert cluster.target() == (None, f"no cluster: {cluster.HOW_TO_GET_ONE}")
    _kubeconfig((rig / "rig").mkdir(parents=True) or rig / "rig" / "kubeconfig")
    kubeconfig, detail = cluster.target()
    assert kubeconfig is None and detail.startswith("no KUBECONFIG, and the rig's "), detail


def test_several_files_in_kubeconfig_are_refused(tmp_path):
    ok, detail = cluster.probe(f"{tmp_path}/a{os.pathsep}{tmp_path}/b")
    assert not ok and "flatten them into one" in detail


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    skips = tmp_path / "skips.txt"
    base = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "MLFLOW_K8S_NEED_CLUSTER")}
    base |= {"RIG_DIR": str(tmp_path / "no-rig"), "MLFLOW_K8S_SKIPS": str(skips), "VENV": str(Path(sys.prefix))}
    return subprocess.run(
        [str(ROOT / "tests" / "cluster" / "run")],
        env=base | env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_run_without_a_cluster_skips_and_says_why(tmp_path):
    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"cluster tests: skipped: no cluster: {cluster.HOW_TO_GET_ONE}"
    assert (tmp_path / "skips.txt").read_text() == f"cluster tests (no cluster: {cluster.HOW_TO_GET_ONE})\n"


def test_run_without_a_cluster_fails_where_one_is_needed(tmp_path):
    named = _kubeconfig(tmp_path / "named")
    result = _run(tmp_path, KUBECONFIG=str(named), MLFLOW_K8S_NEED_CLUSTER="1")
    assert result.returncode == 1
    assert "MLFLOW_K8S_NEED_CLUSTER=1 and KUBECONFIG is set but" in result.stderr
    assert not (tmp_path / "skips.txt").exists()
