"""The `durable:core/sql` host functions: workflow SQL on the worker's database, exactly once.

`begin` commits everything recorded so far, then opens a transaction on the store
(`Store.begin_guest_transaction`, reached through the sink). Each `execute` runs one
statement in it and adds the outcome (rows, or a typed error) to the transaction's
conversation (`_sql_cursor`). `commit` writes the conversation as ONE event, `sql
LABEL`, together with the output printed so far, through the transaction itself: the
workflow's changes and the event that records them commit in one database transaction,
so they are durable together or not at all. A crash before that commit leaves nothing,
and the replay runs the transaction again, once; after it, the replay finds the event,
answers every `execute` from it, and runs no SQL.

A guest exception inside the block, a database that refuses the commit, or a
`rollback` call roll the transaction back, and that (with every outcome the body saw)
is recorded as an ordinary event, so a replay takes the same path. Each statement is
checked on replay against a digest of its SQL and parameters.

If the attempt ends with a transaction still open (the guest trapped, the task was
cancelled, the worker is shutting down), the worker rolls it back
(`StoreSink.aclose`); nothing of it was recorded, and a later attempt runs it again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from wasmtime import component as wc

from durable.core import ops
from durable.core.model import Event, LogChunk
from durable.core.signals import HistoryExhausted
from durable.errors import ConfigurationError, HostError
from durable.host import _sql_values as values
from durable.host._sql_cursor import Conversation, TransactionCursor
from durable.host._wit import Current, add_funcs
from durable.host.context import AttemptContext
from durable.host.world import DURABLE_VERSION
from durable.storage.guest import GuestResult, GuestSQLError, GuestValue

__all__ = ["SqlSession", "SqlSink", "define_sql"]

#: Room kept in the event's payload for everything but the statements' outcomes.
_PAYLOAD_MARGIN = 4096
_REASON_MAX = 2000  # characters of a rollback's reason kept in the record


class SqlSession(Protocol):
    """A store's guest transaction, as the guest's thread reaches it (blocking calls)."""

    def execute(self, sql: str, params: Sequence[GuestValue], *, max_bytes: int) -> GuestResult:
        """Run one statement (see `GuestTransaction.execute`)."""
        ...

    def commit(self, events: Sequence[Event], logs: Sequence[LogChunk]) -> None:
        """Append the events and logs, fenced, and commit (see `GuestTransaction.commit`)."""
        ...

    def rollback(self) -> None:
        """Roll back. Idempotent."""
        ...


@runtime_checkable
class SqlSink(Protocol):
    """A sink that can open guest transactions (the worker's `StoreSink` can)."""

    def begin_transaction(self) -> SqlSession:
        """Open a transaction on the store for the attempt's task."""
        ...


# -- the four calls -------------------------------------------------------------------------


def begin(ctx: AttemptContext, label: str) -> None:
    """Open a transaction, or find it in the history and prepare to replay it."""
    if isinstance(ctx.cursor, TransactionCursor):
        open_label = ctx.cursor.conversation.label
        raise HostError(f"SQL transactions do not nest: {open_label!r} is still open")
    if ctx.in_step:
        raise HostError(
            f"SQL transaction {label!r} inside step {ctx.step_label!r}: a transaction must "
            "be recorded on its own, outside steps"
        )
    name = ops.sql_label(label)
    outer = ctx.cursor
    event = outer.next(name)
    if event is not None:
        conversation = Conversation(name, event.index, json.loads(event.payload))
        ctx.cursor = TransactionCursor(outer, conversation, None)
        return
    if ctx.replay_only:
        raise HistoryExhausted(outer.position, name)
    if outer.position >= ctx.config.max_events:
        raise HostError(f"task {ctx.task.id} reached the limit of {ctx.config.max_events} events")
    ctx.flush()  # what came before is durable first: the transaction's event follows it
    session = _open_session(ctx)
    ctx.cursor = TransactionCursor(outer, Conversation(name, outer.position, None), session)
    if ctx.trace is not None:
        ctx.trace.sql_started(label)


def execute(ctx: AttemptContext, statement: str, params: Sequence[Any]) -> dict[str, Any]:
    """Run a statement (or replay its outcome); return the outcome as recorded."""
    cursor = _open(ctx)
    conversation = cursor.conversation
    digest = values.digest(statement, params)
    if conversation.replaying:
        return conversation.take_statement(digest)
    entry: dict[str, Any] = {"digest": digest}
    try:
        converted = [values.to_value(p) for p in params]
        room = ctx.config.max_payload_bytes - _PAYLOAD_MARGIN - conversation.size
        result = cursor.session.execute(statement, converted, max_bytes=max(room, 0))
        entry["ok"] = result.to_json()
    except GuestSQLError as exc:
        entry["error"] = exc.to_json()
    conversation.add(entry)
    return entry


def commit(ctx: AttemptContext) -> dict[str, Any] | None:
    """Commit with the recording; return None, or why the database refused."""
    cursor = _close(ctx)
    conversation = cursor.conversation
    if conversation.replaying:
        recorded = conversation.finish("commit")
        error: dict[str, Any] | None = recorded.get("error")
        return error
    payload = conversation.payload("commit")
    if len(payload) > ctx.config.max_payload_bytes:  # many statements, each within budget
        cursor.session.rollback()
        raise HostError(
            f"{conversation.label}: recorded payload of {len(payload)} bytes is over the limit "
            f"of {ctx.config.max_payload_bytes} bytes (split the transaction)"
        )
    event = Event(index=conversation.index, label=conversation.label, digest=None, payload=payload)
    logs = ctx.take_logs(frontier=True)  # all of it was printed before this event
    try:
        cursor.session.commit([event], logs)
    except GuestSQLError as exc:
        cursor.session.rollback()
        if ctx.trace is not None:
            ctx.trace.sql_ended("commit-failed")
        failed = conversation.payload("commit-failed", error=exc.to_json())
        ctx.cursor.record(conversation.label, None, failed)
        ctx.sink.write(ctx.cursor.take_pending(), logs, ())
        return exc.to_json()
    ctx.cursor.record(conversation.label, None, payload)
    ctx.cursor.take_pending()  # committed above, with the workflow's changes
    if ctx.trace is not None:
        ctx.trace.sql_ended("commit")
    return None


def rollback(ctx: AttemptContext, reason: str) -> None:
    """Roll back, and record that (or check it against the history)."""
    cursor = _close(ctx)
    conversation = cursor.conversation
    if conversation.replaying:
        conversation.finish("rollback")
        return
    cursor.session.rollback()
    if ctx.trace is not None:
        ctx.trace.sql_ended("rollback")
    payload = conversation.payload("rollback", reason=reason[:_REASON_MAX])
    ctx.record(conversation.label, None, payload)
    ctx.maybe_flush()


def _open(ctx: AttemptContext) -> TransactionCursor:
    cursor = ctx.cursor
    if not isinstance(cursor, TransactionCursor):
        raise HostError("SQL statement outside a transaction (call sql.begin first)")
    return cursor


def _close(ctx: AttemptContext) -> TransactionCursor:
    """The open transaction's cursor, after putting the attempt's own cursor back."""
    cursor = _open(ctx)
    ctx.cursor = cursor.outer
    return cursor


def _open_session(ctx: AttemptContext) -> SqlSession:
    sink = ctx.sink
    if not isinstance(sink, SqlSink):
        # By type: of the stores, only the memory store lacks the `WorkflowSQL` role.
        raise HostError(
            f"task {ctx.task.id} uses durable.transaction, but the memory store has no SQL "
            "database: run it on SQLite or Postgres"
        )
    try:
        session: SqlSession = sink.begin_transaction()
    except ConfigurationError as exc:
        raise HostError(str(exc)) from exc
    return session


# -- linking --------------------------------------------------------------------------------


def define_sql(root: wc.LinkerInstance, current: Current) -> None:
    """Define `durable:core/sql` on the linker root."""

    def begin_(_store: object, label: str) -> None:
        begin(current(), label)

    def execute_(_store: object, statement: str, params: list[Any]) -> wc.Variant:
        return values.outcome_to_wit(execute(current(), statement, params))

    def commit_(_store: object) -> wc.Record | None:
        error = commit(current())
        return None if error is None else values.error_to_wit(error)

    def rollback_(_store: object, reason: str) -> None:
        rollback(current(), reason)

    with root.add_instance(f"durable:core/sql@{DURABLE_VERSION}") as inst:
        add_funcs(
            inst,
            current,
            {"begin": begin_, "execute": execute_, "commit": commit_, "rollback": rollback_},
        )
