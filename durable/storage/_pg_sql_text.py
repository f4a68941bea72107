"""Reading workflow SQL for Postgres, without a parser: placeholders and refusals.

`translate` turns the portable `?` placeholders into Postgres's `$1, $2, ...`, leaving
alone every `?` inside a string literal, a quoted identifier, a dollar-quoted body or a
comment. `refusal` says why a statement may not run as workflow SQL (or None).

The refusals are NOT the boundary. Workflow SQL runs on a connection that logs in as a
role with no path to the engine's (`_pg_login`), so a statement that got past them
could still only act as that role. They are a second line, and they say early, in
plain words, that a statement has no business in a workflow: transaction control
(COMMIT would make the changes durable without the event that records them), role and
session changes, DO blocks and new functions, LISTEN, PREPARE.

A lexer that disagrees with the server about where a comment or a string ends lets
through what it meant to refuse; two such disagreements were found in an earlier
version. So this one follows the server's lexer (`scan.l`) where it matters: a `--`
comment ends at `\n` or `\r`; identifiers and dollar-quote tags take any non-ASCII
character; and a statement is refused if it would be refused when backslashes escape
in plain '' strings (as with `standard_conforming_strings = off`) or when they do not,
whatever the session's setting. The guest login's connections also pin
`standard_conforming_strings = on`, and statements that change it are refused.
Every guest statement is sent with the extended protocol, which takes exactly one
statement, so its first keyword is what it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["refusal", "translate"]

# As the server's lexer has them: any non-ASCII character may start or continue an
# identifier or a dollar-quote tag (its UTF-8 bytes are all >= 0x80).
_WORD = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")
_NEWLINE = re.compile(r"[\n\r]")  # either ends a `--` comment

_TX_CONTROL = (
    "transaction control belongs to durable.transaction: leave the block to commit, "
    "raise to roll back"
)
#: First keywords workflow SQL may not start with, and why.
_REFUSED_FIRST = {
    **dict.fromkeys(
        ("begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release"),
        _TX_CONTROL,
    ),
    "prepare": "PREPARE is not available to workflow SQL (nor are prepared transactions)",
    "execute": "EXECUTE of prepared statements is not available to workflow SQL",
    "deallocate": "DEALLOCATE is not available to workflow SQL",
    "do": "DO blocks are not available to workflow SQL",
    "reset": "RESET is not available to workflow SQL",
    "discard": "DISCARD is not available to workflow SQL",
    "listen": "LISTEN is not available to workflow SQL (NOTIFY is)",
    "unlisten": "UNLISTEN is not available to workflow SQL",
    "load": "LOAD is not available to workflow SQL",
}
#: Objects workflow SQL may not CREATE or ALTER: code that could change its role.
_REFUSED_OBJECTS = frozenset(
    {"function", "procedure", "routine", "language", "extension", "event", "role", "user",
     "group", "system", "default", "policy", "server", "aggregate", "operator", "cast",
     "conversion", "transform"}
)  # fmt: skip
_CREATE_MODIFIERS = frozenset(
    {"or", "replace", "temp", "temporary", "global", "local", "unlogged", "trusted",
     "procedural", "constraint", "recursive", "materialized", "unique"}
)  # fmt: skip


def _segments(sql: str, *, backslashes: bool = False) -> Iterator[tuple[str, str]]:
    """Split `sql` into (kind, text): "code", "string", "ident", "uident", "dollar",
    "comment" or "placeholder" (a `?` in code). With `backslashes`, a backslash escapes
    in every '' string, as with `standard_conforming_strings = off`; without, only in
    E'' strings."""
    i, n, start = 0, len(sql), 0
    while i < n:
        c = sql[i]
        two = sql[i : i + 2]
        if c == "?":
            yield "code", sql[start:i]
            yield "placeholder", "?"
            i += 1
            start = i
            continue
        if two == "--":
            newline = _NEWLINE.search(sql, i)
            end = n if newline is None else newline.start()
            yield "code", sql[start:i]
            yield "comment", sql[i:end]
            i = start = end
            continue
        if two == "/*":
            depth, j = 1, i + 2
            while j < n and depth:
                if sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            yield "code", sql[start:i]
            yield "comment", sql[i:j]
            i = start = j
            continue
        if c == "'":
            escapes = backslashes or (
                i > 0 and sql[i - 1] in "eE" and (i < 2 or not _is_word(sql[i - 2]))
            )
            j = _end_of_quoted(sql, i, "'", backslash=escapes)
            yield "code", sql[start:i]
            yield "string", sql[i:j]
            i = start = j
            continue
        if c == '"':
            unicode = sql[max(0, i - 2) : i].lower() == "u&"
            j = _end_of_quoted(sql, i, '"', backslash=False)
            yield "code", sql[start:i]
            yield ("uident" if unicode else "ident"), sql[i + 1 : j - 1].replace('""', '"')
            i = start = j
            continue
        if c == "$" and (i == 0 or not _is_word(sql[i - 1])):
            match = _DOLLAR_TAG.match(sql, i)
            if match:
                tag = match.group(0)
                close = sql.find(tag, match.end())
                j = n if close < 0 else close + len(tag)
                yield "code", sql[start:i]
                yield "dollar", sql[i:j]
                i = start = j
                continue
        i += 1
    yield "code", sql[start:]


def _is_word(c: str) -> bool:
    return c in "_$" or not c.isascii() or c.isalnum()


def _end_of_quoted(sql: str, i: int, quote: str, *, backslash: bool) -> int:
    """The index just past the quoted text that starts at `i` (doubled quotes and, for
    E'' strings, backslashes escape)."""
    j, n = i + 1, len(sql)
    while j < n:
        c = sql[j]
        if backslash and c == "\\":
            j += 2
            continue
        if c == quote:
            if sql.startswith(quote, j + 1):
                j += 2
                continue
            return j + 1
        j += 1
    return n


def translate(sql: str) -> str:
    """`sql` with each `?` placeholder (outside literals and comments) made `$1, $2...`."""
    out: list[str] = []
    count = 0
    for kind, text in _segments(sql):
        if kind == "placeholder":
            count += 1
            out.append(f"${count}")
        elif kind in ("ident", "uident"):
            out.append('"' + text.replace('"', '""') + '"')
        else:
            out.append(text)
    return "".join(out)


def refusal(sql: str) -> str | None:
    """Why `sql` may not run as workflow SQL on Postgres, or None when it may.

    Read twice: with backslashes escaping in '' strings and without, so that the answer
    does not depend on `standard_conforming_strings`.
    """
    return _refusal(sql, backslashes=False) or _refusal(sql, backslashes=True)


def _refusal(sql: str, *, backslashes: bool) -> str | None:
    words: list[str] = []
    for kind, text in _segments(sql, backslashes=backslashes):
        if kind == "uident":
            return 'Unicode-escaped identifiers (U&"...") are not accepted in workflow SQL'
        if kind == "ident":
            words.append(text.lower())
        elif kind == "code":
            words.extend(w.lower() for w in _WORD.findall(text))
    if "set_config" in words:
        return "set_config() is not available to workflow SQL"
    if not words:
        return None
    first, rest = words[0], words[1:]
    if first in _REFUSED_FIRST:
        return _REFUSED_FIRST[first]
    if first == "set":
        rest = [w for w in rest[:3] if w not in ("local", "session")] or [""]
        if rest[0] in ("role", "authorization"):
            return "workflow SQL may not change its role"
        if rest[0] == "standard_conforming_strings":
            return "workflow SQL may not change standard_conforming_strings"
    if first in ("create", "alter"):
        objects = [w for w in rest if w not in _CREATE_MODIFIERS][:1]
        if objects and objects[0] in _REFUSED_OBJECTS:
            return f"{first.upper()} {objects[0].upper()} is not available to workflow SQL"
    return None
