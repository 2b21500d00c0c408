"""Test-wide set-up: make this checkout importable as ansible_collections.mlops.mlflow_k8s."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS = ROOT / ".collections"
_LINK = COLLECTIONS / "ansible_collections" / "mlops" / "mlflow_k8s"

if not _LINK.exists():
    _LINK.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(ROOT, _LINK)
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
