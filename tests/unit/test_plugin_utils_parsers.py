"""Parsers of MicroK8s, minikube, kubeconfig and /proc output, on recorded outputs."""

import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.mlops.mlflow_k8s.plugins.plugin_utils import kube_objects, microk8s, minikube, parsing, proc

FIXTURES = Path(__file__).parent / "fixtures" / "cluster"


def fixture(name):
    return (FIXTURES / name).read_text()


# -- microk8s status --------------------------------------------------------------------


def test_status_ha_reads_running_nodes_and_every_addon():
    status = microk8s.parse_microk8s_status(fixture("microk8s_status_ha.txt"))
    assert status["running"] is True
    assert status["high_availability"]["enabled"] is True
    assert [n["address"] for n in status["high_availability"]["nodes"]] == [
        "10.20.0.11:19001",
        "10.20.0.12:19001",
        "10.20.0.13:19001",
    ]
    assert {n["role"] for n in status["high_availability"]["nodes"]} == {"voter"}
    enabled = sorted(name for name, a in status["addons"].items() if a["status"] == "enabled")
    assert enabled == ["dns", "ha-cluster", "helm3"]
    assert len(status["addons"]) == 9
    assert status["addons"]["dns"]["repository"] == "core"


def test_status_description_with_colon_does_not_break_parsing():
    # yaml.safe_load chokes on this line; the line parser must not.
    text = fixture("microk8s_status_ha.txt")
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(text)
    status = microk8s.parse_microk8s_status(text)
    assert status["addons"]["nfs"]["description"] == "NFS Server Provisioner: a dynamic provisioner for NFS"
    assert status["addons"]["nfs"]["status"] == "disabled"


def test_status_of_1_23_has_no_repository_and_agrees_with_yaml():
    text = fixture("microk8s_status_1.23.txt")
    status = microk8s.parse_microk8s_status(text)
    loaded = yaml.safe_load(text)
    assert status["running"] is loaded["microk8s"]["running"] is True
    assert {a["name"]: a["status"] for a in loaded["addons"]} == {n: a["status"] for n, a in status["addons"].items()}
    assert "repository" not in status["addons"]["dns"]
    assert status["high_availability"] == {"enabled": False, "nodes": []}


def test_status_not_running_keeps_the_message():
    status = microk8s.parse_microk8s_status(fixture("microk8s_status_not_running.txt"))
    assert status["running"] is False
    assert status["message"].startswith("microk8s is not running")
    assert status["addons"] == {}


@pytest.mark.parametrize(
    "text",
    ["", "microk8s is running\naddons:\n  enabled:\n    dns # (core) CoreDNS\n", "addons:\n  - name: dns\n"],
)
def test_status_refuses_other_formats(text):
    with pytest.raises(parsing.ParseError):
        microk8s.parse_microk8s_status(text)


def test_addons_to_enable_skips_enabled_and_keeps_arguments():
    status = fixture("microk8s_status_ha.txt")
    todo = microk8s.microk8s_addons_to_enable(
        status, ["dns", "hostpath-storage", "ingress", "helm3", "metallb:10.20.0.100-10.20.0.120"]
    )
    assert todo == [
        {"name": "hostpath-storage", "args": []},
        {"name": "ingress", "args": []},
        {"name": "metallb", "args": ["10.20.0.100-10.20.0.120"]},
    ]


def test_addons_to_enable_nothing_when_all_enabled():
    assert microk8s.microk8s_addons_to_enable(fixture("microk8s_status_1.23.txt"), ["dns", "ingress"]) == []


def test_addons_to_enable_dict_entries_and_last_wins():
    todo = microk8s.microk8s_addons_to_enable(
        fixture("microk8s_status_ha.txt"),
        [{"name": "metallb", "args": "10.0.0.1-10.0.0.2"}, {"name": "metallb", "args": ["10.0.0.5-10.0.0.9"]}],
    )
    assert todo == [{"name": "metallb", "args": ["10.0.0.5-10.0.0.9"]}]


