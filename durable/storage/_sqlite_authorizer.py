"""What workflow SQL may do on SQLite: an allow-list, judged by SQLite's authorizer.

SQLite calls the authorizer once for each thing a statement will do while it prepares
it (read a column, write a table, call a function, run a PRAGMA ...), with an action
code and names. `Authorizer` says yes only to what is on the lists below; every other
action code, including codes that newer SQLite versions add, is refused.

Why an allow-list: the system library is built with features a workflow must never
reach (the FTS3 tokenizer interface hands out and takes raw function pointers:
`fts3_tokenizer()` leaked an address and a forged tokenizer crashed the worker). A list
of refusals misses whatever the next build adds; a list of permissions does not.

What a workflow may use:

* its own tables and views (read, write, create, drop, alter, index), not durable's
  (`durable_*`), not SQLite's (`sqlite_*`: the schema, `sqlite_sequence`, the
  planner's `sqlite_stat*`), not virtual tables or their shadow tables;
* the table-valued functions `json_each` and `json_tree`, and the `pragma_*` form of
  the allowed PRAGMAs;
* the functions in `FUNCTIONS` (core scalar, aggregate, window, date and time, math,
  JSON), chosen from SQLite's documentation one by one;
* the read-only PRAGMAs in `PRAGMAS`, on its own tables, named literally.

SQLite runs statements of its own inside DDL (a CREATE writes `sqlite_master`, a DROP
deletes the table's `sqlite_sequence` and `sqlite_stat1` rows, an ALTER rewrites the
schema text with internal functions) and asks the authorizer about those too, with
nothing to tell them from the workflow's. The statement's *first* action tells what
kind of statement it is: a DROP (a DELETE on the schema table: SQLite refuses a direct
write to it) or an ALTER TABLE. Only in those two, whose syntax has no room for
a query of the workflow's own, may the schema and counters be read and the internal
functions called.

Some DDL is stored unchecked and runs later, possibly in the application's own
connection: a view's query and a column's DEFAULT are not authorized when created, and
a FOREIGN KEY is not seen at all. `check_created` compiles each new view and default
(without running them) under the same function allow-list, and refuses foreign keys to
durable's tables (the engine's deletes would fail on them) and tables renamed into
durable's namespace. Triggers are refused: their bodies would run with the rights of
whoever writes the table next.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from durable.storage.guest import GuestSQLError

__all__ = [
    "FUNCTIONS",
    "PRAGMAS",
    "Authorizer",
    "check_created",
    "engine_tables",
    "explain_unsafe",
    "hidden_tables",
    "is_engine_name",
]

#: Functions workflow SQL may call. Deliberately absent: `load_extension`,
#: `fts3_tokenizer` (raw pointers), the FTS/R-Tree auxiliaries (`match`, `highlight`,
#: `rtreenode` ...: they parse blobs as index pages), `sqlite_compileoption_*`,
#: `sqlite_source_id`, `sqlite_log`, `subtype`, and `total_changes` (it counts durable's
#: own writes on this connection). Also absent, for now: functions whose single call
#: can take far longer than its input is large and that `_sqlite_functions` does not
#: guard (`jsonb_patch`; the `percentile` family sorts inside one call).
#: `random`/`randomblob` are allowed: their results are recorded with the
#: transaction, so a replay sees the same values.
FUNCTIONS = frozenset(
    {
        # core scalar functions (lang_corefunc)
        "abs", "changes", "char", "coalesce", "concat", "concat_ws", "format", "glob",
        "hex", "if", "ifnull", "iif", "instr", "last_insert_rowid", "length", "like",
        "likelihood", "likely", "lower", "ltrim", "max", "min", "nullif", "octet_length",
        "printf", "quote", "random", "randomblob", "replace", "round", "rtrim", "sign",
        "soundex", "sqlite_version", "substr", "substring", "trim", "typeof", "unhex",
        "unicode", "unistr", "unistr_quote", "unlikely", "upper", "zeroblob",
        # aggregates (lang_aggfunc)
        "avg", "count", "group_concat", "string_agg", "sum", "total",
        # window functions (windowfunctions)
        "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag",
        "lead", "first_value", "last_value", "nth_value",
        # date and time (lang_datefunc)
        "date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff",
        "current_date", "current_time", "current_timestamp",
        # math (lang_mathfunc)
        "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "ceiling",
        "cos", "cosh", "degrees", "exp", "floor", "ln", "log", "log10", "log2", "mod", "pi",
        "pow", "power", "radians", "sin", "sinh", "sqrt", "tan", "tanh", "trunc",
        # JSON (json1), text and binary forms, and the -> and ->> operators
        "json", "jsonb", "json_array", "jsonb_array", "json_array_length",
        "json_error_position", "json_extract", "jsonb_extract", "->", "->>",
        "json_insert", "jsonb_insert", "json_object", "jsonb_object", "json_patch",
        "json_pretty", "json_remove", "jsonb_remove", "json_replace",
        "jsonb_replace", "json_set", "jsonb_set", "json_type", "json_valid", "json_quote",
        "json_group_array", "jsonb_group_array", "json_group_object", "jsonb_group_object",
    }
)  # fmt: skip
#: SQLite's internal functions, which its own ALTER TABLE and DROP statements call (a
#: workflow cannot name them: SQLite resolves them only inside those statements).
_INTERNAL_FUNCTIONS = frozenset(
    {
        "sqlite_rename_column", "sqlite_rename_table", "sqlite_rename_test",
        "sqlite_rename_quotefix", "sqlite_drop_column",
    }
)  # fmt: skip
#: Read-only PRAGMAs a workflow may use, on its own tables.
PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "foreign_key_check",
        "defer_foreign_keys",  # lasts until the end of the transaction
    }
)
#: Table-valued functions (eponymous virtual tables) a workflow may read.
_TABLE_FUNCTIONS = frozenset({"json_each", "json_tree"})
_SCHEMA_TABLES = frozenset(
    {"sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema"}
)

_TX_CONTROL = (
    "transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE) belongs to "
    "durable.transaction: leave the block to commit, raise to roll back"
)
_SCHEMA_HINT = (
    "{name} would show durable's own tables: use PRAGMA table_info(name) (or table_xinfo, "
    "index_list, foreign_key_list) on your own tables instead"
)
#: Refusals of whole action codes, with the reason given to the workflow.
_REFUSED = {
    sqlite3.SQLITE_TRANSACTION: _TX_CONTROL,
    sqlite3.SQLITE_SAVEPOINT: _TX_CONTROL,
    sqlite3.SQLITE_ATTACH: "ATTACH, DETACH and VACUUM are not available to workflow SQL",
    sqlite3.SQLITE_DETACH: "ATTACH, DETACH and VACUUM are not available to workflow SQL",
    sqlite3.SQLITE_ANALYZE: (
        "ANALYZE writes the query planner's statistics, durable's tables' included: "
        "not available to workflow SQL"
    ),
    sqlite3.SQLITE_CREATE_VTABLE: "virtual tables are not available to workflow SQL",
    sqlite3.SQLITE_DROP_VTABLE: "virtual tables are not available to workflow SQL",
    sqlite3.SQLITE_CREATE_TRIGGER: (
        "workflow SQL cannot create triggers: a trigger runs with the rights of whoever "
        "writes its table next"
    ),
    sqlite3.SQLITE_CREATE_TEMP_TRIGGER: "workflow SQL cannot create triggers",
}
# Actions whose arg1 names a table (or view); the new name, for a CREATE.
_TABLE_IS_ARG1 = frozenset(
    {
        sqlite3.SQLITE_READ,
        sqlite3.SQLITE_INSERT,
        sqlite3.SQLITE_UPDATE,
        sqlite3.SQLITE_DELETE,
        sqlite3.SQLITE_CREATE_TABLE,
        sqlite3.SQLITE_CREATE_TEMP_TABLE,
        sqlite3.SQLITE_DROP_TABLE,
        sqlite3.SQLITE_DROP_TEMP_TABLE,
        sqlite3.SQLITE_CREATE_VIEW,
        sqlite3.SQLITE_CREATE_TEMP_VIEW,
        sqlite3.SQLITE_DROP_VIEW,
        sqlite3.SQLITE_DROP_TEMP_VIEW,
    }
)
# Index and trigger actions: arg1 names the index or trigger, arg2 its table. ALTER
# TABLE: arg1 is the schema, arg2 the table.
_TABLE_IS_ARG2 = frozenset(
    {
        sqlite3.SQLITE_CREATE_INDEX,
        sqlite3.SQLITE_CREATE_TEMP_INDEX,
        sqlite3.SQLITE_DROP_INDEX,
        sqlite3.SQLITE_DROP_TEMP_INDEX,
        sqlite3.SQLITE_DROP_TRIGGER,
        sqlite3.SQLITE_DROP_TEMP_TRIGGER,
        sqlite3.SQLITE_ALTER_TABLE,
    }
)
# Actions whose arg1 is the name of an index, which may not look like durable's either.
_INDEX_IS_ARG1 = frozenset(
    {sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_CREATE_TEMP_INDEX, sqlite3.SQLITE_REINDEX}
)
_WRITES = frozenset({sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE})
# DDL after which `check_created` looks at what the statement left in the schema.
_NEW_TABLE = frozenset(
    {sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_CREATE_TEMP_TABLE, sqlite3.SQLITE_ALTER_TABLE}
)
_NEW_VIEW = frozenset({sqlite3.SQLITE_CREATE_VIEW, sqlite3.SQLITE_CREATE_TEMP_VIEW})

# What kind of statement is being prepared, from its first action (see the docstring).
_PLAIN, _DROP, _ALTER = 0, 1, 2


def is_engine_name(name: str | None) -> bool:
    """Whether `name` is (or could become) one of durable's tables or their indexes."""
    lowered = (name or "").lower()
    return lowered.startswith(("durable_", "sqlite_autoindex_durable_"))


