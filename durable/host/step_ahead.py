"""The replay buffer: `step.enter-ahead` hands the guest the next recorded steps at once.

Why: a replayed step was one `step.enter-checked` call, and most of its host-side cost
was carrying strings across (the label and digest in, the payload out) and the
trampoline around them. With the buffer, a step whose entry the guest already holds
crosses with `step.take-ahead()`: no arguments, an empty result.

Design (the replay contract must not notice):

* The host never runs ahead of the guest. `enter-ahead` does what `enter-checked` does
  for its own step and then only *reads* the run of step events that follow (labels
  beginning "step ", at most `max`, at most `MAX_CHARS` of text); it consumes none of
  them. It remembers the entries it handed out, in order, as a window onto the events
  they were read from (`durable.host.ahead_window`).
* The guest replays an entry only for a step whose label and digest are the entry's,
  and then calls `take-ahead`, which performs `enter-checked` with the entry's label
  and digest: the same cancellation check, the same cancel gate, the same
  `step_enter` (cursor advance, the virtual clock's step, a step's clock-advance
  marker). So the host's position equals the guest's at every crossing, and what the
  host derives from it is placed as before: output (its de-duplication on replay),
  random bytes, the monotonic clock, call numbers, and the cancellation a replay
  delivers where the history holds it (the run stops before that event anyway).
* A step that does not match the next entry drops the guest's entries and goes through
  `enter-checked` or `enter-ahead`, which forget the host's and match the step against
  the history as always: the same `NondeterminismError`, at the same index. A call of
  another kind (a clock read, a print, a sleep) made where the history holds a step
  meets the host at that step's position and fails as it did without the buffer.
* Past the history, or at a live step, the run is empty and nothing changes: the switch
  from replay to recording, step bodies, nested-step refusal (`enter`, unchanged) and
  retries (each attempt is a step) work as before.
* Inside a SQL transaction block the run is empty (its cursor is the transaction's).

The answer is one string (three NUL-terminated fields per entry) because the
trampoline lowers one string in one copy, where a list of records costs several
conversions per entry, about what it saves. Events whose fields contain a NUL, or
whose digest is "", end the run. The guest's `take-ahead` check is its own: a guest
that calls it for a step other than the entry's replays that entry's answer as its own
step, which only a broken SDK does (as one that ignored `enter`'s answer could).

The short way (`take_ahead`), and why it is `enter-checked` exactly. The entries are
consecutive events, so each one's index is known. When `take-ahead` finds the cursor
the entries were read from (not a SQL transaction's) at the entry's index and no step
running, then what `enter-checked` would do there is known without doing it:

* `task.cancelled()` peeks at the event there, a step (the run holds nothing else): it
  answers false and records nothing. So the short way never answers `err`; a
  cancellation is delivered where the history holds it, or at its end, as before.
* The cancel gate lets every call through while the cursor is replaying.
* `step_enter` matches the event against the entry's label and digest, which were read
  from that very event (a loaded history is never rewritten; the cursor only appends
  past its end, and it cannot get there while it stands on an entry).
* What is left is its effect: a failure deferred from an output flush is raised (as
  `step_enter` does first), the cursor moves one event on, and the virtual clock takes
  a replayed step's allowance. A step whose body moved the clock far has a marker
  event after it; the run ends before a marker, so only the run's last entry can be
  followed by one, and then that entry (like any entry met in a state other than the
  above) takes the long way, `enter-checked` itself.

Why not `take-ahead(n)`, confirming n steps in one crossing. The host's position must
be the guest's at every crossing where anything observable happens, and a Python guest
makes crossings the SDK never sees: `datetime.now()`, `os.urandom()`, `random.seed()`,
`uuid.uuid4()` and the monotonic clock are WASI calls made from C between two steps,
and each answer depends on the position (a recorded clock reading is matched against
the event there, random bytes and the virtual clock derive from it). The SDK cannot
settle a count before a call it cannot see, and the host cannot tell how many of its
entries a guest has replayed when such a call arrives (a component's memory is not the
host's to read, and the host cannot call into the guest during the guest's call). So
every replayed step still crosses once, and the crossing is made cheap instead.
"""

