"""The standalone build's cache key covers what the component can import: the workflow,
the `.py` files beside it and the packages in its folder, and nothing else there."""

from __future__ import annotations

from pathlib import Path

from durable.builder import _cache_key


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "flow.py").write_text("import pkg.inner\n")
    (tmp_path / "helper.py").write_text("X = 1\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "inner.py").write_text("Y = 2\n")
    (tmp_path / "notes.txt").write_text("not code")
    return tmp_path / "flow.py"


def test_a_change_in_a_package_beside_the_workflow_changes_the_key(tmp_path: Path) -> None:
    flow = _folder(tmp_path)
    before = _cache_key(flow)
    (tmp_path / "pkg" / "inner.py").write_text("Y = 3\n")
    assert _cache_key(flow) != before


def test_a_change_beside_the_workflow_changes_the_key(tmp_path: Path) -> None:
    flow = _folder(tmp_path)
    before = _cache_key(flow)
    (tmp_path / "helper.py").write_text("X = 2\n")
    assert _cache_key(flow) != before


def test_files_the_component_cannot_import_leave_the_key_alone(tmp_path: Path) -> None:
    flow = _folder(tmp_path)
    before = _cache_key(flow)
    (tmp_path / "notes.txt").write_text("changed")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "stale.py").write_text("no")
    assert _cache_key(flow) == before
