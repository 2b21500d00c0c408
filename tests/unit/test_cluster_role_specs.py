"""The cluster roles' argument specs and defaults agree (argument_specs.yml is templated and
validated before the first task, so a default there that differs, or that cannot be
templated before facts are gathered, breaks the role)."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = ["cluster", "preflight", "microk8s", "minikube"]


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_specified_with_the_same_value(role):
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())
    spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    # main's options, and the defaulted options of the other entry points (cluster's remove)
    options = dict(spec["argument_specs"]["main"]["options"])
    for entry, body in spec["argument_specs"].items():
        if entry != "main":
            options.update({k: v for k, v in (body.get("options") or {}).items() if "default" in v})
    assert sorted(defaults) == sorted(options)
    for name, option in options.items():
        assert option.get("default") == defaults[name], name
        assert option.get("description"), name
        assert option.get("type"), name
        assert name.startswith(role + "_"), name
