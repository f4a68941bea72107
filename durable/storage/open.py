"""`open_store`: the one place that maps a URL to a backend."""

from __future__ import annotations

import os

from durable.errors import ConfigurationError
from durable.storage._url import parse_url
from durable.storage.base import Store


async def open_store(url: str | None = None, *, migrate: bool = True) -> Store:
    """Open the store named by `url` (see `parse_url`), migrating it if asked.

    With `migrate=False` a store whose schema is missing or out of date raises
    `SchemaError` instead of being upgraded.

    Raises:
        ConfigurationError: bad URL, missing driver, or a path that cannot be written.
        SchemaError: the schema is out of date and `migrate` is False.
        StorageError: the database could not be reached.
    """
    parsed = parse_url(url)
    store: Store
    if parsed.scheme == "memory":
        from durable.storage.memory import MemoryStore

        store = MemoryStore()
    elif parsed.scheme == "sqlite":
        assert parsed.path is not None
        try:
            from durable.storage.sqlite import SQLiteStore
        except ImportError as exc:  # pragma: no cover - aiosqlite is a core dependency
            raise ConfigurationError("SQLite needs aiosqlite: pip install aiosqlite") from exc
        store = await SQLiteStore.open(parsed.path)
    else:
        assert parsed.dsn is not None
        try:
            from durable.storage.postgres import PostgresStore
        except ImportError as exc:
            raise ConfigurationError("Postgres needs asyncpg: pip install asyncpg") from exc
        store = await PostgresStore.open(parsed.dsn)
    try:
        await _ensure_schema(store, migrate=migrate)
        if os.environ.get("DURABLE_TEST_CRASH_AT"):
            # Test-only fault injection, off unless the variable is set: the process
            # kills itself at a chosen write. See `durable.testing.faults`.
            from durable.testing.faults import from_environment

            store = from_environment(store)
    except BaseException:
        await store.close()
        raise
    return store


async def _ensure_schema(store: Store, *, migrate: bool) -> None:
    from durable.errors import SchemaError

    if migrate:
        await store.migrate()
        return
    current, latest = await store.schema_version()
    if current < latest:
        raise SchemaError(
            f"database schema is at version {current}, this durable needs {latest}: "
            "run `durable migrate` or start the worker with --migrate"
        )
