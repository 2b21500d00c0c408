"""Test-wide set-up: make this checkout importable as ansible_collections.mlops.mlflow_k8s."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS = ROOT / ".collections"
_LINK = COLLECTIONS / "ansible_collections" / "mlops" / "mlflow_k8s"

# MLflow's client telemetry (on by default) sets and unsets an environment variable from a
# thread of its own, which another thread iterating os.environ (urllib's proxy lookup, under
# requests) meets as a KeyError on Python 3.11: a call of the test's own failed that way in CI.
# Nothing here may phone out anyway (the machines reach no such host). The servers the harness
# starts get the same (tests/harness/mlflow_server.py).
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

if not _LINK.exists():
    _LINK.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(ROOT, _LINK)
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Under ``make test`` (MLFLOW_K8S_SKIPS names a file), record this run's skips there:
    make test prints every skip in its last line."""
    del exitstatus
    skips_file = os.environ.get("MLFLOW_K8S_SKIPS")
    skipped = terminalreporter.stats.get("skipped", [])
    if not skips_file or not skipped:
        return
    reasons = sorted({str(report.longrepr[2]).removeprefix("Skipped: ") for report in skipped})
    suite = " ".join(os.path.relpath(arg) for arg in config.args) or "pytest"
    with open(skips_file, "a", encoding="utf-8") as fd:
        fd.write(f"pytest {suite}: {len(skipped)} skipped ({'; '.join(reasons)})\n")
