"""Pure pieces of workflow SQL: the JSON form of values, placeholders and refusals on
Postgres, the SQLite authorizer's decisions."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest
from wasmtime import component as wc

from durable.host import _sql_values
from durable.host._wit import record
from durable.storage._pg_sql_text import refusal, translate
from durable.storage._sqlite_guest import Authorizer
from durable.storage.guest import GuestSQLError, Json, RowBudget, decode, encode, timestamp_text

VALUES = [
    None,
    True,
    False,
    0,
    -(2**63),
    2**63 - 1,
    1.5,
    float("inf"),
    float("-inf"),
    "text",
    "",
    b"\x00\xff",
    Decimal("12.50"),
    Json('{"a": 1}'),
    datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    UUID("12345678-1234-5678-1234-567812345678"),
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_json_form_round_trips_and_is_json(value: object) -> None:
    form = encode(value)  # type: ignore[arg-type]
    text = json.dumps(form, allow_nan=False)  # strict JSON: no NaN or Infinity
    back = decode(json.loads(text))
    assert back == value
    assert type(back) is type(value)


def test_json_form_keeps_nan_and_tells_strings_from_other_types() -> None:
    nan = decode(json.loads(json.dumps(encode(float("nan")))))
    assert isinstance(nan, float)
    assert nan != nan
    assert encode("12.50") != encode(Decimal("12.50"))
    assert encode('{"a": 1}') != encode(Json('{"a": 1}'))
    with pytest.raises(ValueError, match="not the JSON form"):
        decode({"what": 1})


def test_naive_datetimes_are_utc_and_sqlite_text_sorts() -> None:
    naive = datetime(2024, 5, 1, 12, 0)
    assert decode(encode(naive)) == naive.replace(tzinfo=UTC)
    early = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    later = early.astimezone(UTC) + timedelta(microseconds=1)
    assert timestamp_text(early) == "2024-05-01 09:00:00.000000"
    assert timestamp_text(early) < timestamp_text(later)


def test_row_budget_stops_at_the_limit() -> None:
    budget = RowBudget(40)
    budget.add(["x" * 10])
    with pytest.raises(GuestSQLError) as caught:
        budget.add(["y" * 30])
    assert caught.value.kind == "too-large"


def test_wit_parameters_become_values_or_typed_errors() -> None:
    stamp = wc.Variant("timestamp", record(seconds=1_714_566_615, nanoseconds=123_456_789))
    assert _sql_values.to_value(stamp) == datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    uid = UUID("12345678-1234-5678-1234-567812345678")
    assert _sql_values.to_value(wc.Variant("uuid", (uid.int >> 64, uid.int & (2**64 - 1)))) == uid
    assert _sql_values.to_value(wc.Variant("numeric", "1E+3")) == Decimal("1E+3")
    for bad in [wc.Variant("json", "{nope"), wc.Variant("numeric", "twelve")]:
        with pytest.raises(GuestSQLError) as caught:
            _sql_values.to_value(bad)
        assert caught.value.kind == "data"
    # The digest covers the SQL and every parameter, types included.
    one, text_one = [wc.Variant("integer", 1)], [wc.Variant("text", "1")]
    assert _sql_values.digest("SELECT ?", one) != _sql_values.digest("SELECT ?", text_one)
    assert _sql_values.digest("SELECT ?", one) != _sql_values.digest("SELECT ? ", one)
    assert _sql_values.digest("SELECT ?", one) == _sql_values.digest("SELECT ?", list(one))


# -- Postgres: placeholders and refusals -----------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT ?, ?", "SELECT $1, $2"),
        ("SELECT '?', ? -- ?\n", "SELECT '?', $1 -- ?\n"),
        ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"),
        (r"SELECT E'\'?', ?", r"SELECT E'\'?', $1"),
        ('SELECT "a?b", ?', 'SELECT "a?b", $1'),
        ("SELECT $$ ? $$, $tag$ '? $tag$, ?", "SELECT $$ ? $$, $tag$ '? $tag$, $1"),
        ("SELECT /* ? /* ? */ ? */ ?", "SELECT /* ? /* ? */ ? */ $1"),
        ("SELECT $1", "SELECT $1"),
    ],
)
def test_placeholders_outside_literals_become_numbered(sql: str, expected: str) -> None:
    assert translate(sql) == expected


@pytest.mark.parametrize(
    "sql",
    [
        "COMMIT",
        "  /* hidden */ commit",
        "END",
        "BEGIN",
        "start transaction",
        "ROLLBACK",
        "SAVEPOINT x",
        "RELEASE SAVEPOINT x",
        "PREPARE TRANSACTION 'x'",
        "RESET ROLE",
        "RESET ALL",
        "SET ROLE postgres",
        "set local role postgres",
        'SET "role" = postgres',
        "SET SESSION AUTHORIZATION postgres",
        "SELECT set_config('role', 'none', true)",
        "SELECT pg_catalog.\"set_config\"('role', 'none', true)",
        "SELECT U&\"set\\005fconfig\"('role', 'none', true)",
        "DO $$ BEGIN RESET ROLE; END $$",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql AS ''",
        "ALTER FUNCTION f() SET role = postgres",
        "ALTER ROLE CURRENT_USER SET search_path = x",
        "EXECUTE __asyncpg_stmt_1__",
        "LISTEN x",
        "DISCARD ALL",
    ],
)
def test_statements_that_could_escape_are_refused(sql: str) -> None:
    assert refusal(sql) is not None


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "INSERT INTO t (role) VALUES ('commit')",
        "SELECT 'set_config' AS name",
        "SET LOCAL statement_timeout = '1s'",
        "CREATE TABLE IF NOT EXISTS accounts (name text)",
        "CREATE TEMP TABLE scratch (x int)",
        "CREATE INDEX ON accounts (name)",
        "NOTIFY ch, 'hi'",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "",
    ],
)
def test_ordinary_statements_are_not_refused(sql: str) -> None:
    assert refusal(sql) is None


# -- SQLite: the authorizer ------------------------------------------------------------------


def test_the_authorizer_allows_the_engine_and_refuses_the_guest() -> None:
    auth = Authorizer()
    read = (sqlite3.SQLITE_READ, "durable_event", "payload", "main", None)
    assert auth(*read) == sqlite3.SQLITE_OK  # the engine's own statements
    auth.start()
    assert auth(*read) == sqlite3.SQLITE_DENY
    assert auth.denied is not None
    assert "durable_event is one of durable's own tables" in auth.denied
    assert auth(sqlite3.SQLITE_READ, "accounts", "name", "main", None) == sqlite3.SQLITE_OK
    assert auth(sqlite3.SQLITE_PRAGMA, "table_info", "accounts", None, None) == sqlite3.SQLITE_OK
    assert auth(sqlite3.SQLITE_PRAGMA, "journal_mode", "wal", None, None) == sqlite3.SQLITE_DENY
    # A guest DROP TABLE may clear its own table's counter, and nothing more.
    assert auth(sqlite3.SQLITE_DELETE, "sqlite_sequence", None, "main", None) == sqlite3.SQLITE_DENY
    auth.start()
    assert auth(sqlite3.SQLITE_DROP_TABLE, "accounts", None, "main", None) == sqlite3.SQLITE_OK
    assert auth(sqlite3.SQLITE_DELETE, "sqlite_sequence", None, "main", None) == sqlite3.SQLITE_OK
