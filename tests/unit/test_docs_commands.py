"""Commands the README and docs print run as printed, after `make setup`, from the checkout:
the `.venv/bin/ansible-doc ...` lines, and the install command `make build` prints.

They run with neither the venv on PATH nor ANSIBLE_* variables set, as in a fresh shell.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted(ROOT.glob("roles/*/README.md"))]
ROLES = sorted(p.parent.parent.name for p in ROOT.glob("roles/*/meta/argument_specs.yml"))
FILTERS = sorted(p.stem for p in ROOT.glob("plugins/filter/*.yml"))
PLACEHOLDERS = {"mlops.mlflow_k8s.<role>": ROLES, "mlops.mlflow_k8s.<name>": FILTERS}
# Commands are inline code spans and the lines of fenced code blocks.
INLINE = re.compile(r"`([^`]+)`")


def _fresh_shell_env(home: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MLFLOW_K8S_"))}
    venv = str(VENV_BIN)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv)
    env.pop("VIRTUAL_ENV", None)
    if home is not None:
        env["HOME"] = str(home)
    return env


def _code_block_lines(text: str) -> list[str]:
    lines, inside = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
        elif inside:
            lines.append(line)
    return lines


def _commands(tool: str) -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        spans = [m.group(1) for m in INLINE.finditer(text)] + _code_block_lines(text)
        for span in spans:
            command = " ".join(span.split())
            if re.match(rf"(\S*/)?{re.escape(tool)}\s", command):
                found.append((str(doc.relative_to(ROOT)), command))
    return sorted(set(found))


def _as_run_here(command: str) -> list[str]:
    """.venv/bin/x in a doc is this venv's x (the suite may run on another venv)."""
    argv = shlex.split(command)
    if argv[0].startswith(".venv/bin/"):
        argv[0] = str(VENV_BIN / argv[0].removeprefix(".venv/bin/"))
    return argv


def test_docs_write_ansible_doc_as_it_runs_after_make_setup():
    bare = [(doc, cmd) for doc, cmd in _commands("ansible-doc") if not cmd.startswith(".venv/bin/ansible-doc ")]
    assert bare == [], "write these as .venv/bin/ansible-doc ...: they fail without the venv active"
    assert len(_commands("ansible-doc")) >= 5


@pytest.mark.parametrize(("doc", "command"), _commands("ansible-doc"))
def test_ansible_doc_line_runs_as_printed(doc, command):
    argv = _as_run_here(command)
    for placeholder, names in PLACEHOLDERS.items():  # <role>, <name>: every role, every filter
        if placeholder in argv:
            index = argv.index(placeholder)
            argv[index : index + 1] = [f"mlops.mlflow_k8s.{name}" for name in names]
    result = subprocess.run(argv, cwd=ROOT, env=_fresh_shell_env(), capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{doc}: {command}\n{result.stderr}"
    names = [a for a in argv if a.startswith("mlops.mlflow_k8s.")]
    for name in names:
        assert name.upper() in result.stdout.upper(), f"{doc}: {command}: no documentation of {name}"


def test_make_build_prints_an_install_command_that_works_from_the_checkout(tmp_path):
    """Installing into this checkout's .collections would meet the link to the checkout
    (ansible-galaxy --force crashes on it); the printed command installs elsewhere, twice over,
    and leaves the link as it was."""
    link = ROOT / ".collections" / "ansible_collections" / "mlops" / "mlflow_k8s"
    assert link.is_symlink()
    home = tmp_path / "home"
    home.mkdir()
    build = subprocess.run(
        ["make", "--no-print-directory", "build", f"BUILD={tmp_path / 'build'}", f"VENV={VENV_BIN.parent}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    lines = build.stdout.splitlines()
    printed = lines[lines.index("make build: install it with") + 1].strip()
    assert " collection install --force " in printed
    if printed.startswith(".venv/bin/"):
        printed = str(VENV_BIN) + printed.removeprefix(".venv/bin")
    for _attempt in range(2):
        result = subprocess.run(
            [shutil.which("bash") or "/bin/bash", "-c", printed],
            cwd=ROOT,
            env=_fresh_shell_env(home),
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    installed = home / ".ansible" / "collections" / "ansible_collections" / "mlops" / "mlflow_k8s"
    assert (installed / "MANIFEST.json").is_file()
    assert link.is_symlink()
    assert link.resolve() == ROOT


def test_readme_shows_the_command_make_build_prints():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "collection install --force -p ~/.ansible/collections" in makefile
    assert (
        "make build && .venv/bin/ansible-galaxy collection install --force -p ~/.ansible/collections "
        "build/mlops-mlflow_k8s-0.1.0.tar.gz" in readme
    )
