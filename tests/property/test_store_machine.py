"""A Hypothesis state machine over the `Store` operations, checked against a tiny model.

Rules create tasks (some as children), claim, append (consuming notifications),
finish with every outcome, notify, cancel, renew, remove workers and move a fake clock.
After every step the store must agree with the model on each task's state, owner,
attempts, timer, result, cancel flag, history, logs and next notification, and on
`next_wakeup`. Leases handed out earlier stay in play, so stale writers (and the
fencing that stops them) come up constantly.

The store is async and Hypothesis drives a sync machine, so each machine talks to its
store through an anyio blocking portal (an event loop in a helper thread).
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from durable.core.model import (
    Cancelled,
    Completed,
    Event,
    Failed,
    Lease,
    LogChunk,
    NewTask,
    Outcome,
    Released,
    Stream,
    Suspended,
    TaskState,
)
from durable.core.side_writes import ConsumeNotification
from durable.errors import ConflictError, InvalidStateError, LeaseLostError, StorageError
from durable.storage.base import Store
from durable.storage.memory import MemoryStore
from durable.storage.sqlite import SQLiteStore

T = TypeVar("T")
START = datetime(2030, 1, 1, tzinfo=UTC)
WORKERS = ("w1", "w2", "w3")
WASM = b"\x00asm state machine"
COUNTS = st.integers(0, 3)  # events per append
SKEWS = st.sampled_from([0, 0, 0, -1, 1])  # first index minus the right one
KINDS = st.sampled_from(  # how an attempt ends; waiting on events is the subtle one
    ["complete", "fail", "cancel", "release", "sleep", "wait", "events", "events"]
)
DELAYS = st.sampled_from([-5, 0, 30])  # timer, in seconds from now
CONSUME = st.sampled_from(["none", "none", "next", "bad"])  # what the write consumes


@dataclass
class Clock:
    """A fake clock the machine moves forward by hand."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class ModelTask:
    """What the store should hold for one task."""

    parent: int | None = None
    state: TaskState = TaskState.READY
    owner: str | None = None
    token: int = 0
    expires: datetime | None = None
    wakeup: datetime | None = None
    attempts: int = 0
    result: str | None = None
    error: str | None = None
    on_event: bool = False
    wake_pending: bool = False
    cancel_requested: bool = False
    events: list[str] = field(default_factory=list)
    logs: list[bytes] = field(default_factory=list)

    def runnable(self, now: datetime) -> bool:
        if self.state is TaskState.READY:
            return True
        if self.state is TaskState.SUSPENDED:
            return self.wakeup is not None and self.wakeup <= now
        if self.state is TaskState.ACTIVE:
            return self.expires is not None and self.expires <= now
        return False

    def holds(self, lease: Lease) -> bool:
        return (
            self.state is TaskState.ACTIVE
            and self.owner == lease.worker_id
            and self.token == lease.token
        )

    def end(self, state: TaskState, result: str | None = None, error: str | None = None) -> None:
        self.state, self.result, self.error = state, result, error
        self.owner = self.expires = self.wakeup = None
        self.on_event = False


StoreMaker = Callable[[Clock], Awaitable[Store]]


