"""Contract checks: guest transactions (`Store.begin_guest_transaction`).

A backend either has the `WorkflowSQL` role or not (the memory store), and one that
has it may still refuse with `ConfigurationError` (a database not set up for it); the
checks below pass at once for a backend without the role, or one that refuses. Table
names are fresh per check: a Postgres database may be shared between test runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable

from durable.core.model import Lease
from durable.errors import ConfigurationError, ConflictError, LeaseLostError
from durable.storage._contract import assert_raises, batch, check, chunk, claimed, shape
from durable.storage.base import GuestTransaction, Store, WorkflowSQL
from durable.storage.guest import GuestSQLError, GuestValue

MAX = 1 << 20  # bytes a result may take in these checks


def _table() -> str:
    return f"contract_{uuid.uuid4().hex[:12]}"


async def _failure(awaitable: Awaitable[object], what: str) -> str:
    """The kind of the `GuestSQLError` that `awaitable` raises (it must raise one)."""
    try:
        await awaitable
    except GuestSQLError as exc:
        return exc.kind
    raise AssertionError(f"{what} did not fail")


async def _begin(store: WorkflowSQL, lease: Lease) -> GuestTransaction | None:
    """A guest transaction, or None when the backend refuses workflow SQL as promised."""
    try:
        return await store.begin_guest_transaction(lease)
    except ConfigurationError:
        return None


@check
async def check_guest_transaction_commits_rows_with_its_events(store: Store) -> None:
    if not isinstance(store, WorkflowSQL):
        return
    claim = await claimed(store)
    tx = await _begin(store, claim.lease)
    if tx is None:
        return
    table = _table()
    await tx.execute(f"CREATE TABLE {table} (v TEXT NOT NULL)", [], max_bytes=MAX)
    inserted = await tx.execute(f"INSERT INTO {table} (v) VALUES (?)", ["a"], max_bytes=MAX)
    assert inserted.rowcount == 1, inserted
    await tx.commit(batch(0, 2), [chunk("said\n")])
    await tx.rollback()  # after commit: a no-op
    assert shape(await store.load_history(claim.task.id)) == shape(batch(0, 2))
    assert [c.data for c in await store.read_logs(claim.task.id)] == [b"said\n"]

    reader = await store.begin_guest_transaction(claim.lease)
    found = await reader.execute(f"SELECT v FROM {table}", [], max_bytes=MAX)
    assert (found.columns, found.rows, found.rowcount) == (["v"], [["a"]], -1)
    await reader.execute(f"DROP TABLE {table}", [], max_bytes=MAX)
    await reader.commit(batch(2, 1), [])
    assert len(await store.load_history(claim.task.id)) == 3


@check
async def check_guest_transaction_rollback_leaves_nothing(store: Store) -> None:
    if not isinstance(store, WorkflowSQL):
        return
    claim = await claimed(store)
    tx = await _begin(store, claim.lease)
    if tx is None:
        return
    table = _table()
    await tx.execute(f"CREATE TABLE {table} (v TEXT)", [], max_bytes=MAX)
    await tx.rollback()
    await tx.rollback()  # idempotent
    assert await store.load_history(claim.task.id) == []
    again = await store.begin_guest_transaction(claim.lease)  # the connection is free
    try:
        await assert_raises(
            GuestSQLError, again.execute(f"SELECT * FROM {table}", [], max_bytes=MAX)
        )
    finally:
        await again.rollback()


@check
async def check_guest_statement_failure_is_typed_and_undone(store: Store) -> None:
    if not isinstance(store, WorkflowSQL):
        return
    claim = await claimed(store)
    tx = await _begin(store, claim.lease)
    if tx is None:
        return
    table = _table()
    await tx.execute(f"CREATE TABLE {table} (v TEXT NOT NULL UNIQUE)", [], max_bytes=MAX)
    await tx.execute(f"INSERT INTO {table} (v) VALUES (?)", ["a"], max_bytes=MAX)
    cases: list[tuple[str, list[GuestValue], str]] = [
        (f"INSERT INTO {table} (v) VALUES (?)", ["a"], "constraint"),
        (f"INSERT INTO {table} (v) VALUES (?), (?)", ["b", None], "constraint"),
        ("SELEKT 1", [], "syntax"),
        (f"SELECT v FROM {table} WHERE v = ?", [], "data"),
    ]
    for sql, params, kind in cases:
        found = await _failure(tx.execute(sql, params, max_bytes=MAX), sql)
        assert found == kind, f"{sql}: {found}, not {kind}"
    # Each failure undid its own statement, whole ("b" went with the NULL), and no more.
    rows = await tx.execute(f"SELECT v FROM {table}", [], max_bytes=MAX)
    assert rows.rows == [["a"]], rows
    await tx.execute(f"DROP TABLE {table}", [], max_bytes=MAX)
    await tx.commit(batch(0, 1), [])
    assert len(await store.load_history(claim.task.id)) == 1


@check
async def check_guest_temporary_tables_end_with_their_transaction(store: Store) -> None:
    if not isinstance(store, WorkflowSQL):
        return
    claim = await claimed(store)
    tx = await _begin(store, claim.lease)
    if tx is None:
        return
    table = _table()
    await tx.execute(f"CREATE TEMPORARY TABLE {table} (v TEXT)", [], max_bytes=MAX)
    await tx.execute(f"INSERT INTO {table} (v) VALUES ('a')", [], max_bytes=MAX)
    await tx.commit(batch(0, 1), [])
    # The next transaction, whichever task's it is, must not see them.
    later = await store.begin_guest_transaction(claim.lease)
    try:
        missing = later.execute(f"SELECT * FROM {table}", [], max_bytes=MAX)
        assert await _failure(missing, "reading a temporary table of another transaction")
    finally:
        await later.rollback()


@check
async def check_guest_result_over_the_limit_is_refused(store: Store) -> None:
    if not isinstance(store, WorkflowSQL):
        return
    claim = await claimed(store)
    tx = await _begin(store, claim.lease)
    if tx is None:
        return
    try:
        big = tx.execute("SELECT ?", ["x" * 1000], max_bytes=100)
        assert await _failure(big, "a 1000-byte result in 100 bytes") == "too-large"
        small = await tx.execute("SELECT ?", ["x"], max_bytes=100)
        assert small.rows == [["x"]]
    finally:
        await tx.rollback()


@check
async def check_guest_commit_is_fenced(store: Store) -> None:
    if not isinstance(store, WorkflowSQL):
        return
    stale = await claimed(store, lease_seconds=0)
    (taken,) = await store.claim(worker_id="w2", limit=1, lease_seconds=3600)
    assert taken.lease.token > stale.lease.token
    tx = await _begin(store, stale.lease)
    if tx is None:
        return
    table = _table()
    await tx.execute(f"CREATE TABLE {table} (v TEXT)", [], max_bytes=MAX)
    await assert_raises(LeaseLostError, tx.commit(batch(0, 1), []))
    assert await store.load_history(stale.task.id) == []
    check_tx = await store.begin_guest_transaction(taken.lease)
    try:  # the stale transaction's changes went with it
        await assert_raises(
            GuestSQLError, check_tx.execute(f"SELECT * FROM {table}", [], max_bytes=MAX)
        )
    finally:
        await check_tx.rollback()


@check
async def check_guest_commit_refuses_a_gap(store: Store) -> None:
    if not isinstance(store, WorkflowSQL):
        return
    claim = await claimed(store)
    tx = await _begin(store, claim.lease)
    if tx is None:
        return
    table = _table()
    await tx.execute(f"CREATE TABLE {table} (v TEXT)", [], max_bytes=MAX)
    await assert_raises(ConflictError, tx.commit(batch(3, 1), []))
    assert await store.load_history(claim.task.id) == []
    again = await store.begin_guest_transaction(claim.lease)
    try:
        await assert_raises(
            GuestSQLError, again.execute(f"SELECT * FROM {table}", [], max_bytes=MAX)
        )
    finally:
        await again.rollback()


@check
async def check_guest_sql_cannot_read_the_engine_tables(store: Store) -> None:
    if not isinstance(store, WorkflowSQL):
        return
    claim = await claimed(store)
    await store.append(claim.lease, batch(0, 1), [])
    tx = await _begin(store, claim.lease)
    if tx is None:
        return
    try:
        # The engine's tables, as either backend names them: each read must fail, and
        # the one that exists must be refused, not merely missing.
        kinds = {
            await _failure(tx.execute(f"SELECT * FROM {name}", [], max_bytes=MAX), name)
            for name in ("durable_event", "durable_task", "durable.events", "durable.tasks")
        }
        assert "forbidden" in kinds, kinds
    finally:
        await tx.rollback()
    assert shape(await store.load_history(claim.task.id)) == shape(batch(0, 1))