def test_addons_to_enable_names_unknown_addons():
    with pytest.raises(parsing.ParseError, match="no-such-addon"):
        microk8s.microk8s_addons_to_enable(fixture("microk8s_status_ha.txt"), ["dns", "no-such-addon"])


def test_addons_to_enable_refuses_a_stopped_cluster():
    with pytest.raises(parsing.ParseError, match="not running"):
        microk8s.microk8s_addons_to_enable(fixture("microk8s_status_not_running.txt"), ["dns"])


@pytest.mark.parametrize("entry", [None, 3, {"args": ["x"]}, ":x"])
def test_normalise_addons_refuses_bad_entries(entry):
    with pytest.raises(parsing.ParseError):
        microk8s.normalise_addons([entry])


# -- microk8s add-node ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["microk8s_add_node_pretty.txt", "microk8s_add_node.json", "microk8s_add_node.yaml"])
def test_add_node_every_format_gives_urls(name):
    parsed = microk8s.parse_microk8s_add_node(fixture(name))
    assert parsed["urls"][0].startswith("10.20.0.11:25000/")
    assert all(url.count("/") == 2 for url in parsed["urls"])
    assert parsed["token"] == parsed["urls"][0].split("/", 1)[1]
    assert len(parsed["urls"]) == len(set(parsed["urls"]))


def test_add_node_pretty_deduplicates_the_default_address():
    parsed = microk8s.parse_microk8s_add_node(fixture("microk8s_add_node_pretty.txt"))
    assert [u.split(":", 1)[0] for u in parsed["urls"]] == ["10.20.0.11", "172.17.0.1", "10.1.254.64"]


def test_join_url_picks_the_address_the_node_reaches():
    text = fixture("microk8s_add_node.json")
    assert microk8s.microk8s_join_url(text, "172.17.0.1").startswith("172.17.0.1:25000/")
    assert microk8s.microk8s_join_url(text).startswith("10.20.0.11:25000/")
    with pytest.raises(parsing.ParseError, match="192.0.2.1"):
        microk8s.microk8s_join_url(text, "192.0.2.1")
    assert microk8s.microk8s_join_url(text, "192.0.2.1", strict=False).startswith("10.20.0.11:25000/")


@pytest.mark.parametrize("text", ["", "Invalid token size.  It must be 32 characters long.", "{}", "{nope"])
def test_add_node_refuses_output_without_urls(text):
    with pytest.raises(parsing.ParseError):
        microk8s.parse_microk8s_add_node(text)


# -- minikube ---------------------------------------------------------------------------


def test_minikube_status_single_node_running():
    status = minikube.parse_minikube_status(fixture("minikube_status.json"))
    assert status == {
        "exists": True,
        "running": True,
        "nodes": [
            {
                "name": "minikube",
                "host": "Running",
                "kubelet": "Running",
                "apiserver": "Running",
                "kubeconfig": "Configured",
                "worker": False,
            }
        ],
    }


def test_minikube_status_multinode_worker_apiserver_irrelevant():
    status = minikube.parse_minikube_status(fixture("minikube_status_multinode.json"))
    assert status["running"] is True
    assert [n["worker"] for n in status["nodes"]] == [False, True]


def test_minikube_status_stopped_and_warning_prefix():
    text = "! minikube 1.35.0 is available!\n" + fixture("minikube_status_stopped.json")
    status = minikube.parse_minikube_status(text)
    assert status["exists"] is True
    assert status["running"] is False


def test_minikube_status_refuses_text():
    with pytest.raises(parsing.ParseError):
        minikube.parse_minikube_status(
            '* Profile "minikube" not found. Run "minikube profile list" to view all profiles.'
        )


def test_minikube_profiles_settings():
    profiles = minikube.parse_minikube_profiles(fixture("minikube_profile_list.json"))
    assert profiles["minikube"] == {
        "status": "Running",
        "driver": "docker",
        "cpus": 2,
        "memory": 4000,
        "disk_size": 20000,
        "kubernetes_version": "v1.31.0",
        "container_runtime": "docker",
        "nodes": 1,
        "ip": "192.168.49.2",
        "port": 8443,
    }
    assert profiles["bare"]["driver"] == "none"
    assert profiles["bare"]["status"] == "Stopped"


