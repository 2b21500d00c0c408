"""One private-variable convention (docs/DEVELOPING.md): what a role computes for itself
(vars/main.yml, set_fact, register, task vars) is named __<role>_*; a name without the
leading __ is public: an input (defaults/main.yml or an entry point of
meta/argument_specs.yml, of this role or one it passes it to) or a fact the developer
guide's table hands on (plus <role>_manifests, the manifests contract). ansible_* are
Ansible's (ansible_python_interpreter on a task)."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
# The facts table of docs/DEVELOPING.md: | set by | `fact` | meaning |
GUIDE = (ROOT / "docs" / "DEVELOPING.md").read_text(encoding="utf-8")
HANDED_ON = set(re.findall(r"`([a-z][a-z0-9_]*)`", GUIDE[GUIDE.index("### Facts handed from role to role") :]))


def _tasks(items):
    for task in items or []:
        if isinstance(task, dict):
            yield task
            for key in ("block", "rescue", "always"):
                yield from _tasks(task.get(key))


def _defined(role: str) -> set[str]:
    role_dir = ROOT / "roles" / role
    names = set()
    vars_file = role_dir / "vars" / "main.yml"
    if vars_file.exists():
        names |= set(yaml.safe_load(vars_file.read_text(encoding="utf-8")) or {})
    for path in (role_dir / "tasks").glob("*.yml"):
        for task in _tasks(yaml.safe_load(path.read_text(encoding="utf-8"))):
            facts = task.get("ansible.builtin.set_fact") or {}
            names |= {name for name in facts if name != "cacheable"} if isinstance(facts, dict) else set()
            if task.get("register"):
                names.add(task["register"])
            names |= set(task.get("vars") or {})
    return names


def _inputs() -> set[str]:
    """Every role's inputs: a role may pass another's (include_role vars)."""
    names = set()
    for path in (ROOT / "roles").glob("*/defaults/main.yml"):
        names |= set(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    # An entry point's required inputs have no default (cluster's plan and remove).
    for path in (ROOT / "roles").glob("*/meta/argument_specs.yml"):
        for entry in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("argument_specs", {}).values():
            names |= set(entry.get("options") or {})
    return names


@pytest.mark.parametrize("role", ROLES)
def test_private_names_carry_two_underscores_and_the_role(role):
    public = _inputs() | HANDED_ON | {f"{role}_manifests"}
    wrong = sorted(n for n in _defined(role) if not n.startswith((f"__{role}_", "ansible_")) and n not in public)
    assert wrong == [], f"roles/{role}: name these __{role}_<name> (private) or document them as handed on"
