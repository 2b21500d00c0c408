"""The preflight decision on recorded node state, and on this machine's own /proc."""

import os
import socket
from pathlib import Path

import pytest

from ansible_collections.mlops.mlflow_k8s.plugins.plugin_utils import (
    preflight,
    proc,
)

FIXTURES = Path(__file__).parent / "fixtures" / "cluster"
GIB = 1024**3


def fixture(name):
    return (FIXTURES / name).read_text()


def node(**overrides):
    data = {
        "checks": ["os", "cpu", "memory", "disk", "swap", "ports", "kernel_modules", "packages", "sources"],
        "provider": "microk8s",
        "supported_os": {"Ubuntu": "20.04", "Debian": "11"},
        "distribution": "Ubuntu",
        "distribution_version": "22.04",
        "cpus": 4,
        "memory_mb": 7900,
        "min_cpus": 2,
        "min_memory_mb": 3584,
        "mounts": [
            {"mount": "/", "size_available": 50 * GIB},
            {"mount": "/var/lib/data", "size_available": 1 * GIB},
        ],
        "disk_requirements": [{"path": "/var/snap", "min_free_mb": 20480}],
        "proc_swaps": fixture("proc_swaps_none.txt"),
        "proc_net_tcp": fixture("proc_net_tcp.txt"),
        "proc_net_tcp6": "",
        "required_ports": [{"port": 16443, "what": "API"}],
        "proc_modules": fixture("proc_modules.txt"),
        "modules_builtin": fixture("modules.builtin"),
        "modules_loadable": [],
        "required_modules": ["iscsi_tcp", "nfs"],
        "packages_installed": ["open-iscsi", "nfs-common"],
        "required_packages": ["open-iscsi", "nfs-common"],
        "sources": [{"name": "snap store", "ok": True, "detail": "answered 200"}],
    }
    data.update(overrides)
    return data


def test_a_fit_node_has_no_problem():
    assert preflight.evaluate(node()) == []


def test_every_problem_is_listed_at_once():
    problems = preflight.evaluate(
        node(
            distribution="Ubuntu",
            distribution_version="18.04",
            cpus=1,
            memory_mb=2000,
            disk_requirements=[{"path": "/var/lib/data/mlflow", "min_free_mb": 2048}],
            proc_swaps=fixture("proc_swaps.txt"),
            required_ports=[{"port": 5432, "what": "x"}, {"port": 80, "what": "ingress HTTP"}],
            proc_net_tcp6=fixture("proc_net_tcp6.txt"),
            proc_modules="",
            modules_builtin="",
            packages_installed=[],
            sources=[{"name": "snap store", "ok": False, "detail": "unreachable"}],
        )
    )
    assert problems == [
        "OS Ubuntu 18.04 is older than Ubuntu 20.04, the oldest microk8s supports (preflight_supported_os)",
        "1 CPU(s), 2 needed (preflight_min_cpus)",
        "2000 MB memory, 3584 MB needed (preflight_min_memory_mb)",
        "1024 MB free on /var/lib/data/mlflow (mount /var/lib/data), 2048 MB needed (preflight_disk_requirements)",
        "swap is on (/swap.img, /dev/dm-1); the kubelet of minikube's none driver refuses to start with swap: "
        "run 'swapoff -a' and remove it from /etc/fstab, or set minikube_driver: docker",
        "TCP port 5432 (x) is already in use: stop what listens on it (ports checked: "
        "preflight_provider_ports, preflight_ingress_ports, preflight_extra_ports)",
        "TCP port 80 (ingress HTTP) is already in use: stop what listens on it (ports checked: "
        "preflight_provider_ports, preflight_ingress_ports, preflight_extra_ports)",
        "kernel module iscsi_tcp is neither loaded, built in, nor loadable (Longhorn needs it; "
        "preflight_longhorn_kernel_modules)",
        "kernel module nfs is neither loaded, built in, nor loadable (Longhorn needs it; "
        "preflight_longhorn_kernel_modules)",
        "package open-iscsi is not installed (Longhorn needs it; preflight_longhorn_packages)",
        "package nfs-common is not installed (Longhorn needs it; preflight_longhorn_packages)",
        "install source snap store: unreachable",
    ]


def test_checks_not_asked_for_are_not_run():
    assert preflight.evaluate(node(checks=["sources"], cpus=0, memory_mb=0, proc_swaps=fixture("proc_swaps.txt"))) == []


def test_unsupported_distribution_names_the_supported_ones():
    [problem] = preflight.evaluate(node(checks=["os"], distribution="Alpine", distribution_version="3.20"))
    assert problem.startswith("OS Alpine 3.20 is not supported by microk8s (supported: Debian >= 11, Ubuntu >= 20.04")


def test_docker_driver_needs_the_engine_socket():
    data = node(checks=["docker"], docker_socket="/run/docker.sock", docker_socket_exists=False)
    assert preflight.evaluate(data) == [
        "no Docker engine: /run/docker.sock does not exist (minikube's docker driver needs one; "
        "preflight_docker_socket, or minikube_driver: none)"
    ]
    assert preflight.evaluate(dict(data, docker_socket_exists=True)) == []


def test_loadable_module_counts():
    data = node(checks=["kernel_modules"], proc_modules="", modules_builtin="", modules_loadable=["iscsi_tcp", "nfs"])
    assert preflight.evaluate(data) == []


