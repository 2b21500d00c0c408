"""The controller's Python: scripts/find-python and requirements.txt's bounds per Python.

Debian 12's python3 is 3.11 (ansible-core 2.19 is the newest that runs on it), Ubuntu
24.04's is 3.12 (ansible-core 2.21). find-python is run with a PATH holding only the
interpreters a test puts there, so pyenv and this machine's other Pythons stay out.
"""

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from ansible.release import __version__ as ansible_core_version
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
FIND_PYTHON = ROOT / "scripts" / "find-python"
BASH = "/bin/bash"


def _python(minor: int) -> str | None:
    """A real interpreter 3.<minor> with venv and ensurepip on this machine, or None."""
    candidates = [f"/usr/bin/python3.{minor}", f"/usr/local/bin/python3.{minor}"]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(str(p) for p in pyenv_root.glob(f"versions/3.{minor}.*/bin/python3.{minor}"))
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            ok = subprocess.run([candidate, "-c", "import venv, ensurepip"], capture_output=True, check=False)
            if ok.returncode == 0:
                return candidate
    return None


def _need(*minors: int) -> list[str]:
    """Interpreters 3.<minor> for each of ``minors``, or skip the test."""
    found = [_python(minor) for minor in minors]
    if None in found:
        pytest.skip("needs Python " + ", ".join(f"3.{m}" for m in minors) + " with venv on this machine")
    return found


def _find_python(path_dirs, **env):
    return subprocess.run(
        [BASH, str(FIND_PYTHON)],
        env={"PATH": os.pathsep.join(str(d) for d in path_dirs), "HOME": os.environ.get("HOME", "/"), **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _minor(python: str) -> int:
    code = "import sys; print(sys.version_info[1])"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout)


def _bin_with(tmp_path, **links) -> Path:
    """A directory holding only the named links (name -> interpreter)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, target in links.items():
        (bindir / name).symlink_to(target)
    return bindir


def test_stock_debian_python3_11_is_enough(tmp_path):
    """Debian 12 without pyenv: python3 is 3.11, and find-python takes it."""
    (py311,) = _need(11)
    bindir = _bin_with(tmp_path, python3=py311)
    result = _find_python([bindir])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(bindir / "python3")
    assert _minor(result.stdout.strip()) == 11


def test_newest_python_wins(tmp_path):
    py311, py312 = _need(11, 12)
    bindir = _bin_with(tmp_path, python3=py311, **{"python3.12": py312})
    result = _find_python([bindir])
    assert result.returncode == 0, result.stderr
    assert _minor(result.stdout.strip()) == 12


def test_too_old_python_is_refused_with_what_to_install(tmp_path):
    (py310,) = _need(10)
    bindir = _bin_with(tmp_path, python3=py310)
    result = _find_python([bindir])
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Python >= 3.11" in result.stderr
    assert "apt-get install python3 python3-venv" in result.stderr
    named = _find_python([bindir], PYTHON=py310)
    assert named.returncode == 1
    assert f"PYTHON={py310} is not a Python >= 3.11" in named.stderr


def test_pyenv_shims_are_never_returned(tmp_path):
    """A shim stands for whatever PYENV_VERSION says: find-python skips directories of shims."""
    (py311,) = _need(11)
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "python3").symlink_to(py311)
    result = _find_python([shims])
    assert result.returncode == 1, result.stdout


def _requirements() -> list[Requirement]:
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [Requirement(line) for line in (raw.split("#", 1)[0].strip() for raw in lines) if line]


@pytest.mark.parametrize(
    ("python", "core", "ansible"),
    [("3.11", "2.19", "12"), ("3.12", "2.21", "14"), ("3.13", "2.21", "14")],
)
def test_each_python_gets_the_newest_ansible_core_it_allows(python, core, ansible):
    env = {"python_version": python, "python_full_version": python + ".0"}
    wanted = {}
    for req in _requirements():
        if req.marker is None or req.marker.evaluate(env):
            assert req.name not in wanted, f"{req.name} bounded twice for Python {python}"
            wanted[req.name] = req.specifier
    assert Version(core + ".99") in wanted["ansible-core"]
    too_old_or_new = {"2.19": ("2.18.99", "2.20.0", "2.21.0"), "2.21": ("2.19.14", "2.20.9", "2.22.0")}[core]
    assert not [v for v in too_old_or_new if Version(v) in wanted["ansible-core"]]
    assert Version(ansible + ".99") in wanted["ansible"]


def test_this_controller_meets_the_collection_metadata():
    """The ansible-core and the collections the `ansible` package brings on this Python satisfy
    meta/runtime.yml's requires_ansible and galaxy.yml's dependencies."""
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text(encoding="utf-8"))
    assert Version(ansible_core_version) in SpecifierSet(runtime["requires_ansible"])
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text(encoding="utf-8"))
    site = Path(metadata.distribution("ansible").locate_file("ansible_collections"))
    for fqcn, bounds in galaxy["dependencies"].items():
        manifest = json.loads((site / fqcn.replace(".", "/") / "MANIFEST.json").read_text(encoding="utf-8"))
        version = manifest["collection_info"]["version"]
        assert Version(version) in SpecifierSet(bounds), f"{fqcn} {version} not in {bounds} (Python {sys.version})"
