"""The SQLite boundary around workflow SQL, attacked: real SQLite files, real statements.

Most tests drive `SQLiteStore.begin_guest_transaction` directly, as the host does, on a
database where the application has its own tables, an FTS5 table and planner
statistics. The FTS3 tokenizer attack runs in a subprocess (it crashed the process
when it got through), and the last test runs hostile workflows in a real worker.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from durable.core.model import Event, NewTask, TaskState
from durable.storage import _sqlite_hardening as hardening
from durable.storage.base import GuestTransaction
from durable.storage.guest import GuestResult, GuestSQLError, GuestValue
from durable.storage.sqlite import SQLiteStore
from tests.helpers import WORKFLOWS, built, completed_result, launch_task, run_cli
from tests.integration.test_sql import _locked as locked

pytestmark = pytest.mark.anyio

#: The application's own schema, made outside workflow SQL.
APP_SCHEMA = """
CREATE TABLE accounts (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, cents INTEGER);
INSERT INTO accounts (name, cents) VALUES ('alice', 100), ('bob', 50);
CREATE VIRTUAL TABLE docs USING fts5(body);
INSERT INTO docs (body) VALUES ('hello world');
ANALYZE;
"""
#: A forged tokenizer: the address SQLite would call when an FTS3 table uses it.
FORGED = "X'4141414141414141'"


@asynccontextmanager
async def app_store(path: Path, busy_timeout: float) -> AsyncIterator[SQLiteStore]:
    """A migrated store with the application's schema; its workflow transactions get
    half of `busy_timeout` (seconds)."""
    opened = await SQLiteStore.open(path, busy_timeout=busy_timeout)
    try:
        await opened.migrate()
        with sqlite3.connect(opened.path) as conn:
            conn.executescript(APP_SCHEMA)
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """A store whose transactions have time enough for a slow machine (20 s)."""
    async with app_store(tmp_path / "db.sqlite", busy_timeout=40.0) as opened:
        yield opened


@pytest.fixture
async def short_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """A store whose transactions get a one-second budget."""
    async with app_store(tmp_path / "db.sqlite", busy_timeout=2.0) as opened:
        yield opened


async def begin(store: SQLiteStore, lease_seconds: float = 60) -> GuestTransaction:
    """A task, claimed, with a workflow transaction open for it."""
    digest = await store.put_workflow(b"\x00asm boundary test")
    await store.create_task(NewTask(name="t", workflow_hash=digest, input="null"))
    [claim] = await store.claim(worker_id="w", limit=1, lease_seconds=lease_seconds)
    return await store.begin_guest_transaction(claim.lease)


async def run(
    tx: GuestTransaction, sql: str, params: Sequence[GuestValue] = ()
) -> GuestResult | GuestSQLError:
    """The statement's result, or the error it raised."""
    try:
        with anyio.fail_after(120):  # liveness only: a runaway statement must end
            return await tx.execute(sql, list(params), max_bytes=1_000_000)
    except GuestSQLError as exc:
        return exc


async def commit(tx: GuestTransaction) -> None:
    await tx.commit([Event(index=0, label="sql test", digest=None, payload="{}")], [])


def read(store: SQLiteStore, sql: str) -> list[tuple[Any, ...]]:
    """Read the file directly, outside workflow SQL."""
    with sqlite3.connect(store.path) as conn:
        return conn.execute(sql).fetchall()


def refused(outcome: GuestResult | GuestSQLError, kind: str = "forbidden") -> str:
    """The message of an error of `kind`, failing on anything else."""
    assert isinstance(outcome, GuestSQLError), f"expected a refusal, got {outcome}"
    assert outcome.kind == kind, outcome
    return outcome.message


