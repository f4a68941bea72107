"""The output buffer: linear joins, the skip at the frontier, step output, due, limit.

The last test is the rule itself as a property: a run that commits output early, dies
at any commit, and is replayed from what it committed logs every byte exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from durable.core.model import NOTE_POSITION, LogChunk, Stream
from durable.core.output import OutputBuffer
from tests.helpers import joined

OUT, ERR = Stream.STDOUT, Stream.STDERR
MiB = 1024 * 1024


def buffer(
    *,
    frontier: int = 0,
    logged: int = 0,
    limit: int = 64 * MiB,
    flush_bytes: int = MiB,
    interval: float = 0.5,
    hold_bytes: int = MiB,
) -> OutputBuffer:
    return OutputBuffer(
        frontier=frontier,
        logged=logged,
        limit=limit,
        flush_bytes=flush_bytes,
        interval=interval,
        hold_bytes=hold_bytes,
    )


def shape(chunks: Sequence[LogChunk]) -> list[tuple[int, str, bytes]]:
    return [(c.position, c.stream.value, c.data) for c in chunks]


def test_writes_join_per_position_and_stream_in_write_order() -> None:
    out = buffer()
    for _ in range(1000):
        out.write(0, OUT, b"ab", 0.0)
    out.write(0, ERR, b"e", 0.0)
    out.write(0, OUT, b"c", 0.0)
    out.write(1, OUT, b"d", 0.0)
    assert shape(out.take()) == [
        (0, "stdout", b"ab" * 1000),
        (0, "stderr", b"e"),
        (0, "stdout", b"c"),
        (1, "stdout", b"d"),
    ]
    assert out.take() == []
    assert out.printed == 2003


def test_a_replay_drops_what_is_logged_and_skips_by_bytes_at_the_frontier() -> None:
    # Logged before: 5 bytes at position 2 (the frontier), across both streams.
    out = buffer(frontier=2, logged=5)
    out.write(0, OUT, b"old line\n", 0.0)  # below the frontier: logged with event 0
    out.write(1, ERR, b"old err\n", 0.0)
    out.write(2, OUT, b"abc", 0.0)  # skipped whole
    out.write(2, ERR, b"defg", 0.0)  # "de" skipped, "fg" is new: a write split
    out.write(2, OUT, b"hi", 0.0)
    out.write(3, OUT, b"after", 0.0)
    assert shape(out.take()) == [
        (2, "stderr", b"fg"),
        (2, "stdout", b"hi"),
        (3, "stdout", b"after"),
    ]
    assert out.printed == 9 + 8 + 3 + 4 + 2 + 5, "replayed bytes count towards the limit"


def test_the_skip_belongs_to_the_frontier_only() -> None:
    out = buffer(frontier=1, logged=100)  # the replay printed less there: nondeterminism
    out.write(1, OUT, b"short", 0.0)
    out.write(2, OUT, b"kept", 0.0)
    assert shape(out.take()) == [(2, "stdout", b"kept")]


def test_a_live_step_body_is_held_until_its_result_and_resets_the_skip() -> None:
    out = buffer(frontier=0, logged=3)
    out.write(0, OUT, b"pre", 0.0)  # skipped: logged before
    out.enter_step()
    out.write(0, OUT, b"body", 0.0)  # the body may differ from last time: never skipped
    assert out.take() == [], "held until the step's result"
    assert out.ready_bytes == 0
    assert out.pending_bytes == 4
    out.exit_step()
    out.write(1, OUT, b"next", 0.0)
    assert shape(out.take()) == [(0, "stdout", b"body"), (1, "stdout", b"next")]


def test_held_step_output_is_dropped_when_the_attempt_ends_unfinished() -> None:
    out = buffer()
    out.write(0, OUT, b"before ", 0.0)
    out.enter_step()
    out.write(0, OUT, b"in body", 0.0)
    out.drop_held()
    assert shape(out.take()) == [(0, "stdout", b"before ")]


def test_a_task_that_ends_in_a_step_body_keeps_its_output_and_notes_come_last() -> None:
    out = buffer()
    out.enter_step()
    out.write(0, ERR, b"Traceback...\n", 0.0)
    out.note("HostError: boom\n", 0.0)
    assert shape(out.take(held=True)) == [
        (0, "stderr", b"Traceback...\n"),
        (NOTE_POSITION, "stderr", b"HostError: boom\n"),
    ]
    assert out.printed == 13, "a note is not guest output"


def test_due_by_size_and_by_age() -> None:
    out = buffer(flush_bytes=10, interval=0.5)
    assert not out.due(100.0)
    out.write(0, OUT, b"12345", 1.0)
    assert not out.due(1.4)
    assert out.due(1.5), "waited the interval"
    out.take()
    out.write(0, OUT, b"1234567890", 2.0)
    assert out.due(2.0), "a full buffer"


def test_a_step_body_streams_once_it_runs_long_or_fills_the_hold() -> None:
    out = buffer(flush_bytes=10, interval=0.5, hold_bytes=20)
    out.enter_step()
    out.write(0, OUT, b"12345678901234", 1.0)
    assert not out.due(1.0), "the body's output is held, even past flush_bytes"
    assert out.due(1.5), "the body has run for the interval: it streams"
    assert shape(out.take()) == [(0, "stdout", b"12345678901234")]
    out.write(0, OUT, b"x", 1.6)
    assert out.ready_bytes == 1, "streaming from then on"

    full = buffer(flush_bytes=10, interval=0.5, hold_bytes=20)
    full.enter_step()
    full.write(0, OUT, b"a" * 20, 1.0)
    assert full.due(1.0), "the hold is full"


def test_the_limit_cuts_the_write_that_crosses_it_and_drops_the_rest() -> None:
    out = buffer(limit=10)
    out.write(0, OUT, b"12345678", 0.0)
    assert not out.exceeded
    out.write(0, ERR, b"abcdef", 0.0)
    assert out.exceeded
    out.write(0, OUT, b"more", 0.0)
    assert shape(out.take()) == [(0, "stdout", b"12345678"), (0, "stderr", b"ab")]
    assert out.printed == 10


def test_restore_puts_failed_output_back_ahead_of_newer_output() -> None:
    out = buffer()
    out.write(0, OUT, b"a", 0.0)
    failed = out.take()
    out.write(0, OUT, b"b", 0.0)
    out.restore(failed, 0.0)
    assert shape(out.take()) == [(0, "stdout", b"ab")]


# -- the rule, as a property ---------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    stream: Stream
    data: bytes


#: "event": a durable call records one (ending a step's body, if one runs); "flush":
#: the host commits; "step": a step's body starts running live.
Op = Write | str


def _ops() -> st.SearchStrategy[list[Op]]:
    write = st.builds(Write, st.sampled_from([OUT, ERR]), st.binary(min_size=1, max_size=6))
    return st.lists(st.one_of(write, st.sampled_from(["event", "flush", "step"])), max_size=40)


def _run(
    ops: list[Op], *, history: int, logged: int, stop_at_flush: int | None
) -> tuple[list[LogChunk], int]:
    """Run the program on a buffer; return what it committed and the committed history
    length. With `stop_at_flush`, the process dies just before that flush."""
    out = buffer(frontier=history, logged=logged)
    position, committed_events, flushes, in_step = 0, history, 0, False
    committed: list[LogChunk] = []
    for op in ops:
        if isinstance(op, Write):
            out.write(position, op.stream, op.data, 0.0)
        elif op == "event":
            position += 1
            if in_step:
                out.exit_step()
                in_step = False
        elif op == "step":
            if not in_step and position >= history:  # a replayed step's body never runs
                out.enter_step()
                in_step = True
        else:
            if flushes == stop_at_flush:
                return committed, committed_events
            flushes += 1
            committed += out.take()  # with every event recorded before it
            committed_events = max(committed_events, position)
    if stop_at_flush is None:
        committed += out.take(held=True)
        committed_events = max(committed_events, position)
    return committed, committed_events


@given(ops=_ops(), crash=st.integers(min_value=0, max_value=20))
def test_a_run_killed_at_any_commit_and_replayed_logs_each_byte_once(
    ops: list[Op], crash: int
) -> None:
    reference, _ = _run(ops, history=0, logged=0, stop_at_flush=None)
    kept, history = _run(ops, history=0, logged=0, stop_at_flush=crash)
    logged = sum(len(c.data) for c in kept if c.position == history)
    resumed, _ = _run(ops, history=history, logged=logged, stop_at_flush=None)
    assert joined(kept + resumed) == joined(reference)