def test_minikube_settings_diff_same_and_different():
    current = minikube.parse_minikube_profiles(fixture("minikube_profile_list.json"))["minikube"]
    same = {"driver": "docker", "cpus": "2", "memory": 4000, "kubernetes_version": "1.31.0", "container_runtime": ""}
    assert minikube.minikube_settings_diff(current, same) == []
    other = {"driver": "none", "cpus": 4, "memory": 4000, "kubernetes_version": "v1.30.4"}
    assert minikube.minikube_settings_diff(current, other) == [
        "driver is docker, wanted none",
        "cpus is 2, wanted 4",
        "kubernetes_version is v1.31.0, wanted v1.30.4",
    ]


def test_minikube_addons():
    addons = minikube.parse_minikube_addons(fixture("minikube_addons_list.json"))
    assert addons["storage-provisioner"] == "enabled"
    assert addons["ingress"] == "disabled"
    assert minikube.minikube_addons_to_enable(
        fixture("minikube_addons_list.json"), ["ingress", "storage-provisioner"]
    ) == ["ingress"]
    assert minikube.minikube_addons_to_enable(addons, ["storage-provisioner"]) == []
    with pytest.raises(parsing.ParseError, match="nonsense"):
        minikube.minikube_addons_to_enable(addons, ["nonsense"])


def test_sha256_file_bare_and_sha256sum_formats():
    digest = parsing.parse_sha256_file(fixture("minikube-linux-amd64.sha256"))
    assert len(digest) == 64
    other = "0" * 64
    listing = f"{other}  minikube-linux-arm64\n{digest} *minikube-linux-amd64\n"
    assert parsing.parse_sha256_file(listing, "minikube-linux-amd64") == digest
    with pytest.raises(parsing.ParseError):
        parsing.parse_sha256_file("<html>Not Found</html>")
    with pytest.raises(parsing.ParseError):
        parsing.parse_sha256_file(listing, "kubectl")


# -- kubeconfig, nodes, ingress classes -------------------------------------------------


def test_kubeconfig_server_and_rewrite():
    config = yaml.safe_load(fixture("microk8s_config.yaml"))
    assert kube_objects.kubeconfig_server(config) == "https://127.0.0.1:16443"
    assert kube_objects.server_is_loopback(kube_objects.kubeconfig_server(config))
    moved = kube_objects.kubeconfig_set_server(config, "https://10.20.0.11:16443")
    assert kube_objects.kubeconfig_server(moved) == "https://10.20.0.11:16443"
    assert not kube_objects.server_is_loopback("https://10.20.0.11:16443")
    assert kube_objects.kubeconfig_server(config) == "https://127.0.0.1:16443"  # the input is not modified
    with pytest.raises(parsing.ParseError, match="no context 'other'"):
        kube_objects.kubeconfig_server(config, "other")


@pytest.mark.parametrize(
    ("server", "loopback"),
    [
        ("https://localhost:8443", True),
        ("https://[::1]:6443", True),
        ("https://127.0.1.1:6443", True),
        ("https://192.168.49.2:8443", False),
        ("https://api.example.org", False),
    ],
)
def test_server_is_loopback(server, loopback):
    assert kube_objects.server_is_loopback(server) is loopback


def test_nodes_names_and_addresses_sorted_by_name():
    nodes = json.loads(fixture("microk8s_nodes.json"))["items"]
    assert kube_objects.node_names(nodes) == ["node-a", "node-b"]
    assert kube_objects.node_addresses(nodes) == ["10.20.0.11", "10.20.0.12"]
    assert kube_objects.node_addresses(nodes, ["Hostname"]) == ["node-a", "node-b"]
    assert kube_objects.parse_kubectl_nodes(fixture("microk8s_nodes.json")) == ["node-a", "node-b"]
    with pytest.raises(parsing.ParseError, match="ExternalIP"):
        kube_objects.node_addresses(nodes, ["ExternalIP"])


