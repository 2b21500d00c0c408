"""Every changelog fragment is YAML that antsibull-changelog can release: known sections, each
a list of non-empty strings (a colon in a plain scalar silently breaks one)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FRAGMENTS = sorted((ROOT / "changelogs" / "fragments").glob("*.y*ml"))
CONFIG = yaml.safe_load((ROOT / "changelogs" / "config.yaml").read_text(encoding="utf-8"))
SECTIONS = {name for name, _title in CONFIG["sections"]} | {CONFIG.get("trivial_section_name", "trivial")}


def test_there_are_fragments() -> None:
    assert FRAGMENTS


@pytest.mark.parametrize("fragment", FRAGMENTS, ids=lambda p: p.name)
def test_fragment_is_releasable(fragment: Path) -> None:
    data = yaml.safe_load(fragment.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and data, f"{fragment.name}: not a mapping of sections"
    unknown = set(data) - SECTIONS - {"release_summary"}
    assert not unknown, f"{fragment.name}: unknown sections {sorted(unknown)}"
    for section, entries in data.items():
        if section == "release_summary":
            assert isinstance(entries, str) and entries.strip()
            continue
        assert isinstance(entries, list) and entries, f"{fragment.name}: {section} is not a list"
        assert all(isinstance(e, str) and e.strip() for e in entries), f"{fragment.name}: {section}"
