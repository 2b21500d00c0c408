"""Watch every process's command line on this machine for secrets, while something runs.

The rig's kubelet and containerd run on this machine, so a container's processes are this
machine's processes: ``/proc/<pid>/cmdline`` is what ``ps`` on a node shows anyone who can log
in there. :class:`ArgvWatch` reads every process's command line over and over in a thread and
keeps every distinct one; afterwards it says which held a secret (redacted) and whether the
process under test was caught at all.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from urllib.parse import quote

REDACTED = "<secret>"


def needles(*secrets: str) -> list[str]:
    """Each secret as a command line could carry it: as it is, and percent-encoded as a URI's
    userinfo carries it (the backend store URI). Empty ones are left out."""
    found: list[str] = []
    for secret in secrets:
        for form in (secret, quote(secret, safe="")):
            if form and form not in found:
                found.append(form)
    return found


def command_lines() -> Iterable[tuple[int, list[str]]]:
    """(pid, argv) of every process that is still there and has a command line (not a kernel thread)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                raw = handle.read()
        except OSError:  # gone since the scan, or not ours to read
            continue
        if raw:
            yield int(entry.name), raw.rstrip(b"\0").decode(errors="replace").split("\0")


class ArgvWatch(threading.Thread):
    """``with ArgvWatch() as watch:`` reads every command line every ``interval`` seconds until the
    block ends, and keeps each distinct one (with the first pid that had it). ``leaks(secret, ...)``
    afterwards: the command lines that held a secret, redacted (the secret may be one that did not
    exist yet when the watch began, such as a password the play generated); ``saw(word, ...)``:
    whether the process under test was caught at all; ``scans``: how many passes ran."""

    # A pass reads every /proc/<pid>/cmdline: about 4 ms of CPU for 40 processes, more on a busy
    # node. The processes watched for (MLflow's CLI) live for seconds, its import alone takes
    # two, so five passes a second catch them without taking a core from the tests around.
    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.lines: dict[tuple[str, ...], int] = {}
        self.scans = 0
        self._done = threading.Event()  # not _stop: Python 3.11's Thread.join calls its own _stop()

    def scan(self) -> None:
        for pid, argv in command_lines():
            self.lines.setdefault(tuple(argv), pid)
        self.scans += 1

    def leaks(self, *secrets: str) -> list[tuple[int, list[str]]]:
        """(pid, argv with each secret replaced by REDACTED) of every command line that held one."""
        forms = needles(*secrets)
        if not forms:
            raise ValueError("ArgvWatch.leaks needs at least one non-empty secret to look for")
        found = []
        for argv, pid in self.lines.items():
            shown = [_redact(arg, forms) for arg in argv]
            if shown != list(argv):
                found.append((pid, shown))
        return found

    def saw(self, *words: str) -> bool:
        """Whether a command line with every one of ``words`` among its arguments was seen."""
        return any(all(word in argv for word in words) for argv in self.lines)

    def run(self) -> None:
        while not self._done.is_set():
            self.scan()
            self._done.wait(self.interval)

    def __enter__(self) -> ArgvWatch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self.join(timeout=30)


def _redact(arg: str, forms: list[str]) -> str:
    for form in forms:
        arg = arg.replace(form, REDACTED)
    return arg
