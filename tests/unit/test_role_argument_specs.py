"""Role argument specs: each option is written once, whatever the number of entry points
(entry points with the same inputs share one definition through a YAML anchor), and
ansible-core's own loader and ansible-doc read every entry point's options from it."""

import re
from pathlib import Path

import pytest
from ansible.parsing.yaml.loader import AnsibleLoader

from tests.harness.ansible_doc import ansible_doc_json

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(ROOT.glob("roles/*/meta/argument_specs.yml"))
# An option's definition: a key at the indentation of argument_specs.<entry>.options.<name>.
OPTION = re.compile(r"^      ([a-z][a-z0-9_]*):\s*$", re.MULTILINE)


def _role(path: Path) -> str:
    return path.parent.parent.name


@pytest.mark.parametrize("path", SPECS, ids=_role)
def test_every_option_is_written_once(path):
    names = OPTION.findall(path.read_text(encoding="utf-8"))
    copies = sorted({name for name in names if names.count(name) > 1})
    assert copies == [], f"{_role(path)}: options written more than once; share one definition (YAML anchor)"


@pytest.mark.parametrize("path", SPECS, ids=_role)
def test_ansible_loader_reads_every_entry_point(path):
    data = AnsibleLoader(path.read_text(encoding="utf-8")).get_single_data()
    for entry, spec in data["argument_specs"].items():
        assert spec["options"], f"{_role(path)}: entry point {entry} has no options"
        assert all(isinstance(option, dict) and option.get("description") for option in spec["options"].values())


def test_ansible_doc_shows_the_shared_options_for_each_entry_point():
    roles = ["database", "storage"]
    docs = ansible_doc_json("role", *(f"mlops.mlflow_k8s.{r}" for r in roles))
    for role in roles:
        entry_points = docs[f"mlops.mlflow_k8s.{role}"]["entry_points"]
        assert sorted(entry_points) == ["main", "manifests", "teardown"]
        main = entry_points["main"]["options"]
        assert len(main) > 30
        for entry in ("manifests", "teardown"):
            assert entry_points[entry]["options"] == main, f"{role}.{entry}"
