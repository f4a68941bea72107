"""Hardening of the SQLite connection that runs workflow SQL: settings, limits, budgets.

The authorizer (`_sqlite_authorizer`) decides *what* a workflow's statement may do.
This module bounds *how much* it may do, so that no statement can crash the worker,
exhaust its memory, or hold the database (and every other task's writes) for long:

* **Settings.** `trusted_schema = OFF`: functions stored in the schema (views, indexes,
  defaults, CHECKs, generated columns) must be marked innocuous to run. On SQLite 3.40
  that excludes the JSON functions, so a workflow cannot write to a table with a JSON
  index; the price of not running schema code a workflow may have planted. Extension
  loading stays off. Defensive mode (read-only shadow tables and schema, no
  `writable_schema`) and switching off the two-argument `fts3_tokenizer()` need
  `Connection.setconfig`, which Python has from 3.12 on: applied when present. On 3.11
  the authorizer covers both (no shadow tables, no `fts3_tokenizer`, no PRAGMAs that
  write).
* **Limits** (`LIMITS`, through `Connection.setlimit`): the size of a value and of a
  statement, columns, expression depth, compound SELECTs, function arguments,
  parameters, trigger depth, VDBE program size, no ATTACHed databases, no sorter
  threads.
* **Time.** A transaction holds SQLite's write lock for its whole life, so it gets a
  budget (`transaction_budget`: half the busy timeout, so that a writer waiting for it
  is not timed out; less when the task's lease would lapse first, see
  `LEASE_MARGIN`). `Stopwatch` is the connection's progress handler: every
  `PROGRESS_OPS` virtual machine steps of a workflow statement it checks the deadline
  and stops the statement once it has passed.
* **Memory.** A result row, or a chain of expressions, can hold many values of the
  maximum size at once, between two progress checks; only SQLite's hard heap limit
  bounds that. It is process-wide: `limit_heap` sets it (to `HEAP_LIMIT`) when the
  first workflow SQL connection opens, unless the application set one already, and
  only where the library exports it (it is reached through ctypes, as Python has no
  API for it). A statement that hits it fails with SQLITE_NOMEM, which SQLite handles
  by rolling the transaction back.
"""

from __future__ import annotations

import ctypes
import sqlite3
import threading
import time
from typing import Final

__all__ = [
    "HEAP_LIMIT",
    "LEASE_MARGIN",
    "LIMITS",
    "MAX_VALUE_BYTES",
    "PROGRESS_OPS",
    "VALUE_LIMIT_NOTE",
    "Stopwatch",
    "harden",
    "heap_limit",
    "limit_heap",
    "transaction_budget",
]

#: The largest string or blob workflow SQL may make or read: the size of the largest
#: recorded event (`HostConfig.max_payload_bytes`), which a bigger value could not fit.
MAX_VALUE_BYTES: Final = 16 * 1024 * 1024
#: Said with every refusal of a value over the limit.
VALUE_LIMIT_NOTE: Final = f"workflow SQL values are limited to {MAX_VALUE_BYTES} bytes"
#: `Connection.setlimit` limits of the workflow SQL connection.
LIMITS: Final = {
    sqlite3.SQLITE_LIMIT_LENGTH: MAX_VALUE_BYTES,
    sqlite3.SQLITE_LIMIT_SQL_LENGTH: 1024 * 1024,  # a statement's text
    # Columns of a table or a result: a wider table of the application's would make the
    # whole schema unreadable here, so this stays at SQLite's usual maximum.
    sqlite3.SQLITE_LIMIT_COLUMN: 2000,
    sqlite3.SQLITE_LIMIT_EXPR_DEPTH: 100,
    sqlite3.SQLITE_LIMIT_COMPOUND_SELECT: 100,
    sqlite3.SQLITE_LIMIT_VDBE_OP: 1_000_000,  # the compiled statement's size
    sqlite3.SQLITE_LIMIT_FUNCTION_ARG: 127,  # json_object() takes two per key
    sqlite3.SQLITE_LIMIT_ATTACHED: 0,
    sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH: 10_000,
    sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER: 32_766,
    sqlite3.SQLITE_LIMIT_TRIGGER_DEPTH: 16,  # the application's triggers, firing
    sqlite3.SQLITE_LIMIT_WORKER_THREADS: 0,
}
#: The process's SQLite heap limit that `limit_heap` sets, in bytes.
HEAP_LIMIT: Final = 1024 * 1024 * 1024
#: Seconds a transaction leaves before its task's lease lapses, for the heartbeat that
#: renews it once the write lock is free (at most half of what is left).
LEASE_MARGIN: Final = 1.5
#: Virtual machine steps between two checks of the deadline.
PROGRESS_OPS: Final = 1000
# Python 3.12+ `setconfig` options, by name (absent on 3.11), and the value each gets.
_CONFIG = {
    "SQLITE_DBCONFIG_DEFENSIVE": True,
    "SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER": False,
    "SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION": False,
    "SQLITE_DBCONFIG_TRUSTED_SCHEMA": False,
    "SQLITE_DBCONFIG_WRITABLE_SCHEMA": False,
}


