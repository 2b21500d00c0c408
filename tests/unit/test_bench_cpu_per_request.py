"""benchmarks/cpu_per_request.py reads the machine's CPU right and refuses a run that cannot measure."""

import time

import pytest

from benchmarks import cpu_per_request as bench


def test_machine_busy_seconds_counts_cpu_this_process_burns():
    before = bench.machine_busy_seconds()
    own_before = time.process_time()
    while time.process_time() - own_before < 0.3:
        pass
    # /proc/stat counts in clock ticks (10 ms); the machine's busy time includes this process's.
    assert bench.machine_busy_seconds() - before >= 0.25


@pytest.mark.parametrize(
    "argv",
    [["--seconds", "0"], ["--rounds", "0"], ["--concurrency", "0"], ["--configs", "nope"], ["--role-var", "x=1"]],
)
def test_bad_options_are_refused_before_anything_starts(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err
