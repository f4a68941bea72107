"""Fixtures for integration tests: components built for the tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from durable.storage.base import Store
from tests.conftest import STORE_BACKENDS

OTHER_WORLD = """
package test:other;

world other {
    export greet: func(name: string) -> string;
}
"""

OTHER_APP = """
import wit_world

class WitWorld(wit_world.WitWorld):
    def greet(self, name: str) -> str:
        return "hi " + name
"""


@pytest.fixture(scope="session")
def other_world_wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real componentize-py component that targets some other world."""
    root = tmp_path_factory.mktemp("other-world")
    (root / "wit").mkdir()
    (root / "wit" / "other.wit").write_text(OTHER_WORLD)
    (root / "app.py").write_text(OTHER_APP)
    out = root / "other.wasm"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "durable._componentize",
            str(root / "wit"),
            "other",
            "app",
            str(out),
            str(root),
        ],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(params=["sqlite", "postgres"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh database for `durable` subprocesses: a SQLite file, and an
    empty Postgres database (migrated by whoever opens it with `migrate=True`)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'durable.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
async def sql_store(request: pytest.FixtureRequest, anyio_backend: str) -> AsyncIterator[Store]:
    """A fresh store of each backend that runs in production (not the memory store)."""
    async with STORE_BACKENDS[request.param](request) as opened:
        yield opened
