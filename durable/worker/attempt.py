"""Running one claimed task attempt: load, replay and run on a thread, then finish.

Whatever happens inside, the worker survives: a guest that raises or traps ends as a
`failed` task; a component that cannot load fails its task; a lost lease drops the
attempt without a write (and says who has the task now); a database error drops the
attempt, and the task is handed back (`ready`) as soon as the database answers again.

A task whose workflow is not compiled on this machine yet is handed back while it
compiles in a detached process (`Released(started=False)`; see `_component`), which
takes seconds: a worker killed meanwhile, for whatever reason, then holds no lease on
it, so the kill does not count as a death the task caused (see
`durable.storage.quarantine`). Holding the lease through the compile instead would
count it; marking the attempt "started" only once its guest ran would cost a write on
every attempt.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from anyio.abc import TaskGroup
from wasmtime import component as wc

from durable import tracing
from durable.bundle import Bundle, is_bundle
from durable.bundle import decode as decode_bundle
from durable.bundle import keep as keep_bundle
from durable.bundle import kept as kept_bundle
from durable.core.model import (
    Claim,
    Event,
    Failed,
    Lease,
    LogChunk,
    NewTask,
    Notification,
    Outcome,
    Released,
    Suspended,
    Task,
    TaskState,
)
from durable.core.side_writes import SideWrite
from durable.core.task_error import TaskError
from durable.errors import (
    ComponentError,
    ConfigurationError,
    InvalidStateError,
    LeaseLostError,
    NotFoundError,
    StorageError,
    TaskNotFoundError,
)
from durable.host._shared_compile import CompileState
from durable.host.context import AttemptContext
from durable.host.live import LiveInstance
from durable.host.runtime import AttemptEnd, Runtime
from durable.metrics import LOST
from durable.storage.base import GuestTransaction, QueueStore, SqlStore, Store
from durable.storage.guest import GuestResult, GuestValue
from durable.storage.quarantine import last_chance
from durable.tracing import AttemptTrace
from durable.worker.attempt_metrics import AttemptMeter, count_compile_lookup
from durable.worker.resume import cache_key, take_live

log = logging.getLogger("durable.worker")

#: Host failures in a row after which a task fails instead of being retried.
HOST_FAILURE_RETRIES = 5
#: How often an attempt waiting for a compile looks whether it has ended.
_COMPILE_POLL = 0.05
#: Bundles a worker keeps parsed in memory (each a workflow's source, kilobytes).
_MAX_BUNDLES = 256


class StoreSink:
    """The host's `Sink`: reaches the async store from the guest's thread."""

    def __init__(self, store: Store, lease: Lease, pending: Notification | None = None) -> None:
        """Make it on the event loop: `write` finds its way back there from any thread.
        `pending`: the task's oldest pending notification as its claim read it
        (`Claim.notification`), if it did."""
        self._store = store
        self._lease = lease
        self._pending = pending
        self._transaction: GuestTransaction | None = None  # open workflow SQL, if any
        self._loop = anyio.lowlevel.current_token()

    def write(
        self, events: Sequence[Event], logs: Sequence[LogChunk], writes: Sequence[SideWrite] = ()
    ) -> None:
        """Append, fenced by the lease; blocks the guest until durable.

        Also called on wasmtime's I/O threads (output flushes), which are not anyio's.
        """
        anyio.from_thread.run(
            functools.partial(self._store.append, self._lease, events, logs, writes=writes),
            token=self._loop,
        )

    def next_notification(self, task_id: int, event: str | None) -> Notification | None:
        """The oldest unconsumed notification for the task.

        The attempt's first look takes what the claim read, if it read one: nothing
        consumed a notification of the task since (`Claim.notification`), so the store
        would answer the same. Only the first: once the guest consumes one, the store
        knows of it (the consumption is flushed before the next look).
        """
        pending, self._pending = self._pending, None
        if (
            pending is not None
            and pending.task_id == task_id
            and (event is None or pending.event == event)
        ):
            return pending
        return anyio.from_thread.run(
            functools.partial(self._store.next_notification, task_id, event=event),
            token=self._loop,
        )

    def notify(self, task_id: int, event: str, data: str, key: str) -> str | None:
        """Send once per key; None, or why it was refused."""
        try:
            anyio.from_thread.run(
                functools.partial(self._store.notify, task_id, event, data, key=key),
                token=self._loop,
            )
        except TaskNotFoundError:
            return "task-not-found"
        except InvalidStateError:
            return "task-ended"
        return None

    def spawn(self, spec: NewTask) -> int:
        """Create the child (idempotent by key) and return its id.

        Raises:
            ConfigurationError: a queued child, and the store has no queues.
        """
        if (spec.queue is not None or spec.priority is not None) and not isinstance(
            self._store, QueueStore
        ):
            raise ConfigurationError(f"the store {self._store.url} has no queues or priorities")
        return anyio.from_thread.run(self._store.create_task, spec, token=self._loop).id

    def find_workflow(self, name: str) -> str | None:
        """The newest binary registered as `name`."""
        try:
            return anyio.from_thread.run(self._store.find_workflow, name, token=self._loop)
        except NotFoundError:
            return None

    def get_task(self, task_id: int) -> Task:
        """The task as stored now."""
        return anyio.from_thread.run(self._store.get_task, task_id, token=self._loop)

    async def aclose(self) -> None:
        """Roll back a guest transaction the attempt left open (it trapped, say).

        Call it from the event loop when the attempt has ended, and before its final
        write: on SQLite an open transaction holds the database's write lock.
        """
        transaction, self._transaction = self._transaction, None
        if transaction is not None:
            with anyio.CancelScope(shield=True):
                await transaction.rollback()

    def _ended(self, transaction: GuestTransaction) -> None:
        if self._transaction is transaction:
            self._transaction = None


class SqlStoreSink(StoreSink):
    """The sink of a store with workflow SQL: it can also open guest transactions (the
    host's `SqlSink`, found by its type)."""

    def __init__(self, store: SqlStore, lease: Lease, pending: Notification | None = None) -> None:
        """Make it on the event loop, like `StoreSink`."""
        super().__init__(store, lease, pending)
        self._sql_store = store

    def begin_transaction(self) -> _SyncTransaction:
        """Open a transaction for the guest's SQL (`durable.host.sql`)."""
        transaction = anyio.from_thread.run(
            self._sql_store.begin_guest_transaction, self._lease, token=self._loop
        )
        self._transaction = transaction
        return _SyncTransaction(self, transaction)


def sink_maker(store: Store) -> Callable[[Lease, Notification | None], StoreSink]:
    """How an attempt on `store` makes its sink: with workflow SQL if the store has that
    role. Asked once per store: a protocol `isinstance` looks at its every method (0.1 ms
    for this one), and every attempt needs a sink."""
    if isinstance(store, SqlStore):
        return functools.partial(SqlStoreSink, store)
    return functools.partial(StoreSink, store)


class _SyncTransaction:
    """A guest transaction driven from the guest's thread (the host's `SqlSession`)."""

    def __init__(self, sink: StoreSink, transaction: GuestTransaction) -> None:
        self._sink = sink
        self._transaction = transaction

    def execute(self, sql: str, params: Sequence[GuestValue], *, max_bytes: int) -> GuestResult:
        """Run one statement; blocks the guest."""
        return anyio.from_thread.run(
            functools.partial(self._transaction.execute, sql, params, max_bytes=max_bytes),
            token=self._sink._loop,
        )

    def commit(self, events: Sequence[Event], logs: Sequence[LogChunk]) -> None:
        """Append the events and commit; blocks the guest until durable."""
        anyio.from_thread.run(self._transaction.commit, events, logs, token=self._sink._loop)
        # Only now: if the call failed before reaching the store, the transaction is
        # still open, and the end of the attempt rolls it back (`StoreSink.aclose`).
        self._sink._ended(self._transaction)

    def rollback(self) -> None:
        """Roll back."""
        try:
            anyio.from_thread.run(self._transaction.rollback, token=self._sink._loop)
        finally:
            self._sink._ended(self._transaction)


class AttemptRunner:
    """Starts attempts in the worker's task group and keeps track of them."""

    def __init__(
        self,
        *,
        store: Store,
        runtime: Runtime,
        worker_id: str,
        limiter: anyio.CapacityLimiter,
        on_end: Callable[[], None],
        max_deaths: int | None = None,
    ) -> None:
        self._store = store
        self._sink = sink_maker(store)
        self._runtime = runtime
        self._worker_id = worker_id
        self._limiter = limiter
        self._on_end = on_end
        self._max_deaths = max_deaths
        # The death count of a task that one more death quarantines, and the running
        # attempts of such tasks (at most one: see `last_chances`).
        self._last = last_chance(max_deaths)
        self._on_last_chance: set[Lease] = set()
        # Attempts whose task this worker claimed again (their lease had lapsed).
        self._superseded: set[Lease] = set()
        # Workflows that failed to compile in this process (no usable cache directory
        # to keep a failure marker in), with the reason: their tasks fail when claimed.
        self._broken: dict[str, str] = {}
        # By lease, not by task: a worker whose lease lapsed (an outage, a stall) may claim
        # the same task again while its first attempt still runs. That attempt is fenced
        # off by the new token; both are tracked until they end.
        self._contexts: dict[Lease, AttemptContext | None] = {}
        self._idle = anyio.Event()
        self._idle.set()
        self._interrupted = False
        # Consecutive host failures per task, for the task-level retry policy.
        self._host_failures: dict[int, int] = {}
        # Leases of attempts dropped on a storage error, to hand back (see release_dropped).
        self._dropped: list[Lease] = []
        # Workflow sources by hash, for the shared interpreter (see `_bundle`).
        self._bundles: dict[str, Bundle] = {}
        # Hashes found compiled as they are, so not bundles: no kept-bundle file to look
        # for on their every attempt (a bundle's own hash never compiles).
        self._not_bundles: set[str] = set()
        # Held while deciding to start a compile (see `_component`).
        self._compile_gate = anyio.Lock()
        # Guests parked live by attempts whose suspension is still to be written: kept
        # (`durable.host.instance_cache`) once it is.
        self._parked: dict[Lease, LiveInstance] = {}

    @property
    def running(self) -> int:
        """How many attempts are in progress."""
        return len(self._contexts)

    @property
    def last_chances(self) -> int | None:
        """How many tasks on their last chance the next claim may take (None: any).

        One at a time: if this worker dies, only one of the tasks it runs is then
        quarantined for it, not every task that happened to share it.
        """
        if self._last is None:
            return None
        return 0 if self._on_last_chance else 1

    def start(self, tg: TaskGroup, claim: Claim) -> None:
        """Begin running `claim` in the background."""
        task = claim.task
        log.info("task %d (%s): attempt %d started", task.id, task.name, task.attempts)
        if task.deaths:
            log.warning(
                "task %d: resumed after %d worker death(s) in a row while running it "
                "(quarantined at %s)", task.id, task.deaths, self._max_deaths or "no limit",
            )  # fmt: skip
        if task.deaths == self._last:
            self._on_last_chance.add(claim.lease)
        for lease, ctx in self._contexts.items():
            if lease.task_id == claim.task.id:  # an older attempt, fenced off now
                self._superseded.add(lease)
                if ctx is not None:
                    ctx.interrupt.set()  # end its sleep
        self._contexts[claim.lease] = None
        self._idle = anyio.Event()
        tg.start_soon(self._run, claim, name=f"task {claim.task.id}")

    def cancel(self, task_ids: Sequence[int]) -> None:
        """Tell the running attempts of these tasks that they are being cancelled."""
        wanted = set(task_ids)
        for lease, ctx in self._contexts.items():
            if ctx is not None and lease.task_id in wanted:
                ctx.cancel.set()

    def interrupt(self, task_ids: Sequence[int]) -> None:
        """Hand these tasks back (they were paused): a blocking sleep ends at once, a
        guest still running is stopped by the watchdog after its grace."""
        wanted = set(task_ids)
        for lease, ctx in self._contexts.items():
            if ctx is not None and lease.task_id in wanted:
                ctx.interrupt.set()

    def interrupt_all(self) -> None:
        """Make every blocking sleep end now; those tasks are released."""
        self._interrupted = True
        for ctx in self._contexts.values():
            if ctx is not None:
                ctx.interrupt.set()

    async def wait_all(self) -> None:
        """Wait until no attempt is running."""
        await self._idle.wait()

    async def release_dropped(self) -> None:
        """Hand back the tasks of attempts dropped on a storage error: `ready` at once.

        Their rows still name this worker, and the heartbeat renews every lease the
        worker holds, so left alone they would wait for the worker to stop, not for a
        lease to lapse. Raises `StorageError` while the database is still away (the
        rest are kept for the next call).
        """
        while self._dropped:
            with contextlib.suppress(LeaseLostError):  # else another worker has it already
                await self._store.finish(self._dropped[0], Released())
            self._dropped.pop(0)

    async def _run(self, claim: Claim) -> None:
        task = claim.task
        meter = AttemptMeter.start()
        trace = tracing.start_attempt(task)
        try:
            end = await self._execute(claim, trace)
            if end is None:
                meter.outcome = "released"  # handed back before it started
            elif end.outcome is None:
                meter.outcome = LOST
                await self._lease_lost(claim)  # a write from the guest's thread was refused
            else:
                await self._finish(claim, end)
                meter.ended(end.outcome)
                log.info("task %d: attempt %d %s", task.id, task.attempts, _ended(end.outcome))
        except LeaseLostError:
            meter.outcome = LOST
            await self._lease_lost(claim)
        except StorageError as exc:
            # The database is unreachable or refused: the worker hands the task back once
            # the database answers again (or its lease lapses if this worker dies), and
            # another attempt, here or elsewhere, resumes it by replay.
            log.warning("task %d: storage error, attempt dropped: %s", task.id, exc)
            self._dropped.append(claim.lease)
        except Exception as exc:  # a host failure, not the guest's: it must not take the
            log.exception("task %d: internal error", task.id)  # worker down
            await self._retry_or_fail(claim, f"{type(exc).__name__}: {exc}")
        finally:
            meter.stop()
            if trace is not None:
                trace.end(meter.outcome)
            del self._contexts[claim.lease]
            self._on_last_chance.discard(claim.lease)
            self._superseded.discard(claim.lease)
            if not self._contexts:
                self._idle.set()
            self._on_end()

    async def drop_ended(self) -> None:
        """Evict the kept instances of tasks that ended without waking (cancelled while
        suspended, say): no claim would ever take them out."""
        cache = self._runtime.instances
        for key in cache.parked():
            if key[0] != self._store.url:
                continue
            try:
                state = (await self._store.get_task(key[1])).state
            except TaskNotFoundError:
                state = None
            live = cache.take(key) if state is None or state.is_terminal else None
            if live is not None:
                cache.discard(key, live, f"the task is {state.value if state else 'gone'}")

    async def _finish(self, claim: Claim, end: AttemptEnd) -> None:
        """Write the attempt's end; keep its guest, if it parked, once that is written.

        Kept before the write: a claim that sees the suspension (this worker's own, just
        after the commit) must find the instance. Evicted if the write fails.
        """
        assert end.outcome is not None
        live = self._parked.pop(claim.lease, None)
        key = cache_key(self._store, claim.task.id)
        outcome = end.outcome
        if live is not None:
            self._runtime.instances.put(key, live)
            if isinstance(outcome, Suspended):  # held for this worker: claim affinity
                outcome = dataclasses.replace(outcome, kept=True)
        try:
            await self._store.finish(claim.lease, outcome, end.events, end.logs, writes=end.writes)
        except BaseException:
            if live is not None:
                self._runtime.instances.discard(key, live, "its suspension was not written")
            raise

    async def _lease_lost(self, claim: Claim) -> None:
        """Log that the attempt was fenced off, and why.

        A fenced write is refused only once someone claimed the task after this
        worker's lease lapsed: this worker itself (it did not renew in time: its event
        loop or its database was too slow), which it knows, or else another worker,
        named if it still holds the task.
        """
        task_id = claim.task.id
        if claim.lease in self._superseded:
            why = (
                "this worker's lease lapsed (it did not renew it in time) and this worker "
                "claimed the task again"
            )
        else:
            try:
                now: Task | None = await self._store.get_task(task_id)
            except StorageError:
                now = None
            if now is not None and now.state is TaskState.ACTIVE and now.owner is not None:
                why = f"taken over by worker {now.owner} after this worker's lease lapsed"
            else:
                state = "" if now is None else f" (it is {now.state.value} now)"
                why = f"taken over by another worker after this worker's lease lapsed{state}"
        log.warning("task %d: %s; dropped this attempt", task_id, why)

    async def _execute(self, claim: Claim, trace: AttemptTrace | None = None) -> AttemptEnd | None:
        """Run the attempt; None when the task was handed back before its guest started."""
        live: LiveInstance | None = None
        if self._runtime.instances.enabled and not self._interrupted:
            # A kept instance needs no component: look for it before the compile cache.
            live = await take_live(
                self._store, self._runtime.instances, claim.task, claim.history_length
            )
        component: wc.Component | None = None
        source: Bundle | None = None
        if live is None:
            try:
                component, source = await self._component(claim)
            except (ComponentError, NotFoundError) as exc:
                return AttemptEnd(outcome=Failed(error=_error("ComponentError", str(exc))))
            if component is None:
                return None  # handed back while its workflow compiles
        if self._runtime.instances.enabled:
            return await self._run_live(claim, live, component, source, trace)
        assert component is not None
        sink = self._sink(claim.lease, claim.notification)
        ctx = await self._context(claim, sink, trace, source)
        if self._interrupted:
            return AttemptEnd(outcome=Released(started=False))
        try:
            return await anyio.to_thread.run_sync(
                self._runtime.run, component, ctx, limiter=self._limiter
            )
        finally:
            await sink.aclose()  # a guest SQL transaction left open is rolled back

    async def _run_live(
        self,
        claim: Claim,
        live: LiveInstance | None,
        component: wc.Component | None,
        source: Bundle | None,
        trace: AttemptTrace | None,
    ) -> AttemptEnd:
        """Run the attempt on a guest kept live: `live`, this worker's parked instance
        of the task taken out of the cache as valid (no replay), else a new instance of
        `component` that replays."""
        task = claim.task
        sink = self._sink(claim.lease, claim.notification)
        if live is not None:
            log.info("task %d: woken on its live instance, no replay", task.id)
            live.ctx.interrupt.clear()  # addressed to an attempt that has ended
            self._contexts[claim.lease] = live.ctx
            live.resume(task, sink, trace)
        else:
            if self._interrupted:
                return AttemptEnd(outcome=Released(started=False))
            assert component is not None
            ctx = await self._context(claim, sink, trace, source)
            live = LiveInstance(self._runtime, component, ctx, task.workflow_hash)
            live.start()
        try:
            end, parked = await live.wait()
        finally:
            await sink.aclose()  # a guest SQL transaction left open is rolled back
        if parked:
            self._parked[claim.lease] = live
        return end

    async def _context(
        self, claim: Claim, sink: StoreSink, trace: AttemptTrace | None, source: Bundle | None
    ) -> AttemptContext:
        """A new attempt's context, from the task's history: registered as running."""
        task = claim.task
        if claim.start is not None:
            history, logged = claim.start  # read by the claim: no trip of its own
        else:
            history, logged = await self._store.load_attempt(task.id)
        ctx = AttemptContext(
            task=task,
            attempt=task.attempts,
            history=history,
            sink=sink,
            config=self._runtime.config,
            logged=logged,
        )
        ctx.trace = trace
        ctx.source = source
        self._contexts[claim.lease] = ctx
        return ctx

    async def _component(self, claim: Claim) -> tuple[wc.Component | None, Bundle | None]:
        """The task's compiled workflow (None if this machine has not compiled it), and
        its source when the task's binary is a bundle for the shared interpreter.

        A bundle is found in this process, in the machine's cache (where `durable run`
        or `launch` left it) or, fetched from the store, kept there; its interpreter is
        then the component to compile.

        Then the task is handed back (`Released`), a compile starts in a detached
        process (unless one runs already), and this returns once that compile has ended: the
        slot stays taken meanwhile, so the worker does not claim the task again and
        again. Holding no lease during a compile of seconds means a worker killed
        meanwhile takes no task down with it (nor counts as killed by one), and the
        compile goes on without it.
        """
        cache = self._runtime.cache
        task_hash = claim.task.workflow_hash
        source = None if task_hash in self._not_bundles else self._bundle(task_hash)
        workflow_hash = task_hash if source is None else source.interpreter
        broken = self._broken.get(workflow_hash)
        if broken is not None:
            raise ComponentError(broken)
        # Held in memory on every attempt but a worker's first: no hop to a thread then.
        component = cache.in_memory(workflow_hash)
        if component is None:
            component = await anyio.to_thread.run_sync(cache.load_compiled, workflow_hash)
        count_compile_lookup(hit=component is not None)
        if component is not None:
            if source is None:
                if len(self._not_bundles) >= _MAX_BUNDLES:
                    self._not_bundles.clear()  # a bound: forgetting costs one file look-up
                self._not_bundles.add(task_hash)
            return component, source
        # Hand the task back first, before anything slow (fetching the binary takes a
        # while under load): a worker killed from here on holds no lease on it, so the
        # kill cannot count as a death the task caused.
        await self._store.finish(claim.lease, Released(started=False))
        log.info("task %d: handed back while workflow %.12s compiles", claim.task.id, workflow_hash)
        async with self._compile_gate:  # one fetch of the binary per process, not per task
            if cache.state(workflow_hash) is CompileState.ABSENT:
                wasm = await self._store.get_workflow(workflow_hash)
                if is_bundle(wasm):  # kept for the next claim, which compiles its interpreter
                    keep_bundle(cache.cache_dir, wasm)
                    self._bundles[workflow_hash] = decode_bundle(wasm)
                    return None, None
                started = await anyio.to_thread.run_sync(
                    cache.compile_in_background, workflow_hash, wasm
                )
                if not started:  # no usable cache directory: compile in this process
                    try:
                        await anyio.to_thread.run_sync(cache.load, workflow_hash, wasm)
                    except ComponentError as exc:  # its tasks fail when next claimed
                        self._broken[workflow_hash] = str(exc)
                    return None, None
        with anyio.move_on_after(self._runtime.config.compile_timeout):
            # Polled: the wait ends with another process's lock, not with an event here.
            while not self._interrupted:
                if cache.state(workflow_hash) is not CompileState.RUNNING:
                    break
                await anyio.sleep(_COMPILE_POLL)
        return None, None

    def _bundle(self, workflow_hash: str) -> Bundle | None:
        """The bundle `workflow_hash` names, if this process or machine knows it as one."""
        found = self._bundles.get(workflow_hash)
        if found is None:
            found = kept_bundle(self._runtime.cache.cache_dir, workflow_hash)
            if found is not None:
                if len(self._bundles) >= _MAX_BUNDLES:
                    self._bundles.clear()  # a bound, not a policy: they are re-read in µs
                self._bundles[workflow_hash] = found
        return found

    async def _retry_or_fail(self, claim: Claim, message: str) -> None:
        """The task-level retry policy for transient host errors.

        The task is parked and retried after a growing delay (1, 2, 4 ... 60 s); after
        `HOST_FAILURE_RETRIES` host failures in a row on this worker it fails. A guest's
        own exception is never retried here: it is the workflow's result.
        """
        task_id = claim.task.id
        failures = self._host_failures.get(task_id, 0) + 1
        self._host_failures[task_id] = failures
        if failures > HOST_FAILURE_RETRIES:
            del self._host_failures[task_id]
            await self._fail(claim, "InternalError", message)
            return
        delay = min(2.0 ** (failures - 1), 60.0)
        log.warning("task %d: retrying in %.0f s after a host error: %s", task_id, delay, message)
        try:
            await self._store.finish(
                claim.lease, Suspended(wakeup_at=datetime.now(UTC) + timedelta(seconds=delay))
            )
        except StorageError as exc:
            log.warning("task %d: could not park it for a retry: %s", task_id, exc)

    async def _fail(self, claim: Claim, kind: str, message: str) -> None:
        try:
            await self._store.finish(claim.lease, Failed(error=_error(kind, message)))
        except StorageError as exc:
            log.warning("task %d: could not record failure: %s", claim.task.id, exc)


def _error(kind: str, message: str) -> str:
    return TaskError(kind=kind, message=message).to_json()


def _ended(outcome: Outcome) -> str:
    """How an attempt ended, for `durable worker -v`: `completed`, `failed (ValueError)`..."""
    word = type(outcome).__name__.lower()
    if isinstance(outcome, Failed):
        return f"{word} ({TaskError.from_json(outcome.error).kind})"
    return word
