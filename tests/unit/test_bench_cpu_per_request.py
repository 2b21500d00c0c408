"""benchmarks/cpu_per_request.py, and the machine CPU reading it shares with tracking_server: the CPU is read
right, and a run that cannot measure is refused."""

import time

import pytest

from benchmarks import cpu_per_request as bench
from benchmarks import tracking_server as ts


def test_machine_busy_seconds_counts_cpu_this_process_burns():
    before = ts.machine_busy_seconds()
    own_before = time.process_time()
    while time.process_time() - own_before < 0.3:
        pass
    # /proc/stat counts in clock ticks (10 ms); the machine's busy time includes this process's.
    assert ts.machine_busy_seconds() - before >= 0.25


@pytest.mark.parametrize(
    "argv",
    [
        ["--seconds", "0"],
        ["--rounds", "0"],
        ["--concurrency", "0"],
        ["--configs", "nope"],
        ["--role-var", "x=1"],
        ["--operation", "log-param"],
        ["--variant-var", "workers=4"],
    ],
)
def test_bad_options_are_refused_before_anything_starts(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_a_database_without_its_package_is_named_with_the_way_to_install_it(monkeypatch):
    # What a machine without Debian's mariadb-server package has: no `mysql` user to own the data.
    def chown(path, user, group):
        raise LookupError(f"no such user: {user!r}")

    monkeypatch.setattr(ts.shutil, "chown", chown)
    with pytest.raises(SystemExit) as exit_info, ts.database_server("mysql", 100):
        pass
    assert "mysql: no 'mysql' user" in str(exit_info.value)
    assert "tests/harness/services start" in str(exit_info.value)
