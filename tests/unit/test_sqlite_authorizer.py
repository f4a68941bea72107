"""The SQLite authorizer's decisions, one callback at a time (no database).

The callbacks are the ones SQLite 3.40 makes for the statements named in comments
(recorded with a logging authorizer); tests/integration/test_sqlite_guest_boundary.py
runs the statements themselves.
"""

from __future__ import annotations

import sqlite3

import pytest

from durable.storage import _sqlite_hardening as hardening
from durable.storage._sqlite_authorizer import FUNCTIONS, PRAGMAS, Authorizer, is_engine_name
from durable.storage._sqlite_functions import _QUICK, format_width

OK, DENY = sqlite3.SQLITE_OK, sqlite3.SQLITE_DENY
Call = tuple[int, str | None, str | None, str | None, str | None]

#: Action codes workflow SQL may use (subject to the names involved).
ALLOWED_ACTIONS = {
    sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE, sqlite3.SQLITE_READ,
    sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE,
    sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_PRAGMA, sqlite3.SQLITE_REINDEX,
    sqlite3.SQLITE_ALTER_TABLE, sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_CREATE_TEMP_TABLE,
    sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_CREATE_TEMP_INDEX, sqlite3.SQLITE_CREATE_VIEW,
    sqlite3.SQLITE_CREATE_TEMP_VIEW, sqlite3.SQLITE_DROP_TABLE, sqlite3.SQLITE_DROP_TEMP_TABLE,
    sqlite3.SQLITE_DROP_INDEX, sqlite3.SQLITE_DROP_TEMP_INDEX, sqlite3.SQLITE_DROP_VIEW,
    sqlite3.SQLITE_DROP_TEMP_VIEW, sqlite3.SQLITE_DROP_TRIGGER, sqlite3.SQLITE_DROP_TEMP_TRIGGER,
}  # fmt: skip


def guest() -> Authorizer:
    auth = Authorizer()
    auth.start()
    return auth


def decide(auth: Authorizer, *calls: Call) -> list[int]:
    return [auth(*call) for call in calls]


@pytest.mark.parametrize("action", sorted({*range(0, 40), 99, 1000} - ALLOWED_ACTIONS))
def test_every_action_code_off_the_list_is_refused(action: int) -> None:
    """Including codes SQLite does not have yet: refused by default."""
    auth = guest()
    # Harmless names: only the action decides.
    assert auth(action, "accounts", "accounts", "main", None) == DENY
    assert auth.denied is not None
    assert "workflow SQL" in auth.denied or "durable.transaction" in auth.denied


def test_the_engine_is_never_refused() -> None:
    auth = Authorizer()  # engine mode until `start`
    for action in [*range(0, 40), 99]:
        assert auth(action, "durable_event", "fts3_tokenizer", "main", None) == OK
    auth.start()
    auth.guest = False  # what the store does around its own statements
    assert auth(sqlite3.SQLITE_FUNCTION, None, "fts3_tokenizer", None, None) == OK


@pytest.mark.parametrize(
    "name",
    [
        "fts3_tokenizer", "load_extension", "sqlite_compileoption_get",
        "sqlite_compileoption_used", "sqlite_source_id", "sqlite_log", "total_changes",
        "subtype", "rtreenode", "rtreecheck", "rtreedepth", "fts5", "fts5_source_id",
        "highlight", "snippet", "bm25", "match", "offsets", "matchinfo", "optimize",
        "sqlite_rename_table", "sqlite_drop_column", "my_udf",
    ],
)  # fmt: skip
def test_functions_off_the_list_are_refused(name: str) -> None:
    auth = guest()
    assert auth(sqlite3.SQLITE_FUNCTION, None, name, None, None) == DENY
    assert auth.denied == f"the SQL function {name}() is not available to workflow SQL"


def test_listed_functions_are_allowed_in_any_case() -> None:
    auth = guest()
    for name in sorted(FUNCTIONS):
        assert auth(sqlite3.SQLITE_FUNCTION, None, name.upper(), None, None) == OK, name
    assert {"json_extract", "->>", "random", "randomblob", "row_number", "unixepoch"} <= FUNCTIONS


TABLES_OUT_OF_REACH = [
    "durable_event", "DURABLE_TASK", "durable_future_table", "sqlite_master", "sqlite_schema",
    "sqlite_temp_master", "sqlite_sequence", "sqlite_stat1", "sqlite_stat4", "sqlite_dbpage",
    "pragma_function_list", "pragma_module_list",
]  # fmt: skip


SCHEMA = ("sqlite_master", "sqlite_schema", "sqlite_temp_master")


