"""A Python file a role ships in a ConfigMap (``roles/<role>/files/<name>.py``), imported from
that very file, under the module name the pod imports it by."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def role_file(role: str, name: str) -> Path:
    return ROOT / "roles" / role / "files" / f"{name}.py"


def load_role_file(role: str, name: str) -> ModuleType:
    """The module ``name`` from ``roles/<role>/files/<name>.py``; registered in ``sys.modules`` first
    (dataclasses and typing look their module up there), the one already there kept."""
    spec = importlib.util.spec_from_file_location(name, role_file(role, name))
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module