async def all_refused(tx: GuestTransaction, statements: Sequence[str]) -> dict[str, str]:
    """Run each statement; each must be refused as forbidden. Their messages, by SQL."""
    outcomes = {sql: await run(tx, sql) for sql in statements}
    not_refused = {
        sql: outcome
        for sql, outcome in outcomes.items()
        if not (isinstance(outcome, GuestSQLError) and outcome.kind == "forbidden")
    }
    assert not_refused == {}
    return {sql: refused(outcome) for sql, outcome in outcomes.items()}


# -- the FTS3 tokenizer -----------------------------------------------------------------------

ATTACK = f"""
import asyncio, json, sys
from durable.core.model import NewTask
from durable.storage.guest import GuestSQLError
from durable.storage.sqlite import SQLiteStore

async def main(path):
    store = await SQLiteStore.open(path)
    await store.migrate()
    digest = await store.put_workflow(b"attack")
    await store.create_task(NewTask(name="t", workflow_hash=digest, input="null"))
    [claim] = await store.claim(worker_id="w", limit=1, lease_seconds=60)
    tx = await store.begin_guest_transaction(claim.lease)
    out = []
    for sql in [
        "SELECT fts3_tokenizer('simple')",
        "SELECT fts3_tokenizer('evil', {FORGED})",
        "CREATE VIRTUAL TABLE evil_fts USING fts3(body, tokenize=evil)",
        "CREATE TABLE planted (a DEFAULT (fts3_tokenizer('simple', {FORGED})))",
        "CREATE VIEW planted_view AS SELECT fts3_tokenizer('simple', {FORGED})",
        "SELECT * FROM (SELECT fts3_tokenizer('simple', {FORGED}))",
    ]:
        try:
            await tx.execute(sql, [], max_bytes=10_000)
            out.append(["ok"])
        except GuestSQLError as exc:
            out.append([exc.kind, exc.message])
    await tx.rollback()
    await store.close()
    print(json.dumps(out))

asyncio.run(main(sys.argv[1]))
"""
RAW_EXPLOIT = f"""
import sqlite3
conn = sqlite3.connect(":memory:")
conn.execute("SELECT fts3_tokenizer('evil', {FORGED})")
conn.execute("CREATE VIRTUAL TABLE t USING fts3(body, tokenize=evil)")
"""


