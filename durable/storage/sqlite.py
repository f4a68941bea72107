"""`SQLiteStore`: the zero-setup backend, one file shared by every process on a machine.

Design choices, and why:

* One aiosqlite connection per store, in autocommit mode (`isolation_level=None`), with
  transactions written out (`BEGIN IMMEDIATE ... COMMIT`). A lock serialises operations
  on the connection: a transaction spans several awaits, and a statement from another
  coroutine must never land inside it. It is an `asyncio.Lock` (aiosqlite is asyncio
  only anyway) because anyio's yields to the loop even when free: 5 us per append.
* Several OS processes share the file (a killed `durable run`, a later `durable worker`),
  so writes take SQLite's write lock up front: multi-statement writes open with
  `BEGIN IMMEDIATE`; a single write statement in autocommit mode is its own transaction
  and takes the write lock as it starts, before it reads anything, just as
  `BEGIN IMMEDIATE` does. Either way `busy_timeout` queues writers instead of failing
  with "database is locked" halfway through a read-then-write.
* The hot path is `append` of a few events. Each aiosqlite call is a round trip to its
  thread, costing about as much as a whole commit with `synchronous=NORMAL`, so the
  event insert is ONE statement that also checks the fence (task active, same owner,
  same lease token) and the gap (first new index = next index) in its WHERE clause:
  one round trip, one commit. Only a write that needs more than one statement (log
  chunks as well, or a very large batch) is wrapped in a transaction.
* For the same reason the other operations on a short task's path (launch, claim,
  finish, an attempt's first read, the worker's look for timers and schedules) run
  all their statements, transaction included, in one trip to that thread
  (`_sqlite_batch`).
* `claim` is one `UPDATE ... FROM (runnable, oldest first) RETURNING ...`, so two
  claimers, in this process or another, never take the same task, and a task it
  quarantines (`durable.storage.quarantine`) is failed in the same statement.
* A task's input lives in `durable_task_input`, not in its row: SQLite rewrites a
  whole row on every UPDATE, and the row is updated by every claim, lease renewal and
  finish. Written once at launch, the input is read back by a subquery.
* Times are REAL unix seconds (UTC) in the file, aware UTC datetimes in Python. The
  store's clock (injectable for tests) supplies them, not SQLite's.
* `wait_for_work` and `watch_end` hear of other processes' commits through wake-up
  sockets beside the file (`_sqlite_wake`), of this store's own directly; under both,
  a slow look at `PRAGMA data_version` (which moves when another connection commits)
  catches a wake-up that was lost.

The SQL lives in `durable/storage/sql/sqlite/` (see `_sqlite_schema`). Every driver
error is translated here by `_translate_errors`; nothing above `durable.storage` sees
aiosqlite or sqlite3.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import hashlib
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, assert_never

import aiosqlite
import anyio
import anyio.to_thread

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
    Released,
    RunInfo,
    Suspended,
    Task,
    TaskState,
    WorkerInfo,
)
from durable.core.queue import Queue, QueueSettings
from durable.core.runs import run_seed
from durable.core.schedule import Schedule, ScheduleSpec
from durable.core.side_writes import SideWrite
from durable.core.status import StatusValue
from durable.core.task_error import CANCELLED_ON_REQUEST
from durable.errors import (
    ConfigurationError,
    ConflictError,
    InvalidStateError,
    LeaseLostError,
    NotFoundError,
    SchemaError,
    StorageError,
    TaskNotFoundError,
)
from durable.storage import _sqlite_batch as batch
from durable.storage import _sqlite_codec as codec
from durable.storage import _sqlite_group as group
from durable.storage import _sqlite_guest as guest
from durable.storage import _sqlite_queues as queues
from durable.storage import _sqlite_schedules as schedules
from durable.storage import _sqlite_schema as schema
from durable.storage import _sqlite_wake as wake
from durable.storage import fork, quarantine
from durable.storage._end_watch import EndWaiters, EndWatch
from durable.storage._sqlite_codec import fence, maybe_dt, to_dt, to_ts
from durable.storage.moves import BinaryMove

__all__ = ["SQLiteStore"]

_Q = schema.queries()
_SYNCHRONOUS = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})
#: How often `wait_for_work` looks for commits by other connections, in seconds, without
#: the wake-up channel, and with it (then only a safety net for a lost wake-up).
_POLL = 0.05
_SLOW_POLL = 0.5
_CANCELLED = CANCELLED_ON_REQUEST.to_json()
#: In a claimed row, lease_token follows the task columns, then the history's length.
_TOKEN = len(schema.TASK_COLUMNS.split(","))


@contextmanager
def _translate_errors(path: Path, *, opening: bool = False) -> Iterator[None]:
    """Map sqlite3 (hence aiosqlite) errors to `durable.errors`; the one place that does.

    While `opening`, any failure means the path is unusable: `ConfigurationError`.
    """
    try:
        yield
    except sqlite3.Error as exc:
        message = (str(exc).splitlines() or [type(exc).__name__])[0]
        if opening:
            raise ConfigurationError(f"cannot open database {path}: {message}") from exc
        if isinstance(exc, sqlite3.IntegrityError):
            raise ConflictError(f"database {path}: {message}") from exc
        if "no such table" in message:
            raise SchemaError(
                f"database {path} has no durable schema ({message}): run `durable migrate`"
            ) from exc
        raise StorageError(f"database {path}: {message}") from exc


def _probe(path: Path) -> None:
    """Open and close the file with plain sqlite3: raises if it cannot be opened."""
    sqlite3.connect(path).close()


class SQLiteStore:
    """A `Store` in one SQLite file. Open it with `await SQLiteStore.open(path)`."""

    def __init__(
        self,
        connection: aiosqlite.Connection,
        path: Path,
        clock: Callable[[], float],
        data_version: int,
    ) -> None:
        """Wrap an open, configured connection; use `SQLiteStore.open` instead."""
        self._conn: aiosqlite.Connection | None = connection
        self._path = path
        self._clock = clock
        self._lock = asyncio.Lock()
        # For wait_for_work: our own notable commits so far, a signal for the next one,
        # and (data_version, commits) as they were when it last returned.
        self._changes = 0
        self._changed = anyio.Event()
        self._seen = (data_version, 0)
        # The next wake-up as a claim that took less than its limit read it, with the
        # grace it used and `_changes` then: the worker's look right after it (`next_wakeup`)
        # takes it instead of a trip of its own, once, if nothing changed meanwhile.
        self._wakeup_at_claim: tuple[int, float, list[float | None]] | None = None
        # Who waits here for a task's end, and the sockets other processes wake us by.
        self._ends = EndWaiters()
        self._wake = wake.WakeChannel(path, self._heard)
        # The connection for workflow SQL, opened on first use (`_sqlite_guest`).
        self._guest: guest.SQLiteGuest | None = None
        # Launches and attempts' ends that wait together commit together.
        self._group = group.GroupCommit(self._use, lambda: _translate_errors(self._path))

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 10.0,
        clock: Callable[[], datetime] | None = None,
    ) -> SQLiteStore:
        """Open (creating if needed) the database file at `path`. Does not migrate.

        Args:
            path: the database file; its directory is created if missing.
            synchronous: SQLite's `synchronous` setting. FULL (the default) makes every
                commit survive a power cut; NORMAL, in WAL mode, may lose the last
                commits on power loss (never on a process crash) but commits far faster.
            busy_timeout: seconds a writer waits for another process's write lock.
            clock: returns the current aware UTC time; tests inject a fake one.

        Raises:
            ConfigurationError: a bad setting, or the path cannot be created, opened or
                written.
        """
        mode = synchronous.upper()
        if mode not in _SYNCHRONOUS:
            choices = ", ".join(sorted(_SYNCHRONOUS))
            raise ConfigurationError(f"synchronous must be one of {choices}, not {synchronous!r}")
        path = Path(path)
        if str(path) != ":memory:":
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                raise ConfigurationError(
                    f"cannot create the database directory {path.parent}: {reason}"
                ) from exc
        with _translate_errors(path, opening=True):
            # Probe first: when aiosqlite's connect fails, its thread later reports to an
            # event loop that may be closed by then (an "Event loop is closed" traceback).
            await anyio.to_thread.run_sync(_probe, path)
            conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            with _translate_errors(path, opening=True):
                await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
                await conn.execute("PRAGMA journal_mode = WAL")
                await conn.execute(f"PRAGMA synchronous = {mode}")
                await conn.execute("PRAGMA foreign_keys = ON")
                # Find out now, not at the first write, whether the file is writable.
                await conn.execute("BEGIN IMMEDIATE")
                await conn.execute("ROLLBACK")
                data_version = await conn.execute_fetchall(_Q["data_version"])
        except BaseException:
            with anyio.CancelScope(shield=True):
                await conn.close()
            raise
        wall: Callable[[], float] = time.time if clock is None else lambda: to_ts(clock())
        return cls(conn, path, wall, int(next(iter(data_version))[0]))

    @property
    def url(self) -> str:
        """`sqlite:///` and the path (so an absolute path gets four slashes)."""
        return f"sqlite:///{self._path}"

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    async def close(self) -> None:
        """Close the connection once the operation in progress is done. Idempotent."""
        with anyio.CancelScope(shield=True):
            self._wake.close()
            if self._guest is not None:
                await self._guest.close()
            async with self._lock:
                conn, self._conn = self._conn, None
                if conn is not None:
                    with _translate_errors(self._path):
                        await conn.close()

    # -- plumbing -------------------------------------------------------------------------

    @asynccontextmanager
    async def _use(self) -> AsyncIterator[aiosqlite.Connection]:
        """Hold the connection for one operation, translating driver errors."""
        async with self._lock:
            if self._conn is None:
                raise StorageError(f"the store for {self.url} is closed")
            with _translate_errors(self._path):
                yield self._conn

    @staticmethod
    @asynccontextmanager
    async def _transaction(conn: aiosqlite.Connection) -> AsyncIterator[None]:
        """`BEGIN IMMEDIATE ... COMMIT`, rolled back on any error or cancellation."""
        try:
            # Inside the try: if the caller is cancelled while BEGIN is queued, BEGIN
            # still runs on aiosqlite's thread, and must be rolled back.
            await conn.execute("BEGIN IMMEDIATE")
            yield
            await conn.execute("COMMIT")
        except BaseException:
            # Shielded: a cancelled caller must not leave the shared connection inside a
            # transaction. rollback() does nothing if no transaction is open (BEGIN
            # failed, or COMMIT went through after all).
            with anyio.CancelScope(shield=True):
                await conn.rollback()
            raise

    @staticmethod
    async def _fetch(conn: aiosqlite.Connection, query: str, *params: Any) -> list[Any]:
        return list(await conn.execute_fetchall(_Q[query], params))

    def _notify(self, message: bytes = wake.WORK) -> None:
        """After a commit: wake our own waiters (data_version does not see our commits),
        then every other process's (`_sqlite_wake`)."""
        self._heard(message)
        self._wake.send(message)

    def _heard(self, message: bytes) -> None:
        """Wake this store's waiters for `message` (a `_sqlite_wake` message)."""
        self._changes += 1
        self._changed.set()
        self._changed = anyio.Event()
        if not self._ends:
            return
        if message == wake.ANY_END:
            self._ends.wake_all()
        elif message.startswith(b"e"):
            try:
                self._ends.ended(int(message[1:]))
            except ValueError:
                self._ends.wake_all()  # not ours to judge: look at them all again

    # -- schema ---------------------------------------------------------------------------

    async def migrate(self) -> int:
        """Apply pending migrations, each in its own `BEGIN IMMEDIATE` transaction.

        Safe under concurrent callers in many processes: each migration checks again,
        holding the write lock, whether another process applied it first.
        """
        latest = schema.latest_version()
        async with self._use() as conn:
            async with self._transaction(conn):
                await conn.execute(_Q["migrations_table"])
            current = (await self._fetch(conn, "schema_version"))[0][0]
            if current > latest:
                raise SchemaError(
                    f"database {self._path} is at schema version {current}, newer than this "
                    f"durable knows ({latest}): upgrade durable"
                )
            for migration in schema.migrations()[current:]:
                async with self._transaction(conn):
                    if await self._fetch(conn, "migration_applied", migration.version):
                        continue  # another process got there first
                    for statement in migration.statements:
                        await conn.execute(statement)
                    await conn.execute(
                        _Q["record_migration"], (migration.version, migration.name, time.time())
                    )
            return int((await self._fetch(conn, "schema_version"))[0][0])

    async def schema_version(self) -> tuple[int, int]:
        """Return `(current, latest)`; current is 0 for a file never migrated."""
        async with self._use() as conn:
            current = 0
            if await self._fetch(conn, "has_migrations_table"):
                current = (await self._fetch(conn, "schema_version"))[0][0]
        return int(current), schema.latest_version()

    # -- workflow binaries ----------------------------------------------------------------

    async def put_workflow(self, wasm: bytes, *, name: str | None = None) -> str:
        """Store a binary under its SHA-256 and return the hex digest. Idempotent.

        With a `name`, the binary becomes the one `find_workflow(name)` returns.
        """
        digest = hashlib.sha256(wasm).hexdigest()
        now = self._clock()
        async with self._use() as conn:
            if name is None:
                await conn.execute(_Q["put_workflow"], (digest, None, bytes(wasm), now))
                return digest
            async with self._transaction(conn):
                await conn.execute(_Q["put_workflow"], (digest, name, bytes(wasm), now))
                await conn.execute(_Q["name_workflow"], (name, digest, now))
        return digest

    async def get_workflow(self, workflow_hash: str) -> bytes:
        """Return the stored binary, or raise `NotFoundError`."""
        async with self._use() as conn:
            rows = await self._fetch(conn, "get_workflow", workflow_hash)
        if not rows:
            raise NotFoundError(f"workflow {workflow_hash} is not stored")
        return bytes(rows[0][0])

    async def find_workflow(self, name: str) -> str:
        """Return the hash of the binary most recently stored as `name`."""
        async with self._use() as conn:
            rows = await self._fetch(conn, "find_workflow", name)
        if not rows:
            raise NotFoundError(f"no workflow named {name!r} is stored")
        return str(rows[0][0])

    # -- tasks ----------------------------------------------------------------------------

    async def create_task(self, spec: NewTask) -> Task:
        """Insert a `ready` task, or return the one that already has its idempotency key.

        Raises:
            NotFoundError: the workflow binary is not stored.
            TaskNotFoundError: `parent_id` names no task.
        """
        now = self._clock()
        seed = spec.seed or secrets.randbits(63) or 1
        deadline = None if spec.timeout is None else now + spec.timeout
        params = (
            spec.name, spec.entry, seed, now, now, spec.parent_id, spec.idempotency_key,
            deadline, spec.workflow_hash, spec.parent_id, spec.parent_id,
        )  # fmt: skip

        def insert(db: sqlite3.Connection) -> list[Any]:
            with batch.transaction(db):
                rows = db.execute(_Q["create_task"], params).fetchall()
                if rows:
                    db.execute(_Q["insert_input"], (rows[0][0], spec.input))
            return rows

        plain = not (spec.queue or spec.priority is not None or spec.debounce_key)
        # A plain launch: one hop, and one commit with the writes waiting beside it.
        rows = await self._group.run(insert) if plain else []
        if rows:
            self._notify()
            return dataclasses.replace(codec.task(rows[0]), input=spec.input)
        async with self._use() as conn:
            if not plain:
                async with self._transaction(conn):
                    same = await queues.debounced(conn, spec, now)
                    if same is not None:  # a debounced launch: the waiting task, renewed
                        rows = await self._fetch(conn, "get_task", same)
                        self._notify()
                        return codec.task(rows[0])
                    rows = await self._fetch(conn, "create_task", *params)
                    if rows:
                        await conn.execute(_Q["insert_input"], (rows[0][0], spec.input))
                        await queues.place(conn, rows[0][0], spec, now)
                        rows = await self._fetch(conn, "get_task", rows[0][0])
            if rows:
                self._notify()
                return dataclasses.replace(codec.task(rows[0]), input=spec.input)
            # Nothing inserted: the key is taken, or the binary or the parent is missing.
            if spec.idempotency_key is not None:
                rows = await self._fetch(conn, "task_by_key", spec.idempotency_key)
                if rows:
                    return codec.task(rows[0])
            stored = await self._fetch(conn, "workflow_exists", spec.workflow_hash)
        if not stored:
            raise NotFoundError(f"workflow {spec.workflow_hash} is not stored")
        raise TaskNotFoundError(spec.parent_id or 0)

    async def get_task(self, task_id: int) -> Task:
        """Return the task, or raise `TaskNotFoundError`."""
        async with self._use() as conn:
            rows = await self._fetch(conn, "get_task", task_id)
        if not rows:
            raise TaskNotFoundError(task_id)
        return codec.task(rows[0])

    async def list_tasks(
        self,
        *,
        states: Sequence[TaskState] | None = None,
        limit: int = 100,
        name_glob: str | None = None,
        parent_id: int | None = None,
    ) -> list[Task]:
        """Return up to `limit` tasks, newest first, filtered by state, name and parent."""
        sql, params = codec.list_tasks_query(states, limit, name_glob, parent_id)
        async with self._use() as conn:
            rows = await conn.execute_fetchall(sql, params)
        tasks = [codec.task(row) for row in rows]
        if name_glob is not None:  # GLOB's [^...] is fnmatch's [!...]: agree with memory
            tasks = [t for t in tasks if fnmatch.fnmatchcase(t.name, name_glob)]
        return tasks

    # -- notifications and cancellation ---------------------------------------------------

    async def notify(
        self, task_id: int, event: str, data: str, *, key: str | None = None
    ) -> Notification:
        """Queue a notification and wake the task if it waits for one. Atomic."""
        now = self._clock()
        async with self._use() as conn:
            async with self._transaction(conn):
                if key is not None:
                    rows = await self._fetch(conn, "notification_by_key", task_id, key)
                    if rows:
                        return codec.notification(rows[0])
                await self._check_running(conn, task_id)
                rows = await self._fetch(
                    conn, "insert_notification", task_id, event, data, key, now
                )
                await conn.execute(_Q["wake"], (now, task_id))
            self._notify()
        return codec.notification(rows[0])

    async def next_notification(
        self, task_id: int, *, event: str | None = None
    ) -> Notification | None:
        """The oldest notification not yet consumed, optionally only with this `event`."""
        async with self._use() as conn:
            rows = await self._fetch(conn, "next_notification", task_id, event, event)
        return codec.notification(rows[0]) if rows else None

    async def request_cancel(self, task_id: int) -> Task:
        """Cancel the task and its unfinished descendants (active ones are flagged)."""
        now = self._clock()
        async with self._use() as conn:
            async with self._transaction(conn):
                await self._check_running(conn, task_id)
                ended = await self._fetch(conn, "cancel_tree", task_id, _CANCELLED, now)
                await conn.execute(_Q["flag_tree"], (task_id, now))
                gone = {tid for tid, _ in ended}
                for parent in {p for _, p in ended if p is not None and p not in gone}:
                    await conn.execute(_Q["wake"], (now, parent))
                rows = await self._fetch(conn, "get_task", task_id)
            self._notify(wake.ANY_END)
        return codec.task(rows[0])

    async def _check_running(self, conn: aiosqlite.Connection, task_id: int) -> None:
        rows = await self._fetch(conn, "task_state", task_id)
        if not rows:
            raise TaskNotFoundError(task_id)
        if TaskState(rows[0][0]).is_terminal:
            raise InvalidStateError(f"task {task_id} is already {rows[0][0]}")

    # -- workers and leases ---------------------------------------------------------------

    async def register_worker(self, info: WorkerInfo) -> None:
        """Record a live worker (the latest registration for an id wins). Idempotent."""
        params = (info.id, info.hostname, info.pid, to_ts(info.started_at))
        async with self._use() as conn:
            await conn.execute(_Q["register_worker"], params)

    async def list_workers(self) -> list[WorkerInfo]:
        """Return every registered worker, oldest first."""
        async with self._use() as conn:
            rows = await self._fetch(conn, "list_workers")
        return [WorkerInfo(id=i, hostname=h, pid=p, started_at=to_dt(s)) for i, h, p, s in rows]

    async def remove_worker(self, worker_id: str) -> None:
        """Forget the worker and expire its leases now, in one transaction. Idempotent."""
        async with self._use() as conn:
            async with self._transaction(conn):
                await conn.execute(_Q["delete_worker"], (worker_id,))
                await conn.execute(_Q["expire_leases"], (self._clock(), worker_id))
            self._notify()

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
        """Claim up to `limit` runnable tasks, oldest first, in one UPDATE statement.

        Quarantines (fails) the tasks whose takeover reaches `max_deaths`, in the same
        statement; see `Store.claim` and `durable.storage.quarantine`. Passes over tasks
        held for another worker for `affinity_grace` (`Store.claim`).
        """
        if limit <= 0:
            return []
        template = quarantine.message_template(max_deaths or 0)
        last = quarantine.last_chance(max_deaths)

        def take(
            db: sqlite3.Connection,
        ) -> tuple[
            list[Any], dict[int, int], dict[int, Notification], bool, list[float | None] | None
        ]:
            # The clock is read once the connection is ours: a lease must not start
            # while the claim still waits for another operation to finish.
            now = self._clock()
            params = (
                worker_id, now + lease_seconds, now, limit, max_deaths, last, last_chances,
                template, now - affinity_grace,
            )  # fmt: skip
            rows = db.execute(_Q["claim"], params).fetchall()
            queued = len(rows) < limit and queues.any_queue(db)
            # Short of its limit, a worker looks for the next wake-up next: read it now.
            wakeup = _next_wakeup(db, now, affinity_grace) if len(rows) < limit else None
            return rows, _logged_at_start(db, rows), _pending(db, rows), queued, wakeup

        changes = self._changes
        async with self._use() as conn:
            rows, logged, notes, queued, wakeup = await batch.run(conn, take)
            self._wakeup_at_claim = None
            if wakeup is not None and not queued:
                self._wakeup_at_claim = (changes, affinity_grace, wakeup)
            if queued:
                async with self._transaction(conn):
                    now = self._clock()
                    expires = now + lease_seconds
                    rows += await queues.claim(conn, worker_id, limit - len(rows), expires, now)
        rows.sort(key=lambda row: int(row[0]))  # RETURNING has no defined order
        if any(row[5] != TaskState.ACTIVE for row in rows):
            # Quarantined (ended): places of `limit` went to them; look again.
            self._notify(wake.ANY_END)
        return [
            Claim(
                task=codec.task(row),
                lease=Lease(task_id=row[0], worker_id=worker_id, token=row[_TOKEN]),
                history_length=row[_TOKEN + 1],
                start=None if row[0] not in logged else ([], logged[row[0]]),
                notification=notes.get(row[0]),
            )
            for row in rows
            if row[5] == TaskState.ACTIVE
        ]

    async def renew_leases(self, *, worker_id: str, lease_seconds: float) -> list[int]:
        """Push back this worker's leases; return its tasks with a cancel request."""
        async with self._use() as conn:
            expires = self._clock() + lease_seconds  # read once the connection is ours
            rows = await self._fetch(conn, "renew_leases", expires, worker_id)
        return sorted(task_id for task_id, cancel in rows if cancel)

    async def next_wakeup(self, *, affinity_grace: float = 0.0) -> datetime | None:
        """The earliest suspended `wakeup_at`, active lease expiry, end of a held task's
        affinity grace or reopening of a rate-limited queue's window, or None.

        Right after a claim short of its limit, with nothing changed since as far as this
        store knows, the claim's own look at them (no trip of its own)."""
        at_claim, self._wakeup_at_claim = self._wakeup_at_claim, None
        if at_claim is not None and at_claim[:2] == (self._changes, affinity_grace):
            found = at_claim[2]
        else:
            async with self._use() as conn:
                found = await batch.run(
                    conn, lambda db: _next_wakeup(db, self._clock(), affinity_grace)
                )
        times = [t for t in found if t is not None]
        return maybe_dt(min(times) if times else None)

    async def wait_for_work(self, timeout: float) -> None:  # noqa: ASYNC109 - Store protocol
        """Return when something may have changed since the last return, or after `timeout`.

        Other processes' commits wake it through the wake-up sockets, with `PRAGMA
        data_version` looked at every 0.5 s under them (every 50 ms where the sockets
        are unavailable); this store's own task creations, releases, suspensions,
        wake-ups and worker removals signal directly. A change made between two calls
        is never missed: the next call returns at once.
        """
        poll = _SLOW_POLL if self._wake.listen() else _POLL
        deadline = anyio.current_time() + timeout
        while True:
            if self._changes != self._seen[1]:
                # Told directly (our own commit, or a wake-up): no need to ask SQLite.
                self._seen = (self._seen[0], self._changes)
                return
            async with self._use() as conn:
                version = (await self._fetch(conn, "data_version"))[0][0]
            seen = (int(version), self._changes)
            if seen != self._seen:
                self._seen = seen
                return
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                return
            with anyio.move_on_after(min(remaining, poll)):
                await self._changed.wait()

    @asynccontextmanager
    async def watch_end(self, task_id: int) -> AsyncIterator[EndWatch]:
        """A signal that `task_id` may have ended, for the block's duration (see `EndSignals`).

        Set by this store's own `finish` and cancels directly, and by other processes'
        through the wake-up sockets.
        """
        self._wake.listen()
        with self._ends.watch(task_id) as watch:
            yield watch

    # -- history and output ---------------------------------------------------------------

    async def load_history(self, task_id: int) -> list[Event]:
        """Return the task's events in index order ([] for an unknown task)."""
        async with self._use() as conn:
            rows = await self._fetch(conn, "load_history", task_id)
        return [codec.event(row) for row in rows]

    async def load_attempt(self, task_id: int) -> tuple[list[Event], int]:
        """The history, and the output bytes logged at its end: one hop."""

        def read(db: sqlite3.Connection) -> tuple[list[Any], int]:
            rows = db.execute(_Q["load_history"], (task_id,)).fetchall()
            at = (task_id, len(rows), task_id)
            return rows, int(db.execute(_Q["logged_bytes"], at).fetchone()[0])

        async with self._use() as conn:
            rows, logged = await batch.run(conn, read)
        return [codec.event(row) for row in rows], logged

    async def history_length(self, task_id: int) -> int:
        """How many events the task's history holds."""
        async with self._use() as conn:
            rows = await self._fetch(conn, "next_index", task_id)
        return int(rows[0][0])

    async def append(
        self,
        lease: Lease,
        events: Sequence[Event],
        logs: Sequence[LogChunk],
        *,
        writes: Sequence[SideWrite] = (),
    ) -> None:
        """Append events and log chunks and apply side-writes, fenced, all or nothing."""
        statements = codec.fenced_writes(lease, events, logs, writes, self._clock())
        async with self._use() as conn:
            if not codec.consecutive(events):
                raise await self._refusal(conn, lease, "the events' indexes are not consecutive")
            if not statements:
                # Nothing to write; still say whether the lease holds.
                if not (await self._fetch(conn, "lease_holds", *fence(lease)))[0][0]:
                    raise LeaseLostError(lease.task_id)
            else:
                await self._writes(conn, lease, statements)

    async def finish(
        self,
        lease: Lease,
        outcome: Outcome,
        events: Sequence[Event] = (),
        logs: Sequence[LogChunk] = (),
        *,
        writes: Sequence[SideWrite] = (),
    ) -> None:
        """Append the last events and logs and apply `outcome`, all or nothing.

        A task that ends wakes its parent if the parent waits `on_event`. A `Suspended`
        task that was asked to cancel, or (with `on_event`) was woken while it ran,
        becomes `ready` instead, so it runs again at once.
        """
        now = self._clock()
        statements = codec.fenced_writes(lease, events, logs, writes, now)
        ends = isinstance(outcome, Completed | Failed | Cancelled)
        values: tuple[Any, ...]
        extra: tuple[int, ...] = ()  # after the fence: `finish_suspend`'s ?7
        match outcome:
            case Completed(result=result):
                sql, values = _Q["finish_end"], ("complete", result, None, now)
            case Failed(error=error):
                sql, values = _Q["finish_end"], ("failed", None, error, now)
            case Cancelled(error=error):
                sql, values = _Q["finish_end"], ("cancelled", None, error, now)
            case Suspended(wakeup_at=wakeup_at, on_event=on_event):
                at = None if wakeup_at is None else to_ts(wakeup_at)
                sql, values = _Q["finish_suspend"], (int(on_event), at, now)
                extra = (int(outcome.kept),)
            case Released(started=started):
                sql, values = _Q["finish_release"], (int(started), now)
            case ContinuedAsNew():
                sql, values = _Q["finish_continue"], (now,)
            case _:
                assert_never(outcome)
        params = (*values, *fence(lease), *extra)
        continued = isinstance(outcome, ContinuedAsNew)
        # A waiter in this process (`Client.wait`) gets the ended row with its signal,
        # read here in the same trip, and need not read it again (`_end_watch`).
        watched = ends and self._ends.watching(lease.task_id)

        def write(db: sqlite3.Connection) -> Any:
            if not statements and not ends and not continued:
                if db.execute(sql, params).rowcount != 1:  # autocommit
                    raise LeaseLostError(lease.task_id)
                return None
            with batch.transaction(db):
                for statement in statements:
                    _write(db, statement)
                if isinstance(outcome, ContinuedAsNew):
                    _continue_run(db, lease.task_id, outcome.input, now)
                if db.execute(sql, params).rowcount != 1:
                    raise LeaseLostError(lease.task_id)  # rolls the moves back too
                if ends:
                    db.execute(_Q["wake_parent"], (now, lease.task_id))
                if watched:
                    return db.execute(_Q["get_task"], (lease.task_id,)).fetchone()
            return None

        if not codec.consecutive(events):
            async with self._use() as conn:
                raise await self._refusal(conn, lease, "the events' indexes are not consecutive")
        try:
            # One hop for the whole transaction, committed with the writes beside it.
            row = await self._group.run(write)
        except batch.Shortfall as exc:
            async with self._use() as conn:
                raise await self._refusal(conn, lease, exc.what) from None
        if row is not None:  # committed: the waiters may have it
            self._ends.ended(lease.task_id, codec.task(row))
        self._notify(wake.end_message(lease.task_id) if ends else wake.WORK)

    async def list_runs(self, task_id: int) -> list[RunInfo]:
        """The task's ended runs, oldest first (`RunStore`)."""
        async with self._use() as conn:
            rows = await self._fetch(conn, "list_runs", task_id)
        return [
            RunInfo(run=run, input=text, events=count, ended_at=to_dt(at))
            for run, text, count, at, _base in rows
        ]

    async def load_run_history(self, task_id: int, run: int) -> list[Event]:
        """The events of run `run` of the task, ended or current (`RunStore`)."""
        async with self._use() as conn:
            current = await self._fetch(conn, "get_task", task_id)
            if current and codec.task(current[0]).run == run:
                rows = await self._fetch(conn, "load_history", task_id)
            else:
                rows = await self._fetch(conn, "load_run_history", task_id, run)
        return [codec.event(row) for row in rows]

    async def read_logs(
        self, task_id: int, *, after_seq: int = 0, limit: int | None = None
    ) -> list[LogChunk]:
        """Return up to `limit` of the task's log chunks with `seq > after_seq`, in order."""
        count = -1 if limit is None else max(limit, 0)  # SQLite: a negative LIMIT is none
        async with self._use() as conn:
            rows = await self._fetch(conn, "read_logs", task_id, after_seq, count)
        return [codec.log_chunk(row) for row in rows]

    async def logged_bytes(self, task_id: int, position: int) -> int:
        """Bytes of guest output logged at `position`."""
        async with self._use() as conn:
            rows = await self._fetch(conn, "logged_bytes", task_id, position, task_id)
        return int(rows[0][0])

    async def read_status(self, task_id: int) -> list[StatusValue]:
        """The task's status values, ordered by key."""
        async with self._use() as conn:
            rows = await self._fetch(conn, "read_status", task_id)
        return [
            StatusValue(key=key, value=value, position=position, updated_at=to_dt(at))
            for key, value, position, at in rows
        ]

    # -- forks (`durable.storage.fork`) ----------------------------------------------------

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
        now = self._clock()
        async with self._use() as conn, self._transaction(conn):
            current = codec.task((await self._fetch(conn, "get_task", origin_id))[0]).run
            run = current if run is None else run
            ended = {r[0]: r for r in await self._fetch(conn, "list_runs", origin_id)}
            if run != current and run not in ended:
                raise ConflictError(fork.no_run(origin_id, run, current))
            if run == current:
                events = (await self._fetch(conn, "event_count", origin_id))[0][0]
                own_input = origin.input
            else:
                events, own_input = ended[run][2], ended[run][1]
            why = fork.check_at(at, events, origin_id)
            if why is not None:
                raise ConflictError(why)
            seed = run_seed(origin.seed, run)
            rows = await self._fetch(conn, "fork_task", seed, now, now, workflow_hash, origin_id)
            if not rows:
                raise NotFoundError(f"workflow {workflow_hash} is not stored")
            task_id = rows[0][0]
            text = own_input if input is None else input
            await conn.execute(_Q["insert_input"], (task_id, text))
            if run == current:
                await conn.execute(_Q["fork_events"], (task_id, origin_id, at))
                await conn.execute(_Q["fork_status"], (task_id, origin_id, at))
            else:
                await conn.execute(_Q["fork_run_events"], (task_id, origin_id, run, at))
            base = (await self._fetch(conn, "task_log_base", origin_id))[0][0]
            bases = {n: r[4] for n, r in ended.items()}
            low, high = fork.log_range(run, current, bases, base)
            await conn.execute(_Q["fork_logs"], (task_id, origin_id, at, low, high))
            await conn.execute(_Q["fork_origin"], (task_id, origin_id, at, run))
        self._notify()
        return dataclasses.replace(codec.task(rows[0]), input=text)

    async def workflow_hashes(self, name: str) -> list[str]:
        """Every binary stored under `name` (`WorkflowVersions`)."""
        async with self._use() as conn:
            rows = await self._fetch(conn, "workflow_hashes", name, name)
        return [row[0] for row in rows]

    async def task_origin(self, task_id: int) -> fork.TaskOrigin | None:
        """Where `task_id` was forked from, if it was (`ForkStore`)."""
        async with self._use() as conn:
            rows = await self._fetch(conn, "task_origin", task_id)
        if not rows:
            return None
        origin_id, at, run = rows[0]
        return fork.TaskOrigin(origin_id=origin_id, at=at, run=run)

    async def task_forks(self, origin_id: int, *, limit: int = 100) -> list[fork.TaskFork]:
        """The tasks forked from `origin_id` (`ForkStore`)."""
        async with self._use() as conn:
            rows = await self._fetch(conn, "task_forks", origin_id, limit)
        return [fork.TaskFork(task_id=r[0], at=r[1], run=r[2]) for r in rows]

    # -- moves onto a new binary (`durable.storage.moves`) --------------------------------

    async def move_task(
        self, task_id: int, *, from_hash: str, to_hash: str, attempts: int, events: int
    ) -> bool:
        """Move the task onto `to_hash` if it is as the upgrade saw it (`MoveStore`)."""
        now = self._clock()
        async with self._use() as conn, self._transaction(conn):
            if not await self._fetch(conn, "workflow_exists", to_hash):
                raise NotFoundError(f"workflow {to_hash} is not stored")
            params = (task_id, to_hash, from_hash, attempts, events, now)
            if (await conn.execute(_Q["move_task"], params)).rowcount != 1:
                return False
            move = (task_id, from_hash, to_hash, events, now)
            await conn.execute(_Q["record_binary_move"], move)
        return True

    async def binary_moves(self, task_id: int) -> list[BinaryMove]:
        """The task's moves onto other binaries, oldest first (`MoveStore`)."""
        async with self._use() as conn:
            rows = await self._fetch(conn, "binary_moves", task_id)
        return [
            BinaryMove(from_hash=a, to_hash=b, events=n, moved_at=to_dt(t)) for a, b, n, t in rows
        ]

    # -- workflow SQL ---------------------------------------------------------------------

    async def begin_guest_transaction(self, lease: Lease) -> guest.SQLiteGuestTransaction:
        """Open a transaction for workflow SQL on the guest connection (`_sqlite_guest`)."""
        if self._guest is None:
            async with self._use() as conn:
                settings = await guest.settings_of(conn)
            self._guest = guest.SQLiteGuest(self._path, self._clock, **settings)
        return await self._guest.begin(lease)

    # -- fenced writes --------------------------------------------------------------------

    async def _writes(
        self, conn: aiosqlite.Connection, lease: Lease, statements: Sequence[codec.Write]
    ) -> None:
        """Run fenced writes, all or nothing, in one hop; a refused one says why."""

        def write(db: sqlite3.Connection) -> None:
            if len(statements) == 1:
                _write(db, statements[0])  # autocommit: its own transaction
                return
            with batch.transaction(db):
                for statement in statements:
                    _write(db, statement)

        try:
            await batch.run(conn, write)
        except batch.Shortfall as exc:
            raise await self._refusal(conn, lease, exc.what) from None

    async def _refusal(self, conn: aiosqlite.Connection, lease: Lease, what: str) -> StorageError:
        """Why a fenced write wrote nothing: the lease is gone, or `what` went wrong.

        The lease is checked first, as in `MemoryStore`, so both report the same error.
        """
        if not (await self._fetch(conn, "lease_holds", *fence(lease)))[0][0]:
            return LeaseLostError(lease.task_id)
        next_index = (await self._fetch(conn, "next_index", lease.task_id))[0][0]
        return ConflictError(f"{what} (next event index is {next_index})")

    # -- schedules (`durable.storage.base.ScheduleStore`) ---------------------------------

    async def add_schedule(self, spec: ScheduleSpec) -> Schedule:
        """Store a new schedule; see `ScheduleStore.add_schedule`."""
        async with self._use() as conn:
            async with self._transaction(conn):
                await schedules.add(conn, spec, self._clock())
            self._notify()
            return await schedules.get(conn, spec.name)

    async def get_schedule(self, name: str) -> Schedule:
        """The schedule, or `NotFoundError`."""
        async with self._use() as conn:
            return await schedules.get(conn, name)

    async def list_schedules(self) -> list[Schedule]:
        """Every schedule, by name."""
        async with self._use() as conn:
            return await schedules.list_all(conn)

    async def pause_schedule(self, name: str, *, paused: bool) -> Schedule:
        """Pause or resume the schedule."""
        async with self._use() as conn:
            await schedules.pause(conn, name, paused, self._clock())
            self._notify()
            return await schedules.get(conn, name)

    async def delete_schedule(self, name: str) -> None:
        """Forget the schedule (its tasks stay)."""
        async with self._use() as conn:
            await schedules.delete(conn, name)

    async def trigger_schedule(self, name: str) -> Task:
        """Launch one task of the schedule now."""
        async with self._use() as conn:
            async with self._transaction(conn):
                task_id = await schedules.trigger(conn, name, self._clock())
            self._notify()
            rows = await self._fetch(conn, "get_task", task_id)
        return codec.task(rows[0])

    async def fire_schedules(self, *, limit: int = 20) -> datetime | None:
        """One scheduler pass; see `ScheduleStore.fire_schedules`.

        Looks first without the write lock: most passes find nothing due, and a
        `BEGIN IMMEDIATE` per worker loop would queue behind every append.
        """

        def look(db: sqlite3.Connection) -> tuple[bool, datetime | None]:
            due = schedules.any_due(db, self._clock())
            return due, None if due else schedules.next_due(db)

        async with self._use() as conn:
            due, next_due = await batch.run(conn, look)  # one hop when nothing is due
            if not due:
                return next_due
            async with self._transaction(conn):
                created = await schedules.fire(conn, self._clock(), limit)
            if created:
                self._notify()
            return await batch.run(conn, schedules.next_due)

    # -- queues and task pause (`durable.storage.base.QueueStore`) ------------------------

    async def set_queue(self, settings: QueueSettings) -> Queue:
        """Create the queue or replace its settings."""
        async with self._use() as conn:
            async with self._transaction(conn):
                await queues.put(conn, settings, self._clock())
            self._notify()  # a limit raised or a pause lifted: look again
            return await queues.get(conn, settings.name, self._clock())

    async def get_queue(self, name: str) -> Queue:
        """The queue and its counts."""
        async with self._use() as conn:
            return await queues.get(conn, name, self._clock())

    async def list_queues(self) -> list[Queue]:
        """Every queue, by name."""
        async with self._use() as conn:
            return await queues.list_all(conn, self._clock())

    async def pause_task(self, task_id: int, *, paused: bool) -> Task:
        """Pause or resume the task."""
        async with self._use() as conn:
            async with self._transaction(conn):
                await self._check_running(conn, task_id)
                await queues.pause_task(conn, task_id, paused, self._clock())
            self._notify()
            rows = await self._fetch(conn, "get_task", task_id)
        return codec.task(rows[0])

    async def paused_tasks(self, worker_id: str) -> list[int]:
        """This worker's active tasks that have been paused."""
        async with self._use() as conn:
            return [int(r[0]) for r in await self._fetch(conn, "paused_active", worker_id)]


