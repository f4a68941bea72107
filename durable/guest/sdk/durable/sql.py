"""SQL on the worker's own database, exactly once: `durable.transaction`.

Inside a `with` block, a workflow runs SQL on the database the worker keeps its own
state in (the SQLite file, or Postgres)::

    import durable

    @durable.workflow
    def main(order: dict) -> int:
        with durable.transaction("record order") as tx:
            tx.execute("CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, cents INT)")
            tx.execute("INSERT INTO orders VALUES (?, ?)", [order["id"], order["cents"]])
            return tx.execute("SELECT count(*) FROM orders").scalar()

Leaving the block commits. The workflow's changes and the event that records the
transaction (every statement's result, in order) commit in one database transaction:
exactly once, whatever crashes when. On replay the block runs again, but no SQL does:
each `execute` returns its recorded result. An exception that leaves the block rolls
the transaction back; that is recorded too, and the exception goes on.

Placeholders are `?` on every backend. Parameters may be None, bool, int, float, str,
bytes, `decimal.Decimal`, `datetime` (naive means UTC), `uuid.UUID`, a dict or list
(sent as JSON), or `Json(value)`. Rows come back as tuples of the same Python types
(JSON columns decoded). SQLite has no timestamp, UUID, JSON or decimal types: those go
in, and come back, as text.

A statement that fails raises a subclass of `SQLError` (recorded, so a replay raises the
same): `ProgrammingError` (bad SQL, no such table), `DataError` (a parameter of the
wrong type), `IntegrityError` (a constraint), `Forbidden` (durable's own tables,
transaction control, ...), `ResultTooLarge`, `TransactionAborted` (nothing more can run
in this transaction) or `OperationalError`. The failed statement changed nothing; catch
the error to carry on in the same transaction.

Inside the block, use only SQL and the clock: steps, sleeps, HTTP and other durable
calls fail the task (they would run again on every replay). Transactions do not nest,
and may not be opened inside a step.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any
from uuid import UUID

from componentize_py_types import Err
from wit_world.imports import sql as _wit
from wit_world.imports import types as _types

from durable import _cancel, _state
from durable._errors import DurableGuestError

__all__ = [
    "DataError",
    "Forbidden",
    "IntegrityError",
    "Json",
    "OperationalError",
    "ProgrammingError",
    "Result",
    "ResultTooLarge",
    "SQLError",
    "Transaction",
    "TransactionAborted",
    "transaction",
]

_S64 = (-(2**63), 2**63 - 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_open: Transaction | None = None  # the transaction whose block is running


# -- errors ----------------------------------------------------------------------------------


class SQLError(DurableGuestError):
    """A statement, or the commit, failed.

    Attributes:
        kind: "syntax", "data", "constraint", "forbidden", "too-large", "aborted" or "other".
        message: the database's (or the host's) message.
        code: the SQLSTATE on Postgres, the result code name on SQLite, or None.
    """

    def __init__(self, kind: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.code = code


class ProgrammingError(SQLError):
    """The SQL is malformed, or names a table, column or function that does not exist."""


class DataError(SQLError):
    """A parameter has the wrong type or count, or a value is invalid or out of range."""


class IntegrityError(SQLError):
    """A constraint refused the change: unique, foreign key, not null, check."""


class Forbidden(SQLError):
    """Not for workflow SQL: durable's own tables, transaction control, changing roles..."""


class ResultTooLarge(SQLError):
    """The result was larger than the host records."""


class TransactionAborted(SQLError):
    """The database aborted the whole transaction; nothing more can run in it."""


class OperationalError(SQLError):
    """Anything else the database reported."""


_ERRORS: dict[str, type[SQLError]] = {
    "syntax": ProgrammingError,
    "data": DataError,
    "constraint": IntegrityError,
    "forbidden": Forbidden,
    "too-large": ResultTooLarge,
    "aborted": TransactionAborted,
    "other": OperationalError,
}
_KINDS = {
    _wit.ErrorKind.SYNTAX: "syntax",
    _wit.ErrorKind.DATA: "data",
    _wit.ErrorKind.CONSTRAINT: "constraint",
    _wit.ErrorKind.FORBIDDEN: "forbidden",
    _wit.ErrorKind.TOO_LARGE: "too-large",
    _wit.ErrorKind.ABORTED: "aborted",
    _wit.ErrorKind.OTHER: "other",
}


def _error(err: _wit.SqlError) -> SQLError:
    kind = _KINDS.get(err.kind, "other")
    return _ERRORS[kind](kind, err.message, err.code)


# -- values ----------------------------------------------------------------------------------


