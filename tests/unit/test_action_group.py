"""meta/runtime.yml's action group holds every module of ours that takes the cluster options.

Those modules pull in the k8s_auth doc fragment, which documents the group membership
(attributes.action_group); this keeps the two from drifting apart.
"""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_every_module_with_the_cluster_options_is_in_the_group():
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text(encoding="utf-8"))
    group = runtime["action_groups"]["k8s"]
    assert {"metadata": {"extend_group": ["kubernetes.core.k8s"]}} in group
    members = {entry for entry in group if isinstance(entry, str)}
    with_auth = {
        path.stem
        for path in (ROOT / "plugins" / "modules").glob("*.py")
        if "mlops.mlflow_k8s.k8s_auth" in path.read_text(encoding="utf-8")
    }
    assert with_auth and members == with_auth
