"""Workflow ("guest") SQL at the storage layer: values, results, errors and limits.

A workflow runs SQL on the worker's own database inside a *guest transaction* (see
`Store.begin_guest_transaction` and `GuestTransaction` in `durable.storage.base`).
This module holds what the backends and the host share about it:

* `GuestValue`: the Python values a statement takes and returns. `Json` marks JSON
  text, to tell it from plain text.
* The *JSON form* of a value (`encode`, `decode`): how a value is recorded in the
  transaction's event. Strings and numbers stand for themselves; every other type is a
  one-key object (`{"blob": "<base64>"}`). Backends hand rows over already in this
  form, so that they can measure a result as they read it and stop at the size limit.
* `GuestResult` and `GuestSQLError`: what a statement returned, or why it failed.

Nothing here touches a driver.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

from durable.errors import DurableError

__all__ = [
    "ERROR_KINDS",
    "GuestResult",
    "GuestSQLError",
    "GuestValue",
    "Json",
    "JsonForm",
    "RowBudget",
    "decode",
    "encode",
    "timestamp_text",
]


@dataclass(frozen=True, slots=True)
class Json:
    """JSON text, as a parameter or a value read back (Postgres `json`/`jsonb`)."""

    text: str


#: A value passed to or read from workflow SQL. Datetimes are aware, in UTC.
GuestValue = None | bool | int | float | str | bytes | Decimal | Json | datetime | UUID
#: A value in its JSON form (what `encode` returns).
JsonForm = Any

#: Every `GuestSQLError.kind`, as the WIT `error-kind` enum names them.
ERROR_KINDS: Final = ("syntax", "data", "constraint", "forbidden", "too-large", "aborted", "other")


class GuestSQLError(DurableError):
    """A workflow's statement (or commit) failed for a reason the workflow may handle.

    It is recorded and handed to the guest, never treated as a failure of the worker.
    A failed statement changed nothing; unless `kind` is "aborted", the transaction can
    go on.

    Attributes:
        kind: one of `ERROR_KINDS`.
        message: one line from the database or the host.
        code: the SQLSTATE (Postgres) or extended result code name (SQLite), if any.
    """

    def __init__(self, kind: str, message: str, code: str | None = None) -> None:
        if kind not in ERROR_KINDS:  # pragma: no cover - a programming error
            raise ValueError(f"unknown SQL error kind {kind!r}")
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.code = code

    def to_json(self) -> dict[str, Any]:
        """The error as recorded: {"kind", "message", "code"}."""
        return {"kind": self.kind, "message": self.message, "code": self.code}


@dataclass(frozen=True, slots=True)
class GuestResult:
    """What one statement returned.

    Attributes:
        columns: the result's column names (empty for a statement without rows).
        rows: each row's values in their JSON form (`encode`).
        rowcount: rows inserted, updated or deleted; -1 for other statements.
    """

    columns: list[str]
    rows: list[list[JsonForm]]
    rowcount: int

    def to_json(self) -> dict[str, Any]:
        """The result as recorded: {"columns", "rows", "rowcount"}."""
        return {"columns": self.columns, "rows": self.rows, "rowcount": self.rowcount}


# -- the JSON form ---------------------------------------------------------------------------


def encode(value: GuestValue) -> JsonForm:
    """A value's JSON form. Deterministic: equal values give equal forms."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"real": repr(value)}  # nan, inf, -inf
    if isinstance(value, bytes):
        return {"blob": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Decimal):
        return {"numeric": str(value)}
    if isinstance(value, Json):
        return {"json": value.text}
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        delta = moment - _EPOCH
        seconds = delta.days * 86_400 + delta.seconds
        return {"timestamp": [seconds, delta.microseconds * 1000]}
    if isinstance(value, UUID):
        return {"uuid": str(value)}
    raise TypeError(f"not a SQL value: {type(value).__name__}")


def decode(form: JsonForm) -> GuestValue:
    """The value a JSON form stands for (the inverse of `encode`)."""
    if form is None or isinstance(form, bool | int | float | str):
        return form
    if isinstance(form, dict) and len(form) == 1:
        ((tag, inner),) = form.items()
        if tag == "real":
            return float(inner)
        if tag == "blob":
            return base64.b64decode(inner)
        if tag == "numeric":
            return Decimal(inner)
        if tag == "json":
            return Json(inner)
        if tag == "timestamp":
            seconds, nanos = inner
            return datetime.fromtimestamp(seconds, UTC).replace(microsecond=nanos // 1000)
        if tag == "uuid":
            return UUID(inner)
    raise ValueError(f"not the JSON form of a SQL value: {form!r}")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp_text(value: datetime) -> str:
    """How a timestamp is stored where the backend has no such type (SQLite): UTC, as
    `YYYY-MM-DD HH:MM:SS.ffffff`, which sorts in time order and which SQLite's date
    functions read."""
    moment = value.astimezone(UTC) if value.tzinfo is not None else value
    return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


# -- the size limit ------------------------------------------------------------------------


class RowBudget:
    """Counts the recorded size of a result as its rows are read.

    Raises `GuestSQLError("too-large")` as soon as the rows would take more than
    `max_bytes` of the transaction's event, so that a huge result is never held whole.
    """

    __slots__ = ("left", "limit")

    def __init__(self, max_bytes: int) -> None:
        """Allow `max_bytes` (what is left of the event's payload limit)."""
        self.limit = max_bytes
        self.left = max_bytes

    def add(self, row: Sequence[JsonForm]) -> None:
        """Count one row (in JSON form)."""
        self.left -= len(json.dumps(row)) + 2
        if self.left < 0:
            raise GuestSQLError(
                "too-large",
                "the result is larger than a recorded transaction may hold "
                f"({self.limit} bytes left of the payload limit)",
            )