def python(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def has_fts3_tokenizer() -> bool:
    options = sqlite3.connect(":memory:").execute("PRAGMA compile_options").fetchall()
    return ("ENABLE_FTS3_TOKENIZER",) in options


def test_the_fts3_tokenizer_attack_is_refused_and_the_process_survives(tmp_path: Path) -> None:
    attacked = python(ATTACK, str(tmp_path / "attack.db"))
    assert attacked.returncode == 0, attacked.stderr[-2000:]  # not -11: no SIGSEGV
    outcomes = json.loads(attacked.stdout.splitlines()[-1])
    assert [kind for kind, *_ in outcomes] == ["forbidden"] * 6, outcomes
    assert "fts3_tokenizer() is not available" in outcomes[0][1]
    assert "virtual tables are not available" in outcomes[2][1]
    assert "planted: the SQL function fts3_tokenizer()" in outcomes[3][1]


@pytest.mark.skipif(not has_fts3_tokenizer(), reason="this SQLite has no FTS3 tokenizer API")
def test_the_same_attack_kills_a_process_without_the_boundary() -> None:
    """The attack above is real on this machine: on a plain connection it crashes."""
    crashed = python(RAW_EXPLOIT)
    assert crashed.returncode == -signal.SIGSEGV


# -- SQLite's own tables ----------------------------------------------------------------------

STATISTICS = [
    "ANALYZE",
    "ANALYZE accounts",
    "ANALYZE main",
    "INSERT INTO sqlite_stat1 VALUES ('durable_task', 'durable_task_state', '1000000 1')",
    "UPDATE sqlite_stat1 SET stat = '1 1'",
    "DELETE FROM sqlite_stat1",
    "SELECT * FROM sqlite_stat1",
    "PRAGMA optimize",
    "PRAGMA analysis_limit = 1",
]


async def test_planner_statistics_cannot_be_read_or_written(store: SQLiteStore) -> None:
    before = read(store, "SELECT * FROM sqlite_stat1 ORDER BY tbl, idx")
    assert any(tbl.startswith("durable_") for tbl, *_ in before)
    tx = await begin(store)
    for sql in STATISTICS:
        refused(await run(tx, sql))
    await commit(tx)
    assert read(store, "SELECT * FROM sqlite_stat1 ORDER BY tbl, idx") == before


SCHEMA_READS = [
    "SELECT * FROM sqlite_master",
    "SELECT name FROM sqlite_schema",
    "SELECT sql FROM main.sqlite_master WHERE name = 'durable_task'",
    "SELECT * FROM temp.sqlite_master",
    "SELECT * FROM sqlite_temp_schema",
    "SELECT rowid FROM sqlite_master",
    "SELECT (SELECT count(*) FROM sqlite_master)",
    "CREATE TABLE copied AS SELECT name, sql FROM sqlite_master",
    "INSERT INTO accounts (name) SELECT name FROM sqlite_master",
    "SELECT * FROM sqlite_sequence",
    "SELECT * FROM dbstat",
    "SELECT * FROM dbstat('main')",
    "SELECT * FROM sqlite_stmt",
    "SELECT * FROM pragma_function_list",
    "SELECT * FROM pragma_module_list",
    "SELECT * FROM pragma_table_list",
    "SELECT * FROM pragma_table_info('durable_event')",
    "PRAGMA table_list",
    "PRAGMA foreign_key_check",
    "PRAGMA index_list(durable_task)",
    "PRAGMA index_info(sqlite_autoindex_durable_workflow_name_1)",
    "PRAGMA compile_options",
    "PRAGMA trusted_schema = ON",
    "PRAGMA writable_schema = ON",
    "PRAGMA foreign_keys = OFF",
    "SELECT * FROM docs",
    "SELECT * FROM docs_data",
    "INSERT INTO docs_data VALUES (99, X'00')",
    "DELETE FROM docs",
    "DROP TABLE docs",
    "REINDEX",
    "REINDEX durable_task_state",
]


async def test_the_schema_and_virtual_tables_are_out_of_reach(store: SQLiteStore) -> None:
    tx = await begin(store)
    outcomes = await all_refused(tx, SCHEMA_READS)
    assert "PRAGMA table_info(name)" in outcomes["SELECT * FROM sqlite_master"]
    engine = outcomes["SELECT * FROM pragma_table_info('durable_event')"]
    assert "durable_event is one of durable's own tables" in engine
    assert "json_each and json_tree" in outcomes["SELECT * FROM docs_data"]
    await commit(tx)
    assert read(store, "SELECT count(*) FROM accounts") == [(2,)]
    assert read(store, "SELECT count(*) FROM docs") == [(1,)]


# -- functions ----------------------------------------------------------------------------------

DENIED_FUNCTIONS = {
    "load_extension": "SELECT load_extension('/lib/x86_64-linux-gnu/libc.so.6')",
    "fts3_tokenizer": "SELECT fts3_tokenizer('simple')",
    "sqlite_compileoption_get": "SELECT sqlite_compileoption_get(0)",
    "sqlite_compileoption_used": "SELECT sqlite_compileoption_used('ENABLE_FTS3_TOKENIZER')",
    "sqlite_source_id": "SELECT sqlite_source_id()",
    "sqlite_log": "SELECT sqlite_log(1, 'x')",
    "total_changes": "SELECT total_changes()",
    "subtype": "SELECT subtype('x')",
    "rtreenode": "SELECT rtreenode(2, X'00')",
    "rtreecheck": "SELECT rtreecheck('accounts')",
    "fts5": "SELECT fts5(NULL)",
    "match": "SELECT 1 WHERE match('a', 'b')",
    "highlight": "SELECT highlight(docs, 0, '[', ']') FROM docs",
    "made_up": "SELECT made_up_function(1)",
}


async def test_functions_off_the_allow_list_are_refused(store: SQLiteStore) -> None:
    tx = await begin(store)
    for name, sql in DENIED_FUNCTIONS.items():
        outcome = await run(tx, sql)
        if name == "made_up":  # no such function: SQLite says so before asking
            assert isinstance(outcome, GuestSQLError)
            assert outcome.kind in ("syntax", "forbidden"), outcome
            continue
        assert name in refused(outcome), outcome
    assert isinstance(await run(tx, "SELECT 1"), GuestResult)  # the transaction goes on
    await commit(tx)


ALLOWED = [
    # The application's tables, and the workflow's own, every way.
    "SELECT name, cents FROM accounts ORDER BY id",
    "UPDATE accounts SET cents = cents + 1 WHERE name = 'bob'",
    "CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY AUTOINCREMENT, who TEXT, "
    "cents INTEGER DEFAULT 0 CHECK (cents >= 0), at TEXT DEFAULT CURRENT_TIMESTAMP, "
    "doc TEXT DEFAULT (abs(-1)), upper_who TEXT AS (upper(who)), "
    "account INTEGER REFERENCES accounts (id))",
    "INSERT INTO ledger (who, cents, account) VALUES ('alice', 5, 1) RETURNING id, upper_who",
    "INSERT INTO ledger (id, who) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET who = 'y'",
    "SELECT last_insert_rowid(), changes()",
    "CREATE INDEX ledger_who ON ledger (lower(who)) WHERE cents > 0",
    "REINDEX ledger_who",
    "CREATE VIEW ledger_view AS SELECT who, sum(cents) AS total FROM ledger GROUP BY who",
    "SELECT * FROM ledger_view",
    "ALTER TABLE ledger ADD COLUMN note TEXT DEFAULT 'none'",
    "ALTER TABLE ledger RENAME COLUMN note TO remark",
    "ALTER TABLE ledger DROP COLUMN remark",
    "CREATE TABLE scratch (x)",
    "ALTER TABLE scratch RENAME TO scratch2",
    "DROP TABLE scratch2",
    "CREATE TEMP TABLE tmp (x)",
    "CREATE TEMP VIEW tmp_view AS SELECT * FROM tmp",
    "DROP VIEW tmp_view",
    "DROP TABLE tmp",
    "PRAGMA table_info(ledger)",
    "PRAGMA table_xinfo(accounts)",
    "PRAGMA index_list(ledger)",
    "PRAGMA foreign_key_list(ledger)",
    "PRAGMA foreign_key_check(ledger)",
    "PRAGMA table_list(ledger)",
    "PRAGMA defer_foreign_keys = ON",
    "SELECT name, type FROM pragma_table_info('ledger')",
    "EXPLAIN QUERY PLAN SELECT * FROM ledger WHERE lower(who) = 'a' AND cents > 0",
    # Functions, by family.
    "SELECT abs(-1), coalesce(NULL, 2), iif(1, 'a', 'b'), ifnull(NULL, 1), nullif(1, 2), "
    "instr('abc', 'b'), length('abc'), lower('A'), upper('a'), ltrim(' a'), rtrim('a '), "
    "trim(' a '), replace('aa', 'a', 'b'), round(1.5), substr('abc', 2), "
    "substring('abc', 2, 1), typeof(1), hex('a'), quote('a'), char(65), unicode('A'), "
    "printf('%05d', 42), format('%s', 'x'), soundex('Robert'), sign(-3), max(1, 2), "
    "min(1, 2), likely(1), unlikely(0), likelihood(1, 0.5), zeroblob(4), "
    "typeof(random()), length(randomblob(8)), sqlite_version() IS NOT NULL, "
    "'abc' LIKE 'a%', 'abc' GLOB 'a*', 'x' LIKE 'x' ESCAPE '!'",
    "SELECT count(*), sum(cents), total(cents), avg(cents), min(cents), max(cents), "
    "group_concat(name, ',') FROM accounts",
    "SELECT name, row_number() OVER w, rank() OVER w, dense_rank() OVER w, "
    "percent_rank() OVER w, cume_dist() OVER w, ntile(2) OVER w, lag(cents) OVER w, "
    "lead(cents) OVER w, first_value(cents) OVER w, last_value(cents) OVER w, "
    "nth_value(cents, 1) OVER w FROM accounts WINDOW w AS (ORDER BY cents)",
    "SELECT date('2024-05-01'), time('12:00'), datetime('2024-05-01 12:00', '+1 day'), "
    "julianday('2024-05-01'), unixepoch('2024-05-01'), strftime('%Y', '2024-05-01'), "
    "current_date IS NOT NULL, current_time IS NOT NULL, current_timestamp IS NOT NULL",
    "SELECT acos(1), asin(0), atan(0), atan2(0, 1), ceil(1.2), ceiling(1.2), cos(0), "
    "degrees(pi()), exp(0), floor(1.8), ln(1), log(100), log10(100), log2(8), mod(7, 3), "
    "pow(2, 3), power(2, 3), radians(180), sin(0), sqrt(4), tan(0), trunc(1.5), cosh(0), "
    "sinh(0), tanh(0), acosh(1), asinh(0), atanh(0)",
    "SELECT json('{\"a\": 1}'), json_array(1, 2), json_array_length('[1, 2]'), "
    "json_extract('{\"a\": 1}', '$.a'), '{\"a\": 1}' -> '$.a', '{\"a\": 1}' ->> '$.a', "
    "json_insert('{}', '$.b', 2), json_object('a', 1), json_patch('{}', '{\"c\": 3}'), "
    "json_remove('{\"a\": 1}', '$.a'), json_replace('{\"a\": 1}', '$.a', 2), "
    "json_set('{}', '$.d', 4), json_type('[]'), json_valid('{}'), json_quote('x')",
    "SELECT json_group_array(name), json_group_object(name, cents) FROM accounts",
    'SELECT key, value FROM json_each(\'{"a": 1, "b": [2, 3]}\')',
    'SELECT fullkey, type FROM json_tree(\'{"a": {"b": 1}}\')',
    "SELECT a.name FROM accounts AS a, json_each(json_array(a.cents)) AS j",
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100) "
    "SELECT sum(x) FROM n",
    "DROP VIEW ledger_view",
    "DROP INDEX ledger_who",
    "DROP TABLE ledger",
]


