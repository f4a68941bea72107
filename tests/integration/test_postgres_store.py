"""Postgres-specific behaviour of `PostgresStore`, on a real server the session starts.

The backend-independent promises are checked by the contract suite
(`durable.storage.testing`); here we test what only a shared server shows: the schema's
home, connection errors, concurrent migrators and claimers, fencing after a takeover,
and LISTEN/NOTIFY wake-ups (including across a server restart).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import anyio
import anyio.lowlevel
import pytest

from durable.core.model import (
    Claim,
    Completed,
    Event,
    Lease,
    LogChunk,
    NewTask,
    Released,
    Stream,
    Suspended,
    TaskState,
)
from durable.errors import (
    ConfigurationError,
    ConflictError,
    LeaseLostError,
    SchemaError,
    StorageError,
)
from durable.storage import Store, open_store
from durable.storage import _pg_admin as admin
from durable.storage._pg_claim import PRELOAD_EVENTS
from durable.storage._pg_schema import latest_version, migrations, queries
from durable.storage.postgres import PostgresStore
from durable.storage.testing import STORE_CHECKS, StoreCheck
from durable.testing import postgres as pg_testing
from durable.testing.postgres import (
    ExternalPostgres,
    ServerHandle,
)

pytestmark = [pytest.mark.postgres, pytest.mark.anyio]


@pytest.fixture
async def pg_store(shared_pg_url: str) -> AsyncIterator[Store]:
    """A migrated `PostgresStore` with empty tables, closed after the test."""
    store = await open_store(shared_pg_url)
    try:
        await admin.reset(shared_pg_url)  # far cheaper than a new database per test
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def opened(url: str, *, migrate: bool = True) -> AsyncIterator[PostgresStore]:
    store = await open_store(url, migrate=migrate)
    assert isinstance(store, PostgresStore)
    try:
        yield store
    finally:
        await store.close()


def _conforms(store: PostgresStore) -> Store:
    return store  # mypy checks that PostgresStore satisfies the Store protocol


async def _task(store: Store, name: str = "t") -> int:
    workflow = await store.put_workflow(b"\0asm not really")
    task = await store.create_task(NewTask(name=name, workflow_hash=workflow, input="{}"))
    return task.id


def _event(index: int, payload: str = "{}") -> Event:
    return Event(index=index, label=f"step {index}", digest=None, payload=payload)


# -- the backend-independent contract suite ----------------------------------------------


@pytest.mark.parametrize("check", list(STORE_CHECKS.values()), ids=list(STORE_CHECKS))
async def test_store_contract_on_postgres(pg_store: Store, check: StoreCheck) -> None:
    await check(pg_store)


# -- schema and opening -------------------------------------------------------------------


async def test_tables_live_in_schema_durable(pg_url: str) -> None:
    async with opened(pg_url):
        pass
    tables = await admin.fetch(
        pg_url,
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 2",
    )
    assert {schema for schema, _ in tables} == {"durable"}
    names = {name for _, name in tables}
    assert {"tasks", "events", "logs", "workflows", "workers", "migrations"} <= names


async def test_open_store_with_postgres_url(pg_url: str) -> None:
    async with opened(pg_url) as store:
        assert store.url == pg_url
        task_id = await _task(store)
        assert (await store.get_task(task_id)).state is TaskState.READY
        assert await store.schema_version() == (latest_version(), latest_version())


async def test_url_masks_password(pg_server: ServerHandle, pg_url: str) -> None:
    if isinstance(pg_server, ExternalPostgres):
        pytest.skip("needs a role with a password on a server this session started")
    role = _password_role(pg_server)
    parts = urlsplit(pg_url)
    url = f"postgresql://{role}:s3cret@{parts.hostname}:{parts.port}{parts.path}"
    async with opened(url) as store:
        assert "s3cret" not in store.url
        assert f"{role}:***@" in store.url


def _password_role(server: ServerHandle) -> str:
    """A role that must log in with a password (the server trusts only `postgres`)."""
    role = "durable_pw"
    server.execute(
        f"DO $$ BEGIN CREATE ROLE {role} LOGIN SUPERUSER PASSWORD 's3cret'; "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    return role


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens once the socket is closed


@pytest.mark.parametrize("case", ["bad-url", "unreachable", "wrong-password", "missing-db"])
async def test_open_errors_are_one_clear_line(pg_server: ServerHandle, case: str) -> None:
    netloc = urlsplit(pg_server.url).netloc.split("@")[1]  # host:port
    expected: type[Exception]
    if case == "bad-url":
        url = "postgresql://postgres@127.0.0.1:notaport/x"
        expected, words = ConfigurationError, "URL"
    elif case == "unreachable":
        url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/postgres"
        expected, words = StorageError, "refused"
    elif case == "wrong-password":
        if isinstance(pg_server, ExternalPostgres):
            pytest.skip("an external server may trust every login")
        role = _password_role(pg_server)
        url = f"postgresql://{role}:wrong@{netloc}/postgres"
        expected, words = ConfigurationError, "password authentication failed"
    else:
        url = f"postgresql://postgres@{netloc}/no_such_db_{uuid.uuid4().hex[:6]}"
        expected, words = ConfigurationError, "does not exist"
    with pytest.raises(expected) as info:
        await open_store(url)
    message = str(info.value)
    if expected is StorageError:
        assert not isinstance(info.value, ConfigurationError)
    assert words in message
    assert "\n" not in message
    assert "Traceback" not in message
    assert ":wrong@" not in message  # the password is masked
    assert info.value.__cause__ is not None  # the driver's error is chained, not shown


async def test_empty_database_reports_version_zero(pg_url: str) -> None:
    store = await PostgresStore.open(pg_url)
    try:
        assert await store.schema_version() == (0, latest_version())
        with pytest.raises(SchemaError, match="migrate"):
            await store.get_task(1)
    finally:
        await store.close()
    with pytest.raises(SchemaError, match="version 0"):
        await open_store(pg_url, migrate=False)


async def test_concurrent_migrate_is_safe(pg_url: str) -> None:
    stores = [await PostgresStore.open(pg_url) for _ in range(4)]
    try:
        results: list[int] = []

        async def migrate(store: PostgresStore) -> None:
            results.append(await store.migrate())

        async with anyio.create_task_group() as tg:
            for store in stores:
                tg.start_soon(migrate, store)
        assert results == [latest_version()] * 4
        assert await stores[0].migrate() == latest_version()  # again: nothing to do
    finally:
        for store in stores:
            await store.close()
    rows = await admin.fetch(pg_url, "SELECT version FROM durable.migrations ORDER BY 1")
    assert rows == [(m.version,) for m in migrations()]
    async with opened(pg_url, migrate=False) as store:
        assert await store.schema_version() == (latest_version(), latest_version())


# -- claiming and fencing -----------------------------------------------------------------


async def test_claim_is_exclusive_under_concurrency(pg_url: str) -> None:
    async with opened(pg_url) as setup:
        workflow = await setup.put_workflow(b"\0asm")
        ids = [
            (await setup.create_task(NewTask(name=f"t{i}", workflow_hash=workflow, input="{}"))).id
            for i in range(200)
        ]
    stores = [await open_store(pg_url) for _ in range(4)]
    claimed: list[tuple[int, str]] = []
    try:

        async def worker(worker_id: str, store: Store) -> None:
            while claims := await store.claim(worker_id=worker_id, limit=7, lease_seconds=60):
                claimed.extend((c.task.id, worker_id) for c in claims)
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            for n, store in enumerate(stores):
                for k in range(2):  # two claimers per store: more pool connections in play
                    tg.start_soon(worker, f"w{n}.{k}", store)
        task_ids = [task_id for task_id, _ in claimed]
        assert sorted(task_ids) == ids  # every task exactly once
        assert len({worker_id for _, worker_id in claimed}) > 1  # really concurrent
        owners = {task.id: task.owner for task in await stores[0].list_tasks(limit=500)}
        assert owners == dict(claimed)
    finally:
        for store in stores:
            await store.close()


async def test_expired_leases_are_taken_over_with_fresh_tokens(pg_url: str) -> None:
    async with opened(pg_url) as setup:
        workflow = await setup.put_workflow(b"\0asm")
        for i in range(20):
            await setup.create_task(NewTask(name=f"t{i}", workflow_hash=workflow, input="{}"))
    stores = [await open_store(pg_url) for _ in range(4)]
    leases: list[Lease] = []
    try:

        async def worker(worker_id: str, store: Store) -> None:
            for _ in range(15):
                # lease_seconds=0: every lease is expired at once, so claimers keep
                # taking tasks from each other; each takeover must get a new token.
                claims = await store.claim(worker_id=worker_id, limit=3, lease_seconds=0)
                leases.extend(c.lease for c in claims)

        async with anyio.create_task_group() as tg:
            for n, store in enumerate(stores):
                tg.start_soon(worker, f"w{n}", store)
        pairs = [(lease.task_id, lease.token) for lease in leases]
        assert len(pairs) == len(set(pairs))  # no token handed out twice
        tasks = {t.id: t for t in await stores[0].list_tasks(limit=100)}
        for task_id, task in tasks.items():
            mine = sorted(token for t, token in pairs if t == task_id)
            assert mine == list(range(1, len(mine) + 1))
            assert task.attempts == len(mine)
    finally:
        for store in stores:
            await store.close()


async def test_stale_worker_cannot_write_after_takeover(pg_url: str) -> None:
    async with opened(pg_url) as a_store, opened(pg_url) as b_store:
        task_id = await _task(a_store)
        (a,) = await a_store.claim(worker_id="a", limit=1, lease_seconds=60)
        await a_store.append(a.lease, [_event(0)], [])
        # A is presumed dead: B removes it, which expires its lease at once.
        await b_store.remove_worker("a")
        (b,) = await b_store.claim(worker_id="b", limit=1, lease_seconds=60)
        assert b.task.id == task_id
        assert b.lease.token == a.lease.token + 1
        log = LogChunk(position=1, stream=Stream.STDOUT, data=b"stale")
        with pytest.raises(LeaseLostError):
            await a_store.append(a.lease, [_event(1)], [log])
        with pytest.raises(LeaseLostError):
            await a_store.finish(a.lease, Completed(result="1"), [_event(1)], [log])
        with pytest.raises(LeaseLostError):
            await a_store.finish(a.lease, Released())
        assert [e.index for e in await b_store.load_history(task_id)] == [0]
        assert await b_store.read_logs(task_id) == []
        task = await b_store.get_task(task_id)
        assert (task.state, task.owner, task.attempts) == (TaskState.ACTIVE, "b", 2)
        await b_store.append(b.lease, [_event(1)], [])
        await b_store.finish(b.lease, Completed(result='"done"'), [_event(2)])
        assert (await a_store.get_task(task_id)).result == '"done"'


@pytest.mark.parametrize("write", ["append", "append_batch", "finish"])
async def test_write_racing_a_takeover_waits_and_is_refused(pg_url: str, write: str) -> None:
    """A stale write that starts while a takeover is in flight must not slip in first.

    The takeover is held open in a transaction on another connection; the stale write
    must block on it, then see the new lease and write nothing. Without the row lock in
    the fence, it would read the old owner from its snapshot and commit a stale event.
    """
    async with opened(pg_url) as a_store, opened(pg_url) as b_store:
        task_id = await _task(a_store)
        (a,) = await a_store.claim(worker_id="a", limit=1, lease_seconds=0)  # lapses at once
        async with b_store._pool.acquire() as conn:
            takeover = conn.transaction()
            await takeover.start()
            rows = await conn.fetch(
                queries()["claim"], "b", 1, 60.0, None, None, None, "", 0.0, PRELOAD_EVENTS
            )
            assert [row["lease_token"] for row in rows] == [a.lease.token + 1]
            result: list[BaseException | None] = []

            async def stale_write() -> None:
                try:
                    if write == "append":
                        await a_store.append(a.lease, [_event(0)], [])
                    elif write == "append_batch":
                        log = LogChunk(position=0, stream=Stream.STDOUT, data=b"x")
                        await a_store.append(a.lease, [_event(0), _event(1)], [log])
                    else:
                        await a_store.finish(a.lease, Completed(result="1"), [_event(0)])
                    result.append(None)
                except LeaseLostError as exc:
                    result.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(stale_write)
                await anyio.sleep(0.3)
                assert result == []  # blocked behind the takeover, not already written
                await takeover.commit()
        assert len(result) == 1
        assert isinstance(result[0], LeaseLostError)
        assert await b_store.load_history(task_id) == []
        assert await b_store.read_logs(task_id) == []
        task = await b_store.get_task(task_id)
        assert (task.state, task.owner) == (TaskState.ACTIVE, "b")


async def test_notify_racing_a_suspension_never_loses_the_wake_up(pg_url: str) -> None:
    async with opened(pg_url) as worker, opened(pg_url) as sender:
        for round_ in range(20):
            task_id = await _task(worker, f"t{round_}")
            (claim,) = await worker.claim(worker_id="w", limit=1, lease_seconds=60)
            assert claim.task.id == task_id

            async def suspend(claim: Claim = claim) -> None:
                await worker.finish(claim.lease, Suspended(wakeup_at=None, on_event=True))

            async def send(task_id: int = task_id) -> None:
                await sender.notify(task_id, "go", "1")

            async with anyio.create_task_group() as tg:
                # Alternate who starts first; the database decides who really wins.
                first, second = (suspend, send) if round_ % 2 else (send, suspend)
                tg.start_soon(first)
                tg.start_soon(second)
            # Whichever came first, the task must be runnable again now.
            assert (await worker.get_task(task_id)).state is TaskState.READY
            (again,) = await worker.claim(worker_id="w", limit=1, lease_seconds=60)
            await worker.finish(again.lease, Completed(result="1"))


async def test_cancel_racing_a_claim_is_never_lost(pg_url: str) -> None:
    async with opened(pg_url) as worker, opened(pg_url) as client:
        for round_ in range(20):
            task_id = await _task(worker, f"t{round_}")
            claims: list[Claim] = []

            async def take(claims: list[Claim] = claims) -> None:
                claims.extend(await worker.claim(worker_id="w", limit=1, lease_seconds=60))

            async def cancel(task_id: int = task_id) -> None:
                await client.request_cancel(task_id)

            async with anyio.create_task_group() as tg:
                first, second = (take, cancel) if round_ % 2 else (cancel, take)
                tg.start_soon(first)
                tg.start_soon(second)
            task = await worker.get_task(task_id)
            if claims:  # the claim won: the worker must learn of the cancel
                assert (task.state, task.cancel_requested) == (TaskState.ACTIVE, True)
                assert await worker.renew_leases(worker_id="w", lease_seconds=60) == [task_id]
                await worker.finish(claims[0].lease, Completed(result="1"))
            else:
                assert task.state is TaskState.CANCELLED


async def test_lease_expiry_uses_the_database_clock(pg_url: str) -> None:
    async with opened(pg_url) as store:
        await _task(store)
        (first,) = await store.claim(worker_id="a", limit=1, lease_seconds=0.3)
        assert await store.claim(worker_id="b", limit=1, lease_seconds=60) == []
        wakeup = await store.next_wakeup()
        assert wakeup is not None
        await anyio.sleep(0.4)
        (second,) = await store.claim(worker_id="b", limit=1, lease_seconds=60)
        assert second.lease.token == first.lease.token + 1
        with pytest.raises(LeaseLostError):
            await store.append(first.lease, [_event(0)], [])


async def test_refused_writes_leave_nothing(pg_url: str) -> None:
    async with opened(pg_url) as store:
        task_id = await _task(store)
        (claim,) = await store.claim(worker_id="w", limit=1, lease_seconds=60)
        log = LogChunk(position=0, stream=Stream.STDERR, data=b"x")
        await store.append(claim.lease, [_event(0), _event(1)], [log])
        bad = ([_event(1)], [_event(3)], [_event(2), _event(4)], [_event(2), _event(2)])
        for events in bad:
            for logs in ([], [log]):  # one event without logs takes a faster path
                with pytest.raises(ConflictError):
                    await store.append(claim.lease, events, logs)
                with pytest.raises(ConflictError):
                    await store.finish(claim.lease, Completed(result="1"), events, logs)
        assert [e.index for e in await store.load_history(task_id)] == [0, 1]
        assert [c.seq for c in await store.read_logs(task_id)] == [1]
        assert (await store.get_task(task_id)).state is TaskState.ACTIVE
        await store.finish(claim.lease, Released(), [_event(2)], [log, log])
        assert [c.seq for c in await store.read_logs(task_id)] == [1, 2, 3]


async def test_payloads_and_logs_are_byte_identical(pg_url: str) -> None:
    payload = '{"z": 1,  "a": [1.0, 2e3, -0.0], "s": "\\u00fc\u00fc\\n", "n": null}'
    data = bytes(range(256))
    async with opened(pg_url) as store:
        task_id = await _task(store)
        (claim,) = await store.claim(worker_id="w", limit=1, lease_seconds=60)
        await store.append(
            claim.lease,
            [Event(index=0, label="step ü", digest="abc", payload=payload)],
            [LogChunk(position=0, stream=Stream.STDOUT, data=data)],
        )
        (event,) = await store.load_history(task_id)
        assert (event.payload, event.label, event.digest) == (payload, "step ü", "abc")
        (chunk,) = await store.read_logs(task_id)
        assert (chunk.data, chunk.seq) == (data, 1)


async def test_suspended_task_wakes_by_database_time(pg_url: str) -> None:
    async with opened(pg_url) as store:
        task_id = await _task(store)
        (claim,) = await store.claim(worker_id="w", limit=1, lease_seconds=60)
        before = datetime.now(UTC)
        wake = before + timedelta(seconds=0.3)
        await store.finish(claim.lease, Suspended(wakeup_at=wake))
        after = datetime.now(UTC)
        # The wake-up is the timer's duration from the database's now(), taken while the
        # finish ran: never before `wake`, at most the call's own time after it.
        when = await store.next_wakeup()
        assert when is not None
        assert wake <= when <= wake + (after - before), (wake, when)
        assert await store.claim(worker_id="w", limit=1, lease_seconds=60) == []
        await anyio.sleep(0.4)
        (again,) = await store.claim(worker_id="w", limit=1, lease_seconds=60)
        assert (again.task.id, again.task.wakeup_at) == (task_id, None)
        assert again.task.attempts == 2


async def test_pool_serves_many_callers_with_few_connections(pg_url: str) -> None:
    store = await PostgresStore.open(pg_url, max_size=2)
    try:
        await store.migrate()
        results: list[int] = []

        async def call(n: int) -> None:
            results.append(await store._pool.fetchval("SELECT $1::int FROM pg_sleep(0.01)", n))

        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(call, n)
        assert sorted(results) == list(range(20))
        backends = await admin.fetch(
            pg_url,
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'durable'",
        )
        assert backends == [(2,)]
        # A caller cancelled mid-statement (or while waiting) must not leak a connection.
        with anyio.move_on_after(0.1):
            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(store._pool.execute, "SELECT pg_sleep(5)")
        assert await store._pool.fetchval("SELECT 42") == 42
        assert store._pool._size <= 2
    finally:
        await store.close()
    with pytest.raises(StorageError, match="closed"):
        await store.get_task(1)


# -- LISTEN/NOTIFY ------------------------------------------------------------------------


#: A wait that only a wake-up ends within a test's time.
WAKE_WAIT = 120.0


async def _time_wait(store: Store, seconds: float) -> float:
    start = time.monotonic()
    await store.wait_for_work(seconds)
    return time.monotonic() - start


async def test_wait_for_work_idles_when_nothing_happens(pg_url: str) -> None:
    async with opened(pg_url) as store:
        await store.next_wakeup()  # a check first, as a worker would
        assert await _time_wait(store, 0.5) >= 0.4
        await store.claim(worker_id="w", limit=1, lease_seconds=60)
        assert await _time_wait(store, 0.5) >= 0.4


@pytest.mark.parametrize("cause", ["create", "release", "suspend", "remove_worker"])
async def test_wait_for_work_wakes_on_another_connection(pg_url: str, cause: str) -> None:
    async with opened(pg_url) as waiter, opened(pg_url) as other:
        workflow = await other.put_workflow(b"\0asm")
        if cause != "create":
            await other.create_task(NewTask(name="t", workflow_hash=workflow, input="{}"))
            (claim,) = await other.claim(worker_id="x", limit=1, lease_seconds=60)
        assert await waiter.claim(worker_id="w", limit=1, lease_seconds=60) == []
        # Drain the wake-ups of the set-up above, however late a busy machine delivers them.
        while await _time_wait(waiter, 0.5) < 0.4:
            pass
        acted_at: list[float] = []

        async def act() -> None:
            acted_at.append(time.monotonic())
            if cause == "create":
                await other.create_task(NewTask(name="t", workflow_hash=workflow, input="{}"))
            elif cause == "release":
                await other.finish(claim.lease, Released())
            elif cause == "suspend":
                wake = datetime.now(UTC) + timedelta(hours=1)
                await other.finish(claim.lease, Suspended(wakeup_at=wake))
            else:
                await other.remove_worker("x")

        async with anyio.create_task_group() as tg:
            tg.start_soon(act)
            start = time.monotonic()
            await waiter.wait_for_work(WAKE_WAIT)
            woke = time.monotonic()
        assert woke - start < WAKE_WAIT  # woken, not timed out ...
        assert woke >= acted_at[0]  # ... by what the other connection did


async def test_wake_up_between_check_and_wait_is_not_lost(pg_url: str) -> None:
    async with opened(pg_url) as waiter, opened(pg_url) as other:
        assert await waiter.claim(worker_id="w", limit=1, lease_seconds=60) == []
        await _task(other)  # lands after the check, before the wait
        await anyio.sleep(0.1)
        assert await _time_wait(waiter, 10) < 1.0
        assert len(await waiter.claim(worker_id="w", limit=1, lease_seconds=60)) == 1


async def test_listener_survives_a_server_restart(pg_server: ServerHandle, pg_url: str) -> None:
    if not pg_server.can_restart:
        pytest.skip("the external server cannot be restarted by the tests")
    async with opened(pg_url) as waiter:
        await waiter.next_wakeup()
        await anyio.to_thread.run_sync(pg_server.restart)
        # Whatever was notified while the server was down is gone: wake up to re-check.
        assert await _time_wait(waiter, WAKE_WAIT) < WAKE_WAIT
        for _ in range(50):  # the pool reconnects; the first call may see a dead connection
            try:
                assert await waiter.claim(worker_id="w", limit=1, lease_seconds=60) == []
                break
            except StorageError:
                await anyio.sleep(0.1)
        async with opened(pg_url) as other:

            async def create() -> None:
                await anyio.sleep(0.2)
                await _task(other)

            async with anyio.create_task_group() as tg:
                tg.start_soon(create)
                elapsed = await _time_wait(waiter, WAKE_WAIT)
        assert elapsed < WAKE_WAIT  # woken by the new task, not timed out
        assert len(await waiter.claim(worker_id="w", limit=1, lease_seconds=60)) == 1


@pytest.mark.skipif(os.environ.get("DURABLE_BENCH") != "1", reason="set DURABLE_BENCH=1")
async def test_print_commit_rates(pg_url: str) -> None:
    """Not a check: prints the raw commit rate next to the one-event append rate.

    The two alternate in 0.1 s slices (about 2 s each in all), so that both see the
    same disk: on a shared machine the fsync rate can swing tenfold within seconds.
    """
    async with opened(pg_url) as store:
        await _task(store)
        (claim,) = await store.claim(worker_id="w", limit=1, lease_seconds=600)
        raw_count = append_count = 0
        raw_time = append_time = 0.0
        async with store._pool.acquire() as conn:
            await conn.execute("CREATE TABLE public.raw (id bigint PRIMARY KEY, payload text)")
        for _ in range(20):
            async with store._pool.acquire() as conn:
                start = time.perf_counter()
                while time.perf_counter() - start < 0.1:
                    await conn.execute(
                        "INSERT INTO public.raw VALUES ($1, $2)", raw_count, '{"v": 1}'
                    )
                    raw_count += 1
                raw_time += time.perf_counter() - start
            start = time.perf_counter()
            while time.perf_counter() - start < 0.1:
                await store.append(claim.lease, [_event(append_count, '{"v": 1}')], [])
                append_count += 1
            append_time += time.perf_counter() - start
    raw, append = raw_count / raw_time, append_count / append_time
    print(
        f"\nraw INSERT+COMMIT/s: {raw:,.0f}   store.append (1 event)/s: {append:,.0f}"
        f"   ({append / raw:.0%})"
    )


# -- the throwaway-server helper ------------------------------------------------------------


def test_missing_binaries_skip_loudly_but_fail_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg_testing, "find_binaries", lambda: None)
    monkeypatch.delenv(pg_testing.ENV_URL, raising=False)
    reason = pg_testing.unavailable_reason()
    assert reason is not None
    assert "NOT RUN" in reason
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="initdb"):
        pg_testing.skip_or_fail(reason)
    monkeypatch.setenv("CI", "true")

    def start_server() -> None:
        with pg_testing.postgres_server():
            pass  # pragma: no cover - never reached

    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        start_server()
    monkeypatch.setenv(pg_testing.ENV_URL, "postgresql://postgres@127.0.0.1:1/postgres")
    assert pg_testing.unavailable_reason() is None
    with pg_testing.postgres_server() as server:
        assert isinstance(server, ExternalPostgres)
        assert not server.can_restart
