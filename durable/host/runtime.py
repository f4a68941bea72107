"""One wasmtime Engine and one Linker for a whole worker, and the running of attempts.

Host functions are defined once, on the shared Linker. wasmtime-py hands them only a
store context, so they find their attempt through a thread-local: each attempt runs on
its own thread from start to end, and host calls arrive on that thread.

Stopping is ordered (`close`): running guests are told to stop, the runtime waits for
their threads to leave wasmtime and for their output streams to be dropped (see
`durable.host.lifecycle`), and only then stops the epoch ticker, which the watchdog
needs to stop a guest that runs without host calls.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

import wasmtime
from wasmtime import component as wc

from durable.core.model import (
    Cancelled,
    Completed,
    ContinuedAsNew,
    Event,
    Failed,
    LogChunk,
    Outcome,
    Released,
    Stream,
    Suspended,
)
from durable.core.side_writes import SideWrite
from durable.core.signals import (
    ContinueAsNew,
    Evicted,
    HistoryExhausted,
    Release,
    Suspend,
    TimedOut,
)
from durable.core.task_error import TaskError
from durable.errors import HostError, LeaseLostError, NondeterminismError, OutputLimitExceeded
from durable.host import cancel_gate, trampoline, watchdog
from durable.host.cache import ComponentCache, engine_config
from durable.host.cancel_gate import CancelledAtCall
from durable.host.config import HostConfig
from durable.host.context import AttemptContext
from durable.host.instance_cache import InstanceCache
from durable.host.instance_pool import InstancePool, Prepared, prepare_export
from durable.host.lifecycle import Guests
from durable.host.linker import build_linker
from durable.host.monotonic import ReadyPollables, TimerHelper
from durable.host.source import workflow_source
from durable.host.store_drop import StoreDropper
from durable.host.traps import LastWords, from_guest, from_trap
from durable.host.watchdog import SHUTDOWN_GRACE
from durable.host.watchdog import install as install_watchdog

_EPOCH_TICK = 0.01  # seconds between engine epoch increments
#: How long `Runtime.close` waits for running guests by default: the watchdog stops
#: one that runs wasm within `SHUTDOWN_GRACE`; a host call in progress may take longer.
CLOSE_TIMEOUT = SHUTDOWN_GRACE + 8.0


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptEnd:
    """How an attempt ended, and what is left to write with the final state change."""

    outcome: Outcome | None  # None: the lease was lost; write nothing at all
    events: list[Event] = field(default_factory=list)  # recorded, not yet committed
    logs: list[LogChunk] = field(default_factory=list)  # output not yet committed
    writes: list[SideWrite] = field(default_factory=list)  # side-writes of `events`
    # Set when a replay-only attempt ran past its history (the `durable replay` check).
    exhausted: HistoryExhausted | None = None


class _Local(threading.local):
    ctx: AttemptContext | None = None


class Runtime:
    """The worker-wide wasmtime Engine, Linker and component cache."""

    def __init__(self, config: HostConfig | None = None) -> None:
        self.config = config or HostConfig()
        # The settings compiled artifacts are made with: one definition for both.
        self.engine = wasmtime.Engine(engine_config())
        self.cache = ComponentCache(
            self.engine,
            self.config.cache_dir,
            max_bytes=self.config.cache_max_bytes,
            compile_timeout=self.config.compile_timeout,
        )
        self._local = _Local()
        # Suspended instances kept live (`durable.host.live`), for whichever worker
        # shares this runtime.
        self.instances = InstanceCache(self.config.instance_cache)
        self.linker = build_linker(self.engine, self._current)
        self.timer_helper = TimerHelper(self.engine)  # compiled once, on first use
        self._guests = Guests()
        self._running: set[AttemptContext] = set()  # attempts inside `run`
        # Closes an ended attempt's store, then counts its thread out of wasmtime.
        self._dropper = StoreDropper(self._guests.leave)
        # Fresh instances made on the dropper's thread, taken by the next attempts.
        self.pool = InstancePool(
            self.engine,
            self.linker,
            size=self.config.instance_pool,
            memory_limit=self.config.memory_limit,
            enter=self._guests.enter,
            leave=self._guests.leave,
            # Workflow code ahead of an attempt needs a deadline that stops it by itself.
            import_ahead=watchdog.CALLBACKS,
        )
        self._closing = False
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="durable-epoch", daemon=True)
        self._ticker.start()

    def close(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        """Stop, in order: refuse new attempts, tell running guests to stop, wait at most
        `timeout` seconds for them to leave wasmtime and for their output streams to be
        dropped, then stop the epoch ticker. Idempotent.

        Returns:
            True when nothing of this runtime is left inside wasmtime. False when a
            guest still runs (in a long host call): the ticker then keeps running, so
            that the watchdog can still stop it, and the caller must not let the
            interpreter exit while it runs (`durable.host.lifecycle.quiesce`).
        """
        self._closing = True
        self.instances.clear()  # their guests unwind and leave wasmtime
        self.pool.clear()
        for ctx in list(self._running):
            ctx.interrupt.set()
        if not self._guests.wait_idle(timeout):
            return False
        self._stop.set()
        if self._ticker is not threading.current_thread():
            self._ticker.join()
        return True

    def _tick(self) -> None:
        if not watchdog.CALLBACKS:  # the fallback moves the epoch only to stop guests
            while not self._stop.wait(watchdog.SLICE_SECONDS):
                # A parked guest waits in a host call, for as long as it is kept.
                watchdog.sweep([c for c in self._running if not c.parked], self.engine)
            return
        while not self._stop.wait(_EPOCH_TICK):
            self.engine.increment_epoch()

    def _current(self) -> AttemptContext:
        ctx = self._local.ctx
        if ctx is None:  # pragma: no cover - would be a host bug
            raise HostError("host function called outside a task attempt")
        return ctx

    def run(self, component: wc.Component, ctx: AttemptContext) -> AttemptEnd:
        """Run one attempt of `ctx.task` to its end. Blocks; call from a worker thread."""
        deadline = ctx.task.deadline_at
        if deadline is not None and datetime.now(UTC) >= deadline and not ctx.replay_only:
            return _timed_out(ctx)
        last_words = LastWords()

        def on_stderr(data: bytes) -> None:
            last_words.add(data)
            ctx.on_output(Stream.STDERR, data)

        self._local.ctx = ctx
        self._entered(ctx)  # before the check below: a `close` from now on waits for us
        source = ctx.source
        prepared = self.pool.take(component, source)
        if self.pool.enabled:
            # The next instance is made now, beside this attempt, not after its end: a
            # task launched as this one ends (one after another) then finds it ready.
            self._dropper.soon(lambda: self.pool.fill(component, source))
        store = wasmtime.Store(self.engine) if prepared is None else prepared.store
        try:
            if self._closing:
                raise HostError("the runtime is closed")
            # Set on a prepared instance's store too: making it read nothing of WASI.
            wasi = wasmtime.WasiConfig()
            # No args, no environment, no preopened directories, no network: the guest
            # sees only what the durable host gives it.
            self._guests.attach_output(
                wasi,
                stdout=lambda data: ctx.on_output(Stream.STDOUT, data),
                stderr=on_stderr,
            )
            store.set_wasi(wasi)
            ctx.pollables = ReadyPollables(self.timer_helper, store)
            if prepared is None:
                store.set_limits(memory_size=self.config.memory_limit)
            watchdog = install_watchdog(store, ctx, self.engine)
            try:
                # One component instance calls our host functions in this store: their
                # types are checked at their first call, not at every call.
                with trampoline.plan_scope():
                    return self._call(store, component, ctx, last_words, prepared)
            finally:
                del watchdog
        finally:
            ctx.close()
            self._local.ctx = None
            self._running.discard(ctx)  # ended: no sweep or close may touch it now
            # Closed on another thread, then counted out; the next attempt's instance is
            # made there meanwhile.
            refill = None if self._closing or not self.pool.enabled else component
            self._dropper.drop(
                store, None if refill is None else lambda: self.pool.fill(refill, source)
            )

    def _entered(self, ctx: AttemptContext) -> None:
        self._guests.enter()
        self._running.add(ctx)

    def _call(
        self,
        store: wasmtime.Store,
        component: wc.Component,
        ctx: AttemptContext,
        last_words: LastWords,
        prepared: Prepared | None = None,
    ) -> AttemptEnd:
        task = ctx.task
        try:
            try:
                if prepared is None:
                    instance = self.linker.instantiate(store, component)
                    run = instance.get_func(store, "run")
                    if run is None:  # checked at load time; kept for older binaries
                        return _failed(ctx, "ComponentError", "component does not export `run`")
                    prepare = prepare_export(instance, store)
                    prepared = Prepared(store=store, run=run, prepare=prepare, imported=False)
                value = None
                if ctx.source is not None and prepared.prepare and not prepared.imported:
                    # The interpreter imports the workflow first, as a pooled one did.
                    value = prepared.prepare(store, workflow_source(ctx.source))  # ok: None
                if value is None:
                    value = prepared.run(store, task.entry, task.input)
            except wasmtime.WasmtimeError:
                # A host function parked the real reason before trapping the guest.
                if ctx.unwinding is not None:
                    raise ctx.unwinding from None
                if ctx.stopped_by is not None:
                    return self._stopped(ctx, ctx.stopped_by)
                raise
            ctx.raise_deferred()  # an output flush failed after the guest's last call
            ctx.cursor.check_finished()
        except Suspend as signal:
            return suspended(ctx, signal.wakeup_at, on_event=signal.on_event)
        except Release:
            return _end(ctx, Released())
        except ContinueAsNew as signal:
            if ctx.cancel_delivered:
                return _cancelled(ctx, "the workflow handled the cancellation and continued as new")
            return _end(ctx, ContinuedAsNew(input=signal.input), frontier=True)
        except TimedOut:
            return _timed_out(ctx)
        except CancelledAtCall:
            return _cancelled(ctx, cancel_gate.MESSAGE)
        except Evicted:  # its suspension is written already: nothing more to write
            return AttemptEnd(outcome=None)
        except HistoryExhausted as signal:
            return AttemptEnd(outcome=None, exhausted=signal)
        except LeaseLostError:
            return AttemptEnd(outcome=None)
        except NondeterminismError as exc:
            # The history stays as it was: nothing recorded in this attempt is written.
            ctx.cursor.take_pending()
            ctx.side_writes.clear()
            ctx.note(f"NondeterminismError: {exc}\n")
            return AttemptEnd(
                outcome=Failed(error=_error_json("NondeterminismError", str(exc), "")),
                logs=ctx.take_logs(frontier=True),
            )
        except OutputLimitExceeded as exc:
            return _failed(ctx, "OutputLimitExceeded", str(exc))
        except HostError as exc:
            return _failed(ctx, "HostError", str(exc))
        except wasmtime.WasmtimeError as exc:
            return _failed(ctx, *from_trap(str(exc), self.config.memory_limit, last_words))
        if isinstance(value, str):
            if ctx.cancel_delivered:
                return _cancelled(ctx, "the workflow handled the cancellation and returned")
            return _end(ctx, Completed(result=value), frontier=True)
        raised = getattr(value, "kind", "Error")
        kind, message = from_guest(
            raised, getattr(value, "message", str(value)), self.config.memory_limit
        )
        traceback = getattr(value, "traceback", "")
        if ctx.cancel_delivered:
            return _cancelled(ctx, message, traceback)
        if kind != raised:  # named after the limit: say so below the guest's traceback
            ctx.note(f"{kind}: {message}\n")
        return _end(ctx, Failed(error=_error_json(kind, message, traceback)), frontier=True)

    def _stopped(self, ctx: AttemptContext, reason: str) -> AttemptEnd:
        """The watchdog stopped a guest that was running without host calls."""
        if reason == "cancelled":
            return _cancelled(ctx, "stopped while running: it did not reach a durable call")
        if reason in ("shutdown", watchdog.PREEMPTED):  # runs again, from its history
            return _end(ctx, Released())
        return _timed_out(ctx)


def _end(ctx: AttemptContext, outcome: Outcome, *, frontier: bool = False) -> AttemptEnd:
    """What is left to write: events, their side-writes, and output (all of it
    but a running step body's, which runs again; with `frontier`, as the task has
    ended, that too)."""
    writes, ctx.side_writes = ctx.side_writes, []
    return AttemptEnd(
        outcome=outcome,
        events=ctx.cursor.take_pending(),
        logs=ctx.take_logs(frontier=frontier),
        writes=writes,
    )


def suspended(ctx: AttemptContext, wakeup_at: datetime | None, *, on_event: bool) -> AttemptEnd:
    """The end of an attempt whose task suspends (`Suspend`, or a guest parked live)."""
    return _end(ctx, Suspended(wakeup_at=wakeup_at, on_event=on_event))


def _cancelled(ctx: AttemptContext, message: str, traceback: str = "") -> AttemptEnd:
    ctx.note(f"Cancelled: {message}\n")
    return _end(ctx, Cancelled(error=_error_json("Cancelled", message, traceback)), frontier=True)


def _timed_out(ctx: AttemptContext) -> AttemptEnd:
    deadline = ctx.task.deadline_at
    when = deadline.isoformat(timespec="seconds") if deadline else "?"
    return _failed(ctx, "TimeoutError", f"task {ctx.task.id} passed its deadline ({when})")


def _failed(ctx: AttemptContext, kind: str, message: str) -> AttemptEnd:
    ctx.note(f"{kind}: {message}\n")
    return _end(ctx, Failed(error=_error_json(kind, message, "")), frontier=True)


def _error_json(kind: str, message: str, traceback: str) -> str:
    return TaskError(kind=kind, message=message, traceback=traceback).to_json()
