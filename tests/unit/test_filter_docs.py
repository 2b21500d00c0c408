"""Every filter of the collection is documented for ansible-doc (plugins/filter/<name>.yml),
and the documented options are the filter's parameters."""

import inspect
import re
from pathlib import Path

from ansible_collections.mlops.mlflow_k8s.plugins.filter import backend_store_uri, cluster
from tests.harness.ansible_doc import ansible_doc_json

ROOT = Path(__file__).resolve().parents[2]
FILTERS = {**cluster.FILTERS, "backend_store_uri": backend_store_uri.backend_store_uri}


def test_every_filter_has_a_doc_file_and_no_doc_file_is_stale():
    docs = {p.stem for p in (ROOT / "plugins" / "filter").glob("*.yml")}
    assert docs == set(FILTERS)
    loaded = set(cluster.FilterModule().filters()) | set(backend_store_uri.FilterModule().filters())
    assert loaded == set(FILTERS)


def test_ansible_doc_reads_every_filter_with_its_parameters():
    names = sorted(f"mlops.mlflow_k8s.{name}" for name in FILTERS)
    docs = ansible_doc_json("filter", *names)
    assert sorted(docs) == names
    for fqcn, entry in docs.items():
        doc = entry["doc"]
        function = FILTERS[fqcn.rsplit(".", 1)[1]]
        parameters = list(inspect.signature(function).parameters)[1:]
        assert doc["short_description"], fqcn
        assert "_input" in doc["options"], fqcn
        assert sorted(set(doc["options"]) - {"_input"}) == sorted(parameters), fqcn
        assert entry["examples"] and fqcn in entry["examples"], fqcn
        assert entry["return"]["_value"]["type"], fqcn
        for name, option in doc["options"].items():
            default = inspect.signature(function).parameters[name].default if name != "_input" else None
            if default not in (None, inspect.Parameter.empty):
                expected = list(default) if isinstance(default, tuple) else default
                assert option.get("default") == expected, f"{fqcn} {name}"


def test_roles_and_playbooks_call_our_filters_by_fqcn_only():
    bare = re.compile(r"(\|\s*|(map|select|reject)\(\s*['\"])(" + "|".join(sorted(FILTERS)) + r")\b")
    found = []
    for pattern in ("roles/**/*.yml", "roles/**/*.j2", "playbooks/**/*.yml", "extensions/**/*.yml", "inventories/**/*"):
        for path in ROOT.glob(pattern):
            if not path.is_file():
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if bare.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == [], "call them as mlops.mlflow_k8s.<filter>"
