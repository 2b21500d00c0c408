"""module_utils/entry.py: how every module of the collection ends (the modules' own runs are in
test_module_project_job.py and the cluster suite; here the four outcomes, on a recording module)."""

import pytest

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.entry import finish
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ClusterError


class Ended(Exception):
    pass


class Recorder:
    """The two exits of AnsibleModule, recorded; each ends the call as the real ones do."""

    def __init__(self):
        self.outcome = None

    def fail_json(self, **kwargs):
        self.outcome = ("fail", kwargs)
        raise Ended

    def exit_json(self, **kwargs):
        self.outcome = ("exit", kwargs)
        raise Ended


def _finish(call, requires=()):
    module = Recorder()
    with pytest.raises(Ended):
        finish(module, call, requires)
    return module.outcome


def test_a_missing_library_is_named_and_nothing_runs():
    ran = []
    kind, result = _finish(lambda: ran.append(1) or {}, [("kubernetes", False, ImportError("no module"))])
    assert kind == "fail" and "kubernetes" in result["msg"] and ran == []


def test_an_error_names_its_option():
    def call():
        raise ClusterError("kubeconfig", "no kubeconfig file at /nowhere")

    assert _finish(call) == ("fail", {"msg": "kubeconfig: no kubeconfig file at /nowhere", "option": "kubeconfig"})


def test_anything_else_is_a_message_not_a_traceback():
    kind, result = _finish(lambda: {}["missing"])
    assert kind == "fail" and result["msg"] == "unexpected error: KeyError: 'missing'"
    assert "Traceback" in result["exception"]


def test_a_failed_result_fails_with_everything_it_says():
    assert _finish(lambda: {"failed": True, "msg": "stuck", "state": "Stuck"})[0] == "fail"
    assert _finish(lambda: {"changed": False, "state": "Ready"}) == ("exit", {"changed": False, "state": "Ready"})
