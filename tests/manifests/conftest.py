"""Fixtures of the manifests harness: every case rendered once per session, in one run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.manifests import harness

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def rendered() -> dict[str, harness.Rendered]:
    """Every case of tests/manifests/cases/, rendered through its role's tasks/manifests.yml."""
    return harness.render(harness.load_cases())


@pytest.fixture(scope="session")
def fixture_rendered() -> dict[str, harness.Rendered]:
    """The harness's own fixture role's cases (tests/manifests/fixtures/)."""
    return harness.render(
        harness.load_cases(harness.FIXTURES_DIR / "cases"),
        roles_path=harness.FIXTURES_DIR / "roles",
        collection=False,
    )
