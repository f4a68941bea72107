"""The Postgres schema: versioned migrations and named queries, kept in `.sql` files.

Migrations are `durable/storage/sql/postgres/NNNN_name.sql`, applied in order, each in
its own transaction, and recorded in `durable.migrations`. Every migrating transaction
first takes a transaction-level advisory lock, so concurrent migrators (many workers
starting at once) queue up and exactly one applies each version; the others find it
recorded and move on.

Queries live in `queries.sql` as blocks headed `-- name: <name>`, so that the SQL can be
read (and tried in psql) as SQL rather than as Python strings.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

import asyncpg

#: Key of the advisory lock that serialises migrations: "durable" read as an integer.
MIGRATION_LOCK = int.from_bytes(b"durable", "big")

_MIGRATION_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")

_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS durable;
CREATE TABLE IF NOT EXISTS durable.migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    """One schema version, read from its `.sql` file."""

    version: int  # 1, 2, 3 ...: the number in the file name
    name: str  # the rest of the file name, without `.sql`
    sql: str  # the statements, run in one transaction


def _sql_dir() -> Traversable:
    return resources.files("durable.storage").joinpath("sql", "postgres")


@functools.cache
def migrations() -> tuple[Migration, ...]:
    """Every migration shipped with this code, in version order (1, 2, 3 ... no gaps)."""
    found: list[Migration] = []
    for entry in _sql_dir().iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append(
                Migration(
                    version=int(match.group(1)), name=match.group(2), sql=entry.read_text("utf-8")
                )
            )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    # Numbers are handed out to work in progress on parallel branches, so one may be
    # missing until they are all merged: they only have to start at 1 and not repeat.
    if not versions or versions[0] != 1 or len(set(versions)) != len(versions):
        raise RuntimeError(  # pragma: no cover - packaging bug
            f"Postgres migrations must start at 1 and not repeat: {versions}"
        )
    return tuple(found)


def latest_version() -> int:
    """The newest schema version this code knows."""
    return migrations()[-1].version


@functools.cache
def queries() -> dict[str, str]:
    """The named queries of `queries.sql`, by name."""
    text = _sql_dir().joinpath("queries.sql").read_text("utf-8")
    named: dict[str, str] = {}
    for block in re.split(r"^-- name: ", text, flags=re.MULTILINE)[1:]:
        name, _, body = block.partition("\n")
        named[name.strip()] = body.strip().rstrip(";")
    return named


async def current_version(conn: asyncpg.Connection) -> int:
    """The database's schema version; 0 when it has never been migrated."""
    if not await conn.fetchval("SELECT to_regclass('durable.migrations') IS NOT NULL"):
        return 0
    version: int = await conn.fetchval("SELECT coalesce(max(version), 0) FROM durable.migrations")
    return version


async def migrate(conn: asyncpg.Connection) -> int:
    """Apply every pending migration, one transaction each; return the version after."""
    if await current_version(conn) >= latest_version():
        return await current_version(conn)
    for migration in migrations():
        async with conn.transaction():
            # Everything below, including creating the schema, happens under the lock:
            # two concurrent `CREATE SCHEMA IF NOT EXISTS` can still collide otherwise.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(_BOOTSTRAP)
            done = await conn.fetchval(
                "SELECT 1 FROM durable.migrations WHERE version = $1", migration.version
            )
            if done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO durable.migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
    return await current_version(conn)
