"""tests/harness/playbook.py on real ansible-playbook runs (localhost, files under tmp_path)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness.playbook import TASK_TIMES_ENV, parse_report, run_playbook, summarise_task_times

ROOT = Path(__file__).resolve().parents[2]


def _copy_play(dest):
    return [
        {
            "name": "Write a file",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Write the file",
                    "ansible.builtin.copy": {"content": "{{ payload }}\n", "dest": str(dest), "mode": "0600"},
                },
                {"name": "Say something", "ansible.builtin.debug": {"msg": "unchanged"}},
            ],
        }
    ]


def test_check_then_apply_then_idempotent(tmp_path):
    dest = tmp_path / "out.txt"
    plays = _copy_play(dest)
    check = run_playbook(plays, extra_vars={"payload": "hello"}, check=True)
    assert check.rc == 0, check.summary()
    assert [t.name for t in check.changed_tasks()] == ["Write the file"]
    assert not dest.exists()
    first = run_playbook(plays, extra_vars={"payload": "hello"})
    assert first.rc == 0, first.summary()
    assert first.stats["localhost"]["changed"] == 1
    assert dest.read_text() == "hello\n"
    again = run_playbook(plays, extra_vars={"payload": "hello"})
    assert again.changed == 0 and again.changed_tasks() == [], again.summary()
    assert again.task("Say something").result["msg"] == "unchanged"


def test_extra_vars_stay_off_the_command_line(tmp_path):
    secret = "s3cr3t-value-1234"
    result = run_playbook(_copy_play(tmp_path / "secret.txt"), extra_vars={"payload": secret})
    assert result.rc == 0, result.summary()
    assert (tmp_path / "secret.txt").read_text() == secret + "\n"
    assert not any(secret in part for part in result.command)


def test_failure_is_reported_with_its_message():
    plays = [
        {
            "name": "Fail",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [{"name": "Fail on purpose", "ansible.builtin.fail": {"msg": "broken on purpose"}}],
        }
    ]
    result = run_playbook(plays)
    assert result.rc == 2
    assert [t.name for t in result.failed_tasks()] == ["Fail on purpose"]
    assert result.failures == 1
    assert "broken on purpose" in result.summary()
    with pytest.raises(KeyError, match="did not run"):
        result.task("Never there")


def test_inventory_dict_and_limit(tmp_path):
    inventory = {"all": {"hosts": {name: {"ansible_connection": "local"} for name in ("one", "two")}}}
    plays = [
        {
            "name": "Per host",
            "hosts": "all",
            "gather_facts": False,
            "tasks": [{"name": "Name the host", "ansible.builtin.debug": {"msg": "{{ inventory_hostname }}"}}],
        }
    ]
    result = run_playbook(plays, inventory=inventory, limit="two")
    assert result.rc == 0, result.summary()
    assert sorted(result.stats) == ["two"]
    assert result.task("Name the host", host="two").msg == "two"


def test_syntax_error_gives_no_tasks_and_a_summary(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("- name: Broken\n  hosts: localhost\n  tasks:\n    - name: X\n      no.such.module_xyz: {}\n")
    result = run_playbook(broken)
    assert result.rc != 0
    assert result.tasks == [] and result.stats == {}
    assert "no.such.module_xyz" in result.summary()


def test_parse_report_ignores_noise_before_the_report():
    report = '{"plays": [], "stats": {"h": {"ok": 1, "changed": 2}}}'
    assert parse_report("some plugin printed this\n" + report)[0] == {
        "h": {"ok": 1, "changed": 2, "failures": 0, "unreachable": 0, "skipped": 0, "rescued": 0, "ignored": 0}
    }
    assert parse_report("not json at all") == ({}, [])


def test_role_tasks_are_found_by_their_own_name(tmp_path):
    role = tmp_path / "roles" / "greeter" / "tasks"
    role.mkdir(parents=True)
    (role / "main.yml").write_text("- name: Greet\n  ansible.builtin.debug:\n    msg: hello\n")
    plays = [
        {
            "name": "Use a role",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [{"name": "Include it", "ansible.builtin.include_role": {"name": "greeter"}}],
        }
    ]
    result = run_playbook(plays, env={"ANSIBLE_ROLES_PATH": str(tmp_path / "roles")})
    assert result.rc == 0, result.summary()
    assert result.task("greeter : Greet").msg == "hello"
    assert result.task("Greet").msg == "hello"


def test_task_times_are_recorded_per_task_and_summed(tmp_path, monkeypatch):
    times = tmp_path / "times.jsonl"
    monkeypatch.setenv(TASK_TIMES_ENV, str(times))
    plays = [
        {
            "name": "Two tasks",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {"name": "Pause a little", "ansible.builtin.wait_for": {"timeout": 1}},
                {"name": "Say something", "ansible.builtin.debug": {"msg": "quick"}},
            ],
        }
    ]
    for _run in range(2):
        result = run_playbook(plays)
        assert result.rc == 0, result.summary()
    lines = [json.loads(line) for line in times.read_text().splitlines()]
    assert [(e["task"], e["action"]) for e in lines] == [
        ("Pause a little", "ansible.builtin.wait_for"),
        ("Say something", "ansible.builtin.debug"),
    ] * 2
    assert all(e["playbook"] == "playbook.yml" for e in lines)
    pauses = [e["seconds"] for e in lines if e["task"] == "Pause a little"]
    assert min(pauses) >= 1.0
    summary = summarise_task_times(times).splitlines()
    assert summary[0].endswith("in 4 task runs")
    # the slowest task in all comes first, with its count
    assert "    2 x" in summary[1]
    assert summary[1].endswith("Pause a little")