MICROK8S_CLASSES = [
    {"metadata": {"name": "public", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}}},
    {"metadata": {"name": "nginx"}},
]


def test_ingress_class_default_single_none_and_override():
    assert kube_objects.ingress_class(MICROK8S_CLASSES) == "public"
    assert kube_objects.ingress_class(MICROK8S_CLASSES, "nginx") == "nginx"
    assert kube_objects.ingress_class([{"metadata": {"name": "traefik"}}]) == "traefik"
    assert kube_objects.ingress_class([]) == ""
    assert kube_objects.ingress_class([{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]) == ""
    with pytest.raises(parsing.ParseError, match="'haproxy' does not exist"):
        kube_objects.ingress_class(MICROK8S_CLASSES, "haproxy")


# -- /proc ------------------------------------------------------------------------------


def test_proc_net_tcp_listening_only():
    # 0x1538 = 5432 on all addresses, 0x0CEA = 3306 on loopback; the established and
    # time-wait rows are not listening.
    assert proc.parse_proc_net_tcp(fixture("proc_net_tcp.txt")) == [3306, 5432]
    assert proc.parse_proc_net_tcp(fixture("proc_net_tcp6.txt")) == [80, 16435]


def test_proc_swaps():
    assert proc.parse_proc_swaps(fixture("proc_swaps.txt")) == [
        {"device": "/swap.img", "size_kb": 4194300},
        {"device": "/dev/dm-1", "size_kb": 1003516},
    ]
    assert proc.parse_proc_swaps(fixture("proc_swaps_none.txt")) == []


def test_proc_modules_and_builtin():
    assert "iscsi_tcp" in proc.parse_proc_modules(fixture("proc_modules.txt"))
    assert proc.parse_proc_modules(fixture("modules.builtin")) == ["dm_crypt", "nfs", "tcp_cubic"]


MINIKUBE_KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "current-context": "other",
    "clusters": [
        {"name": "minikube", "cluster": {"server": "https://192.168.49.2:8443", "certificate-authority-data": "Q0E="}},
        {"name": "other", "cluster": {"server": "https://10.0.0.1:6443", "certificate-authority": "/x/ca.crt"}},
    ],
    "users": [
        {"name": "minikube", "user": {"client-certificate-data": "Q0VSVA==", "client-key-data": "S0VZ"}},
        {"name": "other", "user": {"token": "t"}},
    ],
    "contexts": [
        {"name": "minikube", "context": {"cluster": "minikube", "user": "minikube", "namespace": "default"}},
        {"name": "other", "context": {"cluster": "other", "user": "other"}},
    ],
}


def test_kubeconfig_minify_keeps_one_context():
    small = kube_objects.kubeconfig_minify(MINIKUBE_KUBECONFIG, "minikube")
    assert small["current-context"] == "minikube"
    assert [c["name"] for c in small["clusters"]] == ["minikube"]
    assert [u["name"] for u in small["users"]] == ["minikube"]
    assert kube_objects.kubeconfig_server(small) == "https://192.168.49.2:8443"
    with pytest.raises(parsing.ParseError, match="refers to the file /x/ca.crt"):
        kube_objects.kubeconfig_minify(MINIKUBE_KUBECONFIG, "other")
    with pytest.raises(parsing.ParseError, match="no context 'nope'"):
        kube_objects.kubeconfig_minify(MINIKUBE_KUBECONFIG, "nope")


def test_pod_security_labels_set_one_level_for_every_mode():
    labels = kube_objects.pod_security_labels("restricted", "v1.32")
    assert labels == {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "v1.32",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": "v1.32",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/audit-version": "v1.32",
    }
    assert set(kube_objects.pod_security_labels("privileged").values()) == {"privileged", "latest"}


@pytest.mark.parametrize(
    ("level", "version", "named"),
    [("strict", "latest", "'strict'"), ("restricted", "1.32", "'1.32'"), ("baseline", "v1.x", "'v1.x'")],
)
def test_pod_security_labels_refuse_what_admission_would_not_read(level, version, named):
    with pytest.raises(parsing.ParseError, match=named):
        kube_objects.pod_security_labels(level, version)