def _engine_table(name: str) -> str:
    return f"{name} is one of durable's own tables: workflow SQL cannot use it"


class Authorizer:
    """The guest connection's `set_authorizer` callback.

    Allows everything while `guest` is False (the engine's own statements). While it is
    True, allows only what is on the module's lists and remembers why it refused, in
    `denied`, for the error message (SQLite itself only says "not authorized"). While
    `validating` is also True, it judges function calls only (see `check_created`).

    Attributes:
        guest: whether a workflow's statement is being prepared.
        validating: whether `check_created` is compiling stored DDL.
        denied: why the current statement was refused, if it was.
        hidden: lowercased names that are virtual tables, their shadow tables, or
            virtual table modules (eponymous tables), which workflow SQL may not use.
        created: (kind, schema, name) of tables ("table") and views ("view") the
            statement created or altered, for `check_created`.
    """

    __slots__ = (
        "_first",
        "_mode",
        "_schema_updated",
        "created",
        "denied",
        "guest",
        "hidden",
        "validating",
    )

    def __init__(self) -> None:
        """Start in engine mode."""
        self.guest = False
        self.validating = False
        self.denied: str | None = None
        self.hidden: frozenset[str] = frozenset()
        self.created: list[tuple[str, str, str]] = []
        self._first = True
        self._mode = _PLAIN
        self._schema_updated = False

    def start(self) -> None:
        """Switch to guest mode for the next statement."""
        self.guest, self.validating, self.denied, self.created = True, False, None, []
        self._first, self._mode, self._schema_updated = True, _PLAIN, False

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, db: str | None, source: str | None
    ) -> int:
        """SQLite's authorizer protocol: SQLITE_OK or SQLITE_DENY."""
        if not self.guest:
            return sqlite3.SQLITE_OK
        if self.validating:
            reason = self._function(arg2) if action == sqlite3.SQLITE_FUNCTION else None
        else:
            if self._first:
                self._first = False
                self._mode = _mode_of(action, arg1)
            reason = self.refusal(action, arg1, arg2)
            if reason is None:
                self._note(action, arg1, arg2, db)
        if reason is None:
            return sqlite3.SQLITE_OK
        if self.denied is None:
            self.denied = reason
        return sqlite3.SQLITE_DENY

    def refusal(self, action: int, arg1: str | None, arg2: str | None) -> str | None:
        """Why workflow SQL may not do `action` on `arg1`/`arg2` now, or None if it may."""
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE):
            return None
        if action == sqlite3.SQLITE_FUNCTION:
            return self._function(arg2)
        if action == sqlite3.SQLITE_PRAGMA:
            return _pragma(arg1, arg2)
        if action in _TABLE_IS_ARG1:
            return self._table(action, arg1, arg2)
        if action in _TABLE_IS_ARG2 or action in _INDEX_IS_ARG1:
            if action in _INDEX_IS_ARG1 and is_engine_name(arg1):
                return f"{arg1} is named like durable's own indexes: workflow SQL cannot use it"
            return None if action not in _TABLE_IS_ARG2 else self._table(action, arg2, None)
        # Every other action code, known today or added later, is refused.
        return _REFUSED.get(action, f"SQLite action {action} is not available to workflow SQL")

    def _function(self, name: str | None) -> str | None:
        lowered = (name or "").lower()
        if lowered in FUNCTIONS or (self._mode != _PLAIN and lowered in _INTERNAL_FUNCTIONS):
            return None
        return f"the SQL function {name}() is not available to workflow SQL"

    def _table(self, action: int, name: str | None, column: str | None) -> str | None:
        if name is None:  # a computed source: no table to protect
            return None
        lowered = name.lower()
        if is_engine_name(lowered):
            return _engine_table(name)
        if lowered.startswith("sqlite_"):
            return self._sqlite_table(action, name, lowered, column)
        if lowered in _TABLE_FUNCTIONS:
            return None
        if lowered.startswith("pragma_"):
            # The PRAGMA it runs is authorized too (with its real argument) when it runs.
            return None if lowered[7:] in PRAGMAS else f"{name} is not available to workflow SQL"
        if lowered in self.hidden:
            return (
                f"{name} is a virtual table (or belongs to one): workflow SQL may use only "
                "the table-valued functions json_each and json_tree"
            )
        return None

    def _sqlite_table(self, action: int, name: str, lowered: str, column: str | None) -> str | None:
        """SQLite's own tables: only SQLite's own statements inside DDL may use them."""
        inside_ddl = self._mode != _PLAIN
        if lowered in _SCHEMA_TABLES:
            if action in _WRITES:
                # SQLite refuses a workflow's direct writes to the schema itself (unless
                # writable_schema is on, which no workflow can set): only its own DDL
                # reaches here, and its "UPDATE ... WHERE rowid=#N" reads the rowid.
                self._schema_updated = self._schema_updated or action == sqlite3.SQLITE_UPDATE
                return None
            if inside_ddl or (column == "ROWID" and self._schema_updated):
                return None
            return _SCHEMA_HINT.format(name=name)
        if lowered == "sqlite_sequence" or lowered.startswith("sqlite_stat"):
            if inside_ddl and action in (sqlite3.SQLITE_READ, *_WRITES):
                return None  # the dropped or renamed table's own rows
            if lowered == "sqlite_sequence":
                return f"{name} holds durable's own counters too: workflow SQL cannot use it"
            return (
                f"{name} holds the query planner's statistics for durable's tables too: "
                "workflow SQL cannot use it"
            )
        return f"{name} is SQLite's own: workflow SQL cannot use it"

    def _note(self, action: int, arg1: str | None, arg2: str | None, db: str | None) -> None:
        """Remember what this statement creates, for `check_created`."""
        if action in _NEW_TABLE:
            name = arg2 if action == sqlite3.SQLITE_ALTER_TABLE else arg1
            schema = arg1 if action == sqlite3.SQLITE_ALTER_TABLE else db
            self.created.append(("table", schema or "main", name or ""))
        elif action in _NEW_VIEW:
            self.created.append(("view", db or "main", arg1 or ""))


