"""A cached virtualenv holding another MLflow release (the upgrade tests' other side).

``mlflow_venv("3.18.0")`` returns the venv's ``bin`` directory, creating it once with pip from
PyPI (``mlflow==<version>`` plus the drivers the backend URIs name) under
``$MLFLOW_K8S_CACHE`` (default ``~/.cache/mlflow-k8s``). A finished venv carries a marker file,
so an interrupted install is redone rather than reused. Run as a script to prepare it ahead:
``python -m tests.harness.mlflow_venv 3.18.0``.

When the index lacks that release's ``mlflow-skinny``/``mlflow-tracing`` (3.18.0's were not
published when this was written: only the ``mlflow`` wheel was), the venv gets the newest
release that installs whole (``fallback``) and then the asked-for ``mlflow`` wheel without its
dependencies on top: the server, the stores, the CLI and the schema migrations are that wheel's.
``installed_with(venv_bin)`` says which way a venv was made.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DRIVERS = ("psycopg2-binary", "PyMySQL")


def cache_dir() -> Path:
    return Path(os.environ.get("MLFLOW_K8S_CACHE") or Path.home() / ".cache" / "mlflow-k8s")


def mlflow_venv(version: str, fallback: str = "3.17.2") -> Path:
    """The ``bin`` directory of a venv with ``mlflow==version`` and the database drivers."""
    venv = cache_dir() / "venvs" / f"mlflow-{version}-py{sys.version_info.major}.{sys.version_info.minor}"
    marker = venv / ".complete"
    if not marker.exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        how = "whole"
        if subprocess.run([*pip, f"mlflow=={version}", *DRIVERS], check=False).returncode != 0:
            how = f"mlflow {version} wheel over mlflow {fallback}"
            subprocess.run([*pip, f"mlflow=={fallback}", *DRIVERS], check=True)
            subprocess.run([*pip, "--no-deps", f"mlflow=={version}"], check=True)
        installed = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import mlflow; print(mlflow.__version__)"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if installed != version:
            raise RuntimeError(f"{venv}: pip installed mlflow {installed}, not {version}")
        marker.write_text(f"{version}\n{how}\n")
    return venv / "bin"


def installed_with(venv_bin: Path) -> str:
    """How the venv was made: ``whole`` or ``mlflow X wheel over mlflow Y`` (or, for a venv this
    module did not make, such as the project's, ``not a cached venv``)."""
    marker = venv_bin.parent / ".complete"
    return marker.read_text().splitlines()[1] if marker.exists() else "not a cached venv"


if __name__ == "__main__":
    print(mlflow_venv(sys.argv[1]))
