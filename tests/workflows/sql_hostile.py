"""Hostile workflow SQL for tests/integration/test_sqlite_guest_boundary.py."""

from __future__ import annotations

import time
from typing import Any

import durable
from durable import sql


@durable.workflow
def attack(args: dict[str, Any]) -> dict[str, Any]:
    """Run each [name, sql] of `cases` in a transaction of its own; report how each
    ended: ["ok"] or [error class, kind, message]."""
    out: dict[str, Any] = {}
    for name, statement in args["cases"]:
        try:
            with durable.transaction(name) as tx:
                tx.execute(statement)
            out[name] = ["ok"]
        except sql.SQLError as exc:
            out[name] = [type(exc).__name__, exc.kind, exc.message]
    return out


@durable.workflow
def hog(args: dict[str, Any]) -> list[Any]:
    """Write a row, then keep the transaction (and the write lock) open by computing for
    `seconds`, then try to go on."""
    table = args["table"]
    try:
        with durable.transaction("hog") as tx:
            tx.execute(f"CREATE TABLE IF NOT EXISTS {table} (who TEXT)")
            tx.execute(f"INSERT INTO {table} VALUES ('hog')")
            until = time.time() + args["seconds"]
            while time.time() < until:
                sum(range(100_000))  # few clock readings: each is recorded
            tx.execute("SELECT 1")
    except sql.SQLError as exc:
        return [type(exc).__name__, exc.kind, exc.message]
    return ["ok"]


@durable.workflow
def polite(args: dict[str, Any]) -> int:
    """An ordinary transaction: add a row, count the rows."""
    table = args["table"]
    with durable.transaction("polite") as tx:
        tx.execute(f"CREATE TABLE IF NOT EXISTS {table} (who TEXT)")
        tx.execute(f"INSERT INTO {table} VALUES ('polite')")
        return int(tx.execute(f"SELECT count(*) FROM {table}").scalar())