def _mode_of(action: int, arg1: str | None) -> int:
    if action == sqlite3.SQLITE_ALTER_TABLE:
        return _ALTER
    if action in _DROPS or (
        action == sqlite3.SQLITE_DELETE and (arg1 or "").lower() in _SCHEMA_TABLES
    ):
        return _DROP
    return _PLAIN


_DROPS = frozenset(
    {
        sqlite3.SQLITE_DROP_TABLE,
        sqlite3.SQLITE_DROP_TEMP_TABLE,
        sqlite3.SQLITE_DROP_INDEX,
        sqlite3.SQLITE_DROP_TEMP_INDEX,
        sqlite3.SQLITE_DROP_VIEW,
        sqlite3.SQLITE_DROP_TEMP_VIEW,
        sqlite3.SQLITE_DROP_TRIGGER,
        sqlite3.SQLITE_DROP_TEMP_TRIGGER,
    }
)


def _pragma(name: str | None, argument: str | None) -> str | None:
    lowered = (name or "").lower()
    if lowered not in PRAGMAS:
        return f"PRAGMA {lowered} is not available to workflow SQL"
    if is_engine_name(argument):
        return _engine_table(argument or "")
    if argument is None and lowered != "defer_foreign_keys":
        # Without a table it would list or check durable's tables too.
        return f"PRAGMA {lowered} needs the name of one of your tables"
    return None