async def test_what_workflow_sql_may_do_still_works(store: SQLiteStore) -> None:
    tx = await begin(store)
    failed = {sql: o for sql in ALLOWED if isinstance(o := await run(tx, sql), GuestSQLError)}
    assert failed == {}
    returned = await run(tx, "SELECT key, value FROM json_each('[10, 20]')")
    assert isinstance(returned, GuestResult)
    assert returned.rows == [[0, 10], [1, 20]]
    await commit(tx)
    assert read(store, "SELECT cents FROM accounts WHERE name = 'bob'") == [(51,)]
    # The dropped AUTOINCREMENT table's counter went with it; durable's stayed.
    assert [name for (name,) in read(store, "SELECT name FROM sqlite_sequence")] == [
        "accounts",
        "durable_task",
    ]


# -- stored DDL that would run later ---------------------------------------------------------

PLANTED = [
    "CREATE TABLE p1 (t INTEGER REFERENCES durable_task (id) ON DELETE CASCADE)",
    "CREATE TABLE p2 (a DEFAULT (sqlite_compileoption_get(0)))",
    "CREATE VIEW p3 AS SELECT sqlite_source_id() AS s",
    "CREATE VIEW p4 AS SELECT * FROM (SELECT rtreenode(2, X'00'))",
    "CREATE TRIGGER p5 AFTER INSERT ON accounts BEGIN DELETE FROM durable_event; END",
    "CREATE TEMP TRIGGER p6 AFTER INSERT ON accounts BEGIN SELECT 1; END",
    "ALTER TABLE accounts ADD COLUMN task INTEGER REFERENCES durable_task (id)",
    "ALTER TABLE accounts RENAME TO durable_accounts",
    "CREATE TABLE durable_mine (x)",
    "CREATE INDEX durable_ix ON accounts (name)",
]


