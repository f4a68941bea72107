"""What a task name may be: a label people read in tables and logs, on one line.

A name with a newline breaks `durable list`'s table; a NUL byte is stored by SQLite but
refused by Postgres with a storage error; control and bidirectional-formatting
characters can make a terminal show something other than what is stored. Names are
checked where they enter: `Client.launch` (and so `durable run` and `launch`) and a
workflow's `durable.spawn`, which is untrusted input.
"""

from __future__ import annotations

import unicodedata

#: Long enough for any label; short enough that a table row stays a row.
MAX_NAME_CHARS = 1000
#: Control (Cc), format (Cf: bidi overrides, zero-width), surrogate (Cs), line and
#: paragraph separator (Zl, Zp) characters.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


#: Names under which durable stores its interpreter components: no workflow of a user's
#: is registered, or spawned, under one.
INTERPRETER_PREFIX = "durable-interpreter-"


def reserved_name(name: str) -> bool:
    """Whether `name` is one durable keeps for its interpreter components."""
    return name.startswith(INTERPRETER_PREFIX)


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a task name, in a few words; None when it can."""
    if not name.strip():
        return "a task name cannot be empty"
    if len(name) > MAX_NAME_CHARS:
        return f"a task name is at most {MAX_NAME_CHARS} characters, not {len(name)}"
    for position, char in enumerate(name):
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            return (
                f"a task name must be one line of printable text: character {position + 1} "
                f"is U+{ord(char):04X} ({unicodedata.name(char, 'a control character')})"
            )
    return None
