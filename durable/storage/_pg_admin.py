"""Server-level chores for tests and benchmarks: create and drop databases, measure commits.

They live here, not in `durable.testing`, so that asyncpg stays imported only under
`durable.storage`.
"""

from __future__ import annotations

import time

import asyncpg

from durable.storage._pg_errors import translate


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def create_database(url: str, name: str) -> None:
    """Create an empty database `name` on the server at `url`."""
    with translate(f"create database {name}"):
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"CREATE DATABASE {_quote_ident(name)}")
        finally:
            await conn.close()


async def drop_database(url: str, name: str) -> None:
    """Drop database `name` if it exists, disconnecting its clients first, and the
    login for workflow SQL that `durable migrate` made for it (roles outlive databases)."""
    with translate(f"drop database {name}"):
        conn = await asyncpg.connect(url)
        try:
            login = await _guest_login_of(url, name)
            await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")
            if login is not None:
                await conn.execute(f"DROP ROLE IF EXISTS {_quote_ident(login)}")
        finally:
            await conn.close()


async def _guest_login_of(url: str, name: str) -> str | None:
    """The zero-configuration guest login recorded in database `name`, if any."""
    from urllib.parse import urlsplit

    try:
        conn = await asyncpg.connect(urlsplit(url)._replace(path="/" + name).geturl())
    except asyncpg.InvalidCatalogNameError:
        return None
    try:
        if not await conn.fetchval("SELECT to_regclass('durable.guest_login') IS NOT NULL"):
            return None
        login: str | None = await conn.fetchval("SELECT role_name FROM durable.guest_login")
        return login
    finally:
        await conn.close()


async def execute(url: str, sql: str) -> None:
    """Run `sql` (one or more statements, no parameters) on a fresh connection."""
    with translate("run SQL"):
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


async def commit_rate(url: str, seconds: float = 2.0) -> float:
    """The server's raw durable commit rate: single-row INSERT + COMMIT per row, one connection.

    Each row is its own (autocommit) transaction, so every one waits for a WAL flush,
    as an event append does. Returns commits per second over about `seconds`.
    """
    with translate("measure the commit rate"):
        conn = await asyncpg.connect(url)
        try:
            # A regular (WAL-logged) table: temp and unlogged tables skip the flush.
            await conn.execute("DROP TABLE IF EXISTS public.durable_commit_rate")
            await conn.execute(
                "CREATE TABLE public.durable_commit_rate (id bigint PRIMARY KEY, payload text)"
            )
            try:
                insert = await conn.prepare(
                    "INSERT INTO public.durable_commit_rate (id, payload) VALUES ($1, $2)"
                )
                count = 0
                start = time.perf_counter()
                while (elapsed := time.perf_counter() - start) < seconds:
                    await insert.fetch(count, "{}")
                    count += 1
            finally:
                await conn.execute("DROP TABLE public.durable_commit_rate")
        finally:
            await conn.close()
    return count / elapsed


async def fetch(url: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    """Run one query on a fresh connection and return its rows as tuples (for tests)."""
    with translate("run a query"):
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(sql, *args)
        finally:
            await conn.close()
    return [tuple(row.values()) for row in rows]


async def reset(url: str) -> None:
    """Empty every table of schema `durable` except the migration record and the guest
    login (for tests).

    Much cheaper than a new database per test: one TRUNCATE, which also restarts the
    id sequences, so task ids start at 1 again.
    """
    with translate("reset the durable tables"):
        conn = await asyncpg.connect(url)
        try:
            tables = await conn.fetch(
                "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                "WHERE schemaname = 'durable' AND tablename NOT IN ('migrations', 'guest_login')"
            )
            if tables:
                names = ", ".join(row[0] for row in tables)
                await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        finally:
            await conn.close()
