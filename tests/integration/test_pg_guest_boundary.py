"""The Postgres boundary of workflow SQL, attacked as a hostile workflow author would.

Workflow SQL runs on connections that log in as a role of its own, with no path to the
engine's role or schema (`durable.storage._pg_login`), and the event that records a
transaction goes through one fenced function that checks a secret no workflow sees.
These tests run real components (`tests/workflows/sql_ops.py`, whose `errors` entry
runs a list of statements in one transaction and reports how each ended) with a real
worker on the session's real server, each in a database of its own. Attacks run twice:
as shipped, and with the lexical refusals switched off (`lexer="off"`), to show that
the server alone refuses what matters: the refusals are a second line, not the boundary.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from durable.core.model import Event, NewTask, Task, TaskState
from durable.errors import ConfigurationError
from durable.host.config import HostConfig
from durable.host.runtime import Runtime
from durable.storage import _pg_admin, _pg_guest, open_store
from durable.storage._url import GUEST_URL_ENV
from durable.storage.base import Store
from durable.testing.postgres import ServerHandle, fresh_database, with_login
from tests.helpers import (
    WORKFLOWS,
    built,
    completed_result,
    launch_task,
    load_component,
    run_cli,
    run_until_idle,
)

pytestmark = pytest.mark.anyio

WORKFLOW = WORKFLOWS / "sql_ops.py"
SECRET = "victim-secret-7f3a"  # in a victim task's input: no attacker may read it
PASSWORD = "test-login-password"
MakeLogin = Callable[..., Awaitable[tuple[str, str]]]


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    rt = Runtime(HostConfig(suspend_after=5.0))  # the shared, content-addressed cache
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def wasm(runtime: Runtime) -> bytes:
    """The workflow, built and compiled here, outside any test's time limit."""
    binary = built(WORKFLOW)[0]
    load_component(runtime, binary)
    return binary


