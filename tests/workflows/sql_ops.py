"""SQL workflows for tests/integration/test_sql.py.

Each entry takes a JSON object; `table` names a table of the test's own (the Postgres
database is shared between tests, so each test uses a fresh name).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import durable
from durable import sql


def backend(tx: sql.Transaction) -> str:
    """Which database this is: SQLite has sqlite_version(), Postgres does not (and the
    failed statement leaves the transaction usable)."""
    try:
        tx.execute("SELECT sqlite_version()")
    except sql.ProgrammingError:
        return "postgres"
    return "sqlite"


@durable.workflow
def ledger(args: dict[str, Any]) -> int:
    """Insert `rows` rows tagged with the task id in one transaction; count them."""
    table, task_id = args["table"], durable.info().id
    with durable.transaction("ledger") as tx:
        print(f"inserting {args.get('rows', 3)} rows")  # logged with the transaction
        tx.execute(f"CREATE TABLE IF NOT EXISTS {table} (task_id BIGINT NOT NULL, n BIGINT)")
        for n in range(args.get("rows", 3)):
            tx.execute(f"INSERT INTO {table} (task_id, n) VALUES (?, ?)", [task_id, n])
        if args.get("slow") and durable.info().attempt == 1:
            print("inside the transaction")
            tx.execute(args["slow"])  # long enough to be killed in
        count = tx.execute(f"SELECT count(*) FROM {table} WHERE task_id = ?", [task_id]).scalar()
    print(f"committed {count}")
    if args.get("pause"):
        durable.sleep(args["pause"])  # commits what came before, then waits
    print("done")
    return int(count)


def show(value: Any) -> Any:
    """A value as JSON the test can compare."""
    if isinstance(value, bytes):
        return list(value)
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


PG_COLUMNS = (
    "b boolean, i bigint, lo bigint, f double precision, d numeric, t text, bl bytea, "
    "j jsonb, ts timestamptz, u uuid, missing text"
)
SQLITE_COLUMNS = "b, i, lo, f, d, t, bl, j, ts, u, missing"


@durable.workflow
def types(args: dict[str, Any]) -> dict[str, Any]:
    """Write one value of each type and read them back."""
    table = args["table"]
    values = [
        True,
        42,
        -(2**63),
        1.5,
        Decimal("12.50"),
        "héllo ☃",
        b"\x00\xff\x10",
        {"a": [1, "x"], "b": None},
        datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC),
        UUID("12345678-1234-5678-1234-567812345678"),
        None,
    ]
    with durable.transaction("types") as tx:
        kind = backend(tx)
        columns = PG_COLUMNS if kind == "postgres" else SQLITE_COLUMNS
        tx.execute(f"CREATE TABLE {table} ({columns})")
        marks = ", ".join("?" * len(values))
        inserted = tx.execute(f"INSERT INTO {table} VALUES ({marks})", values)
        result = tx.execute(f"SELECT * FROM {table}")
        before = time.time()  # recorded with the transaction
    row = result.fetchone()
    assert row is not None
    return {
        "backend": kind,
        "rowcount": inserted.rowcount,
        "columns": result.columns,
        "row": [[type(v).__name__, show(v)] for v in row],
        "dicts": [list(d) for d in result.dicts()],
        "clock": before,
    }


@durable.workflow
def errors(args: dict[str, Any]) -> dict[str, Any]:
    """Run each [name, sql, params] of `cases` in one transaction; report how each
    ended. The transaction carries on after each failure and commits."""
    out: dict[str, Any] = {}
    with durable.transaction("errors") as tx:
        for name, statement, params in args["cases"]:
            try:
                result = tx.execute(statement, params)
                out[name] = ["ok", result.rowcount, result.fetchall()]
            except sql.SQLError as exc:
                out[name] = [type(exc).__name__, exc.kind, exc.code is not None, exc.message]
        out["after"] = tx.execute("SELECT 1 + 1").scalar()
    print("errors handled")
    return out


@durable.workflow
def raising(args: dict[str, Any]) -> dict[str, Any]:
    """An exception inside the block rolls the transaction back, and goes on."""
    table = args["table"]
    with durable.transaction("setup") as tx:
        tx.execute(f"CREATE TABLE IF NOT EXISTS {table} (v TEXT)")
    try:
        with durable.transaction("doomed") as tx:
            tx.execute(f"INSERT INTO {table} (v) VALUES (?)", ["never"])
            raise ValueError("changed my mind")
    except ValueError as exc:
        raised = str(exc)
    with durable.transaction("count") as tx:
        count = tx.execute(f"SELECT count(*) FROM {table}").scalar()
    return {"raised": raised, "count": int(count)}


@durable.workflow
def deferred(args: dict[str, Any]) -> dict[str, Any]:
    """A deferred foreign key fails the commit itself: it raises when the block ends."""
    parent, child = args["table"] + "_parent", args["table"] + "_child"
    try:
        with durable.transaction("deferred") as tx:
            tx.execute(f"CREATE TABLE {parent} (id INTEGER PRIMARY KEY)")
            tx.execute(
                f"CREATE TABLE {child} (pid INTEGER REFERENCES {parent} (id) "
                "DEFERRABLE INITIALLY DEFERRED)"
            )
            inserted = tx.execute(f"INSERT INTO {child} (pid) VALUES (?)", [7]).rowcount
    except sql.IntegrityError as exc:
        return {"inserted": inserted, "error": [type(exc).__name__, exc.kind]}
    return {"inserted": inserted, "error": None}


@durable.step
def in_a_step() -> None:
    with durable.transaction("inside a step"):
        pass


@durable.workflow
def misuse(args: dict[str, Any]) -> Any:
    """Things a transaction does not allow."""
    what = args["what"]
    if what == "nested":
        try:
            with durable.transaction("outer"), durable.transaction("inner"):
                pass
        except RuntimeError as exc:
            return str(exc)
    if what == "in_step":
        try:
            in_a_step()
        except (RuntimeError, durable.StepFailed) as exc:
            return str(exc)
    if what == "sleep":  # fails the task: a sleep inside would happen again on replay
        with durable.transaction("sleepy") as tx:
            tx.execute(f"CREATE TABLE IF NOT EXISTS {args['table']} (v TEXT)")
            tx.execute(f"INSERT INTO {args['table']} (v) VALUES ('x')")
            durable.sleep(0.01)
    if what == "after_end":
        with durable.transaction("short") as tx:
            pass
        try:
            tx.execute("SELECT 1")
        except RuntimeError as exc:
            return str(exc)
    if what == "bad_param":
        with durable.transaction("params") as tx:
            try:
                tx.execute("SELECT ?", [object()])
            except TypeError as exc:
                return str(exc)
    return None
