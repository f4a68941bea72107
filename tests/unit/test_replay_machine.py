"""The replay machine (`durable.core.machine`), driven directly: no wasmtime, no store,
no threads, a fake clock. Every decision, and a crash at every commit of a script."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from durable.core import machine as m
from durable.core import ops
from durable.core.model import Event
from durable.core.side_writes import SetStatus, SideWrite
from durable.core.signals import HistoryExhausted
from durable.errors import HostError, NondeterminismError


class FakeClock:
    """Time that moves only when told."""

    def __init__(self) -> None:
        self.mono = 100.0
        self.wall = 1_700_000_000_000_000_000

    def monotonic(self) -> float:
        return self.mono

    def time_ns(self) -> int:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += int(seconds * 1e9)


LIMITS = m.Limits(max_pending_events=3, flush_interval=0.2, suspend_after=10.0)


def machine(
    history: Sequence[Event] = (), clock: FakeClock | None = None, **kw: Any
) -> m.ReplayMachine:
    return m.ReplayMachine(
        history, seed=42, task_id=7, limits=LIMITS, clock=clock or FakeClock(), **kw
    )


def recorded(mach: m.ReplayMachine) -> list[Event]:
    events, _ = mach.take()
    return events


# -- single decisions ----------------------------------------------------------------------


def test_the_clock_is_recorded_once_and_replayed() -> None:
    clock = FakeClock()
    first = machine(clock=clock)
    value, fresh = first.now_ns()
    assert (value, fresh) == (clock.wall, True)
    history = recorded(first)
    assert [(e.label, e.payload) for e in history] == [(ops.CLOCK_NOW.label, str(clock.wall))]
    clock.advance(5)
    again = machine(history, clock=clock)
    assert again.now_ns() == (value, False)
    assert recorded(again) == []
    assert again.now_ns() == (clock.wall, True)  # past the history: live, and recorded


def test_inside_a_step_the_clock_is_live_and_unrecorded() -> None:
    clock = FakeClock()
    mach = machine(clock=clock)
    assert mach.step_enter("step s", "d") is None
    assert mach.now_ns() == (clock.wall, False)
    assert mach.step_exit('{"value": 1}') is False
    assert [e.label for e in recorded(mach)] == ["step s"]


def test_group_commit_is_due_by_count_or_by_age() -> None:
    clock = FakeClock()
    mach = machine(clock=clock)
    assert not mach.commit_due()
    mach.record("a", None, "1")
    assert not mach.commit_due()
    clock.advance(0.19)
    assert not mach.commit_due()
    clock.advance(0.01)
    assert mach.commit_due()  # the oldest waited `flush_interval`
    mach.take()
    for label in "bcd":
        mach.record(label, None, "1")
    assert mach.commit_due()  # `max_pending_events`, at once
    events, writes = mach.take()
    assert [e.index for e in events] == [1, 2, 3]
    assert writes == []
    mach.restore(events, [SetStatus(key="k", value="1", position=3)])
    assert mach.take() == (events, [SetStatus(key="k", value="1", position=3)])


def test_limits_refuse_a_record() -> None:
    mach = m.ReplayMachine(
        [], seed=1, task_id=7, limits=m.Limits(max_events=2, max_payload_bytes=5)
    )
    mach.record("a", None, "1")
    with pytest.raises(HostError, match="a: recorded payload of 6 bytes is over the limit of 5"):
        mach.record("a", None, "123456")
    mach.record("b", None, "1")
    with pytest.raises(HostError, match="task 7 reached the limit of 2 events"):
        mach.record("c", None, "1")


def test_before_record_may_refuse() -> None:
    def refuse() -> None:
        raise OSError("deferred")

    mach = m.ReplayMachine([], seed=1, before_record=refuse)
    with pytest.raises(OSError, match="deferred"):
        mach.now_ns()
    assert mach.cursor.position == 0


def test_a_replay_check_records_nothing_and_runs_no_step_body() -> None:
    mach = machine(replay_only=True)
    with pytest.raises(HistoryExhausted):
        mach.now_ns()
    with pytest.raises(HistoryExhausted):
        mach.step_enter("step s", None)
    with pytest.raises(HistoryExhausted):
        mach.effect("http GET x", "d")
    assert mach.wait(None, cancelling=False, on_event=True, interval=0.01) == m.GiveUp()


def test_entropy_and_call_numbers_follow_the_event_position() -> None:
    a, b = machine(), machine()
    first = a.random_bytes(8)
    assert first == b.random_bytes(8)  # the seed and the position, nothing else
    assert a.random_bytes(8) != first  # the counter moves on at one position
    assert a.call_number() == 1
    assert a.call_number() == 2
    a.record("x", None, "1")
    assert a.call_number() == 1  # reset at a new position
    after = a.random_bytes(8)
    replayed = machine(recorded(a))
    assert replayed.random_bytes(8) == first  # position 0 again
    replayed.cursor.next("x")
    assert replayed.random_bytes(8) == after


def test_steps_do_not_nest_and_an_effect_inside_commits_the_step_at_once() -> None:
    mach = machine()
    mach.step_enter("step a", None)
    with pytest.raises(HostError, match="step 'step b' started inside step 'step a'"):
        mach.step_enter("step b", None)
    assert mach.effect("http GET x", "d") == m.Unrecorded()
    assert mach.step_exit("{}") is True
    with pytest.raises(HostError, match="step exit without a step in progress"):
        mach.step_exit("{}")


def test_an_effect_is_performed_past_the_history_and_replayed_within_it() -> None:
    mach = machine()
    assert mach.effect("http GET x", "d") == m.Perform()
    mach.record("http GET x", "d", '{"ok": 1}')
    history = recorded(mach)
    assert machine(history).effect("http GET x", "d") == m.Replayed('{"ok": 1}')
    with pytest.raises(NondeterminismError):
        machine(history).effect("http GET y", "d")
    with pytest.raises(NondeterminismError):
        machine(history).effect("http GET x", "other")


def test_deadlines_are_recorded_when_a_wait_starts() -> None:
    clock = FakeClock()
    mach = machine(clock=clock)
    deadline = mach.sleep_deadline(5_000_000_000)
    assert deadline == clock.wall + 5_000_000_000
    assert mach.recorded_deadline(ops.NOTIFY_DEADLINE, "d", None) is None
    wait = mach.recorded_deadline(ops.NOTIFY_DEADLINE, "d", 1_000)
    assert mach.sleep_until(123) == 123
    history = recorded(mach)
    assert [e.label for e in history] == [
        ops.TIMER_SLEEP.label, ops.NOTIFY_DEADLINE.label, ops.TIMER_SLEEP_UNTIL.label,
    ]  # fmt: skip
    clock.advance(3)  # a replay keeps the first deadline
    again = machine(history, clock=clock)
    assert again.sleep_deadline(5_000_000_000) == deadline
    assert again.recorded_deadline(ops.NOTIFY_DEADLINE, "d", 1_000) == wait


def test_wait_decisions() -> None:
    clock = FakeClock()
    now = clock.wall
    task_deadline = now + 60 * 10**9
    mach = machine(clock=clock, task_deadline_ns=task_deadline)
    kw: dict[str, Any] = {"cancelling": False, "on_event": False, "interval": 0.01}
    assert mach.wait(now, **kw) == m.Expired()
    assert mach.wait(now + 2 * 10**9, **kw) == m.Block(2.0)
    assert mach.wait(now + 2 * 10**9, **{**kw, "on_event": True}) == m.Block(0.01)
    assert mach.wait(now + 20 * 10**9, **kw) == m.SuspendTask(now + 20 * 10**9)
    assert mach.wait(now + 90 * 10**9, **kw) == m.SuspendTask(task_deadline)  # capped
    assert mach.wait(None, **kw) == m.SuspendTask(task_deadline)
    assert mach.wait(None, **{**kw, "cancelling": True}) == m.GiveUp()
    clock.advance(61)
    assert mach.wait(None, **kw) == m.TaskTimedOut()
    assert machine(clock=clock).wait(None, **kw) == m.SuspendTask(None)


def test_a_cancellation_is_delivered_once_and_replayed_where_it_was() -> None:
    mach = machine()
    assert mach.cancelled(requested=False) == (False, False)
    mach.step_enter("step s", None)
    assert mach.cancelled(requested=True) == (False, False)  # not inside a step
    mach.step_exit("{}")
    assert mach.cancelled(requested=True) == (True, True)
    assert mach.cancel_delivered
    assert mach.cancelled(requested=True) == (False, False)  # once
    history = recorded(mach)
    again = machine(history)
    assert again.cancelled(requested=False) == (False, False)  # the step comes first
    assert again.step_enter("step s", None) == "{}"
    assert again.cancelled(requested=False) == (True, False)  # from the history
    assert again.cancel_delivered


# -- every crash point of a script ---------------------------------------------------------

# A script is a list of ops, interpreted on the machine the way the host's adapter
# would; its "store" is a list of committed batches. Ops: now, random, step, effect
# (an outside effect: performed at least once), status (a side-write that must commit
# with its event), sleep (a short one: commit, then the clock moves on).
OPS = ["now", "random", "step", "effect", "status", "sleep"]


class Crash(Exception):
    """The process died."""


@dataclass
class Store:
    """What is durable: the history and the side-writes applied with it."""

    history: list[Event] = field(default_factory=list)
    status: dict[str, tuple[str, int]] = field(default_factory=dict)
    commits: int = 0

    def commit(self, events: list[Event], writes: list[SideWrite]) -> None:
        assert [e.index for e in events] == list(
            range(len(self.history), len(self.history) + len(events))
        ), "a commit must continue the history"
        self.history.extend(events)
        for write in writes:
            assert isinstance(write, SetStatus)
            assert write.position < len(self.history), "a side-write commits with its event"
            self.status[write.key] = (write.value, write.position)


@dataclass
class Run:
    """One attempt: the machine, and where the process dies."""

    store: Store
    clock: FakeClock
    crash_at: int | None = None  # the commit number at which the process dies
    after: bool = False  # die right after that commit is durable (else just before)
    performed: list[int] = field(default_factory=list)  # effects done, by op index
    writes: int = 0  # commits attempted by this attempt

    def commit(self, mach: m.ReplayMachine) -> None:
        events, writes = mach.take()
        if not events and not writes:
            return
        number = self.store.commits
        if self.crash_at == number and not self.after:
            raise Crash
        self.store.commit(events, writes)
        self.store.commits += 1
        if self.crash_at == number and self.after:
            raise Crash

    def maybe_commit(self, mach: m.ReplayMachine) -> None:
        if mach.commit_due():
            self.commit(mach)

    def attempt(self, script: Sequence[str]) -> list[Any]:
        mach = machine(list(self.store.history), clock=self.clock)
        observed: list[Any] = []
        for i, op in enumerate(script):
            self.clock.advance(0.05)
            observed.append(self._op(mach, i, op))
        mach.cursor.check_finished()
        self.commit(mach)  # the finish
        return observed

    def _op(self, mach: m.ReplayMachine, i: int, op: str) -> Any:
        if op == "now":
            value, fresh = mach.now_ns()
            if fresh:
                self.maybe_commit(mach)
            return value
        if op == "random":
            return mach.random_bytes(4).hex()
        if op == "step":
            payload = mach.step_enter(f"step s{i}", str(i))
            if payload is None:
                payload = json.dumps({"value": i * i})
                if mach.step_exit(payload):
                    self.commit(mach)
                else:
                    self.maybe_commit(mach)
            return json.loads(payload)
        if op == "effect":
            decision = mach.effect(f"effect {i}", None)
            if isinstance(decision, m.Replayed):
                return decision.payload
            self.commit(mach)
            self.performed.append(i)
            mach.record(f"effect {i}", None, json.dumps(f"done {i}"))
            self.commit(mach)
            return json.dumps(f"done {i}")
        if op == "status":
            op_ = ops.STATUS_SET
            key, value = f"k{i % 2}", json.dumps(i)
            digest = status_digest(key, value)
            if mach.cursor.next(op_.label, digest) is None:
                event = mach.record(op_.label, digest, op_.encode({"key": key}))
                mach.side_writes.append(SetStatus(key=key, value=value, position=event.index))
                self.commit(mach)
            return None
        assert op == "sleep"
        deadline = mach.sleep_deadline(10_000_000)
        decision = mach.wait(deadline, cancelling=False, on_event=False, interval=0.01)
        if isinstance(decision, m.Block):
            self.commit(mach)
            self.clock.advance(decision.seconds)
        return None


def run_to_end(
    script: Sequence[str], store: Store, clock: FakeClock, **kw: Any
) -> tuple[Run, list[Any] | None]:
    run = Run(store=store, clock=clock, **kw)
    try:
        return run, run.attempt(script)
    except Crash:
        return run, None


def status_digest(key: str, value: str) -> str:
    return hashlib.sha256(f"{key}={value}".encode()).hexdigest()[:8]


def expected_status(script: Sequence[str], history: Sequence[Event]) -> dict[str, tuple[str, int]]:
    """Each key's last value in the script, at the index of the event that set it."""
    where = {e.digest: e.index for e in history if e.label == ops.STATUS_SET.label}
    out: dict[str, tuple[str, int]] = {}
    for i, op in enumerate(script):
        if op == "status":
            key, value = f"k{i % 2}", json.dumps(i)
            out[key] = (value, where[status_digest(key, value)])
    return out