async def test_ddl_that_would_run_later_is_checked_when_made(store: SQLiteStore) -> None:
    tx = await begin(store)
    outcomes = await all_refused(tx, PLANTED)
    assert "a foreign key may not refer to durable_task" in outcomes[PLANTED[0]]
    assert "sqlite_compileoption_get" in outcomes[PLANTED[1]]
    renamed = outcomes["ALTER TABLE accounts RENAME TO durable_accounts"]
    assert "durable_accounts is named like durable's own tables" in renamed
    # A view may name durable's tables (the application reads it with its own rights);
    # reading it from workflow SQL is refused.
    assert isinstance(await run(tx, "CREATE VIEW peek AS SELECT * FROM durable_task"), GuestResult)
    refused(await run(tx, "SELECT * FROM peek"))
    await commit(tx)
    names = {name for (name,) in read(store, "SELECT name FROM sqlite_master")}
    assert names.isdisjoint({"p1", "p2", "p3", "p4", "p5", "durable_accounts", "durable_mine"})
    assert [c[1] for c in read(store, "PRAGMA table_info(accounts)")] == ["id", "name", "cents"]


# -- limits -------------------------------------------------------------------------------------

TOO_BIG = [
    "SELECT zeroblob(2000000000)",
    "SELECT length(zeroblob(2000000000))",
    "SELECT length(randomblob(2000000000))",
    "SELECT length(replace(printf('%.*c', 1000000, 'x'), 'x', printf('%.*c', 100, 'y')))",
    "SELECT length(hex(zeroblob(10000000)))",
    "WITH RECURSIVE d(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM d) SELECT length(s) FROM d",
]


