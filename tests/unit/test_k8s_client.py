"""module_utils/args_common.py and k8s_client.py: the shared cluster-auth options, the
ApiClient they build (from a real kubeconfig file through the real kubernetes client), and
the errors a person can act on."""

import pytest
import yaml
from kubernetes.client.rest import ApiException

from ansible_collections.mlops.mlflow_k8s.plugins.doc_fragments.k8s_auth import ModuleDocFragment
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import args_common, k8s_client
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ClusterError


def _kubeconfig(tmp_path, server="https://10.0.0.5:6443", contexts=("one", "two")):
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": c, "cluster": {"server": f"{server}/{c}"}} for c in contexts],
        "users": [{"name": "u", "user": {"token": "secret-token"}}],
        "contexts": [{"name": c, "context": {"cluster": c, "user": "u"}} for c in contexts],
        "current-context": contexts[0],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return str(path)


def test_the_spec_mirrors_the_doc_fragment_and_is_a_fresh_copy():
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    spec = args_common.auth_argument_spec()
    assert sorted(spec) == sorted(documented) == list(args_common.AUTH_OPTIONS)
    for name, option in spec.items():
        assert option["type"] == documented[name]["type"], name
        assert option.get("aliases", []) == documented[name].get("aliases", []), name
    assert spec["api_key"]["no_log"] is True
    spec["kubeconfig"]["type"] = "str"
    assert args_common.auth_argument_spec()["kubeconfig"]["type"] == "path"


def test_auth_params_picks_only_the_auth_options():
    params = {"kubeconfig": "/k", "namespace": "ns", "host": None, "api_key": "t"}
    picked = args_common.auth_params(params)
    assert sorted(picked) == list(args_common.AUTH_OPTIONS)
    assert picked["kubeconfig"] == "/k" and picked["api_key"] == "t" and "namespace" not in picked


def test_client_from_a_kubeconfig_and_its_contexts(tmp_path):
    path = _kubeconfig(tmp_path)
    current = k8s_client.api_client({"kubeconfig": path})
    assert current.configuration.host == "https://10.0.0.5:6443/one"
    other = k8s_client.api_client({"kubeconfig": path, "context": "two", "validate_certs": False, "ca_cert": "/ca"})
    assert other.configuration.host == "https://10.0.0.5:6443/two"
    assert other.configuration.verify_ssl is False
    assert other.configuration.ssl_ca_cert == "/ca"


def test_client_from_host_and_token():
    client = k8s_client.api_client({"host": "https://api.example.org", "api_key": "t0ken"})
    assert client.configuration.host == "https://api.example.org"
    assert client.configuration.api_key == {"authorization": "Bearer t0ken"}


def test_bad_kubeconfig_or_context_names_the_option(tmp_path):
    with pytest.raises(ClusterError) as missing:
        k8s_client.api_client({"kubeconfig": str(tmp_path / "nope")})
    assert missing.value.option == "kubeconfig"
    assert "no kubeconfig file at" in missing.value.message
    with pytest.raises(ClusterError) as context:
        k8s_client.api_client({"kubeconfig": _kubeconfig(tmp_path), "context": "three"})
    assert context.value.option == "context"


@pytest.mark.parametrize(
    ("status", "auth", "namespace", "option", "words"),
    [
        (401, {"api_key": "t", "host": "h"}, None, "api_key", "refused our credentials"),
        (401, {"kubeconfig": "/k"}, None, "kubeconfig", "401 Unauthorized"),
        (403, {"host": "h"}, None, "host", "forbids this (403 Forbidden) while trying to list pods: no access"),
        (404, {}, "ns1", "namespace", "namespace 'ns1' does not exist"),
        (500, {}, None, "kubeconfig", "answered 500 while trying to list pods: no access"),
    ],
)
def test_api_errors_become_actionable(status, auth, namespace, option, words):
    exc = ApiException(status=status, reason="Reason")
    exc.body = '{"message": "no access"}'
    error = k8s_client.describe_api_error(exc, auth, "list pods", namespace=namespace)
    assert error.option == option
    assert words in error.message


def test_a_connection_error_says_the_api_is_unreachable():
    error = k8s_client.describe_api_error(OSError("Connection refused"), {}, "create the Job")
    assert error.option == "kubeconfig"
    assert error.message == "cannot reach the Kubernetes API while trying to create the Job: Connection refused"