from __future__ import annotations

from durable.core.ops import STEP_PREFIX
from durable.core.replay import ReplayCursor
from durable.core.virtual_clock import STEP_LABEL
from durable.errors import HostError
from durable.host import cancel_gate
from durable.host.ahead_window import NOTHING, AheadWindow
from durable.host.context import AttemptContext

#: The most text one `enter-ahead` hands out (labels, digests and payloads together).
MAX_CHARS = 1 << 20


def enter_ahead(ctx: AttemptContext, label: str, digest: str | None) -> str | None:
    """`enter-checked`, remembering the entries handed out after it (`handed_out`).

    Returns what `enter` returns. Raises `Cancelled` for `enter-checked`'s `err`.
    """
    ctx.ahead = NOTHING  # the guest dropped whatever it held before calling
    return _enter_checked(ctx, label, digest)


def handed_out(ctx: AttemptContext, limit: int) -> str:
    """The entries that follow the step just entered (see the module docstring), as
    `enter-ahead` hands them out; they are remembered as `ctx.ahead`, a window onto
    the events they were read from."""
    cursor = ctx.cursor
    if type(cursor) is not ReplayCursor or ctx.in_step:
        return ""  # a live step, or a SQL transaction's cursor
    events = cursor.upcoming(limit + 1)
    parts: list[str] = []  # one entry's three fields each, every field NUL-terminated
    count = 0
    for event in events:
        digest = event.digest
        if count == limit or digest == "" or not event.label.startswith(STEP_PREFIX):
            break
        parts.append(f"{event.label}\0{'' if digest is None else digest}\0{event.payload}\0")
        count += 1
    text = "".join(parts)
    # Checked on the whole text (two C loops, not three tests per field): a field with
    # a NUL of its own, or too much text, ends the run before that entry.
    if len(text) > MAX_CHARS or text.count("\0") != 3 * count:
        count, text = _cut(parts)
    if not count:
        return ""
    # The last entry's step moved the clock far: its marker follows, its way is the long one.
    marked = count < len(events) and events[count].label == STEP_LABEL
    ctx.ahead = AheadWindow(events, count, base=cursor.position, cursor=cursor, marked=marked)
    return text


def _cut(parts: list[str]) -> tuple[int, str]:
    """The entries of `parts` before the first with a NUL in a field or past `MAX_CHARS`."""
    count = chars = 0
    for part in parts:
        chars += len(part)
        if part.count("\0") != 3 or chars > MAX_CHARS:
            break
        count += 1
    return count, "".join(parts[:count])


def take_ahead(ctx: AttemptContext) -> None:
    """Replay the next entry handed out: `enter-checked` with its label and digest.

    Raises:
        Cancelled: the task is being cancelled (`err`), as from `enter-checked`.
        HostError: no entry is outstanding (a broken guest), or the entry's step is not
            in the history at this position (unreachable while host and guest agree).
    """
    ahead = ctx.ahead
    offset = ahead.next
    if offset == ahead.stop:
        raise HostError("step.take-ahead: no step handed out by step.enter-ahead is waiting")
    ahead.next = offset + 1
    index = ahead.base + offset  # the entries are consecutive events
    machine = ctx.machine
    cursor = machine.cursor
    if (
        cursor.position == index
        and cursor is ahead.cursor
        and not machine.in_step
        and (offset + 1 < ahead.stop or not ahead.marked)
    ):
        # `enter-checked` there, as known without doing it (the module docstring).
        ctx.raise_deferred()  # as `step_enter` does first
        cursor.position = index + 1
        machine.monotonic.plain_step_replayed()
        return
    label, digest = ahead.entry(offset)
    if _enter_checked(ctx, label, digest) is None:
        raise HostError(f"step.take-ahead: step {label!r} is not in the history here")


def _enter_checked(ctx: AttemptContext, label: str, digest: str | None) -> str | None:
    if ctx.cancelled():
        ctx.ahead = NOTHING
        raise Cancelled()
    cancel_gate.check(ctx)
    return ctx.step_enter(label, digest)


class Cancelled(Exception):
    """`enter-checked`'s `err` case: the task is being cancelled."""