async def test_values_larger_than_the_limit_are_refused(store: SQLiteStore) -> None:
    tx = await begin(store)
    for sql in TOO_BIG:
        message = refused(await run(tx, sql), "data")
        assert f"too big ({hardening.VALUE_LIMIT_NOTE})" in message
    refused(await run(tx, "SELECT " + " + ".join(["1"] * 200)), "syntax")  # expression depth
    refused(await run(tx, "SELECT 1" + " UNION SELECT 1" * 150), "syntax")  # compound SELECT
    refused(await run(tx, "SELECT '" + "x" * (1024 * 1024) + "'"), "data")  # statement length
    assert isinstance(await run(tx, "SELECT 1"), GuestResult)  # the transaction goes on
    await commit(tx)


BIG, HALF = "printf('%.*c', 16000000, 'x')", "printf('%.*c', 8000000, 'x')"
SLOW_CALLS = {
    "printf": "SELECT printf('%.*c', 2000000000, 'x')",
    "format": "SELECT format('%2000000000d', 1)",
    "printf-text": "SELECT printf('%5.*c', '2000000000', 'x')",
    "instr": f"SELECT instr({BIG}, {HALF} || 'y')",
    "replace": f"SELECT replace({BIG}, {HALF} || 'y', '')",
    "like": f"SELECT {BIG} LIKE '%' || printf('%.*c', 5000, 'x') || 'y'",
    "glob": f"SELECT {BIG} GLOB '*' || printf('%.*c', 5000, 'x') || 'y'",
    "trim": f"SELECT trim({BIG}, {HALF} || 'x')",
    "json_patch": "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
    "WHERE i < 100000) SELECT json_patch((SELECT json_group_object('a' || i, i) FROM c), "
    "(SELECT json_group_object('b' || i, i) FROM c))",
}


