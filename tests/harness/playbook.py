"""Run ansible-playbook the way a user does, and hand back what happened task by task.

``run_playbook`` runs the virtualenv's ``ansible-playbook`` from the repository root with this
repository's ``ansible.cfg`` and the ``ansible.posix.json`` stdout callback, and parses its
report into a :class:`Result`::

    result = run_playbook("playbooks/site.yml", inventory="inventories/local", check=True)
    assert result.rc == 0, result.summary()
    assert not result.changed_tasks()

Extra vars travel in a 0600 JSON file (``-e @file``), never on the command line, so secrets
given to a playbook stay out of ``ps``. A playbook or an inventory may be given as a path or as
data (a list of plays, an inventory dict); data is written to a temporary file first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ANSIBLE_PLAYBOOK = BIN / "ansible-playbook"
JSON_CALLBACK = "ansible.posix.json"
_STAT_KEYS = ("ok", "changed", "failures", "unreachable", "skipped", "rescued", "ignored")


@dataclass(frozen=True)
class TaskResult:
    """One task's result on one host, as the JSON callback reported it."""

    name: str
    host: str
    action: str
    changed: bool
    failed: bool
    skipped: bool
    result: dict[str, Any]

    @property
    def msg(self) -> str:
        return str(self.result.get("msg", ""))


@dataclass
class Result:
    """What one ansible-playbook run did."""

    rc: int
    stats: dict[str, dict[str, int]]
    tasks: list[TaskResult]
    stdout: str
    stderr: str
    command: list[str] = field(default_factory=list)

    def changed_tasks(self, host: str | None = None) -> list[TaskResult]:
        """Tasks that reported ``changed`` (on ``host`` only, when given)."""
        return [t for t in self.tasks if t.changed and not t.skipped and (host is None or t.host == host)]

    def failed_tasks(self, host: str | None = None) -> list[TaskResult]:
        return [t for t in self.tasks if t.failed and (host is None or t.host == host)]

    def task(self, name: str, host: str | None = None) -> TaskResult:
        """The last result of the task called ``name`` (on ``host``); KeyError when it did not run.

        A role's tasks are reported as ``<role> : <name>``; ``name`` may be either form.
        """
        on_host = [t for t in self.tasks if host is None or t.host == host]
        found = [t for t in on_host if t.name == name] or [t for t in on_host if t.name.endswith(" : " + name)]
        if not found:
            raise KeyError(f"task {name!r} did not run; tasks that ran: {sorted({t.name for t in self.tasks})}")
        return found[-1]

    @property
    def changed(self) -> int:
        """Sum of the ``changed`` counts of the play recap over every host."""
        return sum(s.get("changed", 0) for s in self.stats.values())

    @property
    def failures(self) -> int:
        return sum(s.get("failures", 0) + s.get("unreachable", 0) for s in self.stats.values())

    def summary(self) -> str:
        """A message for assertions: the return code, the failed tasks and the tail of stderr."""
        lines = [f"ansible-playbook rc={self.rc}: {' '.join(self.command)}"]
        for t in self.failed_tasks():
            lines.append(f"  FAILED {t.host}: {t.name}: {t.msg or _short(t.result)}")
        for t in self.changed_tasks():
            lines.append(f"  changed {t.host}: {t.name}")
        if not self.tasks and self.stdout.strip():
            lines.append("stdout (tail):\n" + self.stdout.strip()[-3000:])
        if self.stderr.strip():
            lines.append("stderr (tail):\n" + self.stderr.strip()[-3000:])
        return "\n".join(lines)


def _short(result: Mapping[str, Any]) -> str:
    keep = {k: result[k] for k in ("stderr", "stdout", "module_stderr", "exception") if result.get(k)}
    return json.dumps(keep)[:1500]


def parse_report(stdout: str) -> tuple[dict[str, dict[str, int]], list[TaskResult]]:
    """Stats and task results from the JSON callback's report (the last JSON object on stdout)."""
    report = None
    text = stdout.strip()
    try:
        report = json.loads(text)
    except ValueError:
        # Something printed before the report (a plugin writing to stdout): take the last
        # line that parses as a whole JSON object; the callback writes it on one line.
        for line in reversed(text.splitlines()):
            if line.startswith("{"):
                try:
                    report = json.loads(line)
                    break
                except ValueError:
                    continue
    if not isinstance(report, dict):
        return {}, []
    stats = {host: {k: int(s.get(k, 0)) for k in _STAT_KEYS} for host, s in report.get("stats", {}).items()}
    tasks: list[TaskResult] = []
    for play in report.get("plays", []):
        for task in play.get("tasks", []):
            name = task.get("task", {}).get("name", "")
            for host, res in task.get("hosts", {}).items():
                tasks.append(
                    TaskResult(
                        name=name,
                        host=host,
                        action=str(res.get("action", "")),
                        changed=bool(res.get("changed", False)),
                        failed=bool(res.get("failed", False)) or bool(res.get("unreachable", False)),
                        skipped=bool(res.get("skipped", False)),
                        result=res,
                    )
                )
    return stats, tasks


# Profiling the suites: with MLFLOW_K8S_TASK_TIMES=FILE, every run appends one JSON line per
# task (playbook, task, action, seconds) to FILE; `python -m tests.harness.playbook FILE` sums them.
TASK_TIMES_ENV = "MLFLOW_K8S_TASK_TIMES"


