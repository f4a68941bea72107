"""Guest output between its write and its commit, and what a replay must skip.

The rule. Output carries `position`: the number of events recorded before it. Output
at position p may be committed as soon as events 0 .. p-1 are (a flush writes the
pending events and the output in one transaction, in that order), because it is then a
function of the committed history alone: a replay that reaches position p prints the
same bytes again. So an attempt that starts from a history of N events

* drops its output at positions below N: all of it was logged, with or before event p;
* at position N, skips as many guest bytes as are logged there already (counted in
  write order across stdout and stderr: `Store.logged_bytes`), and logs the rest;
* logs all output after that.

Nothing is printed twice and nothing is lost, and output can stream to the log while
the guest runs, instead of waiting for its next durable call.

Where the rule's premise fails, and what is done about it:

* A step's body runs live, and again after a crash, and may print something else the
  second time. Its output is held back until the step's result is recorded, and
  committed with it: logged once, by the run whose result counts. A body that prints
  more than the hold allows, or runs longer than the flush interval, streams like
  other output; if the worker then dies before the step's result is recorded, the
  re-run's output is logged in full after what the first run printed: at least once,
  like the body's other effects. (A live step start resets the skip for this reason.)
* A workflow SQL transaction's block is live too. The host commits nothing while one
  is open: its output commits with the transaction's event, or is dropped if the
  attempt ends inside it, so only deterministic output is logged at its position.
* Values the guest can read without a recorded event (`durable.info().attempt`) can
  change what it prints; a replay then skips by the byte count, and the log may keep a
  line as one attempt printed it, cut where the next attempt's differs.
* Host notes (why a task failed, say) are durable's own lines, not the guest's: they
  are logged at `NOTE_POSITION`, below every real position, so no skip counts them.

This module is pure: no I/O, no clock (callers pass `now`), no threads. The host calls
it under its own lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from durable.core.model import NOTE_POSITION, LogChunk, Stream


@dataclass(slots=True)
class _Run:
    """Consecutive writes to one stream at one position, joined in place (linear)."""

    position: int
    stream: Stream
    data: bytearray

    def chunk(self) -> LogChunk:
        return LogChunk(position=self.position, stream=self.stream, data=bytes(self.data))


class _Runs:
    """A list of runs with its byte count and the arrival time of its oldest byte."""

    __slots__ = ("items", "oldest", "size")

    def __init__(self) -> None:
        self.items: list[_Run] = []
        self.size = 0
        self.oldest = 0.0

    def add(self, position: int, stream: Stream, data: bytes | bytearray, now: float) -> None:
        if not data:
            return
        if not self.items:
            self.oldest = now
        last = self.items[-1] if self.items else None
        if last is not None and last.position == position and last.stream is stream:
            last.data += data  # amortised O(len(data)): bytearray grows geometrically
        else:
            self.items.append(_Run(position, stream, bytearray(data)))
        self.size += len(data)

    def extend(self, other: _Runs) -> None:
        """Append `other`'s runs (which came later) and empty it."""
        if not other.items:
            return
        oldest = other.oldest if not self.items else min(self.oldest, other.oldest)
        for run in other.items:
            self.add(run.position, run.stream, run.data, oldest)
        self.oldest = oldest
        other.clear()

    def clear(self) -> None:
        self.items, self.size = [], 0

    def take(self) -> list[LogChunk]:
        chunks = [run.chunk() for run in self.items]
        self.clear()
        return chunks


class OutputBuffer:
    """One attempt's output that is not durable yet; see the module docstring.

    Args:
        frontier: how many events the history had when the attempt began.
        logged: guest bytes already logged at position `frontier` (to skip).
        limit: the most guest bytes the task may print in all; past it, `exceeded`.
        flush_bytes: `due` once this much ordinary output is pending ...
        interval: ... or once its oldest byte has waited this long (seconds).
        hold_bytes: a step body's output is held back up to this many bytes (and
            `interval` seconds), then it streams.

    Attributes:
        printed: guest bytes written in this attempt, replayed ones included: what
            the task has printed so far, for the limit.
        exceeded: the task printed more than `limit`; the rest is dropped.
    """

    def __init__(
        self,
        *,
        frontier: int,
        logged: int,
        limit: int,
        flush_bytes: int,
        interval: float,
        hold_bytes: int,
    ) -> None:
        self._frontier = frontier
        self._skip = logged
        self._limit = limit
        self._flush_bytes = flush_bytes
        self._interval = interval
        self._hold_bytes = hold_bytes
        self._ready = _Runs()  # may be committed now
        self._held = _Runs()  # a step body's output, waiting for the step's result
        self._holding = False  # a live step body is running, and its output is held
        self.printed = 0
        self.exceeded = False

    @property
    def pending_bytes(self) -> int:
        """Bytes buffered, held step output included."""
        return self._ready.size + self._held.size

    @property
    def ready_bytes(self) -> int:
        """Bytes buffered that `take` would return (held step output excluded)."""
        return self._ready.size

    def write(self, position: int, stream: Stream, data: bytes, now: float) -> None:
        """Take one guest write, made with `position` events before it.

        Output at a position below the frontier is dropped (logged already), and at
        the frontier the first `logged` bytes are skipped; what remains is buffered.
        Past the limit the write is cut to fit and the rest dropped.
        """
        room = self._limit - self.printed
        if len(data) > room:
            data = data[: max(room, 0)]
            self.exceeded = True
        self.printed += len(data)
        if position < self._frontier:
            return
        if position == self._frontier and self._skip:
            cut = min(self._skip, len(data))
            self._skip -= cut
            data = data[cut:]
        (self._held if self._holding else self._ready).add(position, stream, data, now)

    def note(self, text: str, now: float) -> None:
        """Add a host note after everything the guest printed (held output included)."""
        self.release()
        self._ready.add(NOTE_POSITION, Stream.STDERR, text.encode(), now)

    def enter_step(self) -> None:
        """A step's body starts running live: hold its output back.

        The body may print something else if it runs again after a crash, so bytes
        logged at this position by an earlier attempt are not this run's to skip.
        """
        self._skip = 0
        self._holding = True

    def exit_step(self) -> None:
        """The step's result is recorded: its output goes with it."""
        self.release()

    def release(self) -> None:
        """Stop holding: the held output, and all output from here on, is ordinary."""
        self._ready.extend(self._held)
        self._holding = False

    def due(self, now: float) -> bool:
        """Whether output should be committed now.

        A step body's held output is released (and streams from then on) when there
        is `hold_bytes` of it or it has waited `interval`; it is then part of what is
        due. So at most `flush_bytes + hold_bytes` (and one write) are ever buffered.
        """
        held = self._held
        if held.size and (held.size >= self._hold_bytes or now - held.oldest >= self._interval):
            self.release()
        ready = self._ready
        return bool(ready.size) and (
            ready.size >= self._flush_bytes or now - ready.oldest >= self._interval
        )

    def take(self, *, held: bool = False) -> list[LogChunk]:
        """Remove and return the output that may be committed: the ordinary output,
        and with `held` a step body's held output too (the task has ended)."""
        if held:
            self.release()
        return self._ready.take()

    def drop_held(self) -> None:
        """Forget a step body's held output: the attempt ends before the step's result,
        so the body runs again in the next one."""
        self._held.clear()
        self._holding = False

    def restore(self, chunks: list[LogChunk], now: float) -> None:
        """Put back output whose commit failed, ahead of any buffered since."""
        again = _Runs()
        for chunk in chunks:
            again.add(chunk.position, chunk.stream, chunk.data, now)
        again.extend(self._ready)
        self._ready = again
