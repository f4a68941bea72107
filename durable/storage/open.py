"""`open_store`: the one place that maps a URL to a backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from durable import settings
from durable.errors import ConfigurationError
from durable.storage._url import parse_url
from durable.storage.base import Store

if TYPE_CHECKING:
    from durable.storage.postgres import PostgresStore

#: Takes an opened store and returns the store to use (itself, or a wrapper around it).
StoreWrapper = Callable[[Store], Store]

# Installed by whoever embeds durable: instrumentation, or a test harness's fault
# injection (`durable.testing.faults.install`). Production code installs none.
_WRAPPERS: list[StoreWrapper] = []


def add_store_wrapper(wrapper: StoreWrapper) -> Callable[[], None]:
    """Pass every store `open_store` opens from now on through `wrapper`, in the order
    wrappers were added (each wraps the last one's result). Returns its remover."""
    _WRAPPERS.append(wrapper)

    def remove() -> None:
        if wrapper in _WRAPPERS:
            _WRAPPERS.remove(wrapper)

    return remove


async def open_store(
    url: str | None = None, *, migrate: bool = True, guest_url: str | None = None
) -> Store:
    """Open the store named by `url` (see `parse_url`), migrating it if asked.

    With `migrate=False` a store whose schema is missing or out of date raises
    `SchemaError` instead of being upgraded.

    `guest_url` (Postgres only; by default `DURABLE_GUEST_DATABASE_URL`) names the login
    that workflow SQL runs as. When one is named, it is checked here, so that a login
    that may not serve (a superuser, say) is refused before any task runs.

    Raises:
        ConfigurationError: bad URL, missing driver, a path that cannot be written, or
            a guest login that cannot log in or is unfit for workflow SQL.
        SchemaError: the schema is out of date and `migrate` is False.
        StorageError: the database could not be reached.
    """
    parsed = parse_url(url)
    if guest_url and parsed.scheme != "postgres":
        raise ConfigurationError(
            "a guest database URL applies to Postgres only (on SQLite, workflow SQL is "
            "confined by an authorizer)"
        )
    store: Store
    named_guest: PostgresStore | None = None  # its guest login was named: check it
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
        store = await PostgresStore.open(parsed.dsn, guest_dsn=guest_url)
        if guest_url or settings.guest_database_url():
            named_guest = store
    try:
        await _ensure_schema(store, migrate=migrate)
        if named_guest is not None:
            await named_guest.check_guest_login()
        for wrapper in list(_WRAPPERS):
            store = wrapper(store)
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
