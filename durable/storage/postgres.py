"""The Postgres backend: many workers on many machines share one database.

Design choices (see also the `.sql` files under `sql/postgres/`):

- Everything lives in schema `durable`. Times come from the database clock (`now()`),
  so workers whose clocks disagree still agree on leases and timers.
- Claiming is one statement, `SELECT ... FOR UPDATE SKIP LOCKED` feeding an `UPDATE`
  that bumps the lease token, so a task is never handed to two claimers.
- `append` and `finish` are each one fenced statement (one round trip). A CTE selects
  the task row only while owner, lease token and state are as the lease says and the
  first new event index continues the history, and locks it (`FOR KEY SHARE` for
  `append`, which conflicts with a claim's `FOR UPDATE`; the `UPDATE` itself for
  `finish`). The event and log inserts hang off that row, so a failed check writes
  nothing. Only then, on the slow path, a second read says whether the lease was lost
  or the index was wrong. `append` writes no new version of the task row, so an event
  costs about what a bare single-row insert does.
- `notify` and `request_cancel` lock the rows they decide on (`FOR NO KEY UPDATE`,
  which appends do not wait for) and take several rows newest id first, the order in
  which `finish` locks a child and then wakes its parent, so they cannot deadlock.
- Payloads are `text`, not `jsonb`, so replay returns byte-identical JSON.
- Idle workers block on LISTEN/NOTIFY (`_pg_listen.py`), never on a polling loop.
- asyncpg errors are translated at this edge by `_pg_errors.translate`; nothing above
  `durable.storage` imports asyncpg.
- A small pool of our own (`_pg_pool.py`) instead of asyncpg's, whose acquire/release
  costs about as much as the server's work for an event.
- The engine's connections pin `search_path` to `pg_catalog, pg_temp`: workflow SQL may
  create functions and operators in `public`, and one that matched a name in these
  queries better than the built-in (`public.cardinality(integer[])`, say) would otherwise
  run inside them, as the engine's role.
- Workflow SQL runs on a second pool, whose connections log in as a role of its own
  (`_pg_login.py`, `_pg_guest.py`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import anyio.to_thread
import asyncpg

from durable.core import side_writes
from durable.core.model import (
    Cancelled,
    Claim,
    Completed,
    ContinuedAsNew,
    Event,
    Failed,
    Lease,
    LogChunk,
    NewTask,
    Notification,
    Outcome,
    RunInfo,
    Suspended,
    Task,
    TaskState,
    WorkerInfo,
)
from durable.core.queue import RATE_WAKE_MARGIN
from durable.core.runs import run_seed
from durable.core.side_writes import SideWrite
from durable.core.status import StatusValue
from durable.errors import (
    ConflictError,
    InvalidStateError,
    LeaseLostError,
    NotFoundError,
    StorageError,
    TaskNotFoundError,
)
from durable.storage import _pg_codec as codec
from durable.storage import _pg_guest, _pg_queues, _pg_schema, fork, quarantine
from durable.storage._end_watch import EndWaiters, EndWatch
from durable.storage._pg_claim import PRELOAD_EVENTS, pending, read_ahead
from durable.storage._pg_errors import connect_error, translate
from durable.storage._pg_listen import WorkListener
from durable.storage._pg_login import GUEST_URL_ENV, GuestLogin, ensure_login
from durable.storage._pg_pool import Connect, ConnectionPool
from durable.storage._pg_queues import PgQueueRole
from durable.storage._pg_schedules import PgScheduleRole
from durable.storage._url import parse_url
from durable.storage.moves import BinaryMove

__all__ = ["PostgresStore"]

#: Seconds to wait for a new connection before calling the server unreachable.
CONNECT_TIMEOUT = 10.0

_SERVER_SETTINGS = {"application_name": "durable", "search_path": "pg_catalog, pg_temp"}
#: The claim's own connections plan it generic from its first execution. By default a
#: prepared statement's first five executions on a connection are planned afresh with
#: their values (custom plans): about 1 ms each for the claim, the hottest statement on
#: a worker's way from a wake-up to its attempt, and every new connection (a fresh
#: worker's, or one the pool opens under load) starts over. Only the claim runs there:
#: its generic plan reads the same partial indexes (tests/integration/test_claim_plan.py),
#: which other statements, with optional filters, need not.
_CLAIM_SETTINGS = {**_SERVER_SETTINGS, "plan_cache_mode": "force_generic_plan"}
#: At most this many claims of one store at a time (one worker loop makes one at a time).
_CLAIM_CONNECTIONS = 2

#: Binaries larger than this are hashed in a worker thread.
_HASH_IN_THREAD = 1 << 20

_Q = _pg_schema.queries()
log = logging.getLogger("durable.storage")


class _NotFenced(Exception):
    """A fenced statement matched nothing: roll its transaction back."""


class PostgresStore(PgScheduleRole, PgQueueRole):
    """A `Store` on PostgreSQL, through a small pool of asyncpg connections.

    Open it with `await PostgresStore.open(dsn)` (or `open_store("postgresql://...")`)
    and close it with `await store.close()`.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        connect: Connect,
        display: str,
        guest: GuestLogin,
        claims: ConnectionPool | None = None,
    ) -> None:
        """Wrap an open pool; use `open` instead. `claims`: the claim's connections
        (default: the pool's)."""
        self._pool = pool
        self._claims = pool if claims is None else claims
        self._display = display
        self._guest = guest  # the login workflow SQL runs as, and its own pool
        self._ends = EndWaiters()
        # LISTEN gets a connection of its own.
        self._listener = WorkListener(connect, on_end=self._heard_end)
        self._closed = False

    @classmethod
    async def open(
        cls, dsn: str, *, min_size: int = 1, max_size: int = 10, guest_dsn: str | None = None
    ) -> PostgresStore:
        """Connect to the server at `dsn` and return a store.

        Args:
            dsn: a `postgres://` or `postgresql://` URL.
            min_size: connections opened at once (at least one, which checks the URL).
            max_size: the most connections the pool will open (and the guest pool too).
            guest_dsn: the login workflow SQL runs as, a URL of the same database; by
                default `DURABLE_GUEST_DATABASE_URL`, else the login `durable migrate`
                creates. Its connections open when workflow SQL first runs.

        Raises:
            ConfigurationError: the URL is malformed, the login is refused, or the
                database does not exist.
            StorageError: the server cannot be reached.
        """
        display = parse_url(dsn).display()

        def connector(settings: dict[str, str]) -> Connect:
            async def connect() -> asyncpg.Connection:
                try:
                    return await asyncpg.connect(
                        dsn, timeout=CONNECT_TIMEOUT, server_settings=settings
                    )
                except Exception as exc:
                    raise connect_error(display, exc) from exc

            return connect

        connect = connector(_SERVER_SETTINGS)
        pool = ConnectionPool(connect, max_size=max_size)
        # Opened on the first claim: a client that only launches never opens one.
        claims = ConnectionPool(connector(_CLAIM_SETTINGS), max_size=_CLAIM_CONNECTIONS)
        try:
            guest = GuestLogin(pool, dsn, guest_dsn=guest_dsn, max_size=max_size)
            await pool.fill(max(1, min_size))  # fail now, with a clear error, not later
        except BaseException:
            await pool.close()
            raise
        return cls(pool, connect, display, guest, claims)

    @property
    def url(self) -> str:
        """The URL the store was opened with (passwords masked)."""
        return self._display

    async def close(self) -> None:
        """Close the listener and the pool. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._listener.close()
        await self._guest.close()
        if self._claims is not self._pool:
            await self._claims.close()
        await self._pool.close()

    # -- schema ---------------------------------------------------------------------------

    async def migrate(self) -> int:
        """Apply every pending migration, each in its own transaction, under an advisory
        lock; then create or repair the login workflow SQL runs as, unless one is named
        (a role that may not create roles gets a warning: see `_pg_login`)."""
        with translate("migrate the durable schema"):
            async with self._pool.acquire() as conn:
                version = await _pg_schema.migrate(conn)
                if not self._guest.explicit:
                    problem = await ensure_login(conn)
                    if problem is not None:
                        log.warning(
                            "workflow SQL will not run until it has a login: %s; name one with %s",
                            problem,
                            GUEST_URL_ENV,
                        )
        return version

    async def check_guest_login(self) -> str:
        """Connect as the login workflow SQL runs as, vet it, and return its name.

        Raises:
            ConfigurationError: it cannot log in, or may reach beyond the application's
                privileges (a superuser, a member of the engine's role ...).
        """
        return await self._guest.check()

    async def schema_version(self) -> tuple[int, int]:
        """Return `(current, latest)`; current is 0 on a database never migrated."""
        with translate("read the schema version"):
            async with self._pool.acquire() as conn:
                current = await _pg_schema.current_version(conn)
        return current, _pg_schema.latest_version()

    # -- workflow binaries ----------------------------------------------------------------

    async def put_workflow(self, wasm: bytes, *, name: str | None = None) -> str:
        """Store a binary under its SHA-256 and return the hex digest. Idempotent.

        With a `name`, the binary becomes the one `find_workflow(name)` returns.
        """
        if len(wasm) > _HASH_IN_THREAD:  # hashing 18 MB takes ~10 ms: not on the loop
            digest = (await anyio.to_thread.run_sync(hashlib.sha256, wasm)).hexdigest()
        else:
            digest = hashlib.sha256(wasm).hexdigest()
        with translate("store a workflow binary"):
            # Look first, so that re-putting an 18 MB binary does not send it again.
            if await self._pool.fetchval(_Q["workflow_exists"], digest) is not None:
                if name is not None:
                    await self._pool.execute(_Q["name_workflow"], digest, name)
            elif name is not None:
                await self._pool.execute(_Q["put_named_workflow"], digest, name, bytes(wasm))
            else:
                await self._pool.execute(_Q["put_workflow"], digest, None, bytes(wasm))
        return digest

    async def get_workflow(self, workflow_hash: str) -> bytes:
        """Return the binary with this SHA-256 hex digest, or raise `NotFoundError`."""
        with translate("read a workflow binary"):
            wasm: bytes | None = await self._pool.fetchval(_Q["get_workflow"], workflow_hash)
        if wasm is None:
            raise NotFoundError(f"workflow {workflow_hash} is not stored")
        return wasm

    async def find_workflow(self, name: str) -> str:
        """Return the hash of the binary most recently stored as `name`."""
        with translate("find a workflow by name"):
            digest: str | None = await self._pool.fetchval(_Q["find_workflow"], name)
        if digest is None:
            raise NotFoundError(f"no workflow named {name!r} is stored")
        return digest

    # -- tasks ----------------------------------------------------------------------------

    async def create_task(self, spec: NewTask) -> Task:
        """Insert a `ready` task (or return the one with the same idempotency key).

        Raises:
            NotFoundError: the workflow binary is not stored.
            TaskNotFoundError: `parent_id` names no task.
        """
        seed = spec.seed or secrets.randbelow(2**63 - 1) + 1
        with translate("create a task"):
            try:
                if _pg_queues.placed(spec):  # flow control: a transaction of its own
                    async with self._pool.acquire() as conn, conn.transaction():
                        row = await _pg_queues.create(conn, spec, seed)
                else:
                    row = await self._waking(
                        _Q["create_task"],
                        spec.name,
                        spec.workflow_hash,
                        spec.entry,
                        spec.input,
                        seed,
                        spec.parent_id,
                        spec.idempotency_key,
                        spec.timeout,
                        woke=lambda row: row is not None,  # inserted: a new ready task
                    )
            except asyncpg.ForeignKeyViolationError as exc:
                if spec.parent_id is not None and "parent" in (exc.constraint_name or ""):
                    raise TaskNotFoundError(spec.parent_id) from exc
                raise NotFoundError(f"workflow {spec.workflow_hash} is not stored") from exc
            if row is None:  # the idempotency key is taken: return that task
                row = await self._pool.fetchrow(_Q["task_by_key"], spec.idempotency_key)
            if row is None:  # pragma: no cover - keys are never deleted while in use
                raise ConflictError(f"idempotency key {spec.idempotency_key!r} vanished")
        return codec.task(row)

    async def get_task(self, task_id: int) -> Task:
        """Return the task, or raise `TaskNotFoundError`."""
        with translate("read a task"):
            row = await self._pool.fetchrow(_Q["get_task"], task_id)
        if row is None:
            raise TaskNotFoundError(task_id)
        return codec.task(row)

    async def list_tasks(
        self,
        *,
        states: Sequence[TaskState] | None = None,
        limit: int = 100,
        name_glob: str | None = None,
        parent_id: int | None = None,
    ) -> list[Task]:
        """Return up to `limit` tasks, newest first, filtered by state, name and parent."""
        wanted = None if states is None else [str(s) for s in states]
        regex = None if name_glob is None else codec.glob_to_regex(name_glob)
        with translate("list tasks"):
            rows = await self._pool.fetch(_Q["list_tasks"], wanted, limit, regex, parent_id)
        tasks = [codec.task(row) for row in rows]
        if name_glob is not None:  # belt and braces: agree with fnmatch exactly
            tasks = [t for t in tasks if fnmatch.fnmatchcase(t.name, name_glob)]
        return tasks

    # -- notifications and cancellation ---------------------------------------------------

    async def notify(
        self, task_id: int, event: str, data: str, *, key: str | None = None
    ) -> Notification:
        """Queue a notification and wake the task if it waits for one: one statement
        (after a look for the key's notification, if there is a key).

        The task row is locked while the notification goes in, so a concurrent
        `finish` either sees the wake-up mark or is seen suspended and woken.
        """
        with translate("notify task", task_id):
            if key is not None:
                row = await self._pool.fetchrow(_Q["notification_by_key"], task_id, key)
                if row is not None:
                    return codec.notification(row)
            found = await self._waking(
                _Q["notify"], task_id, event, data, key,
                woke=lambda row: row is not None and row["seq"] is not None
                and row["state"] == TaskState.SUSPENDED and row["on_event"],
            )  # fmt: skip
            if found is None:
                raise TaskNotFoundError(task_id)
            if found["seq"] is not None:
                return codec.notification(found)
            if TaskState(found["state"]).is_terminal:
                raise InvalidStateError(f"task {task_id} is already {found['state']}")
            # The same key went in concurrently: it wins.
            row = await self._pool.fetchrow(_Q["notification_by_key"], task_id, key)
        assert row is not None
        return codec.notification(row)

    async def _waking(
        self, query: str, *args: object, woke: Callable[[asyncpg.Record | None], bool]
    ) -> asyncpg.Record | None:
        """Run `query`, a statement committed on its own that may make work runnable, and
        return its row; if `woke(row)`, it did, and this process's own workers hear of
        it now, not after its notification's trip through the server (`_pg_listen`)."""
        async with self._pool.acquire() as conn:
            pid = conn.get_server_pid()
            expected = self._listener.expect_work(pid)
            row: asyncpg.Record | None = None
            try:
                row = await conn.fetchrow(query, *args)
            finally:
                self._listener.committed_work(pid, expected, woke=woke(row))
        return row

    async def next_notification(
        self, task_id: int, *, event: str | None = None
    ) -> Notification | None:
        """The oldest notification not yet consumed, optionally only with this `event`."""
        with translate("read the next notification of task", task_id):
            row = await self._pool.fetchrow(_Q["next_notification"], task_id, event)
        return None if row is None else codec.notification(row)

    async def request_cancel(self, task_id: int) -> Task:
        """Cancel the task and its unfinished descendants (active ones are flagged).

        One transaction. The family is locked first, so no member changes state between
        the decision and the write.
        """
        with translate("cancel task", task_id):
            async with self._pool.acquire() as conn, conn.transaction():
                family = await conn.fetch(_Q["lock_tree"], task_id)
                root = next((r for r in family if r["id"] == task_id), None)
                if root is None:
                    raise TaskNotFoundError(task_id)
                if TaskState(root["state"]).is_terminal:
                    raise InvalidStateError(f"task {task_id} is already {root['state']}")
                await self._cancel_family(conn, [r["id"] for r in family])
                row = await conn.fetchrow(_Q["get_task"], task_id)
        return codec.task(row)

    @staticmethod
    async def _cancel_family(conn: asyncpg.Connection, ids: list[int]) -> None:
        """End the ready and suspended tasks among `ids` (locked) and flag the active ones."""
        ended = await conn.fetch(_Q["cancel_tasks"], ids, codec.CANCELLED_ERROR)
        await conn.execute(_Q["flag_tasks"], ids)
        gone = {r["id"] for r in ended}
        parents = {r["parent_id"] for r in ended} - gone - {None}
        for parent in sorted(parents, reverse=True):  # newest first, as lock_tree
            await conn.execute(_Q["wake"], parent)

    async def _cancel_child(self, conn: asyncpg.Connection, task_id: int, child: int) -> None:
        """A `CancelChild` side-write: cancel `child` if it is a running child of `task_id`."""
        family = await conn.fetch(_Q["lock_tree"], child)
        root = next((r for r in family if r["id"] == child), None)
        if root is None or root["parent_id"] != task_id or TaskState(root["state"]).is_terminal:
            return  # not ours, or it ended meanwhile: nothing to do
        await self._cancel_family(conn, [r["id"] for r in family])

    async def _fenced(
        self,
        sql: str,
        args: Sequence[Any],
        lease: Lease,
        writes: Sequence[SideWrite],
        *,
        then: tuple[str, Sequence[Any]] | None = None,
    ) -> bool:
        """Run a fenced `append` or `finish` statement; whether the lease held.

        Children the side-writes cancel are cancelled in the same transaction, before
        the statement: children are locked before their parent, as everywhere else.
        `then`, a statement to run after it in the same transaction once it matched.
        """
        children = side_writes.cancelled_children(writes)
        if not children and then is None:
            return bool(await self._pool.fetchval(sql, *args))
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                for child in children:
                    await self._cancel_child(conn, lease.task_id, child)
                if not await conn.fetchval(sql, *args):
                    raise _NotFenced  # rolls the cancellations back
                if then is not None:
                    await conn.execute(then[0], *then[1])
        except _NotFenced:
            return False
        return True

    # -- workers and leases ---------------------------------------------------------------

    async def register_worker(self, info: WorkerInfo) -> None:
        """Record a live worker. Idempotent for the same id."""
        with translate("register a worker"):
            await self._pool.execute(
                _Q["register_worker"], info.id, info.hostname, info.pid, info.started_at
            )

    async def list_workers(self) -> list[WorkerInfo]:
        """Return every registered worker, oldest first."""
        with translate("list workers"):
            rows = await self._pool.fetch(_Q["list_workers"])
        return [
            WorkerInfo(id=r["id"], hostname=r["hostname"], pid=r["pid"], started_at=r["started_at"])
            for r in rows
        ]

    async def remove_worker(self, worker_id: str) -> None:
        """Forget a worker and expire its leases now, waking other workers. Idempotent."""
        with translate("remove a worker"):
            await self._pool.execute(_Q["remove_worker"], worker_id)

    async def claim(
        self,
        *,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        max_deaths: int | None = None,
        last_chances: int | None = None,
        affinity_grace: float = 0.0,
    ) -> list[Claim]:
        """Atomically claim up to `limit` runnable tasks for `worker_id`, oldest first.

        Quarantines (fails) the tasks whose takeover reaches `max_deaths`, in the same
        statement; see `Store.claim` and `durable.storage.quarantine`. Passes over tasks
        held for another worker for `affinity_grace` (`Store.claim`).
        """
        await self._listen()
        if limit <= 0:
            return []
        with translate("claim tasks"):
            found = await self._claims.fetch(
                _Q["claim"], worker_id, limit, float(lease_seconds), max_deaths,
                quarantine.last_chance(max_deaths), last_chances,
                quarantine.message_template(max_deaths or 0), float(affinity_grace),
                PRELOAD_EVENTS,
            )  # fmt: skip
            # One row of NULLs but `any_queue` when nothing was claimed (`_pg_claim`).
            rows = [row for row in found if row["id"] is not None]
            if len(rows) < limit and found[0]["any_queue"]:
                async with self._pool.acquire() as conn, conn.transaction():
                    rows += await _pg_queues.claim(
                        conn, worker_id, limit - len(rows), float(lease_seconds)
                    )
        rows = sorted(rows, key=lambda row: int(row["id"]))  # RETURNING has no order
        return [
            Claim(
                task=codec.task(row),
                lease=Lease(task_id=row["id"], worker_id=worker_id, token=row["lease_token"]),
                history_length=row["history_length"],
                start=read_ahead(row),
                notification=pending(row),
            )
            for row in rows
            if row["state"] == TaskState.ACTIVE  # the others were quarantined
        ]

    async def renew_leases(self, *, worker_id: str, lease_seconds: float) -> list[int]:
        """Push back this worker's leases (one statement); return its tasks asked to cancel."""
        with translate("renew leases"):
            rows = await self._pool.fetch(_Q["renew_leases"], worker_id, float(lease_seconds))
        return sorted(row["id"] for row in rows if row["cancel_requested"])

    async def next_wakeup(self, *, affinity_grace: float = 0.0) -> datetime | None:
        """The earliest suspended `wakeup_at`, active lease expiry, end of a held task's
        affinity grace or reopening of a rate-limited queue's window; None if none."""
        await self._listen()
        with translate("read the next wake-up"):
            row = await self._pool.fetchrow(_Q["next_wakeup"], float(affinity_grace))
        assert row is not None  # aggregates: always one row
        when: datetime | None = row["due"]
        opens: datetime | None = row["opens"]
        if opens is not None:
            opens += timedelta(seconds=RATE_WAKE_MARGIN)
        times = [t for t in (when, opens) if t is not None]
        return min(times) if times else None

    async def wait_for_work(self, timeout: float) -> None:  # noqa: ASYNC109 - the protocol's shape
        """Return when notified that work may be runnable, or after `timeout` seconds."""
        await self._listener.wait(max(0.0, timeout))

    @asynccontextmanager
    async def watch_end(self, task_id: int) -> AsyncIterator[EndWatch]:
        """A signal that `task_id` may have ended, for the block's duration (`EndSignals`).

        LISTEN on `durable_end` is in effect before the block starts, when the server
        can be reached; otherwise the watch only ever times out, and callers poll.
        """
        with self._ends.watch(task_id) as watch:
            with contextlib.suppress(StorageError):
                await self._listener.listen_ends()
            yield watch

    def _heard_end(self, task_id: int | None) -> None:
        if task_id is None:
            self._ends.wake_all()
        else:
            self._ends.ended(task_id)

    async def _listen(self) -> None:
        """Have LISTEN in effect before a check that a later `wait_for_work` relies on.

        Best effort: if the listener cannot connect, `wait_for_work` falls back to short
        sleeps, and the check itself will report a dead server.
        """
        if not self._listener.connected:
            with contextlib.suppress(StorageError):
                await self._listener.ensure()

    # -- history and output ---------------------------------------------------------------

    async def load_history(self, task_id: int) -> list[Event]:
        """Return the task's events in index order."""
        with translate("load the history of task", task_id):
            rows = await self._pool.fetch(_Q["load_history"], task_id)
        return [codec.event(row) for row in rows]

    async def load_attempt(self, task_id: int) -> tuple[list[Event], int]:
        """The history, and the output bytes logged at its end, in one statement."""
        with translate("load the history of task", task_id):
            rows = await self._pool.fetch(_Q["load_attempt"], task_id)
        events = [codec.event(row) for row in rows if row["idx"] is not None]
        return events, int(rows[0]["logged"])  # a row even for an empty history

    async def history_length(self, task_id: int) -> int:
        """How many events the task's history holds."""
        with translate("load the history of task", task_id):
            return int(await self._pool.fetchval(_Q["history_length"], task_id))

    async def append(
        self,
        lease: Lease,
        events: Sequence[Event],
        logs: Sequence[LogChunk],
        *,
        writes: Sequence[SideWrite] = (),
    ) -> None:
        """Durably append events and log chunks, and apply side-writes, in one fenced
        statement."""
        with translate("append to task", lease.task_id):
            if not codec.consecutive(events):
                await self._refuse(lease, events)
            if len(events) == 1 and not logs and not writes:  # the hot path
                (event,) = events
                status = await self._pool.execute(
                    _Q["append_one"], lease.task_id, lease.worker_id, lease.token,
                    event.index, event.label, event.digest, event.payload,
                )  # fmt: skip
                matched = status == "INSERT 0 1"
            else:
                matched = await self._fenced(_Q["append"], [
                    lease.task_id, lease.worker_id, lease.token,
                    *codec.write_args(events, logs, writes), *codec.status_args(writes),
                ], lease, writes)  # fmt: skip
            if not matched:
                await self._refuse(lease, events)

    async def finish(
        self,
        lease: Lease,
        outcome: Outcome,
        events: Sequence[Event] = (),
        logs: Sequence[LogChunk] = (),
        *,
        writes: Sequence[SideWrite] = (),
    ) -> None:
        """Append the last events and logs and apply `outcome`, in one fenced statement.

        A task that ends wakes its parent if the parent waits `on_event`. A `Suspended`
        task that was asked to cancel, or (with `on_event`) was woken while it ran,
        becomes `ready` instead, so it runs again at once.
        """
        with translate("finish task", lease.task_id):
            if not codec.consecutive(events):
                await self._refuse(lease, events)
            # Continuing: the next run is set up in the same transaction as the finish.
            then = (
                (_Q["continue_run"], [lease.task_id, outcome.input])
                if isinstance(outcome, ContinuedAsNew)
                else None
            )
            matched = await self._fenced(_Q["finish"], [
                lease.task_id, lease.worker_id, lease.token,
                *codec.write_args(events, logs, writes),
                *codec.outcome_args(outcome, datetime.now(UTC)),
                *codec.status_args(writes),
                isinstance(outcome, Suspended) and outcome.kept,
            ], lease, writes, then=then)  # fmt: skip
            if not matched:
                await self._refuse(lease, events)
        if isinstance(outcome, Completed | Failed | Cancelled):
            # Committed: this store's own waiters need not wait for the NOTIFY's round trip.
            self._ends.ended(lease.task_id)

    async def list_runs(self, task_id: int) -> list[RunInfo]:
        """The task's ended runs, oldest first (`RunStore`)."""
        with translate("read the runs of task", task_id):
            rows = await self._pool.fetch(_Q["list_runs"], task_id)
        return [
            RunInfo(run=r["run"], input=r["input"], events=r["events"], ended_at=r["ended_at"])
            for r in rows
        ]

    async def load_run_history(self, task_id: int, run: int) -> list[Event]:
        """The events of run `run` of the task, ended or current (`RunStore`)."""
        with translate("read the history of task", task_id):
            async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
                current = await conn.fetchval(_Q["task_run"], task_id)
                if current == run:
                    rows = await conn.fetch(_Q["load_history"], task_id)
                else:
                    rows = await conn.fetch(_Q["load_run_history"], task_id, run)
        return [codec.event(row) for row in rows]

    async def read_status(self, task_id: int) -> list[StatusValue]:
        """The task's status values, ordered by key."""
        with translate("read the status of task", task_id):
            rows = await self._pool.fetch(_Q["read_status"], task_id)
        return [codec.status_value(row) for row in rows]

    async def fork_task(
        self,
        origin_id: int,
        *,
        at: int,
        workflow_hash: str,
        input: str | None = None,
        run: int | None = None,
    ) -> Task:
        """A new task with the first `at` events of `origin_id`'s run (`ForkStore`)."""
        origin = await self.get_task(origin_id)
        with translate("fork task", origin_id):
            async with self._pool.acquire() as conn, conn.transaction():
                # Lock the origin's row: its history cannot grow while it is copied.
                await conn.execute(_Q["lock_task_for_fork"], origin_id)
                current = await conn.fetchval(_Q["task_run"], origin_id)
                run = current if run is None else run
                ended = {r["run"]: r for r in await conn.fetch(_Q["list_runs"], origin_id)}
                if run != current and run not in ended:
                    raise ConflictError(fork.no_run(origin_id, run, current))
                if run == current:
                    events = await conn.fetchval(_Q["event_count"], origin_id)
                    own_input = await conn.fetchval(_Q["task_input"], origin_id)
                else:
                    events, own_input = ended[run]["events"], ended[run]["input"]
                why = fork.check_at(at, events, origin_id)
                if why is not None:
                    raise ConflictError(why)
                text = own_input if input is None else input
                seed = run_seed(origin.seed, run)
                try:
                    row = await conn.fetchrow(_Q["fork_task"], origin_id, workflow_hash, text, seed)
                except asyncpg.ForeignKeyViolationError as exc:
                    raise NotFoundError(f"workflow {workflow_hash} is not stored") from exc
                assert row is not None  # the origin exists: read above, locked now
                if run == current:
                    await conn.execute(_Q["fork_events"], row["id"], origin_id, at)
                    await conn.execute(_Q["fork_status"], row["id"], origin_id, at)
                else:
                    await conn.execute(_Q["fork_run_events"], row["id"], origin_id, run, at)
                base = await conn.fetchval(_Q["task_log_base"], origin_id)
                bases = {n: r["log_base"] for n, r in ended.items()}
                low, high = fork.log_range(run, current, bases, base)
                await conn.execute(_Q["fork_logs"], row["id"], origin_id, at, low, high)
                await conn.execute(_Q["fork_origin"], row["id"], origin_id, at, run)
        return codec.task(row)

    async def workflow_hashes(self, name: str) -> list[str]:
        """Every binary stored under `name` (`WorkflowVersions`)."""
        with translate("read the binaries of workflow", name):
            rows = await self._pool.fetch(_Q["workflow_hashes"], name)
        return [row[0] for row in rows]

    async def task_origin(self, task_id: int) -> fork.TaskOrigin | None:
        """Where `task_id` was forked from, if it was (`ForkStore`)."""
        with translate("read the origin of task", task_id):
            row = await self._pool.fetchrow(_Q["task_origin"], task_id)
        return None if row is None else fork.TaskOrigin(origin_id=row[0], at=row[1], run=row[2])

    async def task_forks(self, origin_id: int, *, limit: int = 100) -> list[fork.TaskFork]:
        """The tasks forked from `origin_id` (`ForkStore`)."""
        with translate("read the forks of task", origin_id):
            rows = await self._pool.fetch(_Q["task_forks"], origin_id, limit)
        return [fork.TaskFork(task_id=r[0], at=r[1], run=r[2]) for r in rows]

    # -- moves onto a new binary (`durable.storage.moves`) --------------------------------

    async def move_task(
        self, task_id: int, *, from_hash: str, to_hash: str, attempts: int, events: int
    ) -> bool:
        """Move the task onto `to_hash` if it is as the upgrade saw it (`MoveStore`)."""
        with translate("move task", task_id):
            async with self._pool.acquire() as conn, conn.transaction():
                if await conn.fetchval(_Q["workflow_exists"], to_hash) is None:
                    raise NotFoundError(f"workflow {to_hash} is not stored")
                # Locked first: the UPDATE's count of events then sees every commit
                # before the lock (a stale snapshot could miss a claim's events).
                await conn.execute(_Q["lock_task_for_move"], task_id)
                moved = await conn.fetchval(
                    _Q["move_task"], task_id, to_hash, from_hash, attempts, events
                )
                if moved is None:
                    return False
                await conn.execute(_Q["record_binary_move"], task_id, from_hash, to_hash, events)
        return True

    async def binary_moves(self, task_id: int) -> list[BinaryMove]:
        """The task's moves onto other binaries, oldest first (`MoveStore`)."""
        with translate("read the moves of task", task_id):
            rows = await self._pool.fetch(_Q["binary_moves"], task_id)
        return [BinaryMove(from_hash=a, to_hash=b, events=n, moved_at=t) for a, b, n, t in rows]

    async def begin_guest_transaction(self, lease: Lease) -> _pg_guest.PgGuestTransaction:
        """Open a transaction for workflow SQL on a connection of the guest login
        (`_pg_guest`), with the lease's secret for its commit."""
        with translate("read the lease of task", lease.task_id):
            secret: UUID | None = await self._pool.fetchval(
                _Q["lease_secret"], lease.task_id, lease.worker_id, lease.token
            )
        return await _pg_guest.begin(self._guest, lease, secret, self._refuse)

    async def _refuse(self, lease: Lease, events: Sequence[Event]) -> None:
        """Raise the reason a fenced write wrote nothing: a lost lease, else a conflict."""
        row = await self._pool.fetchrow(_Q["lease_state"], lease.task_id)
        if (
            row is None
            or row["state"] != TaskState.ACTIVE
            or row["owner"] != lease.worker_id
            or row["lease_token"] != lease.token
        ):
            raise LeaseLostError(lease.task_id)
        indexes = [e.index for e in events]
        next_index = row["event_count"]
        if indexes and indexes != list(range(next_index, next_index + len(indexes))):
            raise ConflictError(
                f"task {lease.task_id}: event indexes {_brief(indexes)} do not continue its "
                f"history (next event index is {next_index})"
            )
        raise ConflictError(
            f"task {lease.task_id}: the notifications to consume are not all pending for it"
        )

    async def read_logs(
        self, task_id: int, *, after_seq: int = 0, limit: int | None = None
    ) -> list[LogChunk]:
        """Return up to `limit` of the task's log chunks with `seq > after_seq`, in order."""
        count = None if limit is None else max(limit, 0)  # LIMIT NULL: no limit
        with translate("read the logs of task", task_id):
            rows = await self._pool.fetch(_Q["read_logs"], task_id, after_seq, count)
        return [codec.log_chunk(row) for row in rows]

    async def logged_bytes(self, task_id: int, position: int) -> int:
        """Bytes of guest output logged at `position`."""
        with translate("read the logs of task", task_id):
            return int(await self._pool.fetchval(_Q["logged_bytes"], task_id, position))


def _brief(indexes: list[int]) -> str:
    if len(indexes) <= 5:
        return str(indexes)
    return f"[{indexes[0]}, {indexes[1]}, ..., {indexes[-1]}]"