def harden(conn: sqlite3.Connection) -> list[str]:
    """Apply the settings and limits above to `conn`; return the `setconfig` options
    this Python could not apply (all of them before 3.12)."""
    conn.execute("PRAGMA trusted_schema = OFF")
    enable = getattr(conn, "enable_load_extension", None)
    if enable is not None:  # absent when Python is built without extension support
        enable(False)
    for limit, value in LIMITS.items():
        conn.setlimit(limit, value)
    setconfig = getattr(conn, "setconfig", None)
    missing = []
    for name, value in _CONFIG.items():
        option = getattr(sqlite3, name, None)
        if setconfig is None or option is None:
            missing.append(name)
        else:
            setconfig(option, value)
    return missing


def transaction_budget(busy_timeout_ms: int) -> float:
    """Seconds a workflow's transaction may hold the database: half the busy timeout,
    so that a writer that queued behind it still gets its turn; at least one second."""
    return max(busy_timeout_ms / 2000, 1.0)


class Stopwatch:
    """The progress handler: stops the running workflow statement after its deadline.

    `deadline` is a `time.monotonic()` reading, or None while no workflow statement
    runs (the engine's own statements are never stopped). `stopped` tells, after a
    statement failed with SQLITE_INTERRUPT, that this handler stopped it.
    """

    __slots__ = ("deadline", "stopped")

    def __init__(self) -> None:
        """Start with no deadline."""
        self.deadline: float | None = None
        self.stopped = False

    def arm(self, deadline: float) -> None:
        """Time the next statement."""
        self.deadline, self.stopped = deadline, False

    def disarm(self) -> None:
        """No workflow statement runs."""
        self.deadline = None

    def __call__(self) -> int:
        """SQLite's progress handler protocol: non-zero interrupts the statement."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.stopped = True
            return 1
        return 0


_heap_lock = threading.Lock()
_heap_limit: int | None = None  # the limit in force once `limit_heap` ran, if any


def limit_heap() -> int | None:
    """Set SQLite's process-wide hard heap limit to `HEAP_LIMIT`, once, unless one is
    set already (then keep it); return the limit in force, or None where the library
    does not export the call."""
    global _heap_limit
    with _heap_lock:
        if _heap_limit is None:
            call = _library_function("sqlite3_hard_heap_limit64")
            if call is None:
                return None
            current = int(call(-1))  # a negative argument only reads it
            _heap_limit = current if current > 0 else HEAP_LIMIT
            if current <= 0:
                call(HEAP_LIMIT)
        return _heap_limit


def heap_limit() -> int | None:
    """The hard heap limit `limit_heap` found or set, if it ran."""
    return _heap_limit


def _library_function(name: str) -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """`name` from the SQLite library Python's `sqlite3` module uses, or None."""
    try:
        import _sqlite3

        function = getattr(ctypes.CDLL(_sqlite3.__file__), name)
    except (ImportError, AttributeError, OSError, TypeError):
        return None
    function.restype = ctypes.c_int64
    function.argtypes = [ctypes.c_int64]
    return function