# -- what a statement left in the schema --------------------------------------------------------


def hidden_tables(conn: sqlite3.Connection) -> frozenset[str]:
    """Lowercased names workflow SQL may not use as tables: virtual tables and their
    shadow tables in the schema now, and every virtual table module (a module is also
    an eponymous table: `dbstat`, `sqlite_stmt` ...) but json_each and json_tree.

    Run in engine mode. The set holds for a whole transaction: a workflow cannot create
    virtual tables, and nothing else can change the schema while it holds the write
    lock.
    """
    rows = conn.execute(
        "SELECT name FROM pragma_table_list WHERE type IN ('virtual', 'shadow') "
        "UNION SELECT name FROM pragma_module_list"
    ).fetchall()
    return frozenset(str(name).lower() for (name,) in rows) - _TABLE_FUNCTIONS


def engine_tables(conn: sqlite3.Connection) -> frozenset[str]:
    """The tables (and views) whose names are durable's, now (engine mode)."""
    rows = conn.execute("SELECT name FROM pragma_table_list").fetchall()
    return frozenset(str(name) for (name,) in rows if is_engine_name(str(name)))


def check_created(conn: sqlite3.Connection, auth: Authorizer, engine_names: Iterable[str]) -> None:
    """Check what the guest statement just created (`auth.created`), before it is kept.

    Raises:
        GuestSQLError: "forbidden", if a view or a column DEFAULT calls a function that
            is not on the allow-list, a foreign key points at durable's (or SQLite's)
            tables, or a table now bears a name of durable's.
    """
    auth.guest = False
    for kind, schema, name in dict.fromkeys(auth.created):
        if kind == "view":
            view = f"SELECT * FROM {_quote(schema)}.{_quote(name)}"
            _compile(conn, auth, view, name, strict=True)
            continue
        for (parent,) in conn.execute(
            'SELECT DISTINCT "table" FROM pragma_foreign_key_list(?, ?)', (name, schema)
        ):
            if is_engine_name(parent) or str(parent).lower().startswith("sqlite_"):
                raise GuestSQLError("forbidden", f"{name}: a foreign key may not refer to {parent}")
        for (default,) in conn.execute(
            "SELECT dflt_value FROM pragma_table_xinfo(?, ?) WHERE dflt_value IS NOT NULL",
            (name, schema),
        ):
            _compile(conn, auth, f"SELECT ({default})", name, strict=False)
    new = engine_tables(conn) - frozenset(engine_names)
    if new:
        raise GuestSQLError(
            "forbidden", f"{min(new)} is named like durable's own tables (durable_*)"
        )


