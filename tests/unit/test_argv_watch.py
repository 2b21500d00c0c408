"""tests/harness/argv_watch.py finds a secret in a real process's command line on this machine,
redacts it, and finds nothing when the secret travels in the environment instead."""

import os
import secrets
import subprocess
import sys

import pytest

from tests.harness.argv_watch import REDACTED, ArgvWatch, needles

# A child that lives a second: long enough for the watch's passes, short enough for the unit suite.
LINGER = "import time; time.sleep(1)"


def _child(argv_extra: list[str], env_extra: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", LINGER, *argv_extra], env={**os.environ, **env_extra})


def _watch_while(child: subprocess.Popen) -> ArgvWatch:
    with ArgvWatch(interval=0.01) as watch:
        child.wait(timeout=30)
    return watch


def test_a_secret_in_argv_is_found_and_redacted():
    token = f"pw-{secrets.token_hex(8)}/+:@"
    uri = f"postgresql://mlflow:{needles(token)[1]}@db:5432/mlflow"
    child = _child(["--uri", uri], {})
    watch = _watch_while(child)
    assert watch.scans >= 2
    leaks = watch.leaks(token)
    assert child.pid in {pid for pid, _argv in leaks}, leaks
    argv = next(argv for pid, argv in leaks if pid == child.pid)
    assert argv[-1] == f"postgresql://mlflow:{REDACTED}@db:5432/mlflow"
    assert not any(token in arg or needles(token)[1] in arg for _pid, hit in leaks for arg in hit)
    assert watch.saw("--uri")


def test_a_secret_in_the_environment_is_not_a_hit():
    token = f"pw-{secrets.token_hex(8)}"
    child = _child(["--uri-from-env"], {"SECRET_URI": f"postgresql://mlflow:{token}@db/mlflow"})
    watch = _watch_while(child)
    assert watch.saw("-c", LINGER, "--uri-from-env"), "the child was never seen: the watch proves nothing"
    assert watch.leaks(token) == []


def test_needles_are_the_secret_and_its_uri_form_and_never_empty():
    assert needles("a b", "", "a b") == ["a b", "a%20b"]
    with pytest.raises(ValueError, match="non-empty secret"):
        ArgvWatch().leaks("", "")
