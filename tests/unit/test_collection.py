"""The collection as users get it: `ansible-galaxy collection build`, install, `ansible-doc`.

The tarball is built from this checkout into a temporary directory, installed into a
temporary collections path, and read back with ansible-doc from a directory outside the
checkout (so neither ansible.cfg nor the .collections link of the checkout is involved).
"""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path, PurePosixPath

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text(encoding="utf-8"))
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"

# Paths that must never ship: the venv, the collections link, VCS data, caches, build output.
FORBIDDEN_PARTS = {
    ".venv",
    ".collections",
    ".git",
    ".ansible",
    ".cache",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "__pycache__",
}
FORBIDDEN_PREFIXES = ("build/", "tests/output/")


def _run(*cmd: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=600)
    assert result.returncode == 0, f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build")
    _run(str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(ROOT), cwd=out)
    built = list(out.glob("*.tar.gz"))
    assert [p.name for p in built] == [f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"]
    return built[0]


@pytest.fixture(scope="module")
def members(tarball) -> list[str]:
    with tarfile.open(tarball) as tar:
        return tar.getnames()


@pytest.fixture(scope="module")
def doc_env(tarball, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Install the tarball into an empty collections path; return (cwd, env) for ansible-doc."""
    home = tmp_path_factory.mktemp("installed")
    collections = home / "collections"
    cfg = home / "ansible.cfg"
    cfg.write_text("[defaults]\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_CONFIG=str(cfg),
        ANSIBLE_COLLECTIONS_PATH=str(collections),
        ANSIBLE_HOME=str(home / "ansible-home"),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    _run(
        str(BIN / "ansible-galaxy"),
        "collection",
        "install",
        "--offline",
        "--no-deps",
        "-p",
        str(collections),
        str(tarball),
        cwd=home,
        env=env,
    )
    installed = collections / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    assert (installed / "MANIFEST.json").is_file()
    assert not installed.is_symlink()
    return home, env


def _doc_list(doc_env, plugin_type: str) -> dict:
    cwd, env = doc_env
    result = _run(str(BIN / "ansible-doc"), "-t", plugin_type, "-l", FQCN, "--json", cwd=cwd, env=env)
    return json.loads(result.stdout)


def test_tarball_holds_no_local_state(members):
    bad = [
        name
        for name in members
        if FORBIDDEN_PARTS.intersection(PurePosixPath(name).parts) or name.startswith(FORBIDDEN_PREFIXES)
    ]
    assert bad == []


def test_tarball_holds_the_collection(members):
    names = set(members)
    for required in ("MANIFEST.json", "FILES.json", "meta/runtime.yml", "README.md", "roles/controller/tasks/main.yml"):
        assert required in names
    # Every module of the checkout ships.
    for module in (ROOT / "plugins" / "modules").glob("*.py"):
        assert f"plugins/modules/{module.name}" in names


def test_manifest_matches_galaxy_yml(tarball):
    with tarfile.open(tarball) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == (
        GALAXY["namespace"],
        GALAXY["name"],
        GALAXY["version"],
    )
    assert info["license"] == GALAXY["license"]
    assert info["dependencies"] == GALAXY["dependencies"]


def test_ansible_doc_lists_the_roles(doc_env):
    roles = _doc_list(doc_env, "role")
    assert f"{FQCN}.controller" in roles
    # Every role that documents its inputs is listed.
    for spec in (ROOT / "roles").glob("*/meta/argument_specs.yml"):
        assert f"{FQCN}.{spec.parent.parent.name}" in roles


def test_ansible_doc_reads_the_controller_role(doc_env):
    cwd, env = doc_env
    result = _run(str(BIN / "ansible-doc"), "-t", "role", f"{FQCN}.controller", "--json", cwd=cwd, env=env)
    doc = json.loads(result.stdout)[f"{FQCN}.controller"]
    assert str(cwd) in doc["path"]
    options = doc["entry_points"]["main"]["options"]
    assert set(options) == {
        "controller_state_dir",
        "controller_require_mlflow",
        "controller_require_docker",
        "controller_validate_roles",
    }


def test_ansible_doc_lists_the_modules(doc_env):
    modules = _doc_list(doc_env, "module")
    expected = {f"{FQCN}.{p.stem}" for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__"}
    assert expected <= set(modules)
    if (ROOT / "plugins" / "modules" / "mlflow_project_job.py").exists():
        assert f"{FQCN}.mlflow_project_job" in modules