def test_mount_for_longest_prefix():
    mounts = [{"mount": "/"}, {"mount": "/var"}, {"mount": "/var/lib"}, {"mount": "/variable"}]
    assert preflight.mount_for("/var/lib/kubelet", mounts)["mount"] == "/var/lib"
    assert preflight.mount_for("/variable/x", mounts)["mount"] == "/variable"
    assert preflight.mount_for("/srv", mounts)["mount"] == "/"
    assert preflight.mount_for("/srv", []) is None


def test_report_groups_by_host_and_leaves_fit_hosts_out():
    text = preflight.report({"b": ["x", "y"], "a": ["z"], "c": []})
    assert text == "preflight found 3 problem(s):\n- a: z\n- b: x\n- b: y"
    assert preflight.report({"a": [], "b": []}) == ""


def test_sources_from_stat_and_uri_results():
    assert preflight.file_source({"item": {"name": "snap", "file": "/x.snap"}, "stat": {"exists": False}}) == {
        "name": "snap",
        "ok": False,
        "detail": "/x.snap does not exist on the controller",
    }
    ok = preflight.file_source(
        {"item": {"name": "snap", "file": "/x"}, "stat": {"exists": True, "isreg": True, "size": 9}}
    )
    assert ok["ok"] is True
    empty = preflight.file_source({"item": {"name": "snap", "file": "/x"}, "stat": {"exists": True, "size": 0}})
    assert empty["ok"] is False
    assert preflight.url_source({"item": {"name": "store", "url": "https://s"}, "status": 404})["ok"] is True
    down = preflight.url_source({"item": {"name": "store", "url": "https://s"}, "status": -1, "msg": "timed out"})
    assert down["ok"] is False
    assert "timed out" in down["detail"]


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="no /proc/net/tcp on this system")
def test_real_proc_net_tcp_sees_a_socket_this_test_listens_on():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        before = proc.parse_proc_net_tcp(Path("/proc/net/tcp").read_text())
        server.listen(1)
        during = proc.parse_proc_net_tcp(Path("/proc/net/tcp").read_text())
    assert port not in before
    assert port in during
    problems = preflight.evaluate(
        node(checks=["ports"], proc_net_tcp=Path("/proc/net/tcp").read_text(), required_ports=[{"port": port}])
    )
    assert problems == []  # the socket is closed again


@pytest.mark.skipif(not os.path.exists("/proc/swaps"), reason="no /proc/swaps on this system")
def test_real_proc_swaps_parses():
    text = Path("/proc/swaps").read_text()
    swaps = proc.parse_proc_swaps(text)
    assert len(swaps) == len(text.strip().splitlines()) - 1


def test_the_snap_route_needs_systemd_and_snapd():
    checks = ["systemd", "snapd"]
    booted = {"run_systemd_system": True, "pid1_comm": "systemd\n", "snap_command": True, "snapd_socket": True}
    assert preflight.evaluate(node(checks=checks, **booted)) == []
    # A container or chroot: PID 1 is a shell, no snap command, and the role may not install snapd.
    problems = preflight.evaluate(
        node(checks=checks, run_systemd_system=False, pid1_comm="bash\n", snap_command=False, install_snapd=False)
    )
    assert len(problems) == 2, problems
    assert "PID 1 is bash, not systemd" in problems[0] and "cluster_provider" in problems[0]
    assert "microk8s_install_snapd" in problems[1]
    # snapd installed but not running on a systemd node.
    stopped = preflight.evaluate(node(checks=checks, **{**booted, "snapd_socket": False}))
    assert len(stopped) == 1 and "snapd.socket" in stopped[0], stopped
    # No snap command, but the role installs snapd: fine.
    assert preflight.evaluate(node(checks=checks, **{**booted, "snap_command": False, "install_snapd": True})) == []


def test_this_machine_without_systemd_fails_the_systemd_check():
    data = {
        "checks": ["systemd"],
        "run_systemd_system": os.path.isdir("/run/systemd/system"),
        "pid1_comm": Path("/proc/1/comm").read_text(),
    }
    problems = preflight.evaluate(data)
    assert bool(problems) == (data["pid1_comm"].strip() != "systemd" and not data["run_systemd_system"]), problems


@pytest.mark.parametrize(
    ("airgapped_by", "named"),
    [(["microk8s_snap_file", "microk8s_assert_file"], "microk8s_snap_file and microk8s_assert_file"), (None, None)],
)
def test_an_unreachable_source_names_the_variables_of_the_air_gapped_route(airgapped_by, named):
    item = {"name": "snap store", "url": "https://api.snapcraft.io"}
    if airgapped_by:
        item["airgapped_by"] = airgapped_by
    source = preflight.url_source({"item": item, "status": -1, "msg": "timed out"})
    assert not source["ok"]
    problems = preflight.evaluate({"checks": ["sources"], "sources": [source]})
    assert len(problems) == 1
    if named:
        assert f"set {named} to the files" in problems[0], problems
    else:
        assert "air-gapped" in problems[0]


def test_every_problem_line_names_what_to_change():
    """Each sentence names a variable (a word with an underscore) or the command that fixes it."""
    bad = node(
        checks=["os", "cpu", "memory", "disk", "systemd", "snapd", "swap", "ports", "kernel_modules", "packages"],
        distribution="Gentoo",
        cpus=1,
        memory_mb=512,
        run_systemd_system=False,
        pid1_comm="sh",
        snap_command=False,
        install_snapd=False,
        proc_swaps=fixture("proc_swaps.txt"),
        required_modules=["no_such_module"],
        required_packages=["no-such-package"],
    )
    problems = preflight.evaluate(bad)
    assert len(problems) >= 8, problems
    for problem in problems:
        assert any("_" in word and word.strip("():;,.").islower() for word in problem.split()), problem
