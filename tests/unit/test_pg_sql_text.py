"""The Postgres refusals read a statement as the server's lexer does.

They are not the boundary (the guest login is: see tests/integration/
test_pg_guest_boundary.py), but a lexer that ends a comment or a string where the server
does not lets through the very statements it means to refuse. Each case here hides a
refused statement behind one such disagreement; an earlier lexer let the first two
through, and they were used to read every task's input.
"""

from __future__ import annotations

import pytest

from durable.storage._pg_sql_text import refusal, translate

ESCAPE = "set_config('role', 'postgres', true)"


@pytest.mark.parametrize(
    "sql",
    [
        # The server ends a `--` comment at \r as at \n.
        "--\rDO $$ BEGIN RESET ROLE; END $$",
        f"SELECT 1 --\r, {ESCAPE}",
        "-- \r\nRESET ROLE",
        # With standard_conforming_strings off, a backslash escapes the quote in a
        # plain '' string: the server reads the call as code, not as string.
        f"SELECT 'a\\', ', {ESCAPE} --'",
        # Any non-ASCII character continues an identifier (so `€$$` is a name, not the
        # start of a dollar quote) and may be part of a dollar-quote tag.
        f"SELECT 1 AS €$$, {ESCAPE} AS x --$$",
        f"SELECT $é$ $$ $é$, {ESCAPE}, $$ $$",
        # What would make the server read strings differently from here on.
        "SET standard_conforming_strings = off",
        "set local standard_conforming_strings to off",
    ],
)
def test_what_the_server_reads_as_code_is_refused(sql: str) -> None:
    assert refusal(sql) is not None


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'C:\\temp\\' AS path",  # a backslash is only a character here
        "INSERT INTO t (v) VALUES ('it''s', E'tab\\there')",
        "SELECT $é$ set_config $é$",  # a string, both ways
        "SELECT 'x' -- set_config\n",
        "SELECT current_setting('standard_conforming_strings')",
    ],
)
def test_ordinary_statements_stay_allowed(sql: str) -> None:
    assert refusal(sql) is None


def test_placeholders_follow_the_same_reading() -> None:
    assert translate("SELECT ? --\r, ?") == "SELECT $1 --\r, $2"
    assert translate("SELECT 1 AS €$$, ?") == "SELECT 1 AS €$$, $1"
    assert translate("SELECT $é$ ? $é$, ?") == "SELECT $é$ ? $é$, $1"
