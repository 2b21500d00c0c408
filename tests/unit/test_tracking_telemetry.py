"""The module's MLflow client runs with MLflow's telemetry off, unless the environment says."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = (
    "import os\n"
    "from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import tracking\n"
    "from mlflow.telemetry.utils import is_telemetry_disabled\n"
    "print(os.environ['MLFLOW_DISABLE_TELEMETRY'], is_telemetry_disabled())\n"
)


def _probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")}
    clean.update(env)
    clean["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    done = subprocess.run([sys.executable, "-c", PROBE], env=clean, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_the_tracking_utils_turns_mlflow_telemetry_off() -> None:
    assert _probe() == "true True"


def test_an_operator_who_sets_it_keeps_their_setting() -> None:
    # (whether MLflow then reports also depends on its own CI detection: not asserted)
    assert _probe(MLFLOW_DISABLE_TELEMETRY="false").split()[0] == "false"