async def test_single_calls_that_would_take_minutes_are_refused(store: SQLiteStore) -> None:
    """SQLite cannot stop a function call half-way: these are refused before they start."""
    tx = await begin(store)
    for name, sql in SLOW_CALLS.items():
        message = refused(await run(tx, sql), "data")
        assert "refused" in message, (name, message)
    # Within bounds, they are SQLite's own functions.
    small = await run(
        tx,
        "SELECT printf('%5.2f|%-3s|%.*c', 3.14159, 'a', 3, 'z'), instr('hello', 'll'), "
        "replace('aXbX', 'X', '-'), 'Ab' LIKE 'a%', 'Ab' GLOB 'a*', trim('xxhixx', 'x'), "
        """json_patch('{"a":1}', '{"b":2}')""",
    )
    assert isinstance(small, GuestResult)
    assert small.rows == [[" 3.14|a  |zzz", 3, "a-b-", 1, 0, "hi", '{"a":1,"b":2}']]
    # They are no longer innocuous: not for the schema, with a message that says why.
    message = refused(
        await run(tx, "CREATE VIEW v_like AS SELECT name LIKE 'a%' AS a FROM accounts")
    )
    assert "unsafe use of like()" in message.lower()
    assert "trusted_schema OFF" in message
    await commit(tx)


RUNAWAY = [
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100000) "
    "SELECT count(*) FROM c AS a, c AS b, c AS d",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
    "INSERT INTO accounts (name) SELECT 'spam' FROM c",
]


@pytest.mark.parametrize("sql", RUNAWAY, ids=["recursive", "cross-join", "insert"])
async def test_a_runaway_statement_is_stopped_and_the_database_freed(
    short_store: SQLiteStore, sql: str
) -> None:
    store = short_store
    tx = await begin(store)
    message = refused(await run(tx, sql), "aborted")
    assert "longer than workflow SQL may" in message
    with pytest.raises(GuestSQLError) as after:
        await commit(tx)
    assert after.value.kind == "aborted"
    assert read(store, "SELECT count(*) FROM accounts") == [(2,)]  # nothing of it stayed
    # The next transaction gets the database.
    nxt = await begin(store)
    assert isinstance(await run(nxt, "INSERT INTO accounts (name) VALUES ('next')"), GuestResult)
    await commit(nxt)


async def test_memory_is_bounded_by_the_heap_limit(store: SQLiteStore) -> None:
    tx = await begin(store)
    assert isinstance(await run(tx, "SELECT 1"), GuestResult)  # the connection is open
    limit = hardening.heap_limit()
    assert limit is not None
    # Each value is under the length limit; together they are over the heap limit.
    columns = limit // hardening.MAX_VALUE_BYTES + 8
    value = f"hex(zeroblob({hardening.MAX_VALUE_BYTES // 2 - 1000}))"
    sql = "SELECT " + ", ".join([value] * columns)
    outcome = await run(tx, sql)
    assert isinstance(outcome, GuestSQLError)
    assert "more memory than workflow SQL may use" in outcome.message
    await tx.rollback()


@pytest.mark.parametrize("limit", ["busy-timeout", "lease"])
async def test_a_transaction_held_open_past_its_budget_is_rolled_back(
    tmp_path: Path, limit: str
) -> None:
    """The budget is half the busy timeout, or less if the task's lease would lapse
    first: no heartbeat can renew it while the transaction holds the write lock."""
    busy, lease = (2.0, 60.0) if limit == "busy-timeout" else (40.0, 3.0)
    async with app_store(tmp_path / "db.sqlite", busy_timeout=busy) as store:
        message = await held_open(store, lease)
    given = float(re.search(r"\((\d+\.\d) s;", message).group(1))  # type: ignore[union-attr]
    assert given <= (1.0 if limit == "busy-timeout" else lease - 1.0), message