def _compile(
    conn: sqlite3.Connection, auth: Authorizer, sql: str, name: str, *, strict: bool
) -> None:
    """Compile `sql` without running it (EXPLAIN), judging its function calls.

    With `strict`, any failure to compile is a refusal: a view must work when it is
    made (SQLite refuses some functions in views before asking the authorizer, with
    "unsafe use of ..."). Otherwise only a refused function is: a default that does not
    compile on its own is SQLite's business, and it judged the DDL already.
    """
    auth.guest, auth.validating, auth.denied = True, True, None
    try:
        conn.execute(f"EXPLAIN {sql}").fetchall()
    except sqlite3.Error as exc:
        if auth.denied is not None or strict:
            reason = auth.denied or str(exc)
            if reason.startswith("unsafe use of "):
                reason = explain_unsafe(reason)
            raise GuestSQLError("forbidden", f"{name}: {reason}") from None
    finally:
        auth.guest, auth.validating = False, False


def explain_unsafe(message: str) -> str:
    """SQLite's "unsafe use of f()", and why workflow SQL meets it."""
    return (
        f"{message} (workflow SQL runs with trusted_schema OFF: a function in a view, index, "
        "default, CHECK or generated column must be marked innocuous, which the guarded "
        "like, glob, instr, replace, trim, printf, format and json_patch are not, nor, "
        "before SQLite 3.45, the JSON functions)"
    )


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
