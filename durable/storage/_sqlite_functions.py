"""Built-in SQL functions whose cost can outgrow their input, run behind a guard.

SQLite checks for a deadline (the progress handler) only between the steps of its
virtual machine, never inside one function call. Most functions cost time in
proportion to their input, which the length limit bounds; these do not:

* `instr`, `replace`, `trim`/`ltrim`/`rtrim` with a character set, `like`, `glob`
  (the LIKE and GLOB operators call them) and `json_patch` take time in proportion to
  the product of their two inputs' sizes: 16 MiB searched for a crafted 8 MiB pattern
  would run for hours, holding the database's write lock all along;
* `printf`/`format` with a huge width or precision (`printf('%.*c', 2e9, 'x')`) loop
  that many times, though the result is cut at the length limit (about a minute).

On the workflow SQL connection each of them is replaced by a Python function of the
same name that checks its arguments first and then calls SQLite's own function on a
private in-memory connection (the same code, so the same results): too much work is
refused with a clear message instead. The price: a Python call per use (LIKE over many
rows is slower, and no longer uses an index), and, since Python cannot mark a function
innocuous, these functions cannot be used by workflow SQL inside views, indexes,
defaults, CHECKs and generated columns (trusted_schema is OFF).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Final

from durable.storage import _sqlite_hardening as hardening
from durable.storage.guest import GuestSQLError

__all__ = ["GuardedFunctions", "format_width"]

#: The most work (the product of the two inputs' sizes) a call may take, by function:
#: about a tenth of a second here. A byte comparison costs ~0.1 ns in instr and
#: replace (memcmp), a character ~10 ns in LIKE and GLOB, and a pair of object keys
#: ~20 ns in json_patch (keys take 6 bytes at least).
_PRODUCT_LIMITS: Final = {
    "instr": ((2,), 1_000_000_000),
    "replace": ((3,), 1_000_000_000),
    "trim": ((2,), 1_000_000_000),
    "ltrim": ((2,), 1_000_000_000),
    "rtrim": ((2,), 1_000_000_000),
    "like": ((2, 3), 10_000_000),  # the third argument is the ESCAPE character
    "glob": ((2,), 10_000_000),
    "json_patch": ((2,), 100_000_000),
}
# A printf conversion: flags, width, precision (digits or `*`), length, type.
_SPEC = re.compile(r"%[-+ #!0,]*(\*|\d+)?(?:\.(\*|\d*))?(?:ll|l)?(.)", re.DOTALL)
# The numeric prefix SQLite reads from a text argument where it wants an integer.
_NUMBER = re.compile(rb"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _size(value: object) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, bytes):
        return len(value)
    return 32  # a number, as text


def _as_int(value: object) -> int:
    """The integer SQLite would read from `value` (a width or precision), in size."""
    if isinstance(value, int | float):
        return int(min(abs(value), 2**63))
    raw = value.encode("utf-8", "replace") if isinstance(value, str) else value
    if isinstance(raw, bytes) and (match := _NUMBER.match(raw)):
        return int(min(abs(float(match.group(0))), 2**63))
    return 0


def format_width(args: Sequence[object]) -> int:
    """The largest width or precision printf(`args`) asks for: SQLite loops that many
    times, whatever the length limit makes of the result."""
    if not args or args[0] is None:
        return 0
    text = args[0] if isinstance(args[0], str) else str(args[0])
    if isinstance(args[0], bytes):
        text = args[0].decode("utf-8", "replace")
    largest, used = 0, 1
    for width, precision, kind in _SPEC.findall(text):
        for part in (width, precision):
            if part == "*":
                largest = max(largest, _as_int(args[used]) if used < len(args) else 0)
                used += 1
            elif part:
                largest = max(largest, int(part))
        used += kind != "%"  # the conversion's own argument
    return largest


# -- the common LIKE and GLOB patterns, without a round trip ---------------------------------

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _affix_match(pattern: object, text: object, any_run: str, one: str, fold: bool) -> int | None:
    """`text` LIKE (or GLOB) `pattern` when the pattern is a literal with at most a
    leading and a trailing `any_run` wildcard, as SQLite answers it; None for every
    other case (SQLite's own function answers those)."""
    if not (isinstance(pattern, str) and isinstance(text, str)):
        return None  # NULL, numbers and blobs: SQLite's conversions apply
    core = pattern.removeprefix(any_run).removesuffix(any_run)
    if any_run in core or one in core or "\0" in pattern or "\0" in text:
        return None  # SQLite reads text up to a NUL; inner wildcards need the matcher
    if any_run == "*" and "[" in core:
        return None  # a GLOB character class
    if fold:  # LIKE folds ASCII letters only
        core, text = core.translate(_ASCII_LOWER), text.translate(_ASCII_LOWER)
    if pattern == any_run:
        return 1
    head, tail = pattern.startswith(any_run), pattern.endswith(any_run)
    if head and tail:
        return int(core in text)
    if head:
        return int(text.endswith(core))
    if tail:
        return int(text.startswith(core))
    return int(text == core)


_QUICK: Final[dict[str, Callable[[Any, Any], int | None]]] = {
    "like": lambda pattern, text: _affix_match(pattern, text, "%", "_", fold=True),
    "glob": lambda pattern, text: _affix_match(pattern, text, "*", "?", fold=False),
}


class GuardedFunctions:
    """The guarded functions of one workflow SQL connection.

    `error` holds why the last refused (or failed) call failed: SQLite only reports
    that a function raised.
    """

    def __init__(self) -> None:
        """Open the private connection that runs SQLite's own functions."""
        self._aux = sqlite3.connect(":memory:", check_same_thread=False)
        self._aux.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, hardening.MAX_VALUE_BYTES)
        self.error: GuestSQLError | None = None

    def install(self, conn: sqlite3.Connection) -> None:
        """Replace SQLite's functions with the guarded ones on `conn`."""
        for name, (arities, limit) in _PRODUCT_LIMITS.items():
            for arity in arities:
                guarded = self._guard(name, arity, limit)
                conn.create_function(name, arity, guarded, deterministic=True)
        for name in ("printf", "format"):
            conn.create_function(name, -1, self._printf(name), deterministic=True)

    def close(self) -> None:
        """Close the private connection."""
        self._aux.close()

    def _guard(self, name: str, arity: int, limit: int) -> Callable[..., Any]:
        sql = f"SELECT {name}({', '.join('?' * arity)})"

        quick = _QUICK.get(name) if arity == 2 else None

        def call(*args: Any) -> Any:
            work = _size(args[0]) * _size(args[1])
            if work > limit:
                raise self._refuse(
                    f"{name}() on inputs of {_size(args[0])} and {_size(args[1])} bytes could "
                    "take minutes (its time grows with the product of the two): refused"
                )
            if quick is not None and (answer := quick(args[0], args[1])) is not None:
                return answer
            return self._run(sql, args)

        return call

    def _printf(self, name: str) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            if format_width(args) > hardening.MAX_VALUE_BYTES:
                raise self._refuse(
                    f"{name}(): a width or precision over {hardening.MAX_VALUE_BYTES} "
                    "(the longest value workflow SQL may make) is refused"
                )
            return self._run(f"SELECT {name}({', '.join('?' * len(args))})", args)

        return call

    def _run(self, sql: str, args: Sequence[Any]) -> Any:
        try:
            return self._aux.execute(sql, args).fetchone()[0]
        except sqlite3.Error as exc:
            message = str(exc)
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_TOOBIG:
                message = f"{message} ({hardening.VALUE_LIMIT_NOTE})"
            raise self._refuse(message, getattr(exc, "sqlite_errorname", None)) from exc

    def _refuse(self, message: str, code: str | None = None) -> ValueError:
        self.error = GuestSQLError("data", message, code)
        return ValueError(message)