def _next_wakeup(db: sqlite3.Connection, now: float, affinity_grace: float) -> list[float | None]:
    """The moments `next_wakeup` takes the earliest of, on the connection's thread."""
    due = db.execute(_Q["next_wakeup"], (now, affinity_grace)).fetchone()[0]
    return [due, queues.rate_window_opens(db, now)]


def _logged_at_start(db: sqlite3.Connection, claimed: list[Any]) -> dict[int, int]:
    """For the claimed tasks with an empty history, the output bytes logged at its start
    (`Claim.start`), in the claim's trip: a new task's attempt then reads nothing more."""
    return {
        row[0]: int(db.execute(_Q["logged_bytes"], (row[0], 0, row[0])).fetchone()[0])
        for row in claimed
        if row[5] == TaskState.ACTIVE and row[_TOKEN + 1] == 0
    }


def _pending(db: sqlite3.Connection, claimed: list[Any]) -> dict[int, Notification]:
    """The claimed tasks' oldest pending notifications (`Claim.notification`), in the
    claim's transaction: nothing else writes until it commits, and then only under
    the new lease."""
    found = {}
    for row in claimed:
        if row[5] == TaskState.ACTIVE:
            note = db.execute(_Q["next_notification"], (row[0], None, None)).fetchone()
            if note is not None:
                found[row[0]] = codec.notification(note)
    return found


def _write(db: sqlite3.Connection, write: codec.Write) -> None:
    """One fenced write, on the connection's thread; `Shortfall` if it was refused."""
    changed = db.execute(write.sql, write.params).rowcount
    if write.rows is not None and changed != write.rows:
        raise batch.Shortfall(write.what)


def _continue_run(db: sqlite3.Connection, task_id: int, text: str, now: float) -> None:
    """Keep the current run's history as its run's, and give the task `text`."""
    db.execute(_Q["finish_continue_run"], (now, task_id))
    db.execute(_Q["finish_continue_events"], (task_id,))
    db.execute(_Q["finish_continue_clear"], (task_id,))
    db.execute(_Q["finish_continue_status"], (task_id,))
    db.execute(_Q["finish_continue_input"], (text, task_id))
