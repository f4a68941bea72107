"""Workflows whose histories hold child tasks, HTTP requests and SQL transactions, for
tests/integration/test_debug.py: `durable debug` answers each from the history.

Every value a call returned goes into the result, so a debug replay that hands the
workflow anything else ends with another result.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import durable
from durable import http, sql


@durable.workflow
def double(n: int) -> int:
    return 2 * n


@durable.workflow
def family(n: int) -> dict[str, Any]:
    """Spawn `n` children, join them, and cancel one that has ended already."""
    handles = [durable.spawn(double, i, name=f"double-{i}") for i in range(n)]
    results = [h.result() for h in handles]
    try:
        durable.spawn("no-such-workflow")
        missing = "spawned"
    except durable.SpawnError as exc:
        missing = str(exc)
    return {
        "ids": [h.id for h in handles],
        "results": results,
        "cancel": handles[0].cancel(),
        "missing": missing,
    }


@durable.workflow
def fetch(args: dict[str, str]) -> dict[str, Any]:
    """A request answered, and one refused (nothing listens on `closed`)."""
    got = http.get(args["url"], headers={"X-Probe": "1"})
    try:
        http.get(args["closed"], timeout=5)
        refused = "answered"
    except http.HTTPError as exc:
        refused = type(exc).__name__
    return {"status": got.status_code, "text": got.text, "refused": refused}


@durable.workflow
def books(_: object) -> dict[str, Any]:
    """A transaction with every kind of value, a statement that fails, and a rollback."""
    moment = datetime(2026, 12, 7, 9, 30, 15, 250000, tzinfo=UTC)
    ident = UUID("12345678-1234-5678-1234-567812345678")
    with durable.transaction("books") as tx:
        tx.execute("CREATE TABLE IF NOT EXISTS books (id INTEGER PRIMARY KEY, v)")
        kinds: list[Any] = [None, True, 7, 2.5, "text", b"\x00\xff", {"a": [1]}, moment, ident]
        kinds.append(Decimal("1.25"))
        for i, value in enumerate(kinds):
            tx.execute("INSERT INTO books (id, v) VALUES (?, ?)", [i, value])
        try:
            tx.execute("INSERT INTO books (id, v) VALUES (?, ?)", [0, "again"])
            duplicate = "inserted"
        except sql.IntegrityError as exc:
            duplicate = type(exc).__name__
        rows = tx.execute("SELECT id, v FROM books ORDER BY id").fetchall()
    try:
        with durable.transaction("undo") as tx:
            tx.execute("DELETE FROM books")
            raise ValueError("changed my mind")
    except ValueError:
        pass
    return {"rows": [[i, repr(v)] for i, v in rows], "duplicate": duplicate}
