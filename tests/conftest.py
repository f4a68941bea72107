"""Shared fixtures: the anyio backend, one `store` fixture per backend, Hypothesis profiles.

Adding a backend to every store test is one entry in `STORE_BACKENDS`: a function
that takes the pytest request (to reach `tmp_path` or a server fixture) and returns an
async context manager yielding a fresh, migrated store, closed on exit.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from durable import settings as durable_settings
from durable.storage import _pg_admin as pg_admin
from durable.storage import open_store
from durable.storage.base import Store
from durable.storage.memory import MemoryStore
from durable.storage.sqlite import SQLiteStore
from durable.testing.postgres import ServerHandle, fresh_database, postgres_server

# Hypothesis: "ci" is bounded, "dev" the default, "thorough" for a long local hunt.
# Choose with HYPOTHESIS_PROFILE; CI=true selects "ci". Failures print a reproduction blob.
# No deadline and no too-slow health check: on a busy machine an example (or generating
# one) may take many times longer, and neither says anything about replay.
_PATIENT = settings(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", _PATIENT, max_examples=25)
settings.register_profile("dev", _PATIENT, max_examples=100)
settings.register_profile("thorough", _PATIENT, max_examples=2000)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE")
    or ("ci" if os.environ.get("CI", "").lower() == "true" else "dev")
)

# One process per `durable worker` the tests start (the product's default is one per
# core): tests find a worker by the pid they started, and read its memory and kill it
# by that pid. The supervisor of several has tests of its own (test_worker_processes).
os.environ["DURABLE_PROCESSES"] = "1"

StoreFactory = Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[Store]]


class _SettingsMonkeyPatch(pytest.MonkeyPatch):
    """pytest's MonkeyPatch, reloading durable's settings (read once per process, see
    `durable.settings`) whenever it changes the environment or undoes a change."""

    def setenv(self, name: str, value: str, prepend: str | None = None) -> None:
        super().setenv(name, value, prepend)
        durable_settings.reload()

    def delenv(self, name: str, raising: bool = True) -> None:
        super().delenv(name, raising)
        durable_settings.reload()

    def undo(self) -> None:
        super().undo()
        durable_settings.reload()


@pytest.fixture
def monkeypatch() -> Iterator[pytest.MonkeyPatch]:
    """`monkeypatch` whose environment changes reach `durable.settings`."""
    patch = _SettingsMonkeyPatch()
    yield patch
    patch.undo()


@asynccontextmanager
async def memory_store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """A fresh `MemoryStore`."""
    store = MemoryStore()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def sqlite_store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """A fresh, migrated `SQLiteStore` in the test's `tmp_path`, with default settings."""
    tmp_path: Path = request.getfixturevalue("tmp_path")
    store = await SQLiteStore.open(tmp_path / "db" / "durable.db")
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def postgres_store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """A migrated `PostgresStore` on the session's server, with empty tables."""
    url: str = request.getfixturevalue("shared_pg_url")
    store = await open_store(url)
    try:
        await pg_admin.reset(url)  # far cheaper than a new database per test
        yield store
    finally:
        await store.close()


STORE_BACKENDS: dict[str, StoreFactory] = {
    "memory": memory_store,
    "sqlite": sqlite_store,
    "postgres": postgres_store,
}


@pytest.fixture(scope="session")
def pg_server() -> Iterator[ServerHandle]:
    """One throwaway PostgreSQL server (or DURABLE_TEST_POSTGRES_URL's) for the session.

    Where no server binaries exist the test skips with a loud reason, except under
    CI=true, where that is a failure.
    """
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: ServerHandle) -> Iterator[str]:
    """A fresh, empty database per test."""
    with fresh_database(pg_server) as url:
        yield url


@pytest.fixture(scope="session")
def shared_pg_url(pg_server: ServerHandle) -> Iterator[str]:
    """One database shared by tests that only need empty tables, not an empty database."""
    with fresh_database(pg_server, "durable_shared") as url:
        yield url


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Run async tests on asyncio only (aiosqlite and asyncpg are asyncio libraries)."""
    return "asyncio"


@pytest.fixture(params=list(STORE_BACKENDS))
async def store(request: pytest.FixtureRequest, anyio_backend: str) -> AsyncIterator[Store]:
    """A fresh, empty, migrated store of each backend in `STORE_BACKENDS`."""
    async with STORE_BACKENDS[request.param](request) as opened:
        yield opened