class Json:
    """Marks a parameter to be sent as JSON (dicts and lists are, without it)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _to_wit(value: Any) -> _wit.Value:
    if value is None:
        return _wit.Value_Null()
    if isinstance(value, bool):
        return _wit.Value_Boolean(value)
    if isinstance(value, int):
        if not _S64[0] <= value <= _S64[1]:
            raise ValueError(f"integer {value} does not fit in 64 bits: pass a Decimal")
        return _wit.Value_Integer(value)
    if isinstance(value, float):
        return _wit.Value_Real(value)
    if isinstance(value, Decimal):
        return _wit.Value_Numeric(str(value))
    if isinstance(value, str):
        return _wit.Value_Text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _wit.Value_Blob(bytes(value))
    if isinstance(value, Json):
        return _wit.Value_Json(json.dumps(value.value, allow_nan=False))
    if isinstance(value, dict | list):
        return _wit.Value_Json(json.dumps(value, allow_nan=False))
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        delta = moment - _EPOCH
        seconds = delta.days * 86_400 + delta.seconds
        return _wit.Value_Timestamp(_types.Datetime(seconds, delta.microseconds * 1000))
    if isinstance(value, date):
        return _wit.Value_Text(value.isoformat())
    if isinstance(value, UUID):
        return _wit.Value_Uuid((value.int >> 64, value.int & (2**64 - 1)))
    raise TypeError(f"cannot pass a {type(value).__name__} as a SQL parameter")


def _from_wit(value: _wit.Value) -> Any:
    if isinstance(value, _wit.Value_Null):
        return None
    if isinstance(value, _wit.Value_Numeric):
        return Decimal(value.value)
    if isinstance(value, _wit.Value_Json):
        return json.loads(value.value)
    if isinstance(value, _wit.Value_Timestamp):
        moment = value.value
        return _EPOCH + timedelta(seconds=moment.seconds, microseconds=moment.nanoseconds // 1000)
    if isinstance(value, _wit.Value_Uuid):
        high, low = value.value
        return UUID(int=(high << 64) | low)
    return value.value  # boolean, integer, real, text, blob


# -- results ---------------------------------------------------------------------------------


class Result:
    """What a statement returned.

    Attributes:
        columns: the column names (empty for statements without rows).
        rows: the rows, as tuples.
        rowcount: rows inserted, updated or deleted; -1 for other statements.
    """

    def __init__(self, columns: list[str], rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self.columns = columns
        self.rows = rows
        self.rowcount = rowcount

    def fetchall(self) -> list[tuple[Any, ...]]:
        """Every row."""
        return list(self.rows)

    def fetchone(self) -> tuple[Any, ...] | None:
        """The first row, or None."""
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        """The first column of the first row, or None when there is no row."""
        return self.rows[0][0] if self.rows and self.rows[0] else None

    def dicts(self) -> list[dict[str, Any]]:
        """Every row as a dict keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"Result(columns={self.columns!r}, rows={len(self.rows)}, rowcount={self.rowcount})"


# -- transactions ----------------------------------------------------------------------------


class Transaction:
    """The open transaction of a `with durable.transaction(...)` block."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._active = False

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        """Run one statement, with `?` placeholders for `params`, and return its result.

        Raises:
            SQLError: the statement failed (recorded; it changed nothing).
            TypeError, ValueError: a parameter cannot be sent (nothing was run).
        """
        if not self._active:
            raise RuntimeError(f"transaction {self.label!r} has ended")
        if not isinstance(sql, str):
            raise TypeError(f"sql must be a str, not {type(sql).__name__}")
        if isinstance(params, str | bytes) or (
            params is not None and not isinstance(params, Sequence)
        ):
            raise TypeError("params must be a list or tuple of values")
        converted = [_to_wit(v) for v in params or ()]
        try:
            out = _wit.execute(sql, converted)
        except Err as err:
            raise _error(err.value) from None
        rows = [tuple(_from_wit(v) for v in row) for row in out.rows]
        return Result(list(out.columns), rows, out.rowcount)


class transaction:  # lower case: it reads as a function, `with durable.transaction(...)`
    """`with durable.transaction("label") as tx:` runs `tx.execute(...)` exactly once.

    See the module docstring. The label names the transaction's event (`sql LABEL`).
    """

    def __init__(self, label: str = "transaction") -> None:
        if not isinstance(label, str):
            raise TypeError(f"label must be a str, not {type(label).__name__}")
        self.label = label
        self._tx: Transaction | None = None

    def __enter__(self) -> Transaction:
        global _open
        if _state.in_step:
            raise RuntimeError(
                f"durable.transaction({self.label!r}) inside a step: open it outside the step"
            )
        if _open is not None:
            raise RuntimeError(
                f"durable.transaction({self.label!r}) inside transaction {_open.label!r}: "
                "transactions do not nest"
            )
        _cancel.check()
        _wit.begin(self.label)
        self._tx = _open = Transaction(self.label)
        self._tx._active = True
        return self._tx

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        global _open
        tx, self._tx, _open = self._tx, None, None
        if tx is None:
            return False
        tx._active = False
        if exc is None:
            try:
                _wit.commit()
            except Err as err:
                raise _error(err.value) from None
            return False
        reason = f"{type(exc).__name__}: {exc}"
        _wit.rollback(reason)
        return False
