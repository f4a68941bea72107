"""The SQLite schema and queries, kept in `.sql` files next to the Postgres ones.

Migrations are `durable/storage/sql/sqlite/NNNN_name.sql`; `SQLiteStore.migrate` applies
each in its own `BEGIN IMMEDIATE` transaction and records it in `durable_migrations`.
They are split into statements here because `sqlite3.executescript` would commit the
surrounding transaction first, and a half-applied migration is exactly what we avoid.

Queries live in `queries.sql` as blocks headed `-- name: <name>`, so the SQL reads (and
can be tried in the `sqlite3` shell) as SQL rather than as Python strings.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from durable.storage._schedule_rows import COLUMNS as SCHEDULE_COLUMNS

__all__ = ["TASK_COLUMNS", "Migration", "latest_version", "migrations", "queries"]

#: The task columns, in the order `_sqlite_codec.task()` reads them. The input lives in
#: a table of its own (migration 0002), so that lease writes do not rewrite it.
TASK_COLUMNS = (
    "id, name, workflow_hash, entry, "
    "(SELECT input FROM durable_task_input WHERE task_id = durable_task.id), state, seed, "
    "created_at, updated_at, wakeup_at, result, error, owner, attempts, parent_id, "
    "idempotency_key, deadline_at, cancel_requested, deaths, "
    "queue, queue_key, priority, started_at, run"
)

_MIGRATION_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    """One schema version, read from its `.sql` file."""

    version: int  # 1, 2, 3 ...: the number in the file name
    name: str  # the rest of the file name, without `.sql`
    statements: tuple[str, ...]  # the file split into statements, run in one transaction


def _sql_dir() -> Traversable:
    return resources.files("durable.storage").joinpath("sql", "sqlite")


def split_statements(script: str) -> tuple[str, ...]:
    """Split a script into complete statements (a trigger body's `;` stays inside).

    Raises:
        ValueError: the script ends with an unterminated statement.
    """
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    rest = [ln for ln in buffer.splitlines() if ln.strip() and not ln.lstrip().startswith("--")]
    if rest:
        raise ValueError(f"unterminated SQL statement: {rest[0][:60]!r}")
    return tuple(statements)


@functools.cache
def migrations() -> tuple[Migration, ...]:
    """Every migration shipped with this code, in version order (1, 2, 3 ... no gaps)."""
    found: list[Migration] = []
    for entry in _sql_dir().iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            statements = split_statements(entry.read_text("utf-8"))
            found.append(Migration(version=int(match[1]), name=match[2], statements=statements))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):  # pragma: no cover - packaging bug
        raise RuntimeError(f"SQLite migrations are not numbered 1..n: {versions}")
    return tuple(found)


def latest_version() -> int:
    """The newest schema version this code knows."""
    return len(migrations())


@functools.cache
def queries() -> dict[str, str]:
    """The named queries of `queries.sql`, by name, with `{task_columns}` expanded.

    `insert_events`, `insert_logs` and `consume` keep their `{rows}` placeholder: the
    caller fills it with one `(?, ?, ?, ?)` (or one `?`) per row.
    """
    text = _sql_dir().joinpath("queries.sql").read_text("utf-8")
    named: dict[str, str] = {}
    for block in re.split(r"^-- name: ", text, flags=re.MULTILINE)[1:]:
        name, _, body = block.partition("\n")
        sql = "\n".join(ln for ln in body.splitlines() if not ln.lstrip().startswith("--"))
        named[name.strip()] = (
            sql.strip()
            .rstrip(";")
            .replace("{task_columns}", TASK_COLUMNS)
            .replace("{schedule_columns}", SCHEDULE_COLUMNS)
        )
    return named
