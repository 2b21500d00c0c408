"""The shipped inventories keep MLflow's release in one place: mlflow_server_version.

An image written out with its release (``...:v3.17.2-full``) stays on that release whatever
mlflow_server_version says, and upgrade.yml then migrates and rolls the same image (issue #28).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INVENTORIES = sorted(p for p in (ROOT / "inventories").iterdir() if p.is_dir())


def _group_vars(inventory: Path) -> dict:
    merged: dict = {}
    for path in sorted((inventory / "group_vars").rglob("*.yml")):
        merged.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return merged


@pytest.mark.parametrize("inventory", INVENTORIES, ids=lambda p: p.name)
def test_the_image_follows_mlflow_server_version(inventory: Path) -> None:
    found = _group_vars(inventory)
    assert "mlflow_server_version" in found, f"{inventory.name}: no mlflow_server_version"
    image = found.get("mlflow_server_image")
    assert image is None or "{{ mlflow_server_version }}" in image, (
        f"{inventory.name}: mlflow_server_image {image!r} names a release of its own"
    )


def test_there_are_inventories_to_check() -> None:
    assert {p.name for p in INVENTORIES} >= {"local", "multinode"}
