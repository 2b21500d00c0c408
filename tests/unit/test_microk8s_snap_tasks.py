"""The microk8s role installs snaps with community.general.snap; `command` runs snap only
where no module serves (`snap ack`, `snap refresh --hold`, read-only `snap list`), and each
such changing command runs only when the state read before says it is needed.

The tasks run for real in the microk8s (snapd) and microk8s_airgapped (no snapd) molecule
scenarios; this checks the shape every machine can check."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "roles" / "microk8s" / "tasks"
READ_ONLY = (["snap", "list"], ["sh", "-c", "command -v snap"])


def _tasks():
    for path in sorted(TASKS.glob("*.yml")):
        stack = list(yaml.safe_load(path.read_text(encoding="utf-8")) or [])
        while stack:
            task = stack.pop(0)
            for key in ("block", "rescue", "always"):
                stack.extend(task.get(key) or [])
            yield path.name, task


def _snap_commands():
    for name, task in _tasks():
        command = task.get("ansible.builtin.command")
        if command and command["argv"][0] in ("snap", "/usr/bin/snap"):
            yield name, task, [str(a) for a in command["argv"]]


def test_snap_commands_are_only_ack_hold_and_reads():
    kinds = []
    for name, task, argv in _snap_commands():
        if argv[:2] == ["snap", "list"]:
            assert task["changed_when"] is False, f"{name}: {task['name']}"
            continue
        assert argv[:2] == ["snap", "ack"] or argv[:3] == ["snap", "refresh", "--hold"], (
            f"{name}: {task['name']} runs {argv[:3]}: community.general.snap does install, channel, classic, dangerous"
        )
        kinds.append(argv[1] if argv[1] == "ack" else "hold")
        # changed only when it ran, and it runs only when the state read before says so
        assert "rc == 0" in str(task["changed_when"]), f"{name}: {task['name']}"
        assert task.get("when"), f"{name}: {task['name']} runs on every run"
    assert sorted(kinds) == ["ack", "hold"]


def test_installs_go_through_the_snap_module():
    snap_tasks = [(name, task["community.general.snap"]) for name, task in _tasks() if "community.general.snap" in task]
    store = [args for name, args in snap_tasks if args["name"] == "microk8s"]
    assert store == [{"name": "microk8s", "classic": True, "channel": "{{ microk8s_channel }}", "state": "present"}]
    files = [args for name, args in snap_tasks if name == "airgapped.yml"]
    assert len(files) == 2
    assert [args.get("classic", False) for args in files] == [False, True]