class StoreMachine(RuleBasedStateMachine):
    """Drives one store and one model in lockstep."""

    portal: BlockingPortal
    make_store: StoreMaker

    leases = Bundle("leases")

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.store = self.call(self.make_store, self.clock)
        self.digest = self.call(self.store.put_workflow, WASM)
        self.tasks: dict[int, ModelTask] = {}
        self.keys: dict[str, int] = {}
        self.notes: dict[int, tuple[int, bool]] = {}  # seq -> (task, consumed)
        self.note_keys: dict[int, int] = {}  # task -> seq of its notification with a key

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        return self.portal.call(lambda: fn(*args, **kwargs))

    def expect_error(self, error: type[Exception] | None, fn: Callable[[], Awaitable[Any]]) -> Any:
        raised: Exception | None = None
        result = None
        try:
            result = self.portal.call(fn)
        except StorageError as exc:
            raised = exc
        if error is None:
            assert raised is None, f"unexpected {raised!r}"
        else:
            assert isinstance(raised, error), f"expected {error.__name__}, got {raised!r}"
        return result

    def teardown(self) -> None:
        self.call(self.store.close)

    def pending(self, task_id: int) -> list[int]:
        return sorted(s for s, (t, used) in self.notes.items() if t == task_id and not used)

    def wake(self, task_id: int | None) -> None:
        """A notification or a child's end reaches `task_id` (model of the store's)."""
        if task_id is None:
            return
        model = self.tasks[task_id]
        if model.state is TaskState.SUSPENDED and model.on_event:
            model.state, model.wakeup, model.on_event = TaskState.READY, None, False
        elif model.state is TaskState.ACTIVE:
            model.wake_pending = True

    def live_leases(self) -> list[Lease]:
        """The lease now in force on each active task (what a healthy worker holds)."""
        return [
            Lease(task_id=tid, worker_id=m.owner, token=m.token)
            for tid, m in sorted(self.tasks.items())
            if m.state is TaskState.ACTIVE and m.owner is not None
        ]

    # -- launching, notifying, cancelling -------------------------------------------------

    @rule(key=st.sampled_from([None, None, "k1", "k2"]), parent=st.integers(0, 3))
    def create(self, key: str | None, parent: int) -> None:
        parent_id = sorted(self.tasks)[-parent] if 0 < parent <= len(self.tasks) else None
        spec = NewTask(
            name="t",
            workflow_hash=self.digest,
            input="{}",
            idempotency_key=key,
            parent_id=parent_id,
        )
        task = self.call(self.store.create_task, spec)
        if key is not None and key in self.keys:
            assert task.id == self.keys[key]
            return
        assert task.id not in self.tasks
        assert all(task.id > known for known in self.tasks)
        self.tasks[task.id] = ModelTask(parent=parent_id)
        if key is not None:
            self.keys[key] = task.id

    @precondition(lambda self: bool(self.tasks))
    @rule(data=st.data(), keyed=st.booleans())
    def notify(self, data: st.DataObject, keyed: bool) -> None:
        # Running tasks twice as likely: a wake-up while active is the case easy to lose.
        running = [lease.task_id for lease in self.live_leases()]
        task_id = data.draw(st.sampled_from(sorted(self.tasks) + running))
        key = "k" if keyed else None
        if keyed and task_id in self.note_keys:
            note = self.call(self.store.notify, task_id, "e", "{}", key=key)
            assert note.seq == self.note_keys[task_id], "a repeated key must return the first"
            return
        error = InvalidStateError if self.tasks[task_id].state.is_terminal else None
        note = self.expect_error(error, lambda: self.store.notify(task_id, "e", "{}", key=key))
        if error is None:
            assert note.seq > max(self.notes, default=0)
            self.notes[note.seq] = (task_id, False)
            if keyed:
                self.note_keys[task_id] = note.seq
            self.wake(task_id)

    @precondition(lambda self: bool(self.tasks))
    @rule(data=st.data())
    def request_cancel(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(sorted(self.tasks)))
        if self.tasks[task_id].state.is_terminal:
            self.expect_error(InvalidStateError, lambda: self.store.request_cancel(task_id))
            return
        self.call(self.store.request_cancel, task_id)
        tree = [task_id]
        for parent in tree:
            tree.extend(t for t, m in self.tasks.items() if m.parent == parent)
        ended = []
        for tid in tree:
            model = self.tasks[tid]
            if model.state in (TaskState.READY, TaskState.SUSPENDED):
                model.end(TaskState.CANCELLED)  # its error is the store's own JSON
                ended.append(model)
            elif model.state is TaskState.ACTIVE:
                model.cancel_requested = True
        for model in ended:
            self.wake(model.parent)

    # -- claiming and leases --------------------------------------------------------------

    @rule(
        target=leases,
        worker=st.sampled_from(WORKERS),
        limit=st.integers(1, 3),
        lease_seconds=st.sampled_from([0, 10, 60]),
    )
    def claim(self, worker: str, limit: int, lease_seconds: int) -> Any:
        now = self.clock.now
        expected = [tid for tid in sorted(self.tasks) if self.tasks[tid].runnable(now)][:limit]
        claims = self.call(
            self.store.claim, worker_id=worker, limit=limit, lease_seconds=lease_seconds
        )
        assert [c.task.id for c in claims] == expected
        for claim in claims:
            model = self.tasks[claim.task.id]
            assert claim.lease.token > model.token
            model.state, model.owner, model.token = TaskState.ACTIVE, worker, claim.lease.token
            model.expires = now + timedelta(seconds=lease_seconds)
            model.wakeup, model.on_event, model.wake_pending = None, False, False
            model.attempts += 1
            assert claim.task.attempts == model.attempts
            assert claim.task.cancel_requested == model.cancel_requested
        return multiple(*(claim.lease for claim in claims))

    @rule(worker=st.sampled_from(WORKERS), lease_seconds=st.sampled_from([0, 30]))
    def renew(self, worker: str, lease_seconds: int) -> None:
        cancel = self.call(self.store.renew_leases, worker_id=worker, lease_seconds=lease_seconds)
        expected = []
        for tid, model in sorted(self.tasks.items()):
            if model.state is TaskState.ACTIVE and model.owner == worker:
                model.expires = self.clock.now + timedelta(seconds=lease_seconds)
                if model.cancel_requested:
                    expected.append(tid)
        assert cancel == expected

    @rule(worker=st.sampled_from(WORKERS))
    def remove_worker(self, worker: str) -> None:
        self.call(self.store.remove_worker, worker)
        for model in self.tasks.values():
            if model.state is TaskState.ACTIVE and model.owner == worker:
                model.expires = self.clock.now

    @rule(seconds=st.sampled_from([1, 10, 45, 120]))
    def advance_clock(self, seconds: int) -> None:
        self.clock.now += timedelta(seconds=seconds)

    # -- fenced writes --------------------------------------------------------------------
    # Two rules per write: one with any lease ever handed out (mostly stale ones, to
    # exercise fencing) and one with a live lease (to reach deep, valid histories).

    @rule(lease=leases, count=COUNTS, skew=SKEWS, log=st.booleans(), consume=CONSUME)
    def append_any(self, lease: Lease, count: int, skew: int, log: bool, consume: str) -> None:
        self.append(lease, count, skew, log, consume)

    @precondition(lambda self: bool(self.live_leases()))
    @rule(data=st.data(), count=COUNTS, skew=SKEWS, log=st.booleans(), consume=CONSUME)
    def append_live(
        self, data: st.DataObject, count: int, skew: int, log: bool, consume: str
    ) -> None:
        self.append(data.draw(st.sampled_from(self.live_leases())), count, skew, log, consume)

    @rule(lease=leases, kind=KINDS, count=st.integers(0, 2), delay=DELAYS, consume=CONSUME)
    def finish_any(self, lease: Lease, kind: str, count: int, delay: int, consume: str) -> None:
        self.finish(lease, kind, count, delay, consume)

    @precondition(lambda self: bool(self.live_leases()))
    @rule(data=st.data(), kind=KINDS, count=st.integers(0, 2), delay=DELAYS, consume=CONSUME)
    def finish_live(
        self, data: st.DataObject, kind: str, count: int, delay: int, consume: str
    ) -> None:
        lease = data.draw(st.sampled_from(self.live_leases()))
        self.finish(lease, kind, count, delay, consume)

    def consumption(self, task_id: int, consume: str) -> tuple[list[int], bool]:
        """The seqs a write consumes, and whether they are all pending for the task."""
        pending = self.pending(task_id)
        if consume == "next" and pending:
            return pending[:1], True
        if consume == "bad":  # already consumed, someone else's, or unknown
            used = [s for s, (t, done) in self.notes.items() if done or t != task_id]
            return [used[0] if used else 10_000], False
        return [], True

    def expected_error(
        self, lease: Lease, skew: int, count: int, consume_ok: bool
    ) -> type[Exception] | None:
        if not self.tasks[lease.task_id].holds(lease):
            return LeaseLostError
        if (count and skew) or not consume_ok:
            return ConflictError
        return None

    def append(self, lease: Lease, count: int, skew: int, log: bool, consume: str) -> None:
        model = self.tasks[lease.task_id]
        start = len(model.events) + skew
        events = [
            Event(index=i, label=f"e{i}", digest=None, payload="0")
            for i in range(start, start + count)
        ]
        logs = [LogChunk(position=start, stream=Stream.STDOUT, data=b"%d" % start)] if log else []
        consumed, consume_ok = self.consumption(lease.task_id, consume)
        error = self.expected_error(lease, skew, count, consume_ok)
        self.expect_error(
            error, lambda: self.store.append(lease, events, logs, writes=_consume(consumed))
        )
        if error is None:
            model.events.extend(e.label for e in events)
            model.logs.extend(c.data for c in logs)
            for seq in consumed:
                self.notes[seq] = (lease.task_id, True)

    def finish(self, lease: Lease, kind: str, count: int, delay: int, consume: str) -> None:
        model = self.tasks[lease.task_id]
        start = len(model.events)
        events = [
            Event(index=i, label=f"f{i}", digest="d", payload="1")
            for i in range(start, start + count)
        ]
        outcomes: dict[str, Outcome] = {
            "complete": Completed(result=f"r{lease.token}"),
            "fail": Failed(error=f"e{lease.token}"),
            "cancel": Cancelled(error=f"c{lease.token}"),
            "release": Released(),
            "sleep": Suspended(wakeup_at=self.clock.now + timedelta(seconds=delay)),
            "wait": Suspended(wakeup_at=None),
            "events": Suspended(wakeup_at=None, on_event=True),
        }
        outcome = outcomes[kind]
        consumed, consume_ok = self.consumption(lease.task_id, consume)
        error = self.expected_error(lease, 0, count, consume_ok)
        self.expect_error(
            error, lambda: self.store.finish(lease, outcome, events, writes=_consume(consumed))
        )
        if error is not None:
            return
        model.events.extend(e.label for e in events)
        for seq in consumed:
            self.notes[seq] = (lease.task_id, True)
        match outcome:
            case Completed(result=result):
                model.end(TaskState.COMPLETE, result=result)
            case Failed(error=failure) | Cancelled(error=failure):
                state = TaskState.FAILED if kind == "fail" else TaskState.CANCELLED
                model.end(state, error=failure)
            case Released():
                model.state, model.owner, model.expires = TaskState.READY, None, None
            case Suspended(wakeup_at=wakeup_at, on_event=on_event):
                model.owner = model.expires = None
                if model.cancel_requested or (on_event and model.wake_pending):
                    model.state = TaskState.READY
                else:
                    model.state, model.wakeup, model.on_event = (
                        TaskState.SUSPENDED,
                        wakeup_at,
                        on_event,
                    )
        if model.state.is_terminal:
            self.wake(model.parent)

    # -- invariants -----------------------------------------------------------------------

    @precondition(lambda self: bool(self.tasks))
    @invariant()
    def tasks_match_the_model(self) -> None:
        for task_id, m in self.tasks.items():
            task = self.call(self.store.get_task, task_id)
            seen = (task.state, task.owner, task.attempts, task.wakeup_at, task.result)
            want = (m.state, m.owner, m.attempts, m.wakeup, m.result)
            assert seen == want, f"task {task_id}: store {seen} != model {want}"
            assert task.cancel_requested == m.cancel_requested, f"task {task_id} cancel flag"
            if m.state is not TaskState.CANCELLED or m.error is not None:
                assert task.error == m.error, f"task {task_id}: error {task.error!r}"
            history = self.call(self.store.load_history, task_id)
            assert [e.index for e in history] == list(range(len(m.events)))
            assert [e.label for e in history] == m.events
            logs = self.call(self.store.read_logs, task_id)
            assert [c.data for c in logs] == m.logs
            assert [c.seq for c in logs] == list(range(1, len(m.logs) + 1))
            note = self.call(self.store.next_notification, task_id)
            pending = self.pending(task_id)
            assert (note and note.seq) == (pending[0] if pending else None), "next notification"

    @invariant()
    def next_wakeup_matches_the_model(self) -> None:
        times = [m.wakeup for m in self.tasks.values() if m.state is TaskState.SUSPENDED]
        times += [m.expires for m in self.tasks.values() if m.state is TaskState.ACTIVE]
        expected = min((t for t in times if t is not None), default=None)
        assert self.call(self.store.next_wakeup) == expected


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal(backend="asyncio") as portal:
        yield portal


def _makers(tmp_path: Path) -> dict[str, StoreMaker]:
    counter = itertools.count()

    async def memory(clock: Clock) -> Store:
        return MemoryStore(clock=clock)

    async def sqlite(clock: Clock) -> Store:
        # A fresh file per example; NORMAL only to keep thousands of examples quick.
        path = tmp_path / f"machine-{next(counter)}.db"
        store = await SQLiteStore.open(path, synchronous="NORMAL", clock=clock)
        await store.migrate()
        return store

    return {"memory": memory, "sqlite": sqlite}


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_store_state_machine(backend: str, portal: BlockingPortal, tmp_path: Path) -> None:
    class Machine(StoreMachine):
        pass

    Machine.portal = portal
    Machine.make_store = staticmethod(_makers(tmp_path)[backend])
    run_state_machine_as_test(Machine)


def _consume(seqs: list[int]) -> list[ConsumeNotification]:
    return [ConsumeNotification(seq=seq) for seq in seqs]