@pytest.mark.parametrize(
    ("table", "action"),
    [
        (table, action)
        for table in TABLES_OUT_OF_REACH
        for action in ("READ", "INSERT", "UPDATE", "DELETE")
        # SQLite itself refuses a direct write to the schema, before asking.
        if action == "READ" or table not in SCHEMA
    ],
)
def test_tables_out_of_reach(table: str, action: str) -> None:
    code = getattr(sqlite3, f"SQLITE_{action}")
    auth = guest()
    auth(sqlite3.SQLITE_SELECT, None, None, None, None)  # a plain statement
    assert auth(code, table, "sql", "main", None) == DENY


def test_schema_reads_name_the_way_round() -> None:
    auth = guest()
    assert decide(auth, (sqlite3.SQLITE_SELECT, None, None, None, None)) == [OK]
    assert auth(sqlite3.SQLITE_READ, "sqlite_master", "sql", "main", None) == DENY
    assert auth.denied is not None
    assert "use PRAGMA table_info(name)" in auth.denied


def test_virtual_tables_and_modules_are_hidden_but_json_each() -> None:
    auth = guest()
    auth.hidden = frozenset({"docs", "docs_data", "dbstat", "sqlite_stmt", "fts5vocab"})
    assert auth(sqlite3.SQLITE_READ, "docs_data", "block", "main", None) == DENY
    assert auth(sqlite3.SQLITE_READ, "DBSTAT", "name", "main", None) == DENY
    assert auth(sqlite3.SQLITE_INSERT, "docs", None, "main", None) == DENY
    assert auth(sqlite3.SQLITE_DROP_TABLE, "docs", None, "main", None) == DENY
    assert auth(sqlite3.SQLITE_CREATE_INDEX, "ix", "docs_data", "main", None) == DENY
    assert auth(sqlite3.SQLITE_READ, "json_each", "value", "main", None) == OK
    assert auth(sqlite3.SQLITE_READ, "json_tree", "value", "main", None) == OK
    assert auth(sqlite3.SQLITE_READ, "accounts", "name", "main", None) == OK


def test_create_table_and_drop_table_as_sqlite_runs_them() -> None:
    # CREATE TABLE t (x): SQLite writes the schema itself, then reads the new rowid.
    auth = guest()
    assert (
        decide(
            auth,
            (sqlite3.SQLITE_INSERT, "sqlite_master", None, "main", None),
            (sqlite3.SQLITE_CREATE_TABLE, "t", None, "main", None),
            (sqlite3.SQLITE_UPDATE, "sqlite_master", "sql", "main", None),
            (sqlite3.SQLITE_READ, "sqlite_master", "ROWID", "main", None),
        )
        == [OK] * 4
    )
    assert auth.created == [("table", "main", "t")]
    # CREATE TABLE c AS SELECT sql FROM sqlite_master: the query is the workflow's.
    auth.start()
    assert decide(
        auth,
        (sqlite3.SQLITE_INSERT, "sqlite_master", None, "main", None),
        (sqlite3.SQLITE_CREATE_TABLE, "c", None, "main", None),
        (sqlite3.SQLITE_READ, "sqlite_master", "sql", "main", None),
    ) == [OK, OK, DENY]
    # DROP TABLE t: the schema, the counter and the statistics of t, by SQLite.
    auth.start()
    assert (
        decide(
            auth,
            (sqlite3.SQLITE_DELETE, "sqlite_master", None, "main", None),
            (sqlite3.SQLITE_DROP_TABLE, "t", None, "main", None),
            (sqlite3.SQLITE_DELETE, "t", None, "main", None),
            (sqlite3.SQLITE_DELETE, "sqlite_stat1", None, "main", None),
            (sqlite3.SQLITE_READ, "sqlite_stat1", "tbl", "main", None),
            (sqlite3.SQLITE_DELETE, "sqlite_sequence", None, "main", None),
            (sqlite3.SQLITE_READ, "sqlite_master", "tbl_name", "main", None),
        )
        == [OK] * 7
    )
    # ... but the next statement is plain again.
    auth.start()
    assert decide(
        auth,
        (sqlite3.SQLITE_SELECT, None, None, None, None),
        (sqlite3.SQLITE_READ, "sqlite_stat1", "tbl", "main", None),
    ) == [OK, DENY]


def test_alter_table_may_use_sqlites_internal_functions() -> None:
    auth = guest()
    assert (
        decide(
            auth,
            (sqlite3.SQLITE_ALTER_TABLE, "main", "accounts", None, None),
            (sqlite3.SQLITE_FUNCTION, None, "sqlite_rename_table", None, None),
            (sqlite3.SQLITE_READ, "sqlite_master", "sql", "main", None),
            (sqlite3.SQLITE_UPDATE, "sqlite_sequence", "name", "main", None),
        )
        == [OK] * 4
    )
    assert auth.created == [("table", "main", "accounts")]
    auth.start()
    assert auth(sqlite3.SQLITE_ALTER_TABLE, "main", "durable_task", None, None) == DENY