async def held_open(store: SQLiteStore, lease_seconds: float) -> str:
    """Hold a transaction open past its budget; return the refusal's message."""
    tx = await begin(store, lease_seconds)
    assert isinstance(await run(tx, "INSERT INTO accounts (name) VALUES ('late')"), GuestResult)
    assert locked(store.path)
    # The workflow keeps the transaction open without running SQL: the lock is freed.
    with anyio.fail_after(60):
        while await anyio.to_thread.run_sync(locked, store.path):  # noqa: ASYNC110 - polls a file
            await anyio.sleep(0.05)
    message = refused(await run(tx, "SELECT 1"), "aborted")
    assert "longer than workflow SQL may" in message
    with pytest.raises(GuestSQLError):
        await commit(tx)
    assert read(store, "SELECT count(*) FROM accounts WHERE name = 'late'") == [(0,)]
    await tx.rollback()  # idempotent
    return message


# -- a real worker -------------------------------------------------------------------------------

WORKER_ATTACKS = [
    ["tokenizer", "SELECT fts3_tokenizer('simple')"],
    ["forge", f"SELECT fts3_tokenizer('evil', {FORGED})"],
    ["fts3", "CREATE VIRTUAL TABLE evil_fts USING fts3(body, tokenize=evil)"],
    ["analyze", "ANALYZE"],
    ["dbstat", "SELECT * FROM dbstat"],
    ["schema", "SELECT sql FROM sqlite_master"],
    ["huge", "SELECT printf('%.*c', 2000000000, 'x')"],
    ["quadratic", "SELECT instr(printf('%.*c', 9000000, 'x'), printf('%.*c', 4000000, 'x'))"],
    [
        "runaway",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c",
    ],
]


def work(db: Path, wasm: bytes, tasks: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Launch `tasks` (entry, input), run a `durable worker` subprocess until it is idle,
    and return their results (each task must have completed)."""

    async def launch() -> list[int]:
        store = await SQLiteStore.open(db)
        try:
            await store.migrate()
            launched = [
                await launch_task(store, wasm, entry, value, workflow_name="sql_hostile")
                for entry, value in tasks
            ]
            return [task.id for task in launched]
        finally:
            await store.close()

    async def results(ids: list[int]) -> list[Any]:
        store = await SQLiteStore.open(db)
        try:
            done = [await store.get_task(i) for i in ids]
            assert all(t.state is TaskState.COMPLETE for t in done), done
            return [completed_result(t) for t in done]
        finally:
            await store.close()

    ids = anyio.run(launch)
    worker = run_cli(
        "worker", "--db", str(db), "--exit-when-idle", "--concurrency", str(len(tasks)),
        cwd=db.parent, timeout=300,
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr[-3000:]  # alive to the end: no SIGSEGV
    return anyio.run(results, ids)


def test_hostile_workflows_in_a_real_worker(tmp_path: Path) -> None:
    """Hostile SQL is refused, a transaction held too long is rolled back, the worker
    survives, and an ordinary task that waited behind the hog completes."""
    wasm = built(WORKFLOWS / "sql_hostile.py")[0]
    db = tmp_path / "worker.db"
    attack, polite = work(
        db, wasm, [("attack", {"cases": WORKER_ATTACKS}), ("polite", {"table": "shared"})]
    )
    runaway = attack.pop("runaway")
    assert runaway[:2] == ["TransactionAborted", "aborted"], runaway
    assert {name: outcome[0] for name, outcome in attack.items()} == {
        "tokenizer": "Forbidden", "forge": "Forbidden", "fts3": "Forbidden",
        "analyze": "Forbidden", "dbstat": "Forbidden",
        "schema": "Forbidden", "huge": "DataError", "quadratic": "DataError",
    }  # fmt: skip
    assert polite == 1

    hog, polite = work(
        db, wasm, [("hog", {"table": "shared", "seconds": 8}), ("polite", {"table": "shared"})]
    )
    assert hog[:2] == ["TransactionAborted", "aborted"], hog
    assert polite == 2  # the hog's row was rolled back; the polite ones stayed
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT who FROM shared").fetchall() == [("polite",), ("polite",)]
