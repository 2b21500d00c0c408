"""The unit suite covers every module_utils and plugin_utils file: each is imported by at
least one tests/unit/test_*.py (docs/DEVELOPING.md, Tests)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "ansible_collections.mlops.mlflow_k8s.plugins"
LIBRARIES = sorted(
    p for d in ("module_utils", "plugin_utils") for p in (ROOT / "plugins" / d).glob("*.py") if p.name != "__init__.py"
)
UNIT_TESTS = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "tests" / "unit").glob("test_*.py")}


def _imports(text: str, kind: str, name: str) -> bool:
    dotted = re.escape(f"{PACKAGE}.{kind}")
    direct = re.search(rf"^\s*(from|import) {dotted}\.{name}\b", text, re.MULTILINE)
    # from <package>.<kind> import a, b  /  from <package>.<kind> import (\n a,\n b,\n)
    grouped = any(
        re.search(rf"\b{name}\b", names)
        for names in re.findall(rf"^\s*from {dotted} import (\([^)]*\)|[^\n]*)", text, re.MULTILINE)
    )
    return bool(direct) or grouped


@pytest.mark.parametrize("path", LIBRARIES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_library_file_has_a_unit_test_importing_it(path):
    kind, name = path.parent.name, path.stem
    importers = sorted(test for test, text in UNIT_TESTS.items() if _imports(text, kind, name))
    assert importers, f"plugins/{kind}/{path.name}: no tests/unit/test_*.py imports it"


def test_the_listing_sees_both_directories():
    assert {p.parent.name for p in LIBRARIES} == {"module_utils", "plugin_utils"}
    assert len(LIBRARIES) >= 10