def check_every_crash_point(script: Sequence[str]) -> int:
    """Crash before and after each commit of `script`; resume; compare with a reference
    run. Returns how many crash points it explored."""
    reference_store = Store()
    reference, observed = run_to_end(script, reference_store, FakeClock())
    assert observed is not None
    assert reference_store.status == expected_status(script, reference_store.history)
    commits = reference_store.commits
    points = 0
    for crash_at in range(commits):
        for after in (False, True):
            store, clock = Store(), FakeClock()
            first, died = run_to_end(script, store, clock, crash_at=crash_at, after=after)
            assert died is None, f"the crash point {crash_at} was never reached"
            durable = list(store.history)
            resumed, final = run_to_end(script, store, clock)
            assert final is not None
            where = f"{script}, crash {'after' if after else 'before'} commit {crash_at}"
            assert store.history[: len(durable)] == durable, f"{where}: history rewritten"
            assert [(e.label, e.digest) for e in store.history] == [
                (e.label, e.digest) for e in reference_store.history
            ], where
            assert store.status == reference_store.status, f"{where}: status"
            for i, op in enumerate(script):
                if op == "now":  # a live value: it must be what its own event says
                    assert str(final[i]) in {e.payload for e in store.history}, where
                else:
                    assert final[i] == observed[i], f"{where}: op {i} ({op})"
            performed = first.performed + resumed.performed
            assert sorted(set(performed)) == sorted(reference.performed), where
            assert len(performed) <= len(reference.performed) + 1, f"{where}: at least once"
            points += 1
    return points


EVERY_OP = ["now", "random", "step", "effect", "status", "sleep", "status", "now", "effect"]


def test_every_crash_point_of_every_op_resumes_to_the_same_end() -> None:
    assert check_every_crash_point(EVERY_OP) >= 2 * 6


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(OPS), min_size=1, max_size=12))
def test_every_crash_point_of_generated_scripts(script: list[str]) -> None:
    check_every_crash_point(script)


def test_crash_points_per_second(capsys: pytest.CaptureFixture[str]) -> None:
    """Not a speed assert: prints how many crash points the machine alone explores."""
    start, points = time.perf_counter(), 0
    while time.perf_counter() - start < 0.5:
        points += check_every_crash_point(EVERY_OP)
    rate = points / (time.perf_counter() - start)
    with capsys.disabled():
        print(f"\nreplay machine: {rate:,.0f} crash points per second")
    assert points > 0
