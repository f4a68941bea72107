"""`durable:core/sql` values across the WIT boundary, both ways.

Parameters come in as WIT `value` variants and go to the store as `GuestValue`s.
Results go out from their recorded JSON form (`durable.storage.guest.encode`), on the
first run as on replay, so that both hand the guest exactly the same values.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from wasmtime import component as wc

from durable.host._wit import record
from durable.storage.guest import GuestSQLError, GuestValue, Json, JsonForm, decode

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_S64 = (-(2**63), 2**63 - 1)
_U64_MASK = 2**64 - 1


# -- parameters -----------------------------------------------------------------------------


def raw(param: Any) -> list[Any]:
    """A WIT parameter as plain JSON data, for the statement's digest. Never fails."""
    tag = str(param.tag)
    payload = param.payload
    if isinstance(payload, bytes | bytearray):
        payload = base64.b64encode(bytes(payload)).decode("ascii")
    elif isinstance(payload, tuple):
        payload = list(payload)
    elif payload is not None and not isinstance(payload, bool | int | float | str):
        payload = [payload.seconds, payload.nanoseconds]  # a datetime record
    return [tag, payload]


def digest(statement: str, params: Sequence[Any]) -> str:
    """A short hash of a statement and its parameters, checked on replay."""
    text = json.dumps([statement, [raw(p) for p in params]], allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def to_value(param: Any) -> GuestValue:
    """A WIT `value` as a `GuestValue`.

    Raises:
        GuestSQLError: "data", for a value no database could take (malformed JSON text
            or decimal digits, a nanosecond count of a second or more).
    """
    tag, payload = str(param.tag), param.payload
    if tag == "null":
        return None
    if tag == "boolean":
        return bool(payload)
    if tag == "integer":
        return int(payload)
    if tag == "real":
        return float(payload)
    if tag == "text":
        return str(payload)
    if tag == "blob":
        return bytes(payload)
    if tag == "numeric":
        try:
            return Decimal(payload)
        except InvalidOperation:
            raise GuestSQLError("data", f"not a decimal number: {payload!r}") from None
    if tag == "json":
        try:
            json.loads(payload)
        except ValueError as exc:
            raise GuestSQLError("data", f"not valid JSON text: {exc}") from None
        return Json(payload)
    if tag == "timestamp":
        if not 0 <= payload.nanoseconds < 1_000_000_000:
            raise GuestSQLError("data", f"invalid timestamp nanoseconds {payload.nanoseconds}")
        try:
            return _EPOCH + timedelta(
                seconds=payload.seconds, microseconds=payload.nanoseconds // 1000
            )
        except OverflowError:
            raise GuestSQLError("data", "timestamp out of range") from None
    if tag == "uuid":
        high, low = payload
        return UUID(int=((high & _U64_MASK) << 64) | (low & _U64_MASK))
    raise GuestSQLError("data", f"unknown value type {tag!r}")  # pragma: no cover


# -- results --------------------------------------------------------------------------------


def to_wit(form: JsonForm) -> wc.Variant:
    """A recorded value (JSON form) as a WIT `value`."""
    value = decode(form)
    if value is None:
        return wc.Variant("null")
    if isinstance(value, bool):
        return wc.Variant("boolean", value)
    if isinstance(value, int):
        if _S64[0] <= value <= _S64[1]:
            return wc.Variant("integer", value)
        return wc.Variant("numeric", str(value))
    if isinstance(value, float):
        return wc.Variant("real", value)
    if isinstance(value, str):
        return wc.Variant("text", value)
    if isinstance(value, bytes):
        return wc.Variant("blob", value)
    if isinstance(value, Decimal):
        return wc.Variant("numeric", str(value))
    if isinstance(value, Json):
        return wc.Variant("json", value.text)
    if isinstance(value, datetime):
        seconds, nanos = form["timestamp"]
        return wc.Variant("timestamp", record(seconds=seconds, nanoseconds=nanos))
    return wc.Variant("uuid", (value.int >> 64, value.int & _U64_MASK))


def outcome_to_wit(entry: dict[str, Any]) -> wc.Variant:
    """A recorded statement outcome as the WIT `result<result-set, sql-error>`.

    Both cases are records, so wasmtime needs the tag.
    """
    if "ok" in entry:
        ok = entry["ok"]
        rows = [[to_wit(v) for v in row] for row in ok["rows"]]
        return wc.Variant(
            "ok", record(columns=list(ok["columns"]), rows=rows, rowcount=ok["rowcount"])
        )
    return wc.Variant("err", error_to_wit(entry["error"]))


def error_to_wit(error: dict[str, Any]) -> wc.Record:
    """A recorded error {"kind", "message", "code"} as the WIT `sql-error` record."""
    return record(kind=error["kind"], message=error["message"], code=error.get("code"))
