"""objects_info's pure parts: how a query is named in messages, and the refusal of nothing to
read. The reads themselves run against a real cluster in tests/cluster/test_objects_info.py."""

import pytest

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import objects_info
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ClusterError


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ({"kind": "Node"}, "Node"),
        ({"kind": "Secret", "namespace": "mlflow", "name": "db"}, "Secret mlflow/db"),
        ({"kind": "PersistentVolume", "name": "pv-1"}, "PersistentVolume pv-1"),
        (
            {"kind": "ConfigMap", "namespace": "mlflow", "label_selectors": ["role=backup", "tier!=db"]},
            "ConfigMap mlflow labelled role=backup,tier!=db",
        ),
    ],
)
def test_a_query_is_named_by_kind_place_and_selector(query, text):
    assert objects_info.describe(query) == text


def test_nothing_to_read_is_refused_naming_the_option():
    with pytest.raises(ClusterError) as refused:
        objects_info.check([])
    assert "queries" in str(refused.value) and "at least one query" in str(refused.value)
    objects_info.check([{"kind": "Node"}])  # one query is enough