def test_new_names_may_not_be_durables() -> None:
    auth = guest()
    assert auth(sqlite3.SQLITE_CREATE_TABLE, "durable_mine", None, "main", None) == DENY
    assert auth(sqlite3.SQLITE_CREATE_INDEX, "durable_ix", "accounts", "main", None) == DENY
    autoindex = "sqlite_autoindex_durable_task_1"
    assert auth(sqlite3.SQLITE_REINDEX, autoindex, None, "main", None) == DENY
    assert auth(sqlite3.SQLITE_REINDEX, "accounts_ix", None, "main", None) == OK
    assert is_engine_name("Durable_Event")
    assert not is_engine_name("durability")


@pytest.mark.parametrize(
    ("pragma", "argument", "allowed"),
    [
        ("table_info", "accounts", True),
        ("TABLE_XINFO", "accounts", True),
        ("table_info", "durable_event", False),
        ("index_info", "sqlite_autoindex_durable_workflow_name_1", False),
        ("table_list", None, False),  # would list durable's tables
        ("foreign_key_check", None, False),  # would read durable's tables
        ("foreign_key_check", "accounts", True),
        ("defer_foreign_keys", None, True),
        ("defer_foreign_keys", "ON", True),
        ("journal_mode", None, False),
        ("writable_schema", "ON", False),
        ("trusted_schema", "ON", False),
        ("foreign_keys", "OFF", False),
        ("optimize", None, False),
        ("compile_options", None, False),
        ("function_list", None, False),
    ],
)
def test_pragmas(pragma: str, argument: str | None, allowed: bool) -> None:
    auth = guest()
    assert (auth(sqlite3.SQLITE_PRAGMA, pragma, argument, None, None) == OK) is allowed
    # Their table-valued form: readable only for the allowed ones.
    name = f"pragma_{pragma.lower()}"
    expected = OK if pragma.lower() in PRAGMAS else DENY
    assert guest()(sqlite3.SQLITE_READ, name, "name", "main", None) == expected


def test_checking_stored_ddl_judges_functions_only() -> None:
    auth = guest()
    auth.validating = True
    assert auth(sqlite3.SQLITE_READ, "durable_event", "payload", "main", "a_view") == OK
    assert auth(sqlite3.SQLITE_FUNCTION, None, "sqlite_source_id", None, "a_view") == DENY
    assert auth(sqlite3.SQLITE_FUNCTION, None, "upper", None, "a_view") == OK


def test_hardening_settings() -> None:
    limits = hardening.LIMITS
    assert limits[sqlite3.SQLITE_LIMIT_ATTACHED] == 0
    assert limits[sqlite3.SQLITE_LIMIT_LENGTH] == hardening.MAX_VALUE_BYTES
    assert hardening.transaction_budget(10_000) == 5.0  # half the busy timeout ...
    assert hardening.transaction_budget(0) == 1.0  # ... and never less than a second
    watch = hardening.Stopwatch()
    assert watch() == 0  # no deadline: the engine's statements
    watch.arm(0.0)
    assert watch() == 1
    assert watch.stopped
    watch.disarm()
    assert watch() == 0


@pytest.mark.parametrize(
    ("args", "width"),
    [
        (("%d items", 3), 0),
        (("%.*c", 2_000_000_000, "x"), 2_000_000_000),
        (("%5.*c", "2000000000", "x"), 2_000_000_000),  # SQLite reads text as a number
        (("%*d|%.3f", -70, 1, 2.5), 70),
        (("%%%2000000000d", 1), 2_000_000_000),
        (("100%% of %s", "x"), 0),
        ((b"%.*c", 99, "x"), 99),
        ((None,), 0),
        (("call 5551234567",), 0),  # digits outside a conversion are text
    ],
)
def test_printf_width_is_read_as_sqlite_reads_it(args: tuple[object, ...], width: int) -> None:
    assert format_width(args) == width


PATTERN_PARTS = ["", "a", "A", "ab", "é", "É", "_", "?", "[a]", "\\", "x\0y"]
TEXTS = ["", "a", "A", "ab", "AB", "ba", "cab", "é", "É", "a_b", "a?b", "[a]", "x\0y", "xa"]


def test_the_quick_like_and_glob_answer_as_sqlite_does() -> None:
    """The guard answers literal patterns with leading or trailing wildcards itself:
    compared with SQLite's own LIKE and GLOB on every combination of a grid."""
    sqlite = sqlite3.connect(":memory:")
    checked = 0
    for name, run in (("like", "%"), ("glob", "*")):
        quick = _QUICK[name]
        for part in PATTERN_PARTS:
            for pattern in (part, run + part, part + run, run + part + run, run + run, run):
                for text in [*TEXTS, None, 12, b"ab"]:
                    answer = quick(pattern, text)
                    if answer is None:
                        continue  # SQLite's own function answers
                    expected = sqlite.execute(f"SELECT {name}(?, ?)", (pattern, text)).fetchone()
                    assert answer == expected[0], (name, pattern, text)
                    checked += 1
    assert checked > 500