@pytest.fixture
async def store(pg_url: str, anyio_backend: str) -> AsyncIterator[Store]:
    """A migrated store on a fresh database, with the zero-configuration guest login."""
    opened = await open_store(pg_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(params=["on", "off"])
def lexer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Whether the lexical refusals run ("off": every statement reaches the server)."""
    if request.param == "off":
        switch_off_the_lexer(monkeypatch)
    return str(request.param)


def switch_off_the_lexer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pg_guest, "refusal", lambda sql: None)


@pytest.fixture
async def make_login(pg_url: str, anyio_backend: str) -> AsyncIterator[MakeLogin]:
    """Creates login roles (`await make_login("CREATEROLE")` -> name, URL); drops them,
    and whatever they own or were granted here, afterwards (roles outlive databases)."""
    made: list[str] = []

    async def make(attributes: str = "", *, prefix: str = "login") -> tuple[str, str]:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        await _pg_admin.execute(
            pg_url, f"CREATE ROLE {name} LOGIN {attributes} PASSWORD '{PASSWORD}'"
        )
        made.append(name)
        return name, with_login(pg_url, name, PASSWORD)

    yield make
    for name in reversed(made):
        await _pg_admin.execute(
            pg_url,
            f"REASSIGN OWNED BY {name} TO CURRENT_USER; DROP OWNED BY {name}; DROP ROLE {name}",
        )


async def fetch(url: str, sql: str) -> list[tuple[Any, ...]]:
    return await _pg_admin.fetch(url, sql)


async def engine_role(url: str) -> str:
    return str((await fetch(url, "SELECT current_user::text"))[0][0])


async def run(store: Store, runtime: Runtime, wasm: bytes, entry: str, value: Any) -> Task:
    task = await launch_task(store, wasm, entry, value, workflow_name="sql_ops")
    await run_until_idle(store, runtime)
    return await store.get_task(task.id)


async def outcomes(
    store: Store, runtime: Runtime, wasm: bytes, cases: list[tuple[str, str]]
) -> dict[str, list[Any]]:
    """Run `cases` ([name, sql]) in one workflow transaction; each one's outcome:
    ["ok", rowcount, rows] or [error class, kind, has a code, message]."""
    task = await run(store, runtime, wasm, "errors", {"cases": [[n, s, []] for n, s in cases]})
    assert task.state is TaskState.COMPLETE, task.error
    out = completed_result(task)
    assert out.pop("after") == 2  # the transaction carried on after every statement
    outcomes: dict[str, list[Any]] = out
    return outcomes


# -- attacks on the engine ----------------------------------------------------------------

# Become the engine's role, read every task's input, and be the guest again before the
# statement ends (an earlier version checked the role only between statements).
READ_TASKS = (
    "set_config('role', '{engine}', true), "
    "query_to_xml('SELECT input FROM durable.tasks', true, false, ''), "
    "set_config('role', 'durable_guest', true)"
)
# Logs who calls it. Were the engine's queries to resolve names in `public` (their
# search_path used to include it), this would run inside `append` and `finish`, which
# call cardinality(integer[]), as the engine's role: an exact match wins over the
# built-in cardinality(anyarray).
TRAP_FUNCTION = """
CREATE FUNCTION public.cardinality(a integer[]) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.trap_log VALUES (current_user);
    RETURN pg_catalog.cardinality(a);
END $$
"""


def attacks(engine: str, marker: Path) -> list[tuple[str, str, bool]]:
    """(name, sql, must fail): every way out that a workflow author might try."""
    return [
        ("set role", f"SET ROLE {engine}", True),
        ("set session authorization", f"SET SESSION AUTHORIZATION {engine}", True),
        ("set_config role", f"SELECT set_config('role', '{engine}', false)", True),
        (
            "do block",
            f"DO $$ BEGIN EXECUTE 'SET ROLE {engine}'; PERFORM count(*) FROM durable.tasks; END $$",
            True,
        ),
        # The two ways an earlier lexer and the server disagreed (they let the first
        # audit read every task's input): a `--` comment that \r ends, and backslashes
        # that escape quotes once standard_conforming_strings is off.
        (
            "comment ended by CR",
            f"--\rSELECT {READ_TASKS.format(engine=engine)}",
            True,
        ),
        ("backslashes escape", "SET standard_conforming_strings = off", False),
        (
            "string ended by backslash",
            f"SELECT 'a\\', ', {READ_TASKS.format(engine=engine)} --'",
            True,
        ),
        ("copy to program", f"COPY (SELECT 1) TO PROGRAM 'touch {marker}'", True),
        ("copy to file", f"COPY (SELECT 1) TO '{marker}'", True),
        ("read a server file", "SELECT pg_read_file('/etc/passwd')", True),
        ("read tasks", "SELECT input FROM durable.tasks", True),
        ("rewrite results", "UPDATE durable.tasks SET result = '\"pwned\"'", True),
        ("read events", "SELECT payload FROM durable.events", True),
        (
            "forge an event",
            "INSERT INTO durable.events (task_id, idx, label, payload) VALUES (1, 5, 'x', '{}')",
            True,
        ),
        ("read the guest password", "SELECT password FROM durable.guest_login", True),
        ("alter the engine's role", f"ALTER ROLE {engine} PASSWORD 'pwned'", True),
        ("make itself a superuser", "ALTER ROLE CURRENT_USER SUPERUSER", True),
        ("give itself createrole", "ALTER ROLE CURRENT_USER CREATEROLE", True),
        ("create a role", "CREATE ROLE pwned LOGIN SUPERUSER", True),
        ("grant itself the engine's role", f"GRANT {engine} TO CURRENT_USER", True),
        ("grant itself programs", "GRANT pg_execute_server_program TO CURRENT_USER", True),
        (
            "terminate the engine",
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{engine}'",
            True,
        ),
        ("reset role", "RESET ROLE", False),
        ("set_config none", "SELECT set_config('role', 'none', false)", False),
        ("trap table", "CREATE TABLE public.trap_log (who text)", False),
        ("open trap table", "GRANT ALL ON public.trap_log TO PUBLIC", False),
        ("trap function", TRAP_FUNCTION, False),
        (
            "give the trap away",
            f"ALTER FUNCTION public.cardinality(integer[]) OWNER TO {engine}",
            True,
        ),
        (
            "notify spam",
            "SELECT count(pg_notify('durable_work', g::text)) FROM generate_series(1, 5000) AS g",
            False,
        ),
        ("listen", "LISTEN durable_work", False),
        ("whoami", "SELECT current_user::text, session_user::text", False),
    ]


async def test_hostile_sql_cannot_reach_the_engine(
    store: Store, runtime: Runtime, wasm: bytes, lexer: str, pg_url: str, tmp_path: Path
) -> None:
    engine = await engine_role(pg_url)
    victim = await run(
        store, runtime, wasm, "ledger", {"table": "victim_rows", "rows": 1, "secret": SECRET}
    )
    assert completed_result(victim) == 1
    marker = tmp_path / "pwned"
    cases = attacks(engine, marker)
    out = await outcomes(store, runtime, wasm, [(name, sql) for name, sql, _ in cases])

    got_through = {n: out[n] for n, _, must_fail in cases if must_fail and out[n][0] == "ok"}
    assert got_through == {}
    assert SECRET not in json.dumps(out)
    assert not marker.exists()
    if lexer == "on":  # each refused before it reached the server, in plain words
        assert out["do block"][:2] == ["Forbidden", "forbidden"]
        assert out["comment ended by CR"][:2] == ["Forbidden", "forbidden"]
        assert out["string ended by backslash"][:2] == ["Forbidden", "forbidden"]
    else:  # the server refused them: the guest login may not become anyone else
        assert "permission denied" in out["set role"][3]
        assert out["whoami"][0] == "ok"
    if out["whoami"][0] == "ok":
        [[current, session]] = out["whoami"][2]
        assert current == session != engine

    # The worker carries on, and so does a new one (its connections prepare the engine's
    # queries afresh, after the trap). Nothing of the engine's changed.
    for worker_store in (store, await open_store(pg_url, migrate=False)):
        try:
            after = await run(worker_store, runtime, wasm, "ledger", {"table": "after", "rows": 2})
            assert completed_result(after) == 2
        finally:
            if worker_store is not store:
                await worker_store.close()
    victim_now = await store.get_task(victim.id)
    assert (victim_now.state, victim_now.result, victim_now.input) == (
        TaskState.COMPLETE,
        victim.result,
        victim.input,
    )
    assert [e.label for e in await store.load_history(victim.id)] == ["sql ledger"]
    assert await fetch(pg_url, "SELECT count(*) FROM pg_roles WHERE rolname = 'pwned'") == [(0,)]
    if await fetch(pg_url, "SELECT to_regclass('public.trap_log') IS NOT NULL") == [(True,)]:
        callers = {who for (who,) in await fetch(pg_url, "SELECT who FROM public.trap_log")}
        assert engine not in callers


async def test_the_record_function_refuses_a_forged_lease(
    store: Store, runtime: Runtime, wasm: bytes
) -> None:
    """A workflow may call `durable_api.record_sql_transaction` (its login must), and
    may guess a task's id, worker and lease token; without the lease's secret it writes
    nothing, however often it tries."""
    digest = await store.put_workflow(wasm, name="sql_ops")
    target = await store.create_task(NewTask(name="target", workflow_hash=digest, input="null"))
    [claim] = await store.claim(worker_id="target-worker", limit=1, lease_seconds=3600)
    assert claim.task.id == target.id
    forge = (
        "SELECT count(*) FILTER (WHERE durable_api.record_sql_transaction("
        f"{target.id}, 'target-worker', {claim.lease.token}, guess, "
        "ARRAY[0], ARRAY['sql forged'], ARRAY[NULL]::text[], ARRAY['{}'], "
        "ARRAY[]::integer[], ARRAY[]::text[], ARRAY[]::bytea[], ARRAY[]::bigint[])) "
        "FROM (SELECT gen_random_uuid() FROM generate_series(1, 500) "
        "UNION ALL SELECT NULL::uuid) AS guesses (guess)"
    )
    out = await outcomes(store, runtime, wasm, [("forge", forge)])
    assert out["forge"] == ["ok", -1, [[0]]]
    assert await store.load_history(target.id) == []
    # The lease's holder, with the secret, records through the same function.
    tx = await store.begin_guest_transaction(claim.lease)
    await tx.commit([Event(index=0, label="sql real", digest=None, payload="{}")], [])
    assert [e.label for e in await store.load_history(target.id)] == ["sql real"]


async def test_a_statement_planted_for_the_host_is_never_run(
    store: Store, runtime: Runtime, wasm: bytes, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workflow may drop the session's prepared statements and PREPARE its own under
    the names the driver gives its statements, hoping that the host's commit executes
    one (as the engine's role, or handing it the lease's secret). The host runs only
    statements it parses in the same exchange."""
    switch_off_the_lexer(monkeypatch)
    signature = (  # the record function's
        "bigint, text, bigint, uuid, integer[], text[], text[], text[], "
        "integer[], text[], bytea[], bigint[]"
    )
    plant = (
        "PREPARE __asyncpg_stmt_{n:x}__ ({signature}) AS WITH loot AS "
        "(INSERT INTO public.loot SELECT current_user::text || ' ' || coalesce($4::text, '')) "
        "SELECT true"
    )
    cases = [
        ("loot", "CREATE TABLE public.loot (v text)"),
        ("open", "GRANT ALL ON public.loot TO PUBLIC"),
        ("drop", "DEALLOCATE ALL"),
    ]
    cases += [(f"plant {n}", plant.format(n=n, signature=signature)) for n in range(1, 160)]
    out = await outcomes(store, runtime, wasm, cases)
    assert out["plant 1"][0] == "ok", out["plant 1"]
    assert await fetch(pg_url, "SELECT v FROM public.loot") == []
    [task] = await store.list_tasks(limit=1)
    assert [e.label for e in await store.load_history(task.id)] == ["sql errors"]


# -- one task's session never reaches the next ---------------------------------------------


async def test_nothing_of_a_session_reaches_the_next_task(
    store: Store, runtime: Runtime, wasm: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    switch_off_the_lexer(monkeypatch)  # so that every statement reaches the server
    pid = "SELECT pg_backend_pid()"
    first = await outcomes(
        store,
        runtime,
        wasm,
        [
            ("pid", pid),
            ("temp", "CREATE TEMP TABLE leak_temp (v text)"),
            ("prepared", "PREPARE leak_statement AS SELECT 'leaked'"),
            ("setting", "SET SESSION durable_test.leak = 'leaked'"),
            ("timeout", "SET SESSION lock_timeout = '1234ms'"),
            ("strings", "SET SESSION standard_conforming_strings = off"),
            ("role", "SET SESSION ROLE durable_guest"),
            ("advisory", "SELECT pg_advisory_lock(4242)"),
            ("listen", "LISTEN leak_channel"),
            ("cursor", "DECLARE leak_cursor CURSOR WITH HOLD FOR SELECT 1"),
            ("sequence", "CREATE SEQUENCE leak_sequence"),
            ("lastval", "SELECT nextval('leak_sequence')"),
        ],
    )
    assert all(outcome[0] == "ok" for outcome in first.values()), first
    second = await outcomes(
        store,
        runtime,
        wasm,
        [
            ("pid", pid),
            ("temp", "SELECT * FROM leak_temp"),
            ("prepared", "EXECUTE leak_statement"),
            ("setting", "SELECT coalesce(current_setting('durable_test.leak', true), '')"),
            ("timeout", "SELECT current_setting('lock_timeout')"),
            ("strings", "SELECT current_setting('standard_conforming_strings')"),
            ("role", "SELECT current_user = session_user"),
            (
                "advisory",
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = "
                "pg_backend_pid()",
            ),
            ("listen", "SELECT count(*) FROM pg_listening_channels()"),
            ("cursor", "SELECT count(*) FROM pg_cursors WHERE name = 'leak_cursor'"),
            ("lastval", "SELECT lastval()"),
        ],
    )
    assert second["pid"] == first["pid"], "the second task did not get the same connection"
    leaks = {
        name: outcome
        for name, outcome in second.items()
        if name != "pid"
        and outcome[0] == "ok"
        and outcome[2] not in ([[""]], [["0"]], [["on"]], [[True]], [[0]])
    }
    assert leaks == {}
    for name in ("temp", "prepared", "lastval"):
        assert second[name][0] != "ok", (name, second[name])


# -- the login itself ------------------------------------------------------------------------

UNFIT: dict[str, tuple[str, str, str]] = {
    # name: (role attributes, then SQL run as the engine, the message's part)
    "superuser": ("SUPERUSER", "", "it is a superuser"),
    "createrole": ("CREATEROLE", "", "it has CREATEROLE"),
    "createdb": ("CREATEDB", "", "it has CREATEDB"),
    "replication": ("REPLICATION", "", "it has REPLICATION"),
    "bypassrls": ("BYPASSRLS", "", "it has BYPASSRLS"),
    "member of the engine": ("", "GRANT {engine} TO {login}", "can act as {engine}, which"),
    "indirectly": (
        "",
        "GRANT pg_write_server_files TO {login}_in; GRANT {login}_in TO {login}",
        "member of the predefined role pg_write_server_files",
    ),
    "owns schema durable": ("", "ALTER SCHEMA durable OWNER TO {login}", "durable's own role"),
    "owns the database": ("", "ALTER DATABASE {database} OWNER TO {login}", "owns the database"),
    "uses schema durable": (
        "",
        "GRANT USAGE ON SCHEMA durable TO {login}",
        "has privileges on schema durable",
    ),
    "creates in the database": (
        "",
        "GRANT CREATE ON DATABASE {database} TO {login}",
        "may create in the database",
    ),
    "reads files": (
        "",
        "GRANT EXECUTE ON FUNCTION pg_read_file(text) TO {login}",
        "may execute pg_catalog.pg_read_file(text)",
    ),
}
for _role in ("pg_execute_server_program", "pg_read_server_files", "pg_signal_backend"):
    UNFIT[_role] = ("", f"GRANT {_role} TO {{login}}", f"member of the predefined role {_role}")


@pytest.mark.parametrize("case", list(UNFIT))
async def test_an_unfit_guest_login_is_refused_in_one_line(
    case: str, store: Store, pg_url: str, make_login: MakeLogin
) -> None:
    attributes, grant, expected = UNFIT[case]
    login, url = await make_login(attributes)
    engine = await engine_role(pg_url)
    database = str((await fetch(pg_url, "SELECT current_database()::text"))[0][0])
    if "{login}_in" in grant:  # a role in between
        await _pg_admin.execute(pg_url, f"CREATE ROLE {login}_in NOLOGIN")
    if grant:
        await _pg_admin.execute(pg_url, grant.format(login=login, engine=engine, database=database))
    try:
        with pytest.raises(ConfigurationError) as caught:
            await open_store(pg_url, guest_url=url)
    finally:
        if "{login}_in" in grant:
            await _pg_admin.execute(pg_url, f"REVOKE {login}_in FROM {login}; DROP ROLE {login}_in")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"workflow SQL may not run as the Postgres role {login}: "), message
    assert expected.format(engine=engine) in message


def test_the_worker_refuses_a_superuser_guest_login(pg_url: str, tmp_path: Path) -> None:
    assert run_cli("migrate", "--db", pg_url, cwd=tmp_path).returncode == 0
    refused = run_cli(
        "worker", "--db", pg_url, "--guest-db", pg_url, "--exit-when-idle", cwd=tmp_path
    )
    assert refused.returncode == 2
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith("error: workflow SQL may not run as the Postgres role ")
    assert "it is a superuser" in line


async def test_a_named_guest_login_runs_the_workflow_sql(
    pg_url: str,
    runtime: Runtime,
    wasm: bytes,
    make_login: MakeLogin,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    login, url = await make_login(prefix="app_workflows")
    await _pg_admin.execute(pg_url, f"GRANT USAGE, CREATE ON SCHEMA public TO {login}")
    monkeypatch.setenv(GUEST_URL_ENV, url)
    store = await open_store(pg_url)  # migrates, and checks the named login
    try:
        no_zero_config = (
            "SELECT count(*) FROM pg_roles AS r JOIN durable.guest_login AS g "
            "ON r.rolname = g.role_name"
        )
        assert await fetch(pg_url, no_zero_config) == [(0,)]
        out = await outcomes(
            store,
            runtime,
            wasm,
            [
                ("who", "SELECT current_user::text, session_user::text"),
                ("create", "CREATE TABLE made_by_a_workflow (v int)"),
            ],
        )
        assert out["who"][2] == [[login, login]]
    finally:
        await store.close()
    owner = "SELECT tableowner::text FROM pg_tables WHERE tablename = 'made_by_a_workflow'"
    assert await fetch(pg_url, owner) == [(login,)]

    # The same login through the CLI's option (the variable is not passed on).
    monkeypatch.delenv(GUEST_URL_ENV)
    cases = json.dumps({"cases": [["who", "SELECT session_user::text", []]]})
    ran = run_cli(
        "run", str(WORKFLOW), "--entry", "errors", "--input", cases,
        "--db", pg_url, "--guest-db", url, cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout.splitlines()[-1])["who"] == ["ok", -1, [[login]]]


async def test_a_workflow_that_changes_its_own_login_does_not_stop_workflow_sql(
    store: Store,
    runtime: Runtime,
    wasm: bytes,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Postgres lets any role change its own password and session defaults; a workflow
    past the refusals could so lock every later connection out. The zero-configuration
    login is repaired when a new connection finds it changed."""
    switch_off_the_lexer(monkeypatch)
    read_only = "ALTER ROLE CURRENT_USER SET default_transaction_read_only = on"
    changes = [
        [("password", "ALTER ROLE CURRENT_USER PASSWORD 'stolen'"), ("defaults", read_only)],
        [("defaults", read_only)],  # the password still works: the defaults apply
    ]
    for n, change in enumerate(changes):
        out = await outcomes(store, runtime, wasm, change)
        assert {outcome[0] for outcome in out.values()} == {"ok"}, out
        again = await open_store(pg_url, migrate=False)  # new connections: another worker
        try:
            task = await run(again, runtime, wasm, "ledger", {"table": f"rows{n}", "rows": 2})
            assert completed_result(task) == 2
        finally:
            await again.close()
        settings = await fetch(
            pg_url,
            "SELECT count(*) FROM pg_db_role_setting AS s JOIN durable.guest_login AS g "
            "ON s.setrole = g.role_name::regrole",
        )
        assert settings == [(0,)]


# -- an engine that is not a superuser ------------------------------------------------------


@pytest.fixture
async def engine_database(
    pg_server: ServerHandle, make_login: MakeLogin, anyio_backend: str
) -> AsyncIterator[tuple[str, str]]:
    """A fresh database owned by a role that may create roles and is no superuser;
    yields (that role, a URL of the database as that role)."""
    role, _ = await make_login("CREATEROLE", prefix="durable_engine")
    with fresh_database(pg_server, "durable_engine") as url:
        database = url.rsplit("/", 1)[-1]
        await _pg_admin.execute(url, f"ALTER DATABASE {database} OWNER TO {role}")
        yield role, with_login(url, role, PASSWORD)


async def test_an_engine_that_is_no_superuser_sets_up_and_confines_workflow_sql(
    engine_database: tuple[str, str],
    runtime: Runtime,
    wasm: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine, url = engine_database
    store = await open_store(url)  # migrates as that role: it creates the guest login
    try:
        switch_off_the_lexer(monkeypatch)
        out = await outcomes(
            store,
            runtime,
            wasm,
            [
                ("who", "SELECT session_user::text"),
                ("set role", f"SET ROLE {engine}"),
                ("read tasks", "SELECT count(*) FROM durable.tasks"),
                (
                    "terminate the engine",
                    f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE usename = '{engine}'",
                ),
            ],
        )
        [[login]] = out.pop("who")[2]
        assert login.startswith("durable_guest_")
        assert {name: outcome[1] for name, outcome in out.items()} == dict.fromkeys(
            out, "forbidden"
        )
        after = await run(store, runtime, wasm, "ledger", {"table": "rows", "rows": 2})
        assert completed_result(after) == 2
    finally:
        await store.close()


async def test_an_engine_that_may_not_create_roles_needs_a_named_login(
    pg_server: ServerHandle,
    make_login: MakeLogin,
    runtime: Runtime,
    wasm: bytes,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine, _ = await make_login(prefix="durable_plain")
    with fresh_database(pg_server, "durable_plain") as admin_url:
        database = admin_url.rsplit("/", 1)[-1]
        await _pg_admin.execute(admin_url, f"ALTER DATABASE {database} OWNER TO {engine}")
        url = with_login(admin_url, engine, PASSWORD)
        with caplog.at_level(logging.WARNING, logger="durable"):
            store = await open_store(url)
        try:
            assert "workflow SQL will not run until it has a login" in caplog.text
            task = await run(store, runtime, wasm, "ledger", {"table": "rows", "rows": 1})
            assert task.state is TaskState.FAILED
            error = json.loads(task.error or "{}")
            assert "run `durable migrate` as a role that may create roles" in error["message"]
            assert GUEST_URL_ENV in error["message"]
        finally:
            await store.close()

        login, _ = await make_login(prefix="app_workflows")
        await _pg_admin.execute(admin_url, f"GRANT USAGE, CREATE ON SCHEMA public TO {login}")
        monkeypatch.setenv(GUEST_URL_ENV, with_login(admin_url, login, PASSWORD))
        store = await open_store(url)
        try:
            task = await run(store, runtime, wasm, "ledger", {"table": "rows", "rows": 1})
            assert completed_result(task) == 1
        finally:
            await store.close()