def _seconds(duration: Mapping[str, str]) -> float:
    from datetime import datetime  # noqa: PLC0415 - only when profiling

    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return (parse(duration["end"]) - parse(duration["start"])).total_seconds()


def record_task_times(path: Path, playbook: str, stdout: str) -> None:
    """Append each task's wall time in this run's JSON report to ``path`` (one JSON line a task)."""
    text = stdout.strip().splitlines()
    report = next((json.loads(line) for line in reversed(text) if line.startswith("{")), None) if text else None
    if not isinstance(report, dict):
        return
    with path.open("a", encoding="utf-8") as handle:
        for play in report.get("plays", []):
            for task in play.get("tasks", []):
                info = task.get("task", {})
                duration = info.get("duration", {})
                if "start" not in duration or "end" not in duration:
                    continue
                actions = {str(r.get("action", "")) for r in task.get("hosts", {}).values()}
                line = {
                    "playbook": playbook,
                    "task": info.get("name", ""),
                    "action": ",".join(sorted(actions)),
                    "seconds": _seconds(duration),
                }
                handle.write(json.dumps(line) + "\n")


def summarise_task_times(path: Path, top: int = 40) -> str:
    """The tasks that took the most wall time in all, with their count and mean."""
    totals: dict[tuple[str, str], list[float]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        totals.setdefault((entry["task"], entry["action"]), []).append(entry["seconds"])
    rows = sorted(totals.items(), key=lambda kv: -sum(kv[1]))
    grand = sum(sum(v) for v in totals.values())
    out = [f"{grand:.0f} s in {sum(len(v) for v in totals.values())} task runs"]
    for (task, action), values in rows[:top]:
        out.append(f"{sum(values):8.1f} s {len(values):5d} x {sum(values) / len(values):6.2f} s  {action:<40} {task}")
    return "\n".join(out)


def _write_temp(directory: Path, name: str, data: Any) -> Path:
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        if name.endswith(".json"):
            json.dump(data, handle)
        else:
            yaml.safe_dump(data, handle, sort_keys=False)
    return path


def localhost_inventory() -> dict[str, Any]:
    """An inventory with only localhost, on the local connection and this venv's Python."""
    return {
        "all": {
            "hosts": {
                "localhost": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable,
                }
            }
        }
    }


def run_playbook(
    playbook: str | os.PathLike[str] | list[dict[str, Any]],
    *,
    inventory: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    check: bool = False,
    diff: bool = False,
    env: Mapping[str, str] | None = None,
    limit: str | None = None,
    tags: Iterable[str] | None = None,
    verbosity: int = 0,
    timeout: float = 1800,
) -> Result:
    """Run ``playbook`` with ansible-playbook from the repository root and parse its JSON report.

    ``playbook``: a path (relative to the repository root or absolute) or a list of plays.
    ``inventory``: a path, an inventory dict, or None for localhost on the local connection.
    ``env``: variables added to the environment (``K8S_AUTH_KUBECONFIG`` and the like).
    ``timeout``: seconds before the run is killed (a safety net, not a measurement).
    """
    with tempfile.TemporaryDirectory(prefix="run-playbook-") as tmp:
        tmpdir = Path(tmp)
        if isinstance(playbook, list):
            playbook_path = _write_temp(tmpdir, "playbook.yml", playbook)
        else:
            playbook_path = Path(playbook)
            if not playbook_path.is_absolute():
                playbook_path = ROOT / playbook_path
        if inventory is None:
            inventory = localhost_inventory()
        inventory_arg = (
            str(_write_temp(tmpdir, "inventory.yml", dict(inventory)))
            if isinstance(inventory, Mapping)
            else os.fspath(inventory)
        )
        command = [str(ANSIBLE_PLAYBOOK), str(playbook_path), "-i", inventory_arg]
        if extra_vars:
            command += ["-e", "@" + str(_write_temp(tmpdir, "extra-vars.json", dict(extra_vars)))]
        if check:
            command.append("--check")
        if diff:
            command.append("--diff")
        if limit:
            command += ["--limit", limit]
        if tags:
            command += ["--tags", ",".join(tags)]
        if verbosity:
            command.append("-" + "v" * verbosity)

        run_env = dict(os.environ)
        run_env.update(
            {
                "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
                "ANSIBLE_STDOUT_CALLBACK": JSON_CALLBACK,
                "ANSIBLE_JSON_INDENT": "0",
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_FORCE_COLOR": "0",
                "ANSIBLE_RETRY_FILES_ENABLED": "0",
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if env:
            run_env.update(env)
        proc = subprocess.run(
            command,
            cwd=ROOT,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    stats, tasks = parse_report(proc.stdout)
    times = os.environ.get(TASK_TIMES_ENV)
    if times:
        record_task_times(Path(times), playbook_path.name, proc.stdout)
    return Result(
        rc=proc.returncode,
        stats=stats,
        tasks=tasks,
        stdout=proc.stdout,
        stderr=proc.stderr,
        command=[c if not c.startswith("@") else "@<extra-vars.json>" for c in command],
    )


if __name__ == "__main__":
    print(summarise_task_times(Path(sys.argv[1])))
