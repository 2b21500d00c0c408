"""ansible-doc of this venv, run from the checkout (its ansible.cfg finds this collection)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def ansible_doc_json(plugin_type: str, *names: str) -> dict:
    """``ansible-doc -t <plugin_type> --json <names>``, parsed; fails the test with its stderr."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), "-t", plugin_type, "--json", *names],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
