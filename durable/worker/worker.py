"""The worker loop: claim, run, renew, wake.

One worker is one asyncio task group. The main loop claims as many tasks as it has
free slots and starts an attempt for each; attempts run their guest on a thread. The
loop then sleeps until the store says work may be runnable, an attempt ends, the next
timer or lease expiry is due, or the poll interval passes (a safety net, not the
mechanism). A heartbeat renews the leases of every running task in one statement.

Stopping follows one order, also when `run` is cancelled: claim nothing more; tell the
running guests to stop (a blocking sleep ends at once, a guest running without host
calls is stopped by the watchdog after `SHUTDOWN_GRACE`); wait for their attempts to
hand their tasks back, renewing leases meanwhile; deregister; close the runtime, which
waits until no thread is left inside wasmtime before it stops the epoch ticker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from durable.core.model import Task, WorkerInfo
from durable.errors import StorageError
from durable.host.runtime import Runtime
from durable.host.watchdog import SHUTDOWN_GRACE
from durable.storage.base import QueueStore, ScheduleStore, Store
from durable.worker.attempt import AttemptRunner
from durable.worker.config import WorkerConfig
from durable.worker.liveness import reap_dead_local_workers

log = logging.getLogger("durable.worker")

#: How often a running worker records that it is alive (`register_worker` again).
HEARTBEAT_SECONDS = 5.0
#: A busy worker looks for due schedule ticks at most this often (and whenever the
#: next tick it knows of is due): a look is a database trip, and the loop turns once
#: or twice per short task. A schedule added elsewhere fires at most this late.
SCHEDULE_LOOK = 0.1


class Worker:
    """Runs tasks from a store until stopped (or, with `exit_when_idle`, until idle).

    Embeddable: an asyncio application can `await worker.run()` in a task and call
    `worker.stop()` to shut it down gracefully.
    """

    def __init__(
        self,
        store: Store,
        config: WorkerConfig | None = None,
        *,
        runtime: Runtime | None = None,
        on_claim: Callable[[Task], None] | None = None,
    ) -> None:
        """A worker on `store`.

        Args:
            store: where tasks come from and their histories go.
            config: the worker's settings (defaults: `WorkerConfig()`).
            runtime: a `Runtime` to share (several workers, or a client's replays):
                its compiled-component cache and its host settings, which then stand
                in for `config.host`. By default the worker makes its own from
                `config.host` and closes it when `run` returns.
            on_claim: called with each task this worker claims, before it runs it
                (`durable run` says which tasks besides its own it runs).
        """
        self.store = store
        config = config or WorkerConfig()
        self._own_runtime = runtime is None
        self.runtime = runtime or Runtime(config.host)
        # A shared runtime brings its own host settings: those are what attempts run
        # with, so they are what the worker's own decisions (when to exit idle) use too.
        self.config = dataclasses.replace(config, host=self.runtime.config)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stopping = anyio.Event()
        self._reaped = False
        self._database_down = False  # said "database unavailable", not yet "reachable"
        self._changed = anyio.Event()
        self._next_tick: datetime | None = None  # when a schedule's next tick is due
        self._looked_at = -SCHEDULE_LOOK  # when (`anyio.current_time`) schedules were last seen
        # Checked once: a protocol `isinstance` looks at every method, on every call.
        self._schedules = store if isinstance(store, ScheduleStore) else None
        self._idle_seen = False  # the last look found nothing to do (exit_when_idle)
        self._on_claim = on_claim
        self._info: WorkerInfo | None = None  # as registered, once `run` starts
        self._attempts = AttemptRunner(
            store=store,
            runtime=self.runtime,
            worker_id=self.id,
            limiter=anyio.CapacityLimiter(self.config.concurrency),
            on_end=self._attempt_ended,
            max_deaths=self.config.max_worker_deaths,
        )

    @property
    def running(self) -> int:
        """How many attempts are running now."""
        return self._attempts.running

    def stop(self) -> None:
        """Stop claiming, give running tasks back, and return from `run`. Idempotent."""
        self._stopping.set()
        self._changed.set()

    async def run(self) -> None:
        """Run until `stop()` (or until idle, with `exit_when_idle`)."""
        info = WorkerInfo(
            id=self.id, hostname=socket.gethostname(), pid=os.getpid(), started_at=datetime.now(UTC)
        )
        self._info = info
        await self.store.register_worker(info)
        log.debug(
            "worker %s started (concurrency %d, instance cache %d MiB)",
            self.id,
            self.config.concurrency,
            self.config.host.instance_cache // 2**20,
        )
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._heartbeat)
                try:
                    await self._loop(tg)
                finally:
                    # Also on cancellation: the attempts' threads cannot be cancelled,
                    # so their guests must be told to stop, or the task group waits on.
                    self._attempts.interrupt_all()
                await self._wait_for_attempts()
                tg.cancel_scope.cancel()  # the heartbeat
        finally:
            with anyio.CancelScope(shield=True):
                # Hand back what a storage error left behind, if the database is back:
                # a graceful stop releases its tasks rather than leaving them to lapse.
                with contextlib.suppress(StorageError):
                    await self._attempts.release_dropped()
                await self.store.remove_worker(self.id)
                # Blocks until the guests' threads and output streams are gone.
                if self._own_runtime and not await anyio.to_thread.run_sync(self.runtime.close):
                    log.warning("a workflow is still running on a thread")
            log.debug("worker %s stopped", self.id)

    async def _wait_for_attempts(self) -> None:
        """Wait for the interrupted attempts to end; say so if a host call holds one up."""
        with anyio.move_on_after(SHUTDOWN_GRACE + 1.0):
            await self._attempts.wait_all()
            return
        log.warning("stopping: waiting for %d task(s) still in a host call", self.running)
        await self._attempts.wait_all()

    async def _loop(self, tg: TaskGroup) -> None:
        backoff = 0.0
        while not self._stopping.is_set():
            try:
                done = await self._iterate(tg)
            except StorageError as exc:
                # The database is gone for now: say so once, keep the tasks that are
                # running (their leases hold until they lapse), and retry with backoff.
                self._database_failed(exc)
                backoff = min(max(backoff * 2, 0.1), 5.0)
                with anyio.move_on_after(backoff):
                    await self._stopping.wait()
                continue
            backoff = 0.0
            if self._database_down:
                self._database_down = False
                log.warning("database reachable again")
            if done:
                return

    async def _iterate(self, tg: TaskGroup) -> bool:
        """Claim what fits, then wait for a reason to look again. True: exit now."""
        if not self._reaped:
            await reap_dead_local_workers(self.store, self.id)
            self._reaped = True
        await self._attempts.release_dropped()
        running_before = self._attempts.running
        free = self.config.concurrency - running_before
        last_chances = self._attempts.last_chances
        claimed = 0
        looked = datetime.now(UTC)  # what the claim below counts as due was due by now
        if free > 0:
            started = anyio.current_time()
            claims = await self.store.claim(
                worker_id=self.id,
                limit=free,
                lease_seconds=self.config.lease_seconds,
                max_deaths=self.config.max_worker_deaths,
                last_chances=last_chances,
                affinity_grace=self.config.affinity_grace,
            )
            claimed = len(claims)
            if claims and anyio.current_time() - started > self._renew_period:
                # The leases started before the claim returned (with large inputs, on
                # a busy machine, that takes a while): renew them before anything else,
                # or the next claim could find them lapsed and take them from ourselves.
                await self.store.renew_leases(
                    worker_id=self.id, lease_seconds=self.config.lease_seconds
                )
            for claim in claims:
                if self._on_claim is not None:
                    self._on_claim(claim.task)
                self._attempts.start(tg, claim)
        # After the claim: a woken task waits for no scheduler pass (two round trips on
        # Postgres).
        look_in = await self._fire_schedules()
        if claimed and claimed == free:
            return False  # there may be more: claim again at once
        timeout: float | None
        due_at: datetime | None
        if free <= 0:
            # No slot: nothing due can be claimed before an attempt ends, and that wakes
            # the loop itself. A look at the next wake-up would only time a turn that
            # finds no slot either, and its round trip would compete with the attempts
            # just started (a task woken on its kept instance reads its notification).
            timeout, due_at = self.config.poll_interval, None
        else:
            timeout, due_at = await self._idle_timeout()
        if timeout == 0 and last_chances == 0:
            # Due now but not claimed: a task on its last chance, left for this worker's
            # own to end (that wakes the loop) or for another worker. Do not spin.
            timeout = self.config.poll_interval
        elif timeout == 0 and claimed < free and due_at is not None and due_at <= looked:
            # Due before the claim, yet not claimed: a timer held for the worker that
            # keeps its instance (claim affinity). Look again when its grace has passed,
            # not at once and again and again (a timer due since is claimed at once).
            timeout = self.config.affinity_grace
        if look_in is not None:  # a look at the schedules was put off: not for long
            timeout = look_in if timeout is None else min(timeout, look_in)
        # Idle only if a claim made with nothing running found nothing: an attempt
        # that ended during the awaits above freed a slot no claim has tried yet.
        idle = running_before == 0 and not claimed
        nothing_due = timeout is None or timeout > self.config.host.suspend_after
        if self.config.exit_when_idle and idle and nothing_due:
            # Exit on the second idle look in a row. An attempt's finish (with the next
            # run of a `continue_as_new`) commits before the attempt stops counting as
            # running, so the claim above followed every finish; the second look is a
            # guard against a claim that passed over a row another transaction still
            # held (Postgres claims SKIP LOCKED), at the cost of one claim at exit.
            if self._idle_seen:
                return True
            self._idle_seen = True
            return False
        self._idle_seen = False
        await self._wait(timeout if timeout is not None else self.config.poll_interval)
        return False

    async def _fire_schedules(self) -> float | None:
        """Fire due schedule ticks (any worker does; the store makes each tick one task),
        unless the last look was under `SCHEDULE_LOOK` ago and the next tick it found is
        not due. Returns None, or the seconds until the look that was put off.

        A worker that exits when idle looks every time: its exit waits for two idle
        looks in a row, which a look put off would never let happen."""
        if self._schedules is None:
            return None
        now = anyio.current_time()
        since = now - self._looked_at
        due = self._next_tick is not None and self._next_tick <= datetime.now(UTC)
        if since < SCHEDULE_LOOK and not due and not self.config.exit_when_idle:
            return SCHEDULE_LOOK - since
        self._looked_at = now
        self._next_tick = await self._schedules.fire_schedules()
        return None

    async def _idle_timeout(self) -> tuple[float | None, datetime | None]:
        """Seconds until the next timer, lease expiry or end of an affinity grace,
        capped by the poll interval; and that moment."""
        wake = await self.store.next_wakeup(affinity_grace=self.config.affinity_grace)
        if self._next_tick is not None and not self.config.exit_when_idle:
            wake = self._next_tick if wake is None else min(wake, self._next_tick)
        if wake is None:
            return (None if self.config.exit_when_idle else self.config.poll_interval), None
        delay = (wake - datetime.now(UTC)).total_seconds()
        if self.config.exit_when_idle:
            return max(0.0, delay), wake
        return max(0.0, min(delay, self.config.poll_interval)), wake

    async def _wait(self, seconds: float) -> None:
        """Sleep until the store signals work, an attempt ends, or `seconds` pass."""
        if seconds <= 0:
            return
        changed = self._changed
        async with anyio.create_task_group() as tg:

            async def store_signal() -> None:
                await self.store.wait_for_work(seconds)
                tg.cancel_scope.cancel()

            async def local_signal() -> None:
                await changed.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(store_signal)
            tg.start_soon(local_signal)
        if self._changed.is_set() and not self._stopping.is_set():
            self._changed = anyio.Event()

    def _attempt_ended(self) -> None:
        self._changed.set()

    def _database_failed(self, exc: StorageError) -> None:
        """Log the first failure of an outage only: the loop and heartbeat both see it."""
        if not self._database_down:
            self._database_down = True
            log.warning("database unavailable, retrying: %s", exc)

    @property
    def _renew_period(self) -> float:
        """Every third of a lease, and at least once a second, so that a cancellation
        reaches a running task promptly."""
        return min(self.config.lease_seconds / 3, 1.0)

    async def _heartbeat(self) -> None:
        """Renew every lease this worker holds, every `_renew_period`."""
        period = self._renew_period
        reap_every = max(1, int(30 / period))
        # Registering again is the worker's own heartbeat (the dashboard shows it): an
        # idle worker renews no lease, and would otherwise look the same as a dead one.
        register_every = max(1, int(HEARTBEAT_SECONDS / period))
        beats = 0
        while True:
            await anyio.sleep(period)
            try:
                if self._attempts.running:
                    cancelled = await self.store.renew_leases(
                        worker_id=self.id, lease_seconds=self.config.lease_seconds
                    )
                    self._attempts.cancel(cancelled)
                    if isinstance(self.store, QueueStore):  # `durable pause`: park them
                        self._attempts.interrupt(await self.store.paused_tasks(self.id))
                beats += 1
                if beats % register_every == 0 and self._info is not None:
                    await self.store.register_worker(self._info)
                    await self._attempts.drop_ended()
                if beats % reap_every == 0:
                    await reap_dead_local_workers(self.store, self.id)
            except StorageError as exc:  # the database may come back; leases may lapse
                self._database_failed(exc)
            except Exception as exc:
                log.warning("lease renewal failed: %s", exc)
