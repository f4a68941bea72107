"""`durable._dist.version` agrees with `importlib.metadata`, which it stands in for."""

from __future__ import annotations

from importlib import metadata

import pytest

from durable import _dist


@pytest.mark.parametrize("name", ["wasmtime", "componentize-py", "componentize_py", "click"])
def test_versions_agree_with_importlib_metadata(name: str) -> None:
    assert _dist.version(name) == metadata.version(name)


def test_a_missing_distribution_has_no_version() -> None:
    assert _dist.version("durable-no-such-distribution") is None
